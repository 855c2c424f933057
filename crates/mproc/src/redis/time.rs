//! Time as the server takes it: whole milliseconds for leases, fractional
//! seconds for blocking commands, the epoch clock, and the longest slice a
//! blocking command is asked to wait.

use std::time::Duration;

/// The longest a blocking server command is asked to block in one slice.
pub(super) const MAX_SLICE: Duration = Duration::from_secs(2);

/// `d` in whole milliseconds, at least 1 (a lease or wait of 0 ms would
/// mean "none" to the server).
pub(super) fn ms(d: Duration) -> u64 {
    d.as_millis().max(1) as u64
}

/// Milliseconds since the Unix epoch, by this machine's clock.
pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Seconds as the fractional number blocking commands take (never 0, which
/// would mean forever).
pub(super) fn block_secs(d: Duration) -> f64 {
    d.as_secs_f64().max(0.001)
}
