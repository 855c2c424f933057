//! Small helpers shared by the public types.

use std::time::{Duration, Instant};

use crate::error::{CreateError, OpenError, OpenOrCreateError};

/// Turns a timeout into a deadline; an overflowing one means "wait forever".
pub(crate) fn to_deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Opens, or creates when missing, tolerating a concurrent creator.
pub(crate) fn open_or_create_loop<T>(
    mut open: impl FnMut() -> Result<T, OpenError>,
    mut create: impl FnMut() -> Result<T, CreateError>,
) -> Result<T, OpenOrCreateError> {
    loop {
        match open() {
            Err(OpenError::NotFound { .. }) => {}
            other => return other.map_err(Into::into),
        }
        match create() {
            Err(CreateError::AlreadyExists { .. }) => continue,
            other => return other.map_err(Into::into),
        }
    }
}
