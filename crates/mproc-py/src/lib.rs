//! `mproc._mproc`: the native half of the Python package `mproc`.
//!
//! Each class here wraps one handle of the `mproc` crate and speaks Python's
//! `multiprocessing` conventions (`block=True, timeout=None`, `queue.Full`,
//! `queue.Empty`, `acquire() -> bool`). The pure-Python package
//! (`python/mproc/__init__.py`) subclasses them to add pickling, named-object
//! constructors and the rest of the drop-in surface.
//!
//! Every blocking call releases the GIL while it waits, in slices of at most
//! [`wait::SLICE`], and runs Python's signal handlers between slices, so that
//! Ctrl-C raises `KeyboardInterrupt` promptly in a blocked call.
//!
//! One module per class family (`queue`, `lock`, `semaphore`, `event`,
//! `barrier`), over the shared pieces: `wait` (GIL-released waiting),
//! `errors` (the exceptions raised), `codec` (an item's bytes), `handle`
//! (finding an object, and its handle in a forked child) and `sys` (the
//! operating system).

mod barrier;
mod codec;
mod errors;
mod event;
mod handle;
mod lock;
mod queue;
mod semaphore;
mod sys;
mod wait;

use pyo3::prelude::*;

/// The native half of the `mproc` package.
#[pymodule]
fn _mproc(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<queue::PyQueue>()?;
    m.add_class::<queue::PyReceipt>()?;
    m.add_class::<lock::PyLock>()?;
    m.add_class::<lock::PyRLock>()?;
    m.add_class::<semaphore::PySemaphore>()?;
    m.add_class::<event::PyEvent>()?;
    m.add_class::<barrier::PyBarrier>()?;
    m.add_function(wrap_pyfunction!(errors::_register, m)?)?;
    Ok(())
}
