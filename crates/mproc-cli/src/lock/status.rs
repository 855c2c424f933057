//! Showing locks: `mproc lock status` (a table or JSON) and the lock rows
//! of `mproc ls`.

use mproc::ObjectKind;
use serde_json::json;

use super::target::{open_existing, Target};
use crate::args::fmt_secs;
use crate::ctx::{self, age, proc_cmdline, unix_secs, Ctx};
use crate::exit;

/// One lock's state, for `status`.
struct LockRow {
    /// The lock's name.
    name: String,
    /// The lock handle.
    lock: Target,
}

/// `mproc lock status [NAME..]`.
pub(super) fn status(ctx: &Ctx, names: &[String]) -> anyhow::Result<u8> {
    let ns = ctx.ns()?;
    let mut rows = Vec::new();
    if names.is_empty() {
        let list = ns
            .list()
            .map_err(|e| exit::from_io(&e, (exit::SOFTWARE, "internal"), &ns.location()))?;
        for info in list {
            if !matches!(info.kind, Some(ObjectKind::Lock | ObjectKind::RwLock)) {
                continue;
            }
            // A lock removed since the listing is simply skipped.
            if let Ok(lock) = open_existing(&ns, &info.name) {
                rows.push(LockRow {
                    name: info.name,
                    lock,
                });
            }
        }
    } else {
        for name in names {
            let lock = open_existing(&ns, name)?;
            rows.push(LockRow {
                name: name.clone(),
                lock,
            });
        }
    }

    if ctx.json {
        let locks: Vec<_> = rows.iter().map(lock_json).collect();
        ctx::out_json(&json!({"dir": ns.location(), "locks": locks}))?;
        return Ok(exit::OK);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let v = View::of(&r.lock);
            let waiters = v.waiters_text();
            let readers = if v.readers.is_empty() {
                "-".to_string()
            } else {
                let pids: Vec<String> = v.readers.iter().map(|r| r.pid.to_string()).collect();
                format!("{} ({})", v.readers.len(), pids.join(" "))
            };
            match (&v.writer, v.readers.first()) {
                (Some(h), _) => vec![
                    r.name.clone(),
                    "held".into(),
                    h.pid.to_string(),
                    h.since.map_or_else(|| "?".into(), |t| fmt_secs(age(t))),
                    proc_cmdline(h.pid).unwrap_or_else(|| "?".into()),
                    h.tag.clone().unwrap_or_else(|| "-".into()),
                    waiters,
                    readers,
                ],
                (None, Some(first)) => vec![
                    r.name.clone(),
                    "shared".into(),
                    first.pid.to_string(),
                    fmt_secs(age(first.since)),
                    proc_cmdline(first.pid).unwrap_or_else(|| "?".into()),
                    "-".into(),
                    waiters,
                    readers,
                ],
                (None, None) => vec![
                    r.name.clone(),
                    "free".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    waiters,
                    readers,
                ],
            }
        })
        .collect();
    ctx::out_table(
        ctx,
        &[
            "NAME", "STATE", "PID", "HELD", "COMMAND", "TAG", "WAITERS", "READERS",
        ],
        &table,
    )?;
    Ok(exit::OK)
}

/// What a lock shows: its exclusive holder, its shared holders, the
/// writers (or exclusive lockers) waiting and how many wait to read.
struct View {
    writer: Option<mproc::Holder>,
    readers: Vec<mproc::Reader>,
    waiters: Vec<mproc::Waiter>,
    waiting_readers: u32,
}

impl View {
    fn of(t: &Target) -> View {
        match t {
            Target::Lock(l) => View {
                writer: l.holder(),
                readers: Vec::new(),
                waiters: l.waiters(),
                waiting_readers: 0,
            },
            Target::Rw(l) => View {
                writer: l.writer(),
                readers: l.readers(),
                waiters: l.waiting_writers(),
                waiting_readers: l.waiting_readers(),
            },
        }
    }

    /// `N (PIDS)` for the waiting writers, `+M shared` for waiting readers.
    fn waiters_text(&self) -> String {
        let mut parts = Vec::new();
        if !self.waiters.is_empty() {
            let pids: Vec<String> = self.waiters.iter().map(|w| w.pid.to_string()).collect();
            parts.push(format!("{} ({})", self.waiters.len(), pids.join(" ")));
        }
        if self.waiting_readers > 0 {
            parts.push(format!("+{} shared", self.waiting_readers));
        }
        if parts.is_empty() {
            "-".into()
        } else {
            parts.join(" ")
        }
    }
}

/// One lock as JSON.
fn lock_json(r: &LockRow) -> serde_json::Value {
    let v = View::of(&r.lock);
    let holder = v.writer.as_ref().map(|h| {
        json!({
            "pid": h.pid,
            "command": proc_cmdline(h.pid),
            "since": h.since.map(unix_secs),
            "held_s": h.since.map(|t| age(t).as_secs_f64()),
            "tag": h.tag,
        })
    });
    let readers: Vec<_> = v
        .readers
        .iter()
        .map(|x| {
            json!({
                "pid": x.pid,
                "command": proc_cmdline(x.pid),
                "since": unix_secs(x.since),
                "held_s": age(x.since).as_secs_f64(),
            })
        })
        .collect();
    let waiters: Vec<_> = v
        .waiters
        .iter()
        .map(|w| {
            json!({
                "pid": w.pid,
                "command": proc_cmdline(w.pid),
                "since": unix_secs(w.since),
                "waiting_s": age(w.since).as_secs_f64(),
            })
        })
        .collect();
    let (kind, mode) = match (&r.lock, &v.writer, readers.is_empty()) {
        (Target::Lock(_), Some(_), _) => ("lock", Some("exclusive")),
        (Target::Lock(_), None, _) => ("lock", None),
        (Target::Rw(_), Some(_), _) => ("rwlock", Some("exclusive")),
        (Target::Rw(_), None, false) => ("rwlock", Some("shared")),
        (Target::Rw(_), None, true) => ("rwlock", None),
    };
    json!({
        "name": r.name,
        "kind": kind,
        "held": mode.is_some(),
        "mode": mode,
        "holder": holder,
        "readers": readers,
        "waiters": waiters,
        "waiting_readers": v.waiting_readers,
    })
}

/// A lock's one-line summary for `mproc ls`: state and waiters.
pub(crate) fn summary(lock: &Target) -> (String, String) {
    let v = View::of(lock);
    let state = match (&v.writer, v.readers.is_empty()) {
        (Some(h), _) => match h.since {
            Some(t) => format!("held by {} for {}", h.pid, fmt_secs(age(t))),
            None => format!("held by {}", h.pid),
        },
        (None, false) => {
            let pids: Vec<String> = v.readers.iter().map(|r| r.pid.to_string()).collect();
            format!("shared by {} ({})", v.readers.len(), pids.join(" "))
        }
        (None, true) => "free".into(),
    };
    let w = v.waiters.len() + v.waiting_readers as usize;
    (state, if w == 0 { "-".into() } else { w.to_string() })
}

/// A lock as JSON, for `mproc ls --json`.
pub(crate) fn ls_json(name: &str, lock: Target) -> serde_json::Value {
    lock_json(&LockRow {
        name: name.to_string(),
        lock,
    })
}
