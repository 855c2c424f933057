//! The only code of the binary that calls the kernel through `libc`: each
//! call behind a small safe function. Everything above asks for what it
//! needs here (a signal set, a pidfd, a poll) and never names `libc`.
//!
//! A leaf: it names no other module of the crate.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

/// `SIGINT`.
pub(crate) const SIGINT: i32 = libc::SIGINT;
/// `SIGTERM`.
pub(crate) const SIGTERM: i32 = libc::SIGTERM;
/// `SIGHUP`.
pub(crate) const SIGHUP: i32 = libc::SIGHUP;
/// `SIGKILL`.
pub(crate) const SIGKILL: i32 = libc::SIGKILL;

/// A set of signals (`sigset_t`), always initialised.
#[derive(Clone, Copy)]
pub(crate) struct SigSet(libc::sigset_t);

impl SigSet {
    /// The empty set.
    pub(crate) fn empty() -> SigSet {
        // SAFETY: sigset_t is plain data (all zeroes is a valid value), and
        // sigemptyset initialises it fully before anything reads it.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            SigSet(set)
        }
    }

    /// Adds `sig` to the set.
    pub(crate) fn add(&mut self, sig: i32) {
        // SAFETY: `self.0` is an initialised sigset_t that we own mutably.
        unsafe { libc::sigaddset(&mut self.0, sig) };
    }

    /// The set of the given signals.
    pub(crate) fn of(sigs: &[i32]) -> SigSet {
        let mut set = SigSet::empty();
        for &s in sigs {
            set.add(s);
        }
        set
    }
}

/// Whether `sig`'s disposition is "ignore" (as `nohup` leaves `SIGHUP`).
pub(crate) fn signal_ignored(sig: i32) -> bool {
    // SAFETY: sigaction with a null new action only reads the current one
    // into `old`, which is plain data.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN
    }
}

/// Blocks the signals of `set` in the calling thread (and so in the
/// threads it starts later).
pub(crate) fn block_signals(set: &SigSet) -> io::Result<()> {
    // SAFETY: `set` is an initialised sigset_t; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set.0, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Waits for one of the (blocked) signals of `set`; returns it with its
/// `si_code`, or `None` if the wait failed (interrupted).
pub(crate) fn wait_signal(set: &SigSet) -> Option<(i32, i32)> {
    // SAFETY: siginfo_t is plain data that sigwaitinfo fills in.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` and `info` are valid for the duration of the call.
    let sig = unsafe { libc::sigwaitinfo(&set.0, &mut info) };
    (sig > 0).then_some((sig, info.si_code))
}

/// Restores `sig`'s default action, unblocks it in the calling thread and
/// raises it: with a terminating signal, the process ends by it.
pub(crate) fn raise_default(sig: i32) {
    let one = SigSet::of(&[sig]);
    // SAFETY: restoring the default action and unblocking the signal in this
    // thread only change signal state (`one` is an initialised set); raise
    // then delivers it to this thread.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &one.0, std::ptr::null_mut());
        libc::raise(sig);
    }
}

/// Ignores `SIGPIPE`: a write to a pipe nobody reads then fails with
/// `EPIPE` instead of ending the process.
pub(crate) fn ignore_sigpipe() {
    // SAFETY: setting SIGPIPE's disposition has no memory preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Sends `sig` to process `pid`, ignoring failure (a process already gone).
pub(crate) fn send_signal(pid: u32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

/// Blocks the signals of `set` in the calling thread and returns a
/// signalfd (close-on-exec) that reads them, `None` if it cannot be had.
pub(crate) fn signal_fd(set: &SigSet) -> Option<OwnedFd> {
    // SAFETY: `set` is an initialised sigset_t; pthread_sigmask and signalfd
    // only read it, and a null old-set pointer is allowed.
    let fd = unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set.0, std::ptr::null_mut());
        libc::signalfd(-1, &set.0, libc::SFD_CLOEXEC)
    };
    // SAFETY: a fresh descriptor that nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A pidfd for `pid` (Linux 5.3+): readable once the process has ended;
/// `None` if it cannot be had.
pub(crate) fn pidfd(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor
    // or -1; it touches no memory of the caller.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: a fresh descriptor that nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// Waits up to `timeout` (whole milliseconds) until one of `fds` is
/// readable; for each, whether it is (`POLLIN`). With no descriptors, only
/// sleeps.
pub(crate) fn poll_readable(fds: &[BorrowedFd<'_>], timeout: Duration) -> Vec<bool> {
    let mut polled: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `polled` holds polled.len() valid pollfds for the call.
    unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, ms) };
    polled
        .iter()
        .map(|p| p.revents & libc::POLLIN != 0)
        .collect()
}

/// Points standard output (descriptor 1) at `fd`.
pub(crate) fn redirect_stdout(fd: BorrowedFd<'_>) {
    // SAFETY: dup2 onto fd 1 with a valid descriptor; callers are
    // single-threaded processes where nothing else writes to fd 1 meanwhile.
    unsafe { libc::dup2(fd.as_raw_fd(), 1) };
}

/// The effective user id of this process.
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// CPU time (user + system) of this process so far, `None` if the clock
/// cannot be read.
pub(crate) fn process_cpu_time() -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    (r == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// Makes `cmd`'s child start a new session (`setsid`): it leaves this
/// process's terminal and process group.
pub(crate) fn new_session_on_spawn(cmd: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and only
    // calls setsid, which is async-signal-safe; it allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
}

/// Makes `cmd`'s child receive `SIGKILL` when process `parent` (the
/// caller) dies, and refuse to start (`ESRCH`) if it already has; with
/// `unblock`, the child also starts with those signals unblocked.
pub(crate) fn kill_child_with_parent(cmd: &mut Command, parent: u32, unblock: Option<SigSet>) {
    // SAFETY: the closure runs in the forked child before exec and only calls
    // async-signal-safe functions (prctl, getppid, pthread_sigmask) on values
    // captured by copy; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl: then nobody holds the
            // lock (or unit) for the child, and it must not run.
            if libc::getppid() as u32 != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            if let Some(set) = &unblock {
                libc::pthread_sigmask(libc::SIG_UNBLOCK, &set.0, std::ptr::null_mut());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn cpu_time_advances() {
        let a = process_cpu_time().unwrap();
        let mut x = 0u64;
        for i in 0..1_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(process_cpu_time().unwrap() >= a);
    }

    #[test]
    fn own_pidfd_is_not_readable() {
        let fd = pidfd(std::process::id()).unwrap();
        assert_eq!(poll_readable(&[fd.as_fd()], Duration::ZERO), [false]);
    }
}
