"""The `ssn3d` command (also `python -m ssn3dlib`).

Each sub-command lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; adding a command is one line in COMMANDS. Modules are
imported only when their command runs, so `ssn3d --help` stays fast.

This is the one place that turns errors into exit codes (ssn3dlib.errors): a UserError is one
`error: ...` line and exit 2, Ctrl-C one line and exit 130; any other exception is a bug and
keeps its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from .errors import EXIT_INTERRUPTED, UserError, report

#: name -> (module, one-line help)
COMMANDS = {
    "info": ("ssn3dlib.commands.info", "versions, devices, models and backbones available"),
    "demo": ("ssn3dlib.commands.demo", "short CPU demo of the model, writes reports/demo/"),
    "data": ("ssn3dlib.commands.data",
             "dataset tools: verify a tree against its manifest, synth a synthetic world, pseudolabel keypoints"),
    "studies": ("ssn3dlib.commands.studies", "run the study notebooks (papermill batch) or refresh their outputs"),
    "train": ("ssn3dlib.commands.train", "train a model from a YAML config (resumable; DDP under torchrun)"),
    "evaluate": ("ssn3dlib.commands.evaluate", "rank-1/5/10/20 and mAP of a checkpoint under its dataset's protocol"),
    "visrank": ("ssn3dlib.commands.visrank", "ranked lists: queries and their top-k gallery tracklets, as a PNG"),
    "extract": ("ssn3dlib.commands.extract", "one embedding per tracklet of a folder or dataset (.npz)"),
}


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="ssn3d", description="SSN3D video re-ID study tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        if argv and argv[0] == name:  # only the chosen command's module is imported
            module = importlib.import_module(module_name)
            module.add_arguments(cmd)
            cmd.set_defaults(_run=module.run)
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except UserError as err:          # the input is wrong: one line, no traceback
        print(report(err), file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt as err:  # Ctrl-C; training's says where it stopped and how to resume
        print(report(err), file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
