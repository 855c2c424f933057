//! What the package asks of the operating system directly, behind safe
//! functions.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

/// This process's id, cached (`getpid` is a system call); a forked child
/// forgets the parent's.
static PID: AtomicU32 = AtomicU32::new(0);

extern "C" fn forget_pid() {
    PID.store(0, Ordering::Relaxed);
}

/// Has `forget_pid` run in the child of every later `fork`, once per
/// process (the registration is inherited by the children).
fn forget_pid_at_fork() {
    static AT_FORK: Once = Once::new();
    AT_FORK.call_once(|| {
        // SAFETY: `forget_pid` is async-signal-safe (one atomic store), as a
        // forked child's handler must be, and lives for the whole program.
        unsafe { libc::pthread_atfork(None, None, Some(forget_pid)) };
    });
}

/// This process's id, without a system call after the first in each
/// process.
pub(crate) fn my_pid() -> u32 {
    let pid = PID.load(Ordering::Relaxed);
    if pid != 0 {
        return pid;
    }
    forget_pid_at_fork();
    let pid = std::process::id();
    PID.store(pid, Ordering::Relaxed);
    pid
}
