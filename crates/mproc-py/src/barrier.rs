//! `_Barrier`: the native half of `mproc.Barrier`.

use std::sync::Mutex;
use std::time::Duration;

use mproc::{BarrierError, SharedFd};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::errors::{broken_barrier, create_err, open_err, open_or_create_err, os_err};
use crate::handle::{dup_fd, fd_of, location_of, source, Source};

/// A cross-process barrier (the native half of `mproc.Barrier`).
#[pyclass(subclass, module = "mproc._mproc", name = "_Barrier")]
pub(crate) struct PyBarrier {
    b: mproc::Barrier,
    location: Option<String>,
}

#[pymethods]
impl PyBarrier {
    #[new]
    #[pyo3(signature = (parties=None, timeout=None, *, name=None, namespace=None, mode="open_or_create", fd=None))]
    fn new(
        parties: Option<u32>,
        timeout: Option<f64>,
        name: Option<&str>,
        namespace: Option<&str>,
        mode: &str,
        fd: Option<i32>,
    ) -> PyResult<Self> {
        let location = location_of(name, namespace)?;
        let parties_of = || {
            parties
                .filter(|&p| p > 0)
                .ok_or_else(|| PyValueError::new_err("parties must be > 0"))
        };
        let timeout = timeout
            .map(|t| Duration::try_from_secs_f64(t.max(0.0)))
            .transpose()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let src = source(name, namespace, mode, fd)?;
        let b = match src {
            Source::Anonymous => match timeout {
                Some(t) => mproc::Barrier::with_default_timeout(parties_of()?, t),
                None => mproc::Barrier::new(parties_of()?),
            }
            .map_err(create_err)?,
            Source::Fd(fd) => mproc::Barrier::from_shared_fd(dup_fd(fd)?).map_err(open_err)?,
            Source::Named { ns, name, mode } => match mode {
                "open" => mproc::Barrier::open_in(&ns, name).map_err(open_err)?,
                "create" => {
                    mproc::Barrier::create_in(&ns, name, parties_of()?).map_err(create_err)?
                }
                _ => mproc::Barrier::open_or_create_in(&ns, name, parties_of()?)
                    .map_err(open_or_create_err)?,
            },
        };
        Ok(PyBarrier { b, location })
    }

    /// Waits for every party; returns this party's index (exactly one party
    /// gets 0). The last party to arrive runs `action` (if given) before
    /// anyone is released. A timeout, `abort()`, `reset()` or the death of
    /// a waiting party raises `threading.BrokenBarrierError`.
    #[pyo3(signature = (timeout=None, action=None))]
    fn wait(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
        action: Option<Py<PyAny>>,
    ) -> PyResult<u32> {
        let timeout = timeout
            .map(|t| Duration::try_from_secs_f64(t.max(0.0)))
            .transpose()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let b = &self.b;
        let failed: Mutex<Option<PyErr>> = Mutex::new(None);
        let r = py.detach(|| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                b.wait_with(timeout, || {
                    if let Some(a) = &action {
                        if let Err(e) = Python::attach(|py| a.call0(py).map(drop)) {
                            *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                            // Breaks the barrier for every party, as
                            // threading.Barrier does when its action raises.
                            std::panic::resume_unwind(Box::new("barrier action raised"));
                        }
                    }
                })
            }))
        });
        if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        match r {
            Ok(Ok(i)) => Ok(i),
            Ok(Err(BarrierError::Broken)) => Err(broken_barrier(py)),
            Ok(Err(e)) => Err(os_err(e)),
            Err(_) => Err(PyRuntimeError::new_err("barrier wait panicked")),
        }
    }

    /// Breaks the barrier: current and future waiters get
    /// `BrokenBarrierError` until `reset()`.
    fn abort(&self) -> PyResult<()> {
        self.b.abort().map_err(os_err)
    }

    /// Returns the barrier to its initial state; current waiters get
    /// `BrokenBarrierError`.
    fn reset(&self) -> PyResult<()> {
        self.b.reset().map_err(os_err)
    }

    /// The number of parties needed to pass the barrier.
    #[getter]
    fn parties(&self) -> u32 {
        self.b.parties()
    }

    /// The number of parties waiting now.
    #[getter]
    fn n_waiting(&self) -> u32 {
        self.b.n_waiting()
    }

    /// Whether the barrier is broken.
    #[getter]
    fn broken(&self) -> bool {
        self.b.is_broken()
    }

    /// The default timeout of `wait()`, in seconds.
    #[getter]
    fn timeout(&self) -> Option<f64> {
        self.b.default_timeout().map(|d| d.as_secs_f64())
    }

    #[getter]
    fn name(&self) -> Option<&str> {
        self.b.name()
    }

    #[getter]
    fn namespace(&self) -> Option<&str> {
        self.location.as_deref()
    }

    fn _fd(&self) -> Option<i32> {
        fd_of(&self.b)
    }
}
