//! Riding out server outages: long-running commands (`lock` while waiting,
//! the demos; `queue consume` can adopt it) retry an operation that failed
//! with transient server trouble — a refused, reset or timed-out
//! connection, LOADING, TRYAGAIN, CLUSTERDOWN — with capped exponential
//! backoff, for as long as `--retry-for` allows, reporting each outage once
//! on stderr (when it starts, and when the server answers again).
//!
//! Only the library's error types are inspected, through a classifier the
//! caller passes, so any command can wrap any operation.

use std::io;
use std::time::{Duration, Instant};

use mproc::{AckError, GetError, LockError, PutError, PutErrorKind};

use crate::args::fmt_secs;
use crate::exit::is_transient;

/// `--retry-for`'s default: how long a long-running command keeps retrying
/// one outage before it gives up (exit 75).
pub(crate) const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(60);
/// The first pause between attempts.
const FIRST: Duration = Duration::from_millis(100);
/// The longest pause between attempts.
const CAP: Duration = Duration::from_secs(5);

/// One command's retry budget and the outage in progress, if any.
#[derive(Debug)]
pub(crate) struct Outage {
    /// How long one outage may last (`None`: forever).
    budget: Option<Duration>,
    /// When the current outage began.
    since: Option<Instant>,
    /// The next pause.
    delay: Duration,
    /// No reports on stderr.
    quiet: bool,
}

impl Outage {
    /// A budget of `budget` per outage (`None`: retry forever; zero: never).
    pub(crate) fn new(budget: Option<Duration>, quiet: bool) -> Outage {
        Outage {
            budget,
            since: None,
            delay: FIRST,
            quiet,
        }
    }

    /// After a transient failure described by `msg`: reports a new outage,
    /// waits the backoff pause and returns true to retry, or false when the
    /// outage has lasted longer than the budget.
    pub(crate) fn retry(&mut self, msg: &str) -> bool {
        let now = Instant::now();
        let since = *self.since.get_or_insert(now);
        let elapsed = now - since;
        let left = match self.budget {
            Some(b) if elapsed >= b => {
                if !self.quiet && !elapsed.is_zero() {
                    eprintln!(
                        "mproc: giving up after {} of server trouble",
                        fmt_secs(elapsed)
                    );
                }
                return false;
            }
            Some(b) => Some(b - elapsed),
            None => None,
        };
        if since == now && !self.quiet {
            let limit = match self.budget {
                Some(b) => format!("for up to {}", fmt_secs(b)),
                None => "until it answers".to_owned(),
            };
            eprintln!("mproc: {msg}; retrying {limit}");
        }
        let pause = left.map_or(self.delay, |l| l.min(self.delay));
        std::thread::sleep(pause);
        self.delay = (self.delay * 2).min(CAP);
        true
    }

    /// After a success: ends (and reports the end of) an outage.
    pub(crate) fn ok(&mut self) {
        if let Some(since) = self.since.take() {
            if !self.quiet {
                eprintln!(
                    "mproc: the server answers again after {}",
                    fmt_secs(since.elapsed())
                );
            }
            self.delay = FIRST;
        }
    }

    /// Runs `op` until it succeeds, fails otherwise than transiently
    /// (`transient` returns the failure's words when it is transient), or
    /// an outage outlasts the budget; returns its last result.
    pub(crate) fn run<T, E>(
        &mut self,
        mut op: impl FnMut() -> Result<T, E>,
        transient: impl Fn(&E) -> Option<String>,
    ) -> Result<T, E> {
        loop {
            match op() {
                Ok(v) => {
                    self.ok();
                    return Ok(v);
                }
                Err(e) => match transient(&e) {
                    Some(msg) if self.retry(&msg) => {}
                    _ => return Err(e),
                },
            }
        }
    }
}

/// The words of a transient I/O error.
pub(crate) fn io_transient(e: &io::Error) -> Option<String> {
    is_transient(e.kind()).then(|| e.to_string())
}

/// The words of a transient `get` failure.
pub(crate) fn get_transient(e: &GetError) -> Option<String> {
    match e {
        GetError::Io(err) if is_transient(err.kind()) => Some(err.to_string()),
        _ => None,
    }
}

/// The words of a transient `put` failure.
pub(crate) fn put_transient<T>(e: &PutError<T>) -> Option<String> {
    match e.kind() {
        PutErrorKind::Io(err) if is_transient(err.kind()) => Some(err.to_string()),
        _ => None,
    }
}

/// The words of a transient `ack`/`nack` failure.
pub(crate) fn ack_transient(e: &AckError) -> Option<String> {
    match e {
        AckError::Io(err) if is_transient(err.kind()) => Some(err.to_string()),
        _ => None,
    }
}

/// The words of a transient lock failure.
pub(crate) fn lock_transient<G>(e: &LockError<G>) -> Option<String> {
    match e {
        LockError::Io(e) => io_transient(e.get_ref()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_transient_failures_within_the_budget_only() {
        let mut o = Outage::new(Some(Duration::from_millis(350)), true);
        let mut calls = 0;
        let r: Result<(), io::Error> = o.run(
            || {
                calls += 1;
                Err(io::ErrorKind::ConnectionRefused.into())
            },
            io_transient,
        );
        assert!(r.is_err());
        // 100 + 200 ms of pauses, then the rest of the budget: 3 or 4 calls.
        assert!((3..=4).contains(&calls), "{calls} calls");
        let mut calls = 0;
        let r: Result<(), io::Error> = o.run(
            || {
                calls += 1;
                Err(io::ErrorKind::PermissionDenied.into())
            },
            io_transient,
        );
        assert!(r.is_err());
        assert_eq!(calls, 1, "a lasting failure is not retried");
        let mut o = Outage::new(None, true);
        let mut calls = 0;
        let r = o.run(
            || {
                calls += 1;
                if calls < 3 {
                    Err(io::Error::from(io::ErrorKind::TimedOut))
                } else {
                    Ok(calls)
                }
            },
            io_transient,
        );
        assert_eq!(r.unwrap(), 3);
        assert!(o.since.is_none() && o.delay == FIRST, "the outage ended");
    }
}
