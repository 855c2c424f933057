//! Processes: `fork`, waiting for a child, signals, and leaving at once.
//!
//! These are POSIX calls; the Linux-only pieces a spawner uses (a child
//! killed with its parent, counting threads) live in the platform file.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// Which side of a [`fork`] the caller is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forked {
    /// The new process.
    Child,
    /// The calling process; the child has this pid.
    Parent(u32),
}

/// `fork(2)`: copies the calling process.
///
/// # Safety
/// The calling process must have no thread but the caller: the child is a
/// copy of this thread alone, and anything another thread held (the
/// allocator's locks, a `Mutex`) would stay held in it for ever.
pub(crate) unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: per the contract, the process is single-threaded, so the
    // child is a complete copy with no lock held by a vanished thread.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as u32)),
    }
}

/// Ends the calling process at once with `code` (`_exit(2)`): no exit
/// handlers, no destructors, no flushing; what a forked child calls so that
/// it does not run its parent's clean-up a second time.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions and does not return.
    unsafe { libc::_exit(code) }
}

/// Waits for the child `pid` to end (`waitpid(2)`, retried on `EINTR`) and
/// reaps it: its exit status, or `Ok(None)` if `block` is false and it is
/// still running.
pub(crate) fn wait_pid(pid: u32, block: bool) -> io::Result<Option<ExitStatus>> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: `status` is a valid int for waitpid to fill.
        let r = unsafe {
            libc::waitpid(
                pid as libc::pid_t,
                &mut status,
                if block { 0 } else { libc::WNOHANG },
            )
        };
        if r == 0 {
            return Ok(None);
        }
        if r > 0 {
            return Ok(Some(ExitStatus::from_raw(status)));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A signal mproc sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// `SIGTERM`: please end.
    Terminate,
    /// `SIGKILL`: end now.
    Kill,
}

/// Sends `signal` to process `pid` (`kill(2)`). The caller makes sure that
/// `pid` still names the process it means, e.g. an unreaped child of its own.
pub(crate) fn send_signal(pid: u32, signal: Signal) -> io::Result<()> {
    let sig = match signal {
        Signal::Terminate => libc::SIGTERM,
        Signal::Kill => libc::SIGKILL,
    };
    // 0 and what does not fit a pid_t would name process groups.
    let pid = libc::pid_t::try_from(pid)
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no such process id"))?;
    // SAFETY: kill touches no memory; a positive pid names one process.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes writing to a closed pipe or socket an `EPIPE` error instead of a
/// fatal `SIGPIPE`, as the Rust runtime does before `main`.
pub(crate) fn ignore_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}
