//! Why a process could not start ([`SpawnError`]) or produced no result
//! ([`ProcessError`]).

use super::status::ExitCode;
use crate::error::IoError;

/// Why a spawn failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// The arguments could not be encoded.
    #[error("cannot encode the process arguments: {0}")]
    Encode(String),
    /// The process could not be started.
    #[error("cannot start the process: {0}")]
    Io(IoError),
    /// [`StartMethod::Fork`](super::StartMethod::Fork) was asked for where
    /// it is not sound (or not supported): the reason is inside.
    #[error("cannot fork here: {0}")]
    ForkUnsound(String),
}

/// Why a process produced no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// The function panicked; the panic message is inside.
    #[error("the process panicked: {message}")]
    Panicked {
        /// The panic message.
        message: String,
    },
    /// The process ended (killed, or exited early) without a result.
    #[error("the process ended without a result ({0})")]
    Died(ExitCode),
    /// The child could not run the function (bad arguments or result).
    #[error("the process failed: {0}")]
    Failed(String),
    /// The deadline passed; the process is still running.
    #[error("timed out waiting for the process")]
    Timeout,
    /// The result was already taken by an earlier `join`.
    #[error("the process was already joined")]
    AlreadyJoined,
    /// Waiting for the process failed.
    #[error("waiting for the process failed: {0}")]
    Io(IoError),
}

impl ProcessError {
    /// Whether this is a timeout (the process can be joined again).
    pub fn is_timeout(&self) -> bool {
        *self == ProcessError::Timeout
    }
}

crate::error::from_io!(SpawnError, ProcessError);
