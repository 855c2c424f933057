"""CPython's own multiprocessing tests, run against mproc.

Runs the test classes of ``test/_test_multiprocessing.py`` (taken from the
Python installation that runs this file; nothing is fetched) for Queue,
JoinableQueue, Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event,
Barrier, Value and Array, with the factories of ``ProcessesMixin``
(``self.Queue``, ``self.Lock``, ...) returning mproc's objects, under one
start method:

    python cpython_conformance.py fork|spawn|forkserver [--markdown]

Every test must pass or be listed in ``DEVIATIONS`` with the reason; the
exit status is non-zero if a test not listed fails. A summary per class
(ran / passed / listed deviations) is printed at the end.
"""

import os
import sys
import unittest

START_METHOD = os.environ.get("MPROC_CONFORMANCE_START")
if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 1 or args[0] not in ("fork", "spawn", "forkserver"):
        sys.exit("usage: cpython_conformance.py fork|spawn|forkserver [--markdown]")
    START_METHOD = os.environ["MPROC_CONFORMANCE_START"] = args[0]

try:
    from test import _test_multiprocessing as T
except ImportError:  # pragma: no cover - depends on the installation
    sys.exit(
        "this Python installation lacks test/_test_multiprocessing.py "
        "(Debian: apt install libpython3.X-testsuite)"
    )

import mproc

# The classes run, by the name CPython gives them.
CLASSES = [
    "_TestQueue", "_TestLock", "_TestSemaphore", "_TestCondition", "_TestEvent",
    "_TestBarrier", "_TestValue", "_TestArray",
]

# Tests that fail against mproc on purpose, with the reason (test method
# name -> reason). The Python README's deviations table lists the same.
DEVIATIONS = {
    "test_queue_feeder_donot_stop_onexc": (
        "tests the feeder thread, which mproc does not have: an unpicklable item raises "
        "in put() (the error reaches the caller) instead of being printed by the feeder"),
    # In the file of Python 3.12 and later.
    "test_closed_queue_empty_exceptions": (
        "expects empty() on a used queue after close() to raise OSError from the closed pipe "
        "handle; mproc's empty() reads the exact count in shared memory and keeps answering"),
}

# Tests that call multiprocessing.Queue()/JoinableQueue() themselves rather
# than self.Queue: the module's `multiprocessing` is replaced by a view of
# it whose Queue and JoinableQueue are mproc's. Two tests still run the
# stdlib's queue: test_queue_feeder_on_queue_feeder_error subclasses
# multiprocessing.queues.Queue (the feeder's error hook), and
# test_no_import_lock_contention imports multiprocessing in a new module.


class _MultiprocessingView(type(sys)):
    def __init__(self, real):
        super().__init__(real.__name__)
        self._real = real
        self.Queue = mproc.Queue
        self.JoinableQueue = mproc.JoinableQueue

    def __getattr__(self, name):
        return getattr(self._real, name)


def _mproc_mixin():
    class MprocProcessesMixin(T.ProcessesMixin):
        Queue = staticmethod(mproc.Queue)
        JoinableQueue = staticmethod(mproc.JoinableQueue)
        Lock = staticmethod(mproc.Lock)
        RLock = staticmethod(mproc.RLock)
        Semaphore = staticmethod(mproc.Semaphore)
        BoundedSemaphore = staticmethod(mproc.BoundedSemaphore)
        Condition = staticmethod(mproc.Condition)
        Event = staticmethod(mproc.Event)
        Barrier = staticmethod(mproc.Barrier)
        Value = staticmethod(mproc.Value)
        Array = staticmethod(mproc.Array)
        RawValue = staticmethod(mproc.RawValue)
        RawArray = staticmethod(mproc.RawArray)

    MprocProcessesMixin.__name__ = "ProcessesMixin"
    return MprocProcessesMixin


# Children started with spawn/forkserver import this module again (as
# __mp_main__) and find the same test classes here.
if START_METHOD:
    T.ProcessesMixin = _mproc_mixin()
    T.multiprocessing = _MultiprocessingView(T.multiprocessing)
    _all = {"__name__": __name__}
    T.install_tests_in_module_dict(_all, START_METHOD, only_type="processes")
    for _name, _obj in _all.items():
        if isinstance(_obj, type) and any(_name == "WithProcesses" + c[1:] for c in CLASSES):
            globals()[_name] = _obj
            _obj.__module__ = __name__
            # Listed deviations are expected failures: a listed test that
            # starts to pass is reported, and the run still fails on any
            # failure that is not listed.
            for _test in DEVIATIONS:
                if _test in vars(_obj) or any(_test in vars(b) for b in _obj.__mro__):
                    setattr(_obj, _test, unittest.expectedFailure(getattr(_obj, _test)))
    setUpModule = _all["setUpModule"]
    tearDownModule = _all["tearDownModule"]


class _Result(unittest.TextTestResult):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.outcomes = []  # (class, test, outcome)

    def _record(self, test, outcome):
        cls = type(test).__name__.replace("WithProcesses", "_")
        self.outcomes.append((cls, test._testMethodName, outcome))

    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test, "pass")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, "fail")

    def addError(self, test, err):
        super().addError(test, err)
        if isinstance(test, unittest.TestCase):
            self._record(test, "fail")

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._record(test, "deviation")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._record(test, "listed but passed")

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        if isinstance(test, unittest.TestCase):
            self._record(test, "skip")


def main():
    markdown = "--markdown" in sys.argv
    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    module = sys.modules[__name__]
    for c in CLASSES:
        suite.addTests(loader.loadTestsFromTestCase(getattr(module, "WithProcesses" + c[1:])))
    # setUpModule/tearDownModule run around the suite, as unittest does for a module.
    setUpModule()
    try:
        runner = unittest.TextTestRunner(verbosity=1, resultclass=_Result)
        result = runner.run(suite)
    finally:
        tearDownModule()

    unexpected = []
    summary = {}
    for cls, test, outcome in result.outcomes:
        s = summary.setdefault(cls, {"ran": 0, "passed": 0, "deviations": 0, "skipped": 0})
        if outcome == "skip":
            s["skipped"] += 1
            continue
        s["ran"] += 1
        if outcome in ("pass", "listed but passed"):
            s["passed"] += 1
        elif outcome == "deviation":
            s["deviations"] += 1
        else:
            unexpected.append("{}.{}".format(cls, test))
    print()
    print("CPython conformance, start method {!r} (Python {}):".format(
        START_METHOD, sys.version.split()[0]))
    if markdown:
        print("| class | ran | passed | listed deviations | skipped |")
        print("|---|---:|---:|---:|---:|")
    for cls in CLASSES:
        s = summary.get(cls, {"ran": 0, "passed": 0, "deviations": 0, "skipped": 0})
        if markdown:
            print("| {} | {ran} | {passed} | {deviations} | {skipped} |".format(cls, **s))
        else:
            print("  {:16} ran {ran:3}  passed {passed:3}  listed deviations {deviations:2}"
                  "  skipped {skipped:2}".format(cls, **s))
    for cls, test, outcome in result.outcomes:
        if outcome == "deviation":
            print("  deviation {}.{}: {}".format(cls, test, DEVIATIONS[test]))
        elif outcome == "listed but passed":
            print("  listed deviation {}.{} passes now: take it off the list".format(cls, test))
    if unexpected:
        print("UNEXPECTED FAILURES: " + ", ".join(unexpected))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
