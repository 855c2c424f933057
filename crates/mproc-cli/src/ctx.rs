//! The validated global settings (the second parsing stage) and the output
//! helpers every command uses.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use mproc::Namespace;

use crate::args::{fmt_secs, Secs};
use crate::exit::{self, Failure};

/// Global settings shared by every command.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    /// `--dir` / `MPROC_DIR`, if given.
    pub(crate) dir: Option<PathBuf>,
    /// `--url` / `MPROC_URL`, if given: it takes precedence over `dir`.
    pub(crate) url: Option<String>,
    /// `--json`.
    pub(crate) json: bool,
    /// Whether stdout is a terminal (human output) or not (plain output).
    pub(crate) tty: bool,
    /// `-v` count minus `-q` count.
    pub(crate) verbosity: i8,
    /// `--retry-for`: how long one server outage is ridden out (`None`:
    /// forever).
    pub(crate) retry_for: Option<Duration>,
}

impl Ctx {
    /// Builds the settings from the parsed flags (`MPROC_DIR` when there
    /// is no `--dir`).
    pub(crate) fn new(dir: Option<PathBuf>, json: bool, verbose: u8, quiet: u8) -> Ctx {
        let dir = dir.or_else(|| std::env::var_os("MPROC_DIR").map(PathBuf::from));
        Ctx {
            dir: dir.filter(|d| !d.as_os_str().is_empty()),
            url: None,
            json,
            tty: io::stdout().is_terminal(),
            verbosity: (verbose.min(10) as i8) - (quiet.min(10) as i8),
            retry_for: Some(crate::retry::DEFAULT_RETRY_FOR),
        }
    }

    /// Sets `--retry-for` (`None`: keep the default).
    pub(crate) fn with_retry_for(mut self, secs: Option<Secs>) -> Ctx {
        if let Some(s) = secs {
            self.retry_for = s.0;
        }
        self
    }

    /// A fresh outage tracker with this command's retry budget.
    pub(crate) fn outage(&self) -> crate::retry::Outage {
        crate::retry::Outage::new(self.retry_for, self.verbosity < 0)
    }

    /// Sets `--url`, else `MPROC_URL` (ignored when empty).
    pub(crate) fn with_url(mut self, url: Option<String>) -> Ctx {
        let url = url.or_else(|| std::env::var("MPROC_URL").ok());
        self.url = url.filter(|u| !u.is_empty());
        self
    }

    /// The namespace: `--url`/`MPROC_URL`, else `--dir`/`MPROC_DIR`, else
    /// the library's default.
    pub(crate) fn ns(&self) -> Result<Namespace, Failure> {
        if let Some(url) = &self.url {
            let ns = Namespace::from_url(url).map_err(|e| exit::from_namespace(&e))?;
            check_server_once(&ns)?;
            return Ok(ns);
        }
        let dir = self.dir.clone().unwrap_or_else(Namespace::default_dir);
        Namespace::dir(dir).map_err(|e| exit::from_namespace(&e))
    }
}

/// Set in the environment of worker processes whose parent has already
/// checked the server's configuration.
pub(crate) const SERVER_CHECKED: &str = "MPROC_SERVER_CHECKED";

/// Checks the server's configuration once per process (not at all in
/// workers whose parent did): problems are warnings, or errors (exit 78)
/// with the URL option `strict=1`.
fn check_server_once(ns: &Namespace) -> Result<(), Failure> {
    use std::sync::atomic::{AtomicBool, Ordering};
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.swap(true, Ordering::Relaxed) || std::env::var_os(SERVER_CHECKED).is_some() {
        return Ok(());
    }
    for problem in ns.check_server().map_err(|e| exit::from_namespace(&e))? {
        tracing::warn!("server {}: {problem}", ns.location());
    }
    Ok(())
}

/// How long a blocking call may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Until it succeeds.
    Forever,
    /// Not at all.
    Never,
    /// At most this long.
    For(Duration),
}

impl Wait {
    /// From `-n` and `-w/-t SECS` (`0` means `-n`, `inf` means forever).
    pub(crate) fn from_flags(nonblock: bool, secs: Option<Secs>) -> Wait {
        if nonblock {
            return Wait::Never;
        }
        match secs {
            None | Some(Secs(None)) => Wait::Forever,
            Some(Secs(Some(d))) if d.is_zero() => Wait::Never,
            Some(Secs(Some(d))) => Wait::For(d),
        }
    }

    /// A suffix for "gave up" messages: empty for `Never`.
    pub(crate) fn gave_up(&self) -> String {
        match self {
            Wait::For(d) => format!(" (gave up after {})", fmt_secs(*d)),
            _ => String::new(),
        }
    }
}

/// Time elapsed since `t` (zero if `t` is in the future).
pub(crate) fn age(t: SystemTime) -> Duration {
    SystemTime::now().duration_since(t).unwrap_or_default()
}

/// Seconds since the Unix epoch, for JSON.
pub(crate) fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The command line of process `pid` from `/proc`, arguments joined by
/// spaces; `None` when it cannot be read (gone, or a kernel thread).
pub(crate) fn proc_cmdline(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let parts: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    if parts.is_empty() {
        None
    } else {
        Some(parts.join(" "))
    }
}

/// Writes `bytes` to stdout and flushes.
pub(crate) fn out_bytes(bytes: &[u8]) -> io::Result<()> {
    let mut o = io::stdout().lock();
    o.write_all(bytes)?;
    o.flush()
}

/// Writes one line to stdout.
pub(crate) fn out_line(line: &str) -> io::Result<()> {
    let mut o = io::stdout().lock();
    o.write_all(line.as_bytes())?;
    o.write_all(b"\n")?;
    o.flush()
}

/// Writes one JSON value as a line to stdout.
pub(crate) fn out_json(v: &serde_json::Value) -> io::Result<()> {
    out_line(&v.to_string())
}

/// Writes a message line to stderr, ignoring failures (stderr is the last
/// resort for reporting).
pub(crate) fn err_line(line: &str) {
    let mut e = io::stderr().lock();
    let _ = e.write_all(line.as_bytes());
    let _ = e.write_all(b"\n");
}

/// Prints rows as a table: aligned with a header on a terminal,
/// tab-separated without header in pipes.
pub(crate) fn out_table(ctx: &Ctx, header: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    let mut o = io::stdout().lock();
    if !ctx.tty {
        for r in rows {
            writeln!(o, "{}", r.join("\t"))?;
        }
        return o.flush();
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let fmt_row = |cells: &mut dyn Iterator<Item = &str>| {
        let mut line = String::new();
        for (i, c) in cells.enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(c);
            for _ in c.chars().count()..w {
                line.push(' ');
            }
        }
        line.trim_end().to_string()
    };
    writeln!(o, "{}", fmt_row(&mut header.iter().copied()))?;
    for r in rows {
        writeln!(o, "{}", fmt_row(&mut r.iter().map(String::as_str)))?;
    }
    o.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_flags() {
        assert_eq!(Wait::from_flags(true, None), Wait::Never);
        assert_eq!(Wait::from_flags(false, None), Wait::Forever);
        assert_eq!(
            Wait::from_flags(false, Some(Secs(Some(Duration::ZERO)))),
            Wait::Never
        );
        assert_eq!(Wait::from_flags(false, Some(Secs(None))), Wait::Forever);
        let d = Duration::from_millis(300);
        assert_eq!(Wait::from_flags(false, Some(Secs(Some(d)))), Wait::For(d));
    }

    #[test]
    fn own_cmdline() {
        let me = proc_cmdline(std::process::id()).unwrap();
        assert!(!me.is_empty());
    }
}
