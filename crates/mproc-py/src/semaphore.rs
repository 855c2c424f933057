//! `_Semaphore`: the native half of `mproc.Semaphore` and
//! `mproc.BoundedSemaphore`.

use mproc::{Namespace, SemaphoreError, SharedFd};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::errors::os_err;
use crate::handle::{fd_of, location_of, make, source};
use crate::wait::{blocking, Wait};

enum Sem {
    Plain(mproc::Semaphore),
    Bounded(mproc::BoundedSemaphore),
}

impl Sem {
    fn sem(&self) -> &mproc::Semaphore {
        match self {
            Sem::Plain(s) => s,
            Sem::Bounded(b) => b.as_semaphore(),
        }
    }
}

/// A cross-process counting semaphore (the native half of
/// `mproc.Semaphore` and `mproc.BoundedSemaphore`).
#[pyclass(subclass, module = "mproc._mproc", name = "_Semaphore")]
pub(crate) struct PySemaphore {
    s: Sem,
    location: Option<String>,
}

#[pymethods]
impl PySemaphore {
    #[new]
    #[pyo3(signature = (value=1, *, bounded=false, name=None, namespace=None, mode="open_or_create", fd=None))]
    fn new(
        value: i64,
        bounded: bool,
        name: Option<&str>,
        namespace: Option<&str>,
        mode: &str,
        fd: Option<i32>,
    ) -> PyResult<Self> {
        let value = u32::try_from(value)
            .map_err(|_| PyValueError::new_err("semaphore initial value must be >= 0"))?;
        let location = location_of(name, namespace)?;
        let src = source(name, namespace, mode, fd)?;
        let s = if bounded {
            Sem::Bounded(make!(src,
            anon: mproc::BoundedSemaphore::new(value),
            fd: mproc::BoundedSemaphore::from_shared_fd,
            open: mproc::BoundedSemaphore::open_in,
            create: |ns, n| mproc::BoundedSemaphore::create_in(ns, n, value),
            ooc: |ns: &Namespace, n: &str| -> Result<_, mproc::OpenOrCreateError> {
                match mproc::BoundedSemaphore::open_in(ns, n) {
                    Err(mproc::OpenError::NotFound { .. }) => {
                        match mproc::BoundedSemaphore::create_in(ns, n, value) {
                            Err(mproc::CreateError::AlreadyExists { .. }) => {
                                Ok(mproc::BoundedSemaphore::open_in(ns, n)?)
                            }
                            r => Ok(r?),
                        }
                    }
                    r => Ok(r?),
                }
            })?)
        } else {
            Sem::Plain(make!(src,
                anon: mproc::Semaphore::new(value),
                fd: mproc::Semaphore::from_shared_fd,
                open: mproc::Semaphore::open_in,
                create: |ns, n| mproc::Semaphore::create_in(ns, n, value),
                ooc: |ns, n| mproc::Semaphore::open_or_create_in(ns, n, value))?)
        };
        Ok(PySemaphore { s, location })
    }

    /// Takes a unit: waits forever when `timeout` is None, at most
    /// `timeout` seconds otherwise; `block=False` never waits. Returns
    /// whether a unit was taken.
    #[pyo3(signature = (block=true, timeout=None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        let wait = Wait::new(block, timeout)?;
        let s = self.s.sem();
        let r = match s.try_acquire() {
            Err(SemaphoreError::WouldBlock) => {
                blocking(py, wait, |end| match s.acquire_deadline(end) {
                    Err(SemaphoreError::WouldBlock) => None,
                    r => Some(r),
                })?
            }
            r => Some(r),
        };
        match r {
            Some(Ok(())) => Ok(true),
            Some(Err(e)) => Err(os_err(e)),
            None => Ok(false),
        }
    }

    /// Gives a unit back (any process may); a bounded semaphore raises
    /// ValueError above its initial value.
    fn release(&self) -> PyResult<()> {
        self.s.sem().release().map_err(|e| match e {
            SemaphoreError::OverRelease { .. } => {
                PyValueError::new_err("semaphore or lock released too many times")
            }
            e => os_err(e),
        })
    }

    /// `with sem:` takes a unit and gives it back.
    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.acquire(py, true, None)
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release()
    }

    /// The number of free units.
    fn get_value(&self) -> u32 {
        self.s.sem().value()
    }

    #[getter]
    fn name(&self) -> Option<&str> {
        self.s.sem().name()
    }

    #[getter]
    fn namespace(&self) -> Option<&str> {
        self.location.as_deref()
    }

    #[getter]
    fn _bounded(&self) -> bool {
        matches!(self.s, Sem::Bounded(_))
    }

    fn _fd(&self) -> Option<i32> {
        match &self.s {
            Sem::Plain(s) => fd_of(s),
            Sem::Bounded(b) => fd_of(b),
        }
    }
}
