//! `mproc lock --hold NAME` and `mproc unlock NAME`: a lock for the rest of
//! a script, the equivalent of flock(1)'s `exec 9>FILE; flock -n 9`.
//!
//! `mproc lock --hold` starts a keeper process (`mproc __lock-hold`, in its
//! own session, output to /dev/null) that takes the lock, reports on a pipe
//! whether it did, and keeps it until one of:
//!
//! * the process it holds for (`--pid`, default the parent of `mproc`, the
//!   script) exits, however it exits, even by SIGKILL: the keeper sleeps on
//!   a pidfd of that process (identified by pid *and* start time, so a
//!   reused pid is never mistaken for it);
//! * `mproc unlock NAME` (or `mproc lock -u NAME`) sends it SIGTERM.
//!
//! If the keeper itself is killed, the library's robustness applies: a
//! shared holding is returned, an exclusive one is taken over by the next
//! locker (told that its holder died).

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;

use super::target::{acquire, holder_text, open_existing, open_target, Held, Target};
use super::{checked_name, LockRunArgs};
use crate::args::{parse_secs, Secs};
use crate::ctx::{Ctx, Wait};
use crate::exit::{self, Failure};
use crate::sys;

/// Where the keeper finds the namespace it holds in (its location, for
/// `mproc unlock` to match keepers to namespaces).
const HOLD_NS: &str = "MPROC_HOLD_NS";

/// `mproc unlock NAME`.
#[derive(Debug, Args)]
pub(crate) struct UnlockArgs {
    /// The process the holding belongs to [default: the parent of mproc].
    #[arg(long, value_name = "PID")]
    pub(crate) pid: Option<u32>,
    /// The lock.
    pub(crate) name: String,
}

/// `mproc __lock-hold`: takes the lock, reports on stdout, keeps it.
#[derive(Debug, Args)]
pub(crate) struct HoldArgs {
    /// The process whose end releases the holding.
    #[arg(long)]
    pub(crate) watch_pid: u32,
    /// Its start time (`/proc/PID/stat` field 22).
    #[arg(long)]
    pub(crate) watch_start: u64,
    /// Shared.
    #[arg(long)]
    pub(crate) shared: bool,
    /// Do not wait.
    #[arg(long)]
    pub(crate) nonblock: bool,
    /// Wait at most this long.
    #[arg(long, value_parser = parse_secs)]
    pub(crate) wait: Option<Secs>,
    /// Tag.
    #[arg(long)]
    pub(crate) tag: Option<String>,
    /// The lock.
    pub(crate) name: String,
}

/// This process's parent.
fn parent_pid() -> u32 {
    std::os::unix::process::parent_id()
}

/// The state letter and start time (field 22) of process `pid`.
fn proc_stat(pid: u32) -> Option<(u8, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut rest = stat[stat.rfind(')')? + 1..].split_ascii_whitespace();
    let state = *rest.next()?.as_bytes().first()?;
    Some((state, rest.nth(18)?.parse().ok()?))
}

/// Whether the process `pid` that started at `start` still runs (a
/// zombie does not).
fn alive(pid: u32, start: u64) -> bool {
    matches!(proc_stat(pid), Some((s, t)) if t == start && s != b'Z' && s != b'X')
}

/// Waits until `pid` (started at `start`) has ended or `limit` passes;
/// whether it ended.
fn wait_gone(pid: u32, start: u64, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    let fd = sys::pidfd(pid);
    loop {
        if !alive(pid, start) {
            return true;
        }
        let now = Instant::now();
        if now >= end {
            return false;
        }
        let ms = (end - now).min(Duration::from_millis(200)).as_millis() as u64;
        let slice = Duration::from_millis(ms.max(1));
        match &fd {
            Some(fd) => {
                sys::poll_readable(&[fd.as_fd()], slice);
            }
            None => std::thread::sleep(slice),
        }
    }
}

/// `mproc lock --hold [--pid PID] NAME`: starts the keeper and reports
/// what it got.
pub(crate) fn hold(ctx: &Ctx, args: &LockRunArgs) -> anyhow::Result<u8> {
    let name = checked_name(args)?;
    let watch = args.pid.unwrap_or_else(parent_pid);
    let Some((_, start)) = proc_stat(watch).filter(|(s, _)| *s != b'Z') else {
        return Err(Failure::usage(format!("--pid {watch}: no such process")).into());
    };
    let ns = ctx.ns()?;
    let mut cmd = Command::new(
        std::env::current_exe().map_err(|e| Failure::internal(format!("own binary: {e}")))?,
    );
    cmd.arg("__lock-hold")
        .args(["--watch-pid", &watch.to_string()])
        .args(["--watch-start", &start.to_string()]);
    if args.shared {
        cmd.arg("--shared");
    }
    match Wait::from_flags(args.nonblock, args.wait) {
        Wait::Never => {
            cmd.arg("--nonblock");
        }
        Wait::For(d) => {
            cmd.args(["--wait", &format!("{}ms", d.as_millis().max(1))]);
        }
        Wait::Forever => {}
    }
    if let Some(t) = &args.tag {
        cmd.args(["--tag", t]);
    }
    cmd.arg("--").arg(&name);
    cmd.env(HOLD_NS, ns.location())
        .env(crate::ctx::SERVER_CHECKED, "1");
    match &ctx.url {
        Some(url) => {
            cmd.env("MPROC_URL", url);
        }
        None => {
            cmd.env("MPROC_DIR", ns.path()).env_remove("MPROC_URL");
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    sys::new_session_on_spawn(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::internal(format!("cannot start the keeper: {e}")))?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap_or_default();
    if v["ok"] == true {
        tracing::info!(
            "lock '{name}' held for pid {watch} by keeper {}",
            child.id()
        );
        return Ok(exit::OK);
    }
    let _ = child.wait();
    if v["busy"] == true {
        let code = args.conflict_exit_code;
        if ctx.verbosity < 0 {
            return Ok(code);
        }
        let kind = v["kind"].as_str().unwrap_or("busy");
        let kind = if kind == "timeout" { "timeout" } else { "busy" };
        let msg = v["message"].as_str().unwrap_or("busy").to_string();
        return Err(Failure::new(code, kind, msg).into());
    }
    if let Some(code) = v["code"].as_u64() {
        let msg = v["message"].as_str().unwrap_or("failed").to_string();
        return Err(Failure::new(code as u8, "hold", msg).into());
    }
    Err(Failure::internal(format!(
        "lock '{name}': the keeper ended before taking the lock"
    ))
    .into())
}

/// Writes the keeper's one report line; false if nobody reads it.
fn report(v: &serde_json::Value) -> bool {
    let mut o = std::io::stdout().lock();
    writeln!(o, "{v}").and_then(|()| o.flush()).is_ok()
}

/// Points stdout at /dev/null (the report is sent).
fn close_stdout() {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        sys::redirect_stdout(null.as_fd());
    }
}

/// Blocks the terminating signals and returns a signalfd that reads them.
fn signal_fd() -> Option<OwnedFd> {
    sys::signal_fd(&sys::SigSet::of(&[sys::SIGTERM, sys::SIGINT, sys::SIGHUP]))
}

/// Whether `fd` has something to read now.
fn readable(fd: &OwnedFd) -> bool {
    sys::poll_readable(&[fd.as_fd()], Duration::ZERO) == [true]
}

/// `mproc __lock-hold`: takes the lock, reports, and keeps it until the
/// watched process ends or a terminating signal comes.
pub(crate) fn keeper(ctx: &Ctx, a: &HoldArgs) -> anyhow::Result<u8> {
    // A report nobody reads is then an error, not the keeper's death.
    sys::ignore_sigpipe();
    // Before any thread starts (server renewal threads inherit the mask).
    let sfd = signal_fd();
    let fail = |f: Failure| {
        report(&json!({"code": f.code, "message": f.message}));
        Ok(exit::OK)
    };
    let starter = parent_pid();
    let ns = match ctx.ns() {
        Ok(ns) => ns,
        Err(f) => return fail(f),
    };
    let mut outage = ctx.outage();
    let target = match open_target(&ns, &a.name, &mut outage) {
        Ok(t) => t,
        Err(f) => return fail(f),
    };
    let wait = Wait::from_flags(a.nonblock, a.wait);
    let deadline = match wait {
        Wait::For(d) => Instant::now().checked_add(d),
        _ => None,
    };
    // In slices of a second: give up when the script or `mproc lock
    // --hold` ends (a keeper left waiting would keep readers out). A slice
    // that ends while readers still hold the lock gives the writer's place
    // up for an instant.
    let guard: Held<'_> = loop {
        let slice = match wait {
            Wait::Never => Wait::Never,
            _ => {
                let s = Duration::from_secs(1);
                Wait::For(
                    deadline.map_or(s, |d| d.saturating_duration_since(Instant::now()).min(s)),
                )
            }
        };
        match acquire(&target, &a.name, a.shared, slice, &mut outage) {
            Ok(Some(g)) => break g,
            Ok(None) => {
                let over =
                    matches!(wait, Wait::Never) || deadline.is_some_and(|d| Instant::now() >= d);
                if over {
                    let msg = format!(
                        "lock '{}' {}{}",
                        a.name,
                        holder_text(&target),
                        wait.gave_up()
                    );
                    let kind = if matches!(wait, Wait::Never) {
                        "busy"
                    } else {
                        "timeout"
                    };
                    report(&json!({"busy": true, "kind": kind, "message": msg}));
                    return Ok(exit::BUSY);
                }
                if !alive(a.watch_pid, a.watch_start)
                    || parent_pid() != starter
                    || sfd.as_ref().is_some_and(readable)
                {
                    return Ok(exit::BUSY);
                }
            }
            Err(f) => return fail(f),
        }
    };
    let tag = a
        .tag
        .clone()
        .unwrap_or_else(|| format!("--hold for pid {}", a.watch_pid));
    guard.set_tag(&tag);
    // The starter may be gone (killed while it waited): then nobody knows
    // the lock is held, and it is given back at once.
    if !report(&json!({"ok": true})) || !alive(a.watch_pid, a.watch_start) {
        drop(guard);
        return Ok(exit::OK);
    }
    close_stdout();
    let pfd = sys::pidfd(a.watch_pid);
    // The pidfd may name a process that reused the pid: look after opening.
    while alive(a.watch_pid, a.watch_start) {
        let fds: Vec<_> = [&pfd, &sfd]
            .into_iter()
            .flatten()
            .map(|fd| fd.as_fd())
            .collect();
        // Sliced: without a pidfd (or for a pid procfs cannot see), the
        // process is looked at every second.
        let ready = sys::poll_readable(&fds, Duration::from_secs(1));
        // The signalfd, when there is one, is the last descriptor polled.
        let signalled = sfd.is_some() && ready.last() == Some(&true);
        if signalled {
            break;
        }
    }
    drop(guard);
    Ok(exit::OK)
}

/// The keepers of lock `name` in namespace `location`: (keeper pid, its
/// start time, the pid it holds for).
fn keepers(location: &str, name: &str) -> Vec<(u32, u64, u32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = sys::effective_uid();
    let mut out = Vec::new();
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let mine = e
            .metadata()
            .is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == me);
        if !mine {
            continue;
        }
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
        if !args.iter().any(|a| *a == b"__lock-hold") {
            continue;
        }
        let watch = args
            .iter()
            .position(|a| *a == b"--watch-pid")
            .and_then(|i| args.get(i + 1))
            .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u32>().ok());
        let held = args.iter().rev().find(|a| !a.is_empty()).copied();
        if held != Some(name.as_bytes()) {
            continue;
        }
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let want = format!("{HOLD_NS}={location}");
        if !env.split(|b| *b == 0).any(|v| v == want.as_bytes()) {
            continue;
        }
        if let (Some(watch), Some((state, start))) = (watch, proc_stat(pid)) {
            if state != b'Z' && state != b'X' {
                out.push((pid, start, watch));
            }
        }
    }
    out
}

/// `mproc unlock [--pid PID] NAME` (and `mproc lock -u`): ends the keepers
/// holding `name` for `PID` (default: the parent of `mproc`).
pub(crate) fn unlock(ctx: &Ctx, name: &str, pid: Option<u32>) -> anyhow::Result<u8> {
    mproc::validate_name(name).map_err(|e| Failure::usage(format!("lock name: {e}")))?;
    let ns = ctx.ns()?;
    let watch = pid.unwrap_or_else(parent_pid);
    // Keepers that hold the lock now (one still waiting for it is left to
    // its caller).
    let holders: Vec<u32> = match open_existing(&ns, name) {
        Ok(Target::Lock(l)) => l.holder().map(|h| h.pid).into_iter().collect(),
        Ok(Target::Rw(l)) => l
            .writer()
            .map(|h| h.pid)
            .into_iter()
            .chain(l.readers().iter().map(|r| r.pid))
            .collect(),
        Err(_) => Vec::new(),
    };
    let all: Vec<_> = keepers(&ns.location(), name)
        .into_iter()
        .filter(|k| holders.contains(&k.0))
        .collect();
    let mine: Vec<_> = all.iter().filter(|k| k.2 == watch).collect();
    if mine.is_empty() {
        let msg = if all.is_empty() {
            format!("lock '{name}' is not held by mproc lock --hold (for any process)")
        } else {
            let others: Vec<String> = all.iter().map(|k| k.2.to_string()).collect();
            format!(
                "lock '{name}' is not held for pid {watch}; it is held for pid {} \
                 (mproc unlock --pid PID {name})",
                others.join(", ")
            )
        };
        return Err(Failure::new(exit::BUSY, "not_held", msg).into());
    }
    for &&(keeper, start, _) in &mine {
        sys::send_signal(keeper, sys::SIGTERM);
        if !wait_gone(keeper, start, Duration::from_secs(10)) {
            return Err(Failure::internal(format!(
                "lock '{name}': its keeper (pid {keeper}) did not end"
            ))
            .into());
        }
    }
    if ctx.json {
        crate::ctx::out_json(&json!({"lock": name, "released": true, "pid": watch}))?;
    }
    tracing::info!("lock '{name}' released (held for pid {watch})");
    Ok(exit::OK)
}
