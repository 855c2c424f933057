//! `_Event`: the native half of `mproc.Event`.

use mproc::SharedFd;
use pyo3::prelude::*;

use crate::handle::{fd_of, location_of, make, source};
use crate::wait::{blocking, Wait};

/// A cross-process event flag (the native half of `mproc.Event`).
#[pyclass(subclass, module = "mproc._mproc", name = "_Event")]
pub(crate) struct PyEvent {
    e: mproc::Event,
    location: Option<String>,
}

#[pymethods]
impl PyEvent {
    #[new]
    #[pyo3(signature = (name=None, *, namespace=None, mode="open_or_create", fd=None))]
    fn new(
        name: Option<&str>,
        namespace: Option<&str>,
        mode: &str,
        fd: Option<i32>,
    ) -> PyResult<Self> {
        let location = location_of(name, namespace)?;
        let e = make!(source(name, namespace, mode, fd)?,
            anon: mproc::Event::new(),
            fd: mproc::Event::from_shared_fd,
            open: mproc::Event::open_in,
            create: mproc::Event::create_in,
            ooc: mproc::Event::open_or_create_in)?;
        Ok(PyEvent { e, location })
    }

    /// Whether the flag is set.
    fn is_set(&self) -> bool {
        self.e.is_set()
    }

    /// Sets the flag and wakes every waiter.
    fn set(&self) {
        self.e.set();
    }

    /// Clears the flag.
    fn clear(&self) {
        self.e.clear();
    }

    /// Waits until the flag is set (at most `timeout` seconds); returns
    /// the flag.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        if self.e.is_set() {
            return Ok(true);
        }
        let e = &self.e;
        let r = blocking(py, Wait::new(true, timeout)?, |end| {
            e.wait_deadline(end).then_some(())
        })?;
        Ok(r.is_some() || self.e.is_set())
    }

    #[getter]
    fn name(&self) -> Option<&str> {
        self.e.name()
    }

    #[getter]
    fn namespace(&self) -> Option<&str> {
        self.location.as_deref()
    }

    fn _fd(&self) -> Option<i32> {
        fd_of(&self.e)
    }
}
