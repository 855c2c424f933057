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

/// A full memory fence for code that has just released a [`RobustLock`]:
/// Linux's `smp_mb__after_atomic()`.
///
/// On x86-64 a locked instruction is already a full barrier (Intel SDM
/// vol. 3A, "Memory Ordering in P6 and More Recent Processor Families":
/// reads and writes are not reordered with locked instructions), and
/// [`RobustLock::unlock`] always ends with one (or with a fence after its
/// system call), so only the compiler has to be kept from moving memory
/// accesses across this point. Elsewhere it is a real fence.
#[inline(always)]
pub(crate) fn fence_after_unlock() {
    #[cfg(target_arch = "x86_64")]
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    #[cfg(not(target_arch = "x86_64"))]
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
}

#[cfg(feature = "crash-points")]
pub(crate) use imp::kill_self;
pub(crate) use imp::{
    futex_wait, futex_wake, memfd, my_pid, my_process_word, my_start, my_tid, my_uid,
    now_coarse_ns, now_realtime_ns, process_alive, start_time, wait_process_gone, Acquired,
    Mapping, RawRobustMutex, RobustLock, WaitResult,
};
