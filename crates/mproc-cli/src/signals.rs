//! Termination signals (`SIGINT`, `SIGTERM`, `SIGHUP`) for the commands
//! that block.
//!
//! A dedicated thread takes them with `sigwaitinfo`, so they can be acted on
//! with ordinary code: `mproc lock` forwards them to its command, and the
//! queue commands finish the library call they are in (its wait is cut into
//! short slices) before ending by the signal. That way a `get` interrupted
//! with Ctrl-C leaves the queue's waiter counts exact.
//!
//! Signals that were ignored when `mproc` started (`nohup`, background jobs
//! of a non-interactive shell) stay ignored.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use crate::ctx::Wait;
use crate::sys::{self, SigSet};

/// The signals handled here.
const TERMINATING: [i32; 3] = [sys::SIGINT, sys::SIGTERM, sys::SIGHUP];

/// `si_code` of a signal the kernel sent itself, such as the terminal's
/// `SIGINT` on Ctrl-C (which reaches the whole foreground process group).
pub(crate) const SI_KERNEL: i32 = 0x80;

/// Longest slice of a blocking queue wait between two looks at [`PENDING`].
const SLICE: Duration = Duration::from_millis(100);

/// The first terminating signal received, 0 if none.
static PENDING: AtomicI32 = AtomicI32::new(0);

/// While set, a received signal is only recorded in [`PENDING`]; the main
/// code acts on it at its next look. While clear, the process ends at once.
static DEFER: AtomicBool = AtomicBool::new(false);

/// The set of terminating signals that are not ignored (signals ignored
/// when `mproc` started stay ignored).
fn handled_set() -> SigSet {
    let mut set = SigSet::empty();
    for s in TERMINATING {
        if !sys::signal_ignored(s) {
            set.add(s);
        }
    }
    set
}

/// Blocks the handled signals in this thread (and so in every thread it
/// starts later) and starts a thread that passes each one, with its
/// `si_code`, to `on_signal`.
///
/// Call it before starting any other thread.
pub(crate) fn start(on_signal: impl Fn(i32, i32) + Send + 'static) -> io::Result<()> {
    let set = handled_set();
    sys::block_signals(&set)?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            if let Some((sig, code)) = sys::wait_signal(&set) {
                on_signal(sig, code);
            }
        })?;
    Ok(())
}

/// Ends the process by `sig` with its default action, so that the caller's
/// shell sees "killed by SIGINT" (and stops a loop, for instance).
pub(crate) fn die_by_signal(sig: i32) -> ! {
    sys::raise_default(sig);
    std::process::exit(128 + sig)
}

/// Set by [`defer_all`]: [`checkpoint`] leaves [`DEFER`] set.
static DEFER_ALL: AtomicBool = AtomicBool::new(false);

/// For the queue commands: a signal ends the process at once, except inside
/// [`sliced`] waits (or after [`defer_all`]), where it is acted on at the
/// end of the current slice.
pub(crate) fn watch() -> Result<(), crate::exit::Failure> {
    start(|sig, _| {
        let _ = PENDING.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
        if !DEFER.load(Ordering::SeqCst) {
            die_by_signal(sig);
        }
    })
    .map_err(|e| crate::exit::Failure::internal(format!("cannot set up signals: {e}")))
}

/// From now on, signals are only recorded: the caller polls [`pending`].
pub(crate) fn defer_all() {
    DEFER_ALL.store(true, Ordering::SeqCst);
    DEFER.store(true, Ordering::SeqCst);
}

/// The terminating signal received so far, if any.
pub(crate) fn pending() -> Option<i32> {
    match PENDING.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// The deadline of the next slice of a wait that ends at `overall`.
pub(crate) fn slice_deadline(overall: Option<Instant>) -> Option<Instant> {
    let slice = Instant::now().checked_add(SLICE);
    match (overall, slice) {
        (Some(o), Some(s)) => Some(o.min(s)),
        (o, s) => o.or(s),
    }
}

/// Runs a blocking library call as `wait` says, in slices so that a
/// terminating signal is noticed within [`SLICE`].
///
/// `op(None)` must not wait at all; `op(Some(deadline))` waits until the
/// deadline. `timed_out` tells the "deadline passed" error from the others.
/// Signals stay deferred when this returns: the caller finishes with what
/// it got (writes the message it took, for instance), then calls
/// [`checkpoint`].
pub(crate) fn sliced<T, E>(
    wait: Wait,
    mut op: impl FnMut(Option<Instant>) -> Result<T, E>,
    timed_out: impl Fn(&E) -> bool,
) -> Result<T, E> {
    let overall = match wait {
        Wait::Never => return op(None),
        Wait::Forever => None,
        Wait::For(d) => Instant::now().checked_add(d),
    };
    DEFER.store(true, Ordering::SeqCst);
    loop {
        let r = op(slice_deadline(overall));
        let more_time = !matches!(overall, Some(o) if Instant::now() >= o);
        match &r {
            Err(e) if timed_out(e) && more_time && pending().is_none() => {}
            _ => return r,
        }
    }
}

/// Ends the process by the signal received during the last [`sliced`]
/// call, if any; otherwise signals act at once again.
pub(crate) fn checkpoint() {
    if !DEFER_ALL.load(Ordering::SeqCst) {
        DEFER.store(false, Ordering::SeqCst);
    }
    if let Some(sig) = pending() {
        die_by_signal(sig);
    }
}

/// Makes `cmd`'s child receive `SIGKILL` when this process dies (and refuse
/// to start if it already has); with `unblock_handled`, the child also
/// starts with the signals this process handles unblocked.
pub(crate) fn die_with_parent(cmd: &mut std::process::Command, unblock_handled: bool) {
    let unblock = unblock_handled.then(handled_set);
    sys::kill_child_with_parent(cmd, std::process::id(), unblock);
}
