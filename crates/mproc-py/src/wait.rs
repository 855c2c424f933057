//! Waiting with the GIL released: a blocking call waits in slices of at
//! most [`SLICE`] and runs Python's signal handlers between them, so that
//! Ctrl-C raises `KeyboardInterrupt` promptly in a blocked call.

use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// The longest a blocking call waits before it runs Python's signal
/// handlers (Ctrl-C) and waits again.
pub(crate) const SLICE: Duration = Duration::from_millis(100);

/// How a blocking call may wait, from Python's `block` and `timeout`.
#[derive(Clone, Copy)]
pub(crate) enum Wait {
    /// `block=False`, or a timeout of zero or less: never wait.
    Never,
    /// Wait until this instant.
    Until(Instant),
    /// `timeout=None`: wait as long as it takes.
    Forever,
}

impl Wait {
    pub(crate) fn new(block: bool, timeout: Option<f64>) -> PyResult<Wait> {
        if !block {
            return Ok(Wait::Never);
        }
        match timeout {
            None => Ok(Wait::Forever),
            Some(t) if t.is_nan() => Err(PyValueError::new_err("timeout must not be NaN")),
            Some(t) if t <= 0.0 => Ok(Wait::Never),
            Some(t) => Ok(Duration::try_from_secs_f64(t)
                .ok()
                .and_then(|d| Instant::now().checked_add(d))
                .map_or(Wait::Forever, Wait::Until)),
        }
    }

    /// The end of the next slice, or `None` when the wait is over.
    pub(crate) fn next_slice(self) -> Option<Instant> {
        let now = Instant::now();
        let slice = now + SLICE;
        match self {
            Wait::Never => None,
            Wait::Forever => Some(slice),
            Wait::Until(d) if d <= now => None,
            Wait::Until(d) => Some(d.min(slice)),
        }
    }
}

/// Runs `attempt(deadline)` with the GIL released, in slices, until it
/// returns `Some` or the wait is over (then `Ok(None)`). Between slices,
/// Python's signal handlers run, and their exception (`KeyboardInterrupt`)
/// ends the wait.
pub(crate) fn blocking<T: Send>(
    py: Python<'_>,
    wait: Wait,
    mut attempt: impl FnMut(Instant) -> Option<T> + Send,
) -> PyResult<Option<T>> {
    while let Some(end) = wait.next_slice() {
        if let Some(v) = py.detach(|| attempt(end)) {
            return Ok(Some(v));
        }
        py.check_signals()?;
    }
    Ok(None)
}
