//! [`ExitCode`], how a process ended, and waiting for a child's pid.

use std::fmt;
use std::io;
use std::os::unix::process::ExitStatusExt;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitCode {
    /// It exited with this status code.
    Exited(i32),
    /// It was killed by this signal.
    Signaled(i32),
}

impl ExitCode {
    /// Python's `Process.exitcode`: the code, or minus the signal number.
    pub fn python(self) -> i32 {
        match self {
            ExitCode::Exited(c) => c,
            ExitCode::Signaled(s) => -s,
        }
    }

    /// Whether the process exited with status 0.
    pub fn success(self) -> bool {
        self == ExitCode::Exited(0)
    }

    fn from_wait_status(s: std::process::ExitStatus) -> ExitCode {
        match (s.code(), s.signal()) {
            (Some(c), _) => ExitCode::Exited(c),
            (None, Some(sig)) => ExitCode::Signaled(sig),
            (None, None) => ExitCode::Exited(-1),
        }
    }
}

impl fmt::Display for ExitCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitCode::Exited(c) => write!(f, "exit status {c}"),
            ExitCode::Signaled(s) => write!(f, "killed by signal {s}"),
        }
    }
}

/// Waits for our child `pid`; `Ok(None)` if `block` is false and it runs.
pub(super) fn wait_pid(pid: u32, block: bool) -> io::Result<Option<ExitCode>> {
    Ok(crate::sys::wait_pid(pid, block)?.map(ExitCode::from_wait_status))
}
