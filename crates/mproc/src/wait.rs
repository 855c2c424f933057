//! How long an operation may wait: the one type every backend takes, and
//! what each public `x / try_x / x_timeout / x_deadline` family turns into.

use std::time::{Duration, Instant};

/// How long an operation may block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Not at all: `try_x`.
    Now,
    /// Until this instant: `x_deadline`, and `x_timeout`.
    Until(Instant),
    /// As long as it takes: `x`.
    Forever,
}

impl Wait {
    /// At most `timeout` from now (forever when that instant cannot be
    /// represented).
    pub(crate) fn timeout(timeout: Duration) -> Wait {
        crate::util::to_deadline(timeout).map_or(Wait::Forever, Wait::Until)
    }

    /// Whether the operation must not block at all.
    #[inline]
    pub(crate) fn is_now(self) -> bool {
        matches!(self, Wait::Now)
    }

    /// The instant to give up at, `None` for no limit.
    ///
    /// `Now` has none either: an operation that may not block checks
    /// [`is_now`](Self::is_now) before it waits for the object's state (a
    /// full or empty queue, a held lock), and still waits for the internal
    /// locks held only for a few stores, as a try on a thread mutex does.
    /// Nothing reads the clock for it.
    #[inline]
    pub(crate) fn deadline(self) -> Option<Instant> {
        match self {
            Wait::Until(d) => Some(d),
            Wait::Now | Wait::Forever => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert!(Wait::Now.is_now());
        assert_eq!(Wait::Now.deadline(), None);
        assert_eq!(Wait::Forever.deadline(), None);
        assert_eq!(Wait::timeout(Duration::MAX), Wait::Forever);
        let d = Instant::now();
        assert!(matches!(Wait::timeout(Duration::from_secs(1)), Wait::Until(t) if t > d));
    }
}
