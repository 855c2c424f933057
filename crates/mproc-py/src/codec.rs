//! A queue item's bytes: pickled (with `pickle.dumps`, falling back to
//! multiprocessing's `ForkingPickler`) or, for a raw queue, as given.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyBytes;

static DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static FORKING_DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A queue item as stored: `obj` itself for a raw queue (bytes or
/// bytearray), otherwise its pickle (protocol 5, or multiprocessing's
/// `ForkingPickler` for what only that reduces).
pub(crate) fn encode<'py>(obj: &Bound<'py, PyAny>, raw: bool) -> PyResult<Bound<'py, PyBytes>> {
    let py = obj.py();
    if raw {
        return match obj.cast::<PyBytes>() {
            Ok(b) => Ok(b.clone()),
            Err(_) => {
                let v: Vec<u8> = obj
                    .extract()
                    .map_err(|_| PyTypeError::new_err("a raw queue takes bytes (or bytearray)"))?;
                Ok(PyBytes::new(py, &v))
            }
        };
    }
    let dumps = DUMPS.get_or_try_init(py, || -> PyResult<_> {
        Ok(py.import("pickle")?.getattr("dumps")?.unbind())
    })?;
    match dumps.bind(py).call1((obj, 5)) {
        Ok(b) => Ok(b.cast_into::<PyBytes>()?),
        // Objects that only multiprocessing's pickler reduces
        // (connections, sockets): let it try.
        Err(first) => {
            let fdumps = FORKING_DUMPS.get_or_try_init(py, || -> PyResult<_> {
                Ok(py
                    .import("multiprocessing.reduction")?
                    .getattr("ForkingPickler")?
                    .getattr("dumps")?
                    .unbind())
            })?;
            match fdumps.bind(py).call1((obj,)) {
                Ok(b) => Ok(PyBytes::new(py, &b.extract::<Vec<u8>>()?)),
                Err(_) => Err(first),
            }
        }
    }
}

/// The item a stored message holds: the bytes themselves for a raw queue,
/// otherwise the unpickled object.
pub(crate) fn decode<'py>(py: Python<'py>, msg: &[u8], raw: bool) -> PyResult<Bound<'py, PyAny>> {
    let b = PyBytes::new(py, msg);
    if raw {
        return Ok(b.into_any());
    }
    let loads = LOADS.get_or_try_init(py, || -> PyResult<_> {
        Ok(py.import("pickle")?.getattr("loads")?.unbind())
    })?;
    loads.bind(py).call1((b,))
}
