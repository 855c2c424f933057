//! Argument types the commands share: durations (`Secs`, read by
//! [`parse_secs`] and printed by [`fmt_secs`]), byte sizes, and the
//! trailing `-- CMD [ARGS]...` of the commands that run a command.
//!
//! A leaf: it names no other module of the crate.

use std::ffi::OsString;
use std::time::Duration;

use clap::Args;

/// A duration (every duration flag takes one); `None` means forever.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Secs(pub(crate) Option<Duration>);

/// Parses a duration: a non-negative decimal number with an optional unit,
/// `ms`, `s`, `m` or `h` (plain numbers are seconds: `0.5`, `500ms`, `2s`,
/// `1m`, `1.5h`), or `inf`.
pub(crate) fn parse_secs(s: &str) -> Result<Secs, String> {
    let t = s.trim();
    if matches!(t, "inf" | "infinity" | "forever") {
        return Ok(Secs(None));
    }
    let (number, unit) = [("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)]
        .into_iter()
        .find_map(|(suffix, unit)| t.strip_suffix(suffix).map(|n| (n, unit)))
        .unwrap_or((t, 1.0));
    let v: f64 = number.trim().parse().map_err(|_| {
        format!("{s:?} is not a duration (examples: 0.5, 500ms, 2s, 1m, 1.5h, inf)")
    })?;
    if !v.is_finite() {
        return Ok(Secs(None));
    }
    if v < 0.0 {
        return Err(format!("{s:?}: a duration may not be negative"));
    }
    Duration::try_from_secs_f64(v * unit)
        .map(|d| Secs(Some(d)))
        .map_err(|e| format!("{s:?}: {e}"))
}

/// [`parse_secs`] as seconds (infinite for `inf`).
pub(crate) fn parse_secs_f64(s: &str) -> Result<f64, String> {
    parse_secs(s).map(|d| d.0.map_or(f64::INFINITY, |d| d.as_secs_f64()))
}

/// Formats a duration for people: `0.30s`, `12.5s`, `5m12s`, `2h03m`.
pub(crate) fn fmt_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 {
        format!("{s:.2}s")
    } else if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        let t = d.as_secs();
        format!("{}m{:02}s", t / 60, t % 60)
    } else {
        let t = d.as_secs();
        format!("{}h{:02}m", t / 3600, (t % 3600) / 60)
    }
}

/// Parses a byte size: a number with an optional K, M or G suffix (powers of 1024).
pub(crate) fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let lower = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (digits, shift) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 10),
        Some('m') => (&lower[..lower.len() - 1], 20),
        Some('g') => (&lower[..lower.len() - 1], 30),
        _ => (lower, 0),
    };
    let n: usize = digits
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size (examples: 4096, 64K, 32M)"))?;
    n.checked_mul(1usize << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// The required trailing `CMD [ARGS]...` of `mproc sem` and `mproc queue
/// consume` (flattened last into their arguments).
#[derive(Debug, Args)]
pub(crate) struct TrailingCommand {
    /// The command and its arguments.
    #[arg(
        value_name = "CMD",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub(crate) cmd: Vec<OsString>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secs() {
        assert_eq!(
            parse_secs("0.3"),
            Ok(Secs(Some(Duration::from_millis(300))))
        );
        assert_eq!(parse_secs("0"), Ok(Secs(Some(Duration::ZERO))));
        assert_eq!(parse_secs("inf"), Ok(Secs(None)));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("x").is_err());
        let ms = |n| Ok(Secs(Some(Duration::from_millis(n))));
        assert_eq!(parse_secs("500ms"), ms(500));
        assert_eq!(parse_secs("2s"), ms(2000));
        assert_eq!(parse_secs("1m"), ms(60_000));
        assert_eq!(parse_secs("1.5h"), ms(5_400_000));
        assert_eq!(parse_secs("2"), ms(2000));
        assert!(parse_secs("2x").is_err());
        assert!(parse_secs("ms").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("32MiB"), Ok(32 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(fmt_secs(Duration::from_millis(300)), "0.30s");
        assert_eq!(fmt_secs(Duration::from_secs(312)), "5m12s");
        assert_eq!(fmt_secs(Duration::from_secs(7380)), "2h03m");
    }
}
