//! Positional arguments of the measuring examples.

/// Argument `i` parsed as `T`, or `default` when absent or unparsable.
pub(crate) fn arg<T: std::str::FromStr>(i: usize, default: T) -> T {
    std::env::args()
        .nth(i)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}
