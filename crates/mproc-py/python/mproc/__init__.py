"""mproc: a drop-in, faster, crash-safe ``multiprocessing`` Queue, Lock and friends.

``import mproc as multiprocessing`` (or changing only the import line) runs a
``multiprocessing`` program unchanged: ``Queue``, ``SimpleQueue``,
``JoinableQueue``, ``Lock``, ``RLock``, ``Semaphore``, ``BoundedSemaphore``,
``Event``, ``Condition``, ``Barrier``, ``Value`` and ``Array`` are mproc's,
on shared memory and futexes; ``Process``, ``Pool``, ``current_process``,
``get_context`` and the rest come from ``multiprocessing``.

Where mproc differs, it is on purpose:

* A lock whose holder died (even by ``SIGKILL``) is taken over by the next
  ``acquire()``, which returns True, warns with :class:`OwnerDiedWarning`
  and sets the lock's ``owner_died`` attribute.
* ``qsize()``, ``empty()`` and ``full()`` are exact, everywhere.
* ``shutdown()`` ends a queue's stream for every consumer after the
  backlog (:class:`ShutDown`), without sentinels; ``close()`` keeps
  ``multiprocessing``'s meaning (this process puts no more).
* Every object can be passed to ``Pool.map``/``apply``/``starmap`` and put
  on queues, not only inherited.
* Named objects (``Queue.open_or_create("jobs")``, ``Lock("printer")``) are
  shared with unrelated processes, the ``mproc`` command and Rust programs,
  in the namespace ``MPROC_DIR`` (or ``MPROC_URL``) names.
* Blocking calls release the GIL and are interrupted by Ctrl-C.
"""

import ctypes as _ctypes
import mmap as _mmap
import multiprocessing as _mp
import os as _os
import queue as _queue
import sys as _sys
import threading as _threading
from multiprocessing import reduction as _reduction
from multiprocessing import sharedctypes as _sharedctypes
from multiprocessing import (  # noqa: F401  (re-exported)
    AuthenticationError,
    BufferTooShort,
    Manager,
    Pipe,
    Pool,
    Process,
    ProcessError,
    TimeoutError,
    active_children,
    allow_connection_pickling,
    cpu_count,
    current_process,
    freeze_support,
    get_all_start_methods,
    get_logger,
    get_start_method,
    log_to_stderr,
    parent_process,
    set_executable,
    set_forkserver_preload,
    set_start_method,
)
from queue import Empty, Full

from . import _mproc
from ._mproc import Receipt

__all__ = [
    "Array", "AuthenticationError", "Barrier", "BoundedSemaphore", "BufferTooShort",
    "ByteQueue", "Condition", "Empty", "Event", "Full", "JoinableQueue", "Lock",
    "Manager", "OwnerDiedWarning", "Pipe", "Pool", "Process", "ProcessError", "Queue",
    "RLock", "RawArray", "RawValue", "Receipt", "Semaphore", "ShutDown", "SimpleQueue",
    "TimeoutError", "Value", "active_children", "allow_connection_pickling", "cpu_count",
    "current_process", "freeze_support", "get_all_start_methods", "get_context",
    "get_logger", "get_start_method", "log_to_stderr", "parent_process", "set_executable",
    "set_forkserver_preload", "set_start_method",
]

if hasattr(_queue, "ShutDown"):

    class ShutDown(_queue.ShutDown):  # type: ignore[misc,name-defined]
        """Raised by ``put`` and, once the backlog is drained, ``get`` on a
        queue after ``shutdown()`` (``queue.ShutDown`` of Python 3.13+)."""

else:

    class ShutDown(Exception):  # type: ignore[no-redef]
        """Raised by ``put`` and, once the backlog is drained, ``get`` on a
        queue after ``shutdown()`` (``queue.ShutDown`` from Python 3.13 on,
        which this class subclasses there)."""


class OwnerDiedWarning(RuntimeWarning):
    """Warned by ``acquire()`` when it took a lock over from a holder that
    died holding it: the data the lock protects may be half-updated. The
    lock's ``owner_died`` attribute says the same until the next acquire."""


_mproc._register(ShutDown, OwnerDiedWarning)


# ------------------------------------------------------------------ pickling

def _reduce_handle(obj, extra=()):
    """Pickles a handle: an anonymous object as its memory file (a
    descriptor, through ``multiprocessing.reduction.DupFd``, which rides a
    process launch or, elsewhere, ``resource_sharer``), a named one as its
    namespace and name."""
    fd = obj._fd()
    if fd is not None:
        return _rebuild_handle, (type(obj), _reduction.DupFd(fd), None, None, extra)
    return _rebuild_handle, (type(obj), None, obj.name, obj.namespace, extra)


def _rebuild_handle(cls, dupfd, name, namespace, extra):
    if dupfd is not None:
        fd = dupfd.detach()
        try:
            return cls._adopt(extra, fd=fd)
        finally:
            _os.close(fd)
    return cls._adopt(extra, name=name, namespace=namespace, mode="open")


# -------------------------------------------------------------------- queues

class Queue(_mproc._Queue):
    """A process-shared FIFO queue: ``multiprocessing.Queue(maxsize=0)``.

    ``put(obj, block=True, timeout=None)`` / ``get(block=True,
    timeout=None)`` raise ``queue.Full`` / ``queue.Empty`` like the
    stdlib's; items are pickled in the calling thread and written to shared
    memory before ``put`` returns (there is no feeder thread, so an
    unpicklable item raises in ``put``). Also: exact ``qsize()``,
    ``empty()``, ``full()``; ``put_many``/``get_many``; ``get_leased`` +
    ``ack``; ``shutdown()``.

    The items' bytes are bounded too: ``max_bytes`` (default 1 MiB of
    pickled items, ``mproc`` crate's ``DEFAULT_MAX_BYTES``); a ``put`` that
    does not fit waits like one on a full queue.

    ``Queue.open(name)``, ``Queue.create(name, ...)`` and
    ``Queue.open_or_create(name, ...)`` give named queues, shared with
    unrelated processes and the ``mproc`` command.
    """

    _raw = False

    def __new__(cls, maxsize=0, *, max_bytes=None, ctx=None):
        return _mproc._Queue.__new__(cls, maxsize, raw=cls._raw, max_bytes=max_bytes)

    @classmethod
    def _adopt(cls, extra, **kw):
        return _mproc._Queue.__new__(cls, 0, raw=extra[0], **kw)

    @classmethod
    def open(cls, name, *, namespace=None):
        """Opens the existing named queue ``name`` (FileNotFoundError if
        there is none) in ``namespace`` (a directory or a ``redis://`` URL;
        default: ``MPROC_URL``, else ``MPROC_DIR``, else the user's)."""
        return _mproc._Queue.__new__(cls, 0, raw=cls._raw, name=name, namespace=namespace,
                                     mode="open")

    @classmethod
    def create(cls, name, maxsize=0, *, namespace=None, max_bytes=None, max_deliveries=None):
        """Creates the named queue ``name`` (FileExistsError if it exists).
        ``max_bytes`` bounds its memory; ``max_deliveries`` moves an item
        whose leased consumers died that many times to ``<name>.dlq``."""
        return _mproc._Queue.__new__(cls, maxsize, raw=cls._raw, name=name, namespace=namespace,
                                     mode="create", max_bytes=max_bytes,
                                     max_deliveries=max_deliveries)

    @classmethod
    def open_or_create(cls, name, maxsize=0, *, namespace=None, max_bytes=None,
                       max_deliveries=None):
        """Opens the named queue ``name``, creating it if it does not exist."""
        return _mproc._Queue.__new__(cls, maxsize, raw=cls._raw, name=name, namespace=namespace,
                                     mode="open_or_create", max_bytes=max_bytes,
                                     max_deliveries=max_deliveries)

    def dead_letter_queue(self):
        """The queue ``<name>.dlq`` that items delivered more than
        ``max_deliveries`` times are moved to (named queues only)."""
        if self.name is None:
            raise ValueError("only a named queue has a dead-letter queue")
        return type(self).open_or_create(self.name + ".dlq", namespace=self.namespace)

    def join_thread(self):
        """Nothing to wait for: ``put`` writes to shared memory before it
        returns (``multiprocessing``'s feeder thread does not exist here).
        Like the stdlib, only valid after ``close()``."""
        assert self._closed, "Queue {0!r} not closed".format(self)

    def cancel_join_thread(self):
        """Nothing to cancel (no feeder thread): no item is ever lost at exit."""

    def __reduce__(self):
        return _reduce_handle(self, (self.raw,))

    def __repr__(self):
        what = "name={!r}".format(self.name) if self.name else "anonymous"
        return "<{}.{} {} qsize={} maxsize={}>".format(
            type(self).__module__, type(self).__qualname__, what, self.qsize(), self.maxsize)


class SimpleQueue(Queue):
    """``multiprocessing.SimpleQueue``: an unbounded :class:`Queue`."""

    def __new__(cls, *, max_bytes=None, ctx=None):
        return _mproc._Queue.__new__(cls, 0, raw=cls._raw, max_bytes=max_bytes)


class JoinableQueue(Queue):
    """``multiprocessing.JoinableQueue(maxsize=0)``: a :class:`Queue` with
    ``task_done()`` and ``join()``. The count of unfinished tasks lives in
    the queue's shared memory, so every process sees the same."""

    def join(self, timeout=None):
        """Waits until every item put has been marked done with
        ``task_done()``. With a ``timeout`` (an mproc extension), returns
        whether that happened in time."""
        done = _mproc._Queue.join(self, timeout)
        return None if timeout is None else done


class ByteQueue(Queue):
    """A queue of ``bytes``, stored as given (not pickled): what ``mproc
    queue put`` writes and ``mproc queue get`` prints, and what a Rust
    ``ByteQueue`` reads. Same methods as :class:`Queue`; ``put`` takes
    ``bytes`` (or ``bytearray``) and ``get`` returns ``bytes``."""

    _raw = True


# --------------------------------------------------------------------- locks

class _LockMixin:
    # __enter__ and __exit__ are the native classes'.

    def __reduce__(self):
        return _reduce_handle(self, self._extra())

    def _extra(self):
        return ()

    @classmethod
    def open(cls, name, *, namespace=None):
        """Opens the existing named object (FileNotFoundError if there is none)."""
        return cls._adopt((), name=name, namespace=namespace, mode="open")

    @classmethod
    def create(cls, name, *, namespace=None):
        """Creates the named object (FileExistsError if it exists)."""
        return cls._adopt((), name=name, namespace=namespace, mode="create")

    @classmethod
    def open_or_create(cls, name, *, namespace=None):
        """Opens the named object, creating it if it does not exist."""
        return cls._adopt((), name=name, namespace=namespace, mode="open_or_create")

    def __repr__(self):
        what = "name={!r}".format(self.name) if self.name else "anonymous"
        return "<{}.{} {} locked={}>".format(
            type(self).__module__, type(self).__qualname__, what, self.locked())


class Lock(_LockMixin, _mproc._Lock):
    """A process-shared lock: ``multiprocessing.Lock()``, robust.

    ``acquire(block=True, timeout=None) -> bool``, ``release()``,
    ``locked()``, ``with lock:``. If the holder died holding it, the next
    ``acquire()`` takes it over, returns True, warns with
    :class:`OwnerDiedWarning` and sets ``owner_died``.

    ``Lock("name", timeout=None)`` is a named lock (opened, or created when
    missing) shared with unrelated processes and ``mproc lock NAME``: a
    drop-in for ``filelock.FileLock`` users that is never stale; ``with``
    raises the built-in ``TimeoutError`` after ``timeout`` seconds.

    Unlike ``multiprocessing.Lock``, only the thread that acquired the lock
    releases it (ValueError otherwise).
    """

    def __new__(cls, name=None, timeout=None, *, namespace=None, ctx=None):
        return _mproc._Lock.__new__(cls, name, timeout, namespace=namespace)

    @classmethod
    def _adopt(cls, extra, **kw):
        return _mproc._Lock.__new__(cls, timeout=extra[0] if extra else None, **kw)

    def _extra(self):
        return (self.timeout,)

    @property
    def is_locked(self):
        """Whether some process holds the lock (``filelock``'s spelling)."""
        return self.locked()

    def _is_owned(self):
        return self._is_mine()

    def _release_save(self):
        self.release()
        return 1

    def _acquire_restore(self, count):
        self.acquire()


class RLock(_LockMixin, _mproc._RLock):
    """A process-shared re-entrant lock: ``multiprocessing.RLock()``,
    robust like :class:`Lock`. Releasing a lock this thread does not hold
    raises AssertionError, as in ``multiprocessing``."""

    timeout = None

    def __new__(cls, name=None, *, namespace=None, ctx=None):
        return _mproc._RLock.__new__(cls, name, namespace=namespace)

    @classmethod
    def _adopt(cls, extra, **kw):
        return _mproc._RLock.__new__(cls, **kw)

    def _release_save(self):
        count = self._count()
        for _ in range(count):
            self.release()
        return count

    def _acquire_restore(self, count):
        for _ in range(count):
            self.acquire()


class Semaphore(_LockMixin, _mproc._Semaphore):
    """A process-shared counting semaphore: ``multiprocessing.Semaphore(value=1)``.
    Any process may ``release()``. ``get_value()`` works everywhere."""

    timeout = None
    _bounded_kind = False

    def __new__(cls, value=1, *, name=None, namespace=None, ctx=None):
        return _mproc._Semaphore.__new__(cls, value, bounded=cls._bounded_kind, name=name,
                                         namespace=namespace)

    @classmethod
    def _adopt(cls, extra, **kw):
        return _mproc._Semaphore.__new__(cls, extra[0] if extra else 0,
                                         bounded=cls._bounded_kind, **kw)

    @classmethod
    def open_or_create(cls, name, value=1, *, namespace=None):
        """Opens the named semaphore, creating it with ``value`` units if
        it does not exist."""
        return cls._adopt((value,), name=name, namespace=namespace, mode="open_or_create")

    @classmethod
    def create(cls, name, value=1, *, namespace=None):
        """Creates the named semaphore with ``value`` units."""
        return cls._adopt((value,), name=name, namespace=namespace, mode="create")

    def locked(self):
        """Whether no unit is free."""
        return self.get_value() == 0

    def __repr__(self):
        what = "name={!r}".format(self.name) if self.name else "anonymous"
        return "<{}.{} {} value={}>".format(
            type(self).__module__, type(self).__qualname__, what, self.get_value())


class BoundedSemaphore(Semaphore):
    """``multiprocessing.BoundedSemaphore(value=1)``: releasing above the
    initial value raises ValueError."""

    _bounded_kind = True


class Event(_mproc._Event):
    """A process-shared flag: ``multiprocessing.Event()`` (``set``,
    ``clear``, ``is_set``, ``wait(timeout=None) -> bool``)."""

    def __new__(cls, name=None, *, namespace=None, ctx=None):
        return _mproc._Event.__new__(cls, name, namespace=namespace)

    @classmethod
    def _adopt(cls, extra, **kw):
        return _mproc._Event.__new__(cls, **kw)

    open = classmethod(_LockMixin.open.__func__)
    create = classmethod(_LockMixin.create.__func__)
    open_or_create = classmethod(_LockMixin.open_or_create.__func__)

    def __reduce__(self):
        return _reduce_handle(self)

    def __repr__(self):
        return "<{} at {:#x} {}>".format(type(self).__qualname__, id(self),
                                         "set" if self.is_set() else "unset")


class Barrier(_mproc._Barrier):
    """A process-shared barrier: ``multiprocessing.Barrier(parties,
    action=None, timeout=None)``. ``wait(timeout=None)`` returns an index
    (exactly one party gets 0); a timeout, ``abort()``, ``reset()`` or the
    death of a waiting party raises ``threading.BrokenBarrierError``. The
    last party to arrive runs ``action`` before any is released (pass the
    same picklable action in every process that opens a named barrier).
    A wait is not interrupted by Ctrl-C (give it a timeout)."""

    def __new__(cls, parties, action=None, timeout=None, *, name=None, namespace=None, ctx=None):
        self = _mproc._Barrier.__new__(cls, parties, timeout, name=name, namespace=namespace)
        self._action = action
        return self

    @classmethod
    def _adopt(cls, extra, **kw):
        self = _mproc._Barrier.__new__(cls, None, None, **kw)
        self._action = extra[0] if extra else None
        return self

    @classmethod
    def open(cls, name, action=None, *, namespace=None):
        """Opens the existing named barrier."""
        return cls._adopt((action,), name=name, namespace=namespace, mode="open")

    @classmethod
    def create(cls, name, parties, action=None, *, namespace=None):
        """Creates the named barrier of ``parties`` parties."""
        self = _mproc._Barrier.__new__(cls, parties, None, name=name, namespace=namespace,
                                       mode="create")
        self._action = action
        return self

    @classmethod
    def open_or_create(cls, name, parties, action=None, *, namespace=None):
        """Opens the named barrier, creating it for ``parties`` parties if
        it does not exist."""
        return cls(parties, action, name=name, namespace=namespace)

    def wait(self, timeout=None):
        """Waits for every party; returns this party's index."""
        return _mproc._Barrier.wait(self, timeout, self._action)

    @property
    def action(self):
        return self._action

    def __reduce__(self):
        return _reduce_handle(self, (self._action,))

    def __repr__(self):
        return "<{}.{} parties={} n_waiting={} broken={}>".format(
            type(self).__module__, type(self).__qualname__, self.parties, self.n_waiting,
            self.broken)


class Condition:
    """A process-shared condition variable: ``multiprocessing.Condition(lock=None)``
    (default lock: a new :class:`RLock`). ``wait(timeout=None) -> bool``,
    ``wait_for(predicate, timeout=None)``, ``notify(n=1)``,
    ``notify_all()``; ``notify`` returns once the woken waiters are awake.
    Built from the lock and three :class:`Semaphore` counters, so any
    mproc lock works, and it pickles like them."""

    def __init__(self, lock=None, *, ctx=None):
        self._lock = lock if lock is not None else RLock()
        self._sleeping_count = Semaphore(0)
        self._woken_count = Semaphore(0)
        self._wait_semaphore = Semaphore(0)
        self._bind()

    def _bind(self):
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def __getstate__(self):
        return (self._lock, self._sleeping_count, self._woken_count, self._wait_semaphore)

    def __setstate__(self, state):
        (self._lock, self._sleeping_count, self._woken_count, self._wait_semaphore) = state
        self._bind()

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *args):
        return self._lock.__exit__(*args)

    def __repr__(self):
        try:
            waiters = self._sleeping_count.get_value() - self._woken_count.get_value()
        except Exception:
            waiters = "unknown"
        return "<{}.Condition({}, {})>".format(__name__, self._lock, waiters)

    def _is_owned(self):
        return self._lock._is_owned()

    def wait(self, timeout=None):
        """Releases the lock (every level of an RLock), waits to be
        notified (at most ``timeout`` seconds), takes the lock back.
        Returns False on timeout."""
        assert self._is_owned(), "must acquire() condition before using wait()"
        self._sleeping_count.release()
        count = self._lock._release_save()
        try:
            return self._wait_semaphore.acquire(True, timeout)
        finally:
            self._woken_count.release()
            self._lock._acquire_restore(count)

    def notify(self, n=1):
        """Wakes up to ``n`` waiters; returns once they are awake."""
        assert self._is_owned(), "lock is not owned"
        assert not self._wait_semaphore.acquire(False)
        # Waiters that timed out since the last notify are counted in both
        # sleeping and woken: take them off.
        while self._woken_count.acquire(False):
            res = self._sleeping_count.acquire(False)
            assert res, "notify: sleeping count below woken count"
        sleepers = 0
        while sleepers < n and self._sleeping_count.acquire(False):
            self._wait_semaphore.release()
            sleepers += 1
        if sleepers:
            for _ in range(sleepers):
                self._woken_count.acquire()
            # A waiter that timed out just now may not have taken its unit.
            while self._wait_semaphore.acquire(False):
                pass

    def notify_all(self):
        """Wakes every waiter."""
        self.notify(n=_sys.maxsize)

    def wait_for(self, predicate, timeout=None):
        """Waits until ``predicate()`` is true (at most ``timeout``
        seconds); returns its last value."""
        result = predicate()
        if result:
            return result
        if timeout is not None:
            import time
            endtime = time.monotonic() + timeout
        else:
            endtime = None
            waittime = None
        while not result:
            if endtime is not None:
                import time
                waittime = endtime - time.monotonic()
                if waittime <= 0:
                    break
            self.wait(waittime)
            result = predicate()
        return result


# ------------------------------------------------------------- Value / Array

class _SharedMemory:
    """Memory shared by processes: a memory file (memfd), mapped. Pickles as
    its descriptor, so ``Value``/``Array`` travel like the other objects."""

    def __init__(self, size, fd=None):
        self.size = size
        if fd is None:
            fd = _os.memfd_create("mproc-value", _os.MFD_CLOEXEC)
            _os.ftruncate(fd, max(size, 1))
        self._fd = fd
        self._map = _mmap.mmap(fd, max(size, 1))

    def create_memoryview(self):
        return memoryview(self._map)[: self.size]

    def __reduce__(self):
        return _rebuild_memory, (_reduction.DupFd(self._fd), self.size)


def _rebuild_memory(dupfd, size):
    return _SharedMemory(size, dupfd.detach())


def _ctype_on(mem, type_):
    obj = type_.from_buffer(mem.create_memoryview())
    obj._wrapper = mem
    _reduction.ForkingPickler.register(type_, _reduce_ctype)
    return obj


def _reduce_ctype(obj):
    mem = getattr(obj, "_wrapper", None)
    if not isinstance(mem, _SharedMemory):
        return _sharedctypes.reduce_ctype(obj)
    return _rebuild_ctype, (_type_spec(obj), mem)


def _type_spec(obj):
    """A picklable description of ``type(obj)``: ctypes array types are
    made on the fly, so they travel as (element type, length)."""
    if isinstance(obj, _ctypes.Array):
        return (obj._type_, obj._length_)
    return type(obj)


def _type_of(spec):
    if isinstance(spec, tuple):
        return spec[0] * spec[1]
    return spec


def _rebuild_ctype(spec, mem):
    return _ctype_on(mem, _type_of(spec))


def _ctype(typecode_or_type):
    return _sharedctypes.typecode_to_type.get(typecode_or_type, typecode_or_type)


def RawValue(typecode_or_type, *args):
    """A ctypes object in shared memory (``multiprocessing.RawValue``)."""
    type_ = _ctype(typecode_or_type)
    obj = _ctype_on(_SharedMemory(_ctypes.sizeof(type_)), type_)
    obj.__init__(*args)
    return obj


def RawArray(typecode_or_type, size_or_initializer):
    """A ctypes array in shared memory (``multiprocessing.RawArray``)."""
    type_ = _ctype(typecode_or_type)
    if isinstance(size_or_initializer, int):
        type_ = type_ * size_or_initializer
        return _ctype_on(_SharedMemory(_ctypes.sizeof(type_)), type_)
    type_ = type_ * len(size_or_initializer)
    obj = _ctype_on(_SharedMemory(_ctypes.sizeof(type_)), type_)
    obj.__init__(*size_or_initializer)
    return obj


def _sync_reduce(self):
    return _rebuild_synchronized, (type(self), _type_spec(self._obj), self._obj._wrapper,
                                   self._lock)


def _rebuild_synchronized(cls, spec, mem, lock):
    return cls(_ctype_on(mem, _type_of(spec)), lock)


class SynchronizedValue(_sharedctypes.Synchronized):
    """A :func:`Value`: ``.value``, ``get_lock()``, ``get_obj()``."""

    __reduce__ = _sync_reduce


class SynchronizedArray(_sharedctypes.SynchronizedArray):
    """An :func:`Array`: indexing, slicing, ``len()``, ``get_lock()``."""

    __reduce__ = _sync_reduce


class SynchronizedString(_sharedctypes.SynchronizedString):
    """An :func:`Array` of ``'c'``: also ``.value`` and ``.raw``."""

    __reduce__ = _sync_reduce


def _synchronized(obj, lock):
    if isinstance(obj, _ctypes._SimpleCData):
        return SynchronizedValue(obj, lock)
    if isinstance(obj, _ctypes.Array):
        if obj._type_ is _ctypes.c_char:
            return SynchronizedString(obj, lock)
        return SynchronizedArray(obj, lock)
    raise TypeError("mproc.Value/Array take ctypes scalars and arrays, not %r" % type(obj))


def Value(typecode_or_type, *args, lock=True, ctx=None):
    """A shared value (``multiprocessing.Value``): ``.value``, and with
    ``lock=True`` (the default) ``get_lock()`` — a robust :class:`RLock`."""
    obj = RawValue(typecode_or_type, *args)
    if lock is False:
        return obj
    if lock in (True, None):
        lock = RLock()
    if not hasattr(lock, "acquire"):
        raise AttributeError("%r has no method 'acquire'" % lock)
    return _synchronized(obj, lock)


def Array(typecode_or_type, size_or_initializer, *, lock=True, ctx=None):
    """A shared array (``multiprocessing.Array``); with ``lock=True`` (the
    default) ``get_lock()`` is a robust :class:`RLock`."""
    obj = RawArray(typecode_or_type, size_or_initializer)
    if lock is False:
        return obj
    if lock in (True, None):
        lock = RLock()
    if not hasattr(lock, "acquire"):
        raise AttributeError("%r has no method 'acquire'" % lock)
    return _synchronized(obj, lock)


# ------------------------------------------------------------------ contexts

class Context:
    """A ``multiprocessing`` context whose queues and synchronisation
    objects are mproc's; everything else (``Process``, ``Pool``, ...) comes
    from the ``multiprocessing`` context of the same start method."""

    Queue = Queue
    SimpleQueue = SimpleQueue
    JoinableQueue = JoinableQueue
    Lock = Lock
    RLock = RLock
    Semaphore = Semaphore
    BoundedSemaphore = BoundedSemaphore
    Event = Event
    Condition = Condition
    Barrier = Barrier

    def __init__(self, method=None):
        self._ctx = _mp.get_context(method)

    @staticmethod
    def Value(typecode_or_type, *args, lock=True):
        return Value(typecode_or_type, *args, lock=lock)

    @staticmethod
    def Array(typecode_or_type, size_or_initializer, *, lock=True):
        return Array(typecode_or_type, size_or_initializer, lock=lock)

    RawValue = staticmethod(RawValue)
    RawArray = staticmethod(RawArray)

    def get_context(self, method=None):
        return Context(method if method is not None else self._ctx.get_start_method())

    def __getattr__(self, name):
        return getattr(self._ctx, name)

    def __repr__(self):
        return "<mproc.Context {}>".format(self._ctx.get_start_method())


def get_context(method=None):
    """The :class:`Context` of start method ``method`` (``'fork'``,
    ``'spawn'``, ``'forkserver'``; None: the current default)."""
    return Context(method)


def __getattr__(name):
    """Everything else ``multiprocessing`` has — its submodules
    (``mproc.pool.ThreadPool``, ``mproc.connection.wait``, ``mproc.shared_memory``)
    and names this module does not define — comes from ``multiprocessing``."""
    import importlib

    try:
        return importlib.import_module("multiprocessing." + name)
    except ImportError:
        pass
    try:
        return getattr(_mp, name)
    except AttributeError:
        raise AttributeError("module 'mproc' has no attribute {!r}".format(name)) from None
