//! Platform layer: the only place that talks to the kernel directly.
//!
//! Everything above this module is written against the small safe API
//! re-exported here: shared futex wait/wake with absolute deadlines, a
//! robust lock living in shared memory, memory mapping of
//! segment files, and process liveness. Linux is the platform that works
//! fully; other Unixes plug in by providing the same items in their own file.

#[cfg(target_os = "linux")]
#[path = "linux.rs"]
mod imp;

#[cfg(not(target_os = "linux"))]
compile_error!(
    "mproc currently supports Linux only; see src/sys/mod.rs for the items a port provides"
);

pub(crate) use imp::{
    futex_wait, futex_wake, memfd, my_pid, my_tid, now_coarse_ns, now_realtime_ns, pid_alive,
    start_time, Acquired, Mapping, RawRobustMutex, RobustLock, WaitResult,
};
