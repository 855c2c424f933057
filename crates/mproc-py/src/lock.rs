//! `_Lock` and `_RLock`: the native halves of `mproc.Lock` and
//! `mproc.RLock`, robust cross-process locks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread::ThreadId;
use std::time::Instant;

use mproc::{LockError, SharedFd};
use pyo3::exceptions::{PyAssertionError, PyOSError, PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::errors::{os_err, warn_owner_died};
use crate::handle::{fd_of, location_of, make, reopener, source, PerProcess};
use crate::sys::my_pid;
use crate::wait::{blocking, Wait};

/// A robust cross-process lock (the native half of `mproc.Lock`).
#[pyclass(subclass, module = "mproc._mproc", name = "_Lock")]
pub(crate) struct PyLock {
    handle: PerProcess<mproc::Lock>,
    /// The process and thread holding the lock through this handle.
    owner: Mutex<Option<(u32, ThreadId)>>,
    owner_died: AtomicBool,
    timeout: Option<f64>,
    location: Option<String>,
}

/// The calling thread, in this process.
fn me() -> (u32, ThreadId) {
    (my_pid(), std::thread::current().id())
}

impl PyLock {
    fn owner(&self) -> Option<(u32, ThreadId)> {
        *self.owner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_owner(&self, o: Option<(u32, ThreadId)>) {
        *self.owner.lock().unwrap_or_else(|e| e.into_inner()) = o;
    }

    /// Records a successful acquisition (`died`: from a dead holder).
    fn acquired(&self, py: Python<'_>, guard: mproc::LockGuard<'_>, died: bool) -> PyResult<bool> {
        // The lock stays held after this call returns; `release` gives it
        // back with `release_forgotten`, on this thread (checked there).
        std::mem::forget(guard);
        self.set_owner(Some(me()));
        self.owner_died.store(died, Ordering::Relaxed);
        if died {
            warn_owner_died(py, "the lock")?;
        }
        Ok(true)
    }
}

#[pymethods]
impl PyLock {
    #[new]
    #[pyo3(signature = (name=None, timeout=None, *, namespace=None, mode="open_or_create", fd=None))]
    fn new(
        name: Option<&str>,
        timeout: Option<f64>,
        namespace: Option<&str>,
        mode: &str,
        fd: Option<i32>,
    ) -> PyResult<Self> {
        let location = location_of(name, namespace)?;
        let lock = make!(source(name, namespace, mode, fd)?,
            anon: mproc::Lock::new(),
            fd: mproc::Lock::from_shared_fd,
            open: mproc::Lock::open_in,
            create: mproc::Lock::create_in,
            ooc: mproc::Lock::open_or_create_in)?;
        let reopen = reopener(name, location.as_deref(), mproc::Lock::open_in)?;
        Ok(PyLock {
            handle: PerProcess::new(lock, reopen),
            owner: Mutex::new(None),
            owner_died: AtomicBool::new(false),
            timeout,
            location,
        })
    }

    /// Acquires the lock: waits forever when `timeout` is None, at most
    /// `timeout` seconds otherwise; `block=False` never waits. Returns
    /// whether it was acquired. If its previous holder died holding it, it
    /// is taken over: this returns True, warns with `OwnerDiedWarning` and
    /// sets `owner_died`.
    #[pyo3(signature = (block=true, timeout=None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        let wait = Wait::new(block, timeout)?;
        if self.owner() == Some(me()) {
            // Python's Lock is not re-entrant: the holder waits for itself,
            // which only the deadline (or Ctrl-C) ends.
            blocking(py, wait, |end| {
                std::thread::sleep(end.saturating_duration_since(Instant::now()));
                None::<()>
            })?;
            return Ok(false);
        }
        let lock = self.handle.get()?;
        let lock: &mproc::Lock = &lock;
        match lock.try_lock() {
            Ok(g) => return self.acquired(py, g, false),
            Err(LockError::OwnerDied(o)) => return self.acquired(py, o.into_inner(), true),
            Err(LockError::WouldBlock) => {}
            Err(LockError::Io(e)) => return Err(os_err(e)),
            Err(e) => return Err(os_err(e)),
        }
        // A guard cannot leave the waiting thread's closure as a value (it
        // is not Send); the slice reports the outcome and forgets it, and
        // `acquired` runs with a fresh view of the lock below.
        let r = blocking(py, wait, |end| match lock.lock_deadline(end) {
            Ok(g) => {
                std::mem::forget(g);
                Some(Ok(false))
            }
            Err(LockError::OwnerDied(o)) => {
                std::mem::forget(o.into_inner());
                Some(Ok(true))
            }
            Err(LockError::WouldBlock) => None,
            Err(e) => Some(Err(e.to_string())),
        })?;
        match r {
            Some(Ok(died)) => {
                self.set_owner(Some(me()));
                self.owner_died.store(died, Ordering::Relaxed);
                if died {
                    warn_owner_died(py, "the lock")?;
                }
                Ok(true)
            }
            Some(Err(e)) => Err(PyOSError::new_err(e)),
            None => Ok(false),
        }
    }

    /// Releases the lock. Only the thread that acquired it through this
    /// handle may (a ValueError otherwise, as for an unlocked lock).
    fn release(&self) -> PyResult<()> {
        let mut owner = self.owner.lock().unwrap_or_else(|e| e.into_inner());
        match *owner {
            Some(o) if o == me() => {
                *owner = None;
                // SAFETY: this thread acquired the lock through this handle
                // and forgot the guard (`acquired` / the blocking path), and
                // `owner` is cleared under its mutex, so this is the one
                // release of that acquisition.
                unsafe { self.handle.get()?.release_forgotten() };
                Ok(())
            }
            Some(_) => Err(PyValueError::new_err(
                "lock is held by another thread or process: only its acquirer can release it",
            )),
            None => Err(PyValueError::new_err(
                "semaphore or lock released too many times",
            )),
        }
    }

    /// `with lock:` acquires (waiting at most the lock's `timeout`, then
    /// raising the built-in `TimeoutError`) and releases.
    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        if self.acquire(py, true, self.timeout)? {
            Ok(true)
        } else {
            Err(PyTimeoutError::new_err(format!(
                "could not acquire the lock within {} s",
                self.timeout.unwrap_or(0.0)
            )))
        }
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release()
    }

    /// Whether some process holds the lock now.
    fn locked(&self) -> PyResult<bool> {
        Ok(self.handle.get()?.is_locked())
    }

    /// Whether the last acquisition through this handle took the lock over
    /// from a holder that died holding it.
    #[getter]
    fn owner_died(&self) -> bool {
        self.owner_died.load(Ordering::Relaxed)
    }

    /// The pid of the process holding the lock, if any.
    #[getter]
    fn holder_pid(&self) -> PyResult<Option<u32>> {
        Ok(self
            .handle
            .get()?
            .holder()
            .map(|h| h.pid)
            .filter(|&p| p != 0))
    }

    /// The lock's name; None for an anonymous lock.
    #[getter]
    fn name(&self) -> Option<&str> {
        self.handle.own.name()
    }

    /// The namespace of a named lock (a directory or a URL).
    #[getter]
    fn namespace(&self) -> Option<&str> {
        self.location.as_deref()
    }

    /// The default timeout of `with lock:` (None: wait forever).
    #[getter]
    fn timeout(&self) -> Option<f64> {
        self.timeout
    }

    fn _fd(&self) -> Option<i32> {
        fd_of(&self.handle.own)
    }

    fn _is_mine(&self) -> bool {
        self.owner() == Some(me())
    }
}

// ------------------------------------------------------------------- RLock

/// A robust re-entrant cross-process lock (the native half of
/// `mproc.RLock`).
#[pyclass(subclass, module = "mproc._mproc", name = "_RLock")]
pub(crate) struct PyRLock {
    lock: mproc::RLock,
    owner_died: AtomicBool,
    location: Option<String>,
}

#[pymethods]
impl PyRLock {
    #[new]
    #[pyo3(signature = (name=None, *, namespace=None, mode="open_or_create", fd=None))]
    fn new(
        name: Option<&str>,
        namespace: Option<&str>,
        mode: &str,
        fd: Option<i32>,
    ) -> PyResult<Self> {
        let location = location_of(name, namespace)?;
        let lock = make!(source(name, namespace, mode, fd)?,
            anon: mproc::RLock::new(),
            fd: mproc::RLock::from_shared_fd,
            open: mproc::RLock::open_in,
            create: mproc::RLock::create_in,
            ooc: mproc::RLock::open_or_create_in)?;
        Ok(PyRLock {
            lock,
            owner_died: AtomicBool::new(false),
            location,
        })
    }

    /// Acquires (or re-enters) the lock; see `Lock.acquire`.
    #[pyo3(signature = (block=true, timeout=None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        let wait = Wait::new(block, timeout)?;
        let lock = &self.lock;
        let r = match lock.try_acquire() {
            Err(LockError::WouldBlock) => {
                blocking(py, wait, |end| match lock.acquire_deadline(end) {
                    Err(LockError::WouldBlock) => None,
                    r => Some(r),
                })?
            }
            r => Some(r),
        };
        match r {
            Some(Ok(())) => {
                self.owner_died.store(false, Ordering::Relaxed);
                Ok(true)
            }
            Some(Err(LockError::OwnerDied(_))) => {
                self.owner_died.store(true, Ordering::Relaxed);
                warn_owner_died(py, "the lock")?;
                Ok(true)
            }
            Some(Err(e)) => Err(os_err(e)),
            None => Ok(false),
        }
    }

    /// Releases one level; AssertionError unless this thread holds it.
    fn release(&self) -> PyResult<()> {
        self.lock.release().map_err(|_| {
            PyAssertionError::new_err("attempt to release recursive lock not owned by thread")
        })
    }

    /// `with rlock:` acquires (or re-enters) and releases one level.
    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.acquire(py, true, None)
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release()
    }

    /// Whether some thread holds the lock now.
    fn locked(&self) -> bool {
        self.lock.is_locked()
    }

    fn _is_owned(&self) -> bool {
        self.lock.is_owned()
    }

    fn _count(&self) -> u32 {
        if self.lock.is_owned() {
            self.lock.count()
        } else {
            0
        }
    }

    /// Whether the last acquisition took the lock over from a dead holder.
    #[getter]
    fn owner_died(&self) -> bool {
        self.owner_died.load(Ordering::Relaxed)
    }

    /// The owner as (pid, thread id), if any.
    fn _owner(&self) -> Option<(u32, u32)> {
        self.lock.owner()
    }

    #[getter]
    fn name(&self) -> Option<&str> {
        self.lock.name()
    }

    #[getter]
    fn namespace(&self) -> Option<&str> {
        self.location.as_deref()
    }

    fn _fd(&self) -> Option<i32> {
        fd_of(&self.lock)
    }
}
