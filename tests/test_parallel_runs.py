"""Independent trainings in separate processes: every result comes back under its own index,
whatever order the workers finish in, and a failure stops the batch with its own error."""
import operator

import pytest

from ssn3dlib.studies.toolkit.parallel import check_workers, map_in_processes


def test_results_come_back_under_their_index_with_one_or_two_workers():
    calls = [(i, 3) for i in range(6)]
    inline = dict(map_in_processes(operator.mul, calls, workers=1))
    assert list(dict(map_in_processes(operator.mul, calls, workers=1))) == list(range(6))  # in order, in process
    assert inline == {i: 3 * i for i in range(6)}
    assert dict(map_in_processes(operator.mul, calls, workers=2)) == inline


def test_a_failing_call_raises_its_own_error():
    with pytest.raises(ZeroDivisionError):
        dict(map_in_processes(operator.truediv, [(1, 1), (1, 0), (2, 1)], workers=2))


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_a_bad_worker_count_is_refused(bad):
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        check_workers(bad)
