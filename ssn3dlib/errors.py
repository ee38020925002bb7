"""The errors a user can fix, and how the command line shows them.

Every error whose message says what is wrong with the user's input (a config key, a file, a
table row, a dataset tree) and what to do subclasses UserError; `ssn3d` (cli.main) prints it as
one `error: ...` line on stderr and exits with its exit_code (2), without a traceback. Anything
else is a bug and keeps its traceback (exit 1). Ctrl-C exits 130 with one line; training raises
Interrupted, a KeyboardInterrupt that says where it stopped and how to go on.

Subclasses also derive from the builtin exception they replace (ValueError, FileNotFoundError,
RuntimeError, ...), so code that caught those still does.
"""
from __future__ import annotations

#: Exit codes of `ssn3d`: 0 done, 1 a bug (traceback) or a failed notebook, 2 a user error, 130 Ctrl-C.
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

_WORKER = " in DataLoader worker process"


class UserError(Exception):
    """A problem with what the user gave; the message names it and the fix."""

    exit_code = EXIT_USER_ERROR

    def __init__(self, *args):
        if len(args) == 1 and isinstance(args[0], str):
            args = (_from_worker(args[0], type(self)),)
        super().__init__(*args)


class InputError(UserError, ValueError):
    """A value the user gave cannot be used (an option, a dataset setting, a table's content)."""


class MissingFile(UserError, FileNotFoundError):
    """A file or folder the user named (or the input needs) is not there."""


class Unavailable(UserError, RuntimeError):
    """What the input asks for is not available on this machine (a device, a download, a package,
    the repository's own files); the message says how to get it or what to ask for instead."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with where it stopped and how to continue (still a KeyboardInterrupt for notebooks)."""


def _from_worker(message: str, kind: type) -> str:
    """torch re-raises a DataLoader worker's exception as kind("Caught X in DataLoader worker
    process N.\\nOriginal Traceback ...: <message>"): keep the original message."""
    if not (message.startswith("Caught ") and _WORKER in message.split("\n", 1)[0]):
        return message
    marker = f"{kind.__module__}.{kind.__qualname__}: "
    start = message.rfind(marker)
    if start < 0:
        return message
    where = message.split("\n", 1)[0][len(f"Caught {kind.__name__} "):].rstrip(".")
    return f"{message[start + len(marker):].strip()} ({where})"


def report(err: BaseException) -> str:
    """The line(s) `ssn3d` prints for a user error or an interrupt."""
    if isinstance(err, KeyboardInterrupt):
        return str(err) or "interrupted"
    return f"error: {err}"
