//! Naming a process so that it is never mistaken for a later one: a leaf
//! that the backends and the process spawner share.

use serde::{Deserialize, Serialize};

/// A process named by its pid *and* its start time, so that it is never
/// mistaken for a later process that the kernel gave the same pid: what
/// mproc records wherever it must later ask whether a process still runs.
///
/// ```
/// let me = mproc::ProcessId::current();
/// assert_eq!(me.pid, std::process::id());
/// assert!(me.is_alive());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProcessId {
    /// The process id.
    pub pid: u32,
    /// Its start time, in clock ticks since boot (0: unknown).
    pub start: u64,
}

impl ProcessId {
    /// The calling process.
    pub fn current() -> ProcessId {
        ProcessId {
            pid: crate::sys::my_pid(),
            start: crate::sys::my_start(),
        }
    }

    /// Process `pid`, if it runs now.
    pub fn of(pid: u32) -> Option<ProcessId> {
        crate::sys::start_time(pid).map(|start| ProcessId { pid, start })
    }

    /// Whether this process still runs (a zombie does not; a pid reused by
    /// a process that started at another time is another process).
    pub fn is_alive(&self) -> bool {
        crate::sys::process_alive(self.pid, self.start)
    }
}
