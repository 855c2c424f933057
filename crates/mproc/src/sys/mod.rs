//! Platform layer: the only place that talks to the kernel directly.
//!
//! Everything above this module is written against the small safe API
//! re-exported here: shared futex wait/wake with absolute deadlines, a
//! robust lock living in shared memory, memory mapping of segment files,
//! process liveness, descriptors (pipes, socket pairs, `poll`), and
//! starting, signalling and reaping child processes.
//!
//! * `fd` and `proc` hold the POSIX calls (and the few extensions Linux and
//!   the BSDs share, such as `pipe2` and `MSG_NOSIGNAL`).
//! * `linux.rs` holds what is particular to Linux (futexes, procfs,
//!   `memfd`, `PR_SET_PDEATHSIG`, `getrandom`), and `robust.rs` the robust
//!   lock built on its priority-inheritance futexes.
//!
//! Linux is the platform that works fully; other Unixes plug in by
//! providing the same items in their own platform file.

#[cfg(target_os = "linux")]
#[path = "linux.rs"]
mod imp;
#[cfg(target_os = "linux")]
mod robust;

#[cfg(unix)]
mod fd;
#[cfg(unix)]
mod proc;

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
#[cfg(feature = "redis")]
pub(crate) use imp::random_bytes;
pub(crate) use imp::{
    die_with_parent, futex_wait, futex_wake, in_group, memfd, my_pid, my_process_word, my_start,
    my_uid, now_coarse_ns, now_realtime_ns, process_alive, start_time, thread_count,
    wait_process_gone, Mapping, WaitResult,
};
pub(crate) use robust::{my_tid, Acquired, RawRobustMutex, RobustLock};

pub(crate) use fd::{
    allocate, is_symlink_loop, is_unix_stream_socket, no_follow, pipe, poll, poll_one, recv,
    recv_uninit, send_vectored, set_cloexec, shutdown, stream_socketpair, Interest, PollFd,
};
pub(crate) use proc::{exit_now, fork, ignore_sigpipe, send_signal, wait_pid, Forked, Signal};
