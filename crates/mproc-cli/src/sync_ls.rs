//! `mproc ls` rows for the synchronisation objects: RLock, Semaphore,
//! Event, Condition, Barrier, Value and Array.

use mproc::{Barrier, Condition, Event, Namespace, ObjectKind, RLock, Semaphore, ValueInfo};
use serde_json::{json, Value as Json};

/// Whether `kind` is one of the kinds described here.
pub(crate) fn handles(kind: ObjectKind) -> bool {
    matches!(
        kind,
        ObjectKind::RLock
            | ObjectKind::Semaphore
            | ObjectKind::Event
            | ObjectKind::Condition
            | ObjectKind::Barrier
            | ObjectKind::Value
            | ObjectKind::Array
    )
}

/// The table row (NAME, KIND, SIZE, STATE, WAITERS) and JSON object of one
/// object; `None` when it vanished or cannot be opened.
pub(crate) fn describe(
    ns: &Namespace,
    name: &str,
    kind: ObjectKind,
) -> Option<(Vec<String>, Json)> {
    let dash = || "-".to_string();
    let count = |n: u32| if n == 0 { dash() } else { n.to_string() };
    let (size, state, waiters, extra) = match kind {
        ObjectKind::RLock => {
            let l = RLock::open_in(ns, name).ok()?;
            match l.owner() {
                Some((pid, _)) => (
                    dash(),
                    format!("held by {pid} (depth {})", l.count()),
                    dash(),
                    json!({"held": true, "owner": pid, "count": l.count()}),
                ),
                None => (dash(), "free".into(), dash(), json!({"held": false})),
            }
        }
        ObjectKind::Semaphore => {
            let s = Semaphore::open_in(ns, name).ok()?;
            let holders = s.holders();
            let size = match s.bound() {
                Some(b) => format!("{}/{b}", s.value()),
                None => s.value().to_string(),
            };
            let state = if holders.is_empty() {
                format!("{} free", s.value())
            } else {
                let pids: Vec<String> = holders
                    .iter()
                    .map(|(p, u, alive)| {
                        let dead = if *alive { "" } else { " dead" };
                        if *u == 1 {
                            format!("{p}{dead}")
                        } else {
                            format!("{p}×{u}{dead}")
                        }
                    })
                    .collect();
                format!("held by {}", pids.join(" "))
            };
            let hj: Vec<Json> = holders
                .iter()
                .map(|(p, u, a)| json!({"pid": p, "units": u, "alive": a}))
                .collect();
            (
                size,
                state,
                count(s.waiting()),
                json!({"value": s.value(), "bound": s.bound(), "holders": hj, "waiting": s.waiting()}),
            )
        }
        ObjectKind::Event => {
            let e = Event::open_in(ns, name).ok()?;
            let set = e.is_set();
            (
                dash(),
                if set { "set" } else { "clear" }.into(),
                count(e.waiting()),
                json!({"set": set, "waiting": e.waiting()}),
            )
        }
        ObjectKind::Condition => {
            let c = Condition::open_in(ns, name).ok()?;
            let locked = c.is_locked();
            (
                dash(),
                if locked { "locked" } else { "free" }.into(),
                count(c.waiting()),
                json!({"locked": locked, "waiting": c.waiting()}),
            )
        }
        ObjectKind::Barrier => {
            let b = Barrier::open_in(ns, name).ok()?;
            (
                format!("{}/{}", b.n_waiting(), b.parties()),
                if b.is_broken() { "broken" } else { "ok" }.into(),
                count(b.n_waiting()),
                json!({"parties": b.parties(), "n_waiting": b.n_waiting(), "broken": b.is_broken()}),
            )
        }
        ObjectKind::Value | ObjectKind::Array => {
            let v = ValueInfo::inspect(ns, name).ok()?;
            let size = if kind == ObjectKind::Value {
                v.type_name.to_string()
            } else {
                format!("{}[{}]", v.type_name, v.len)
            };
            let mut shown = v.preview.join(" ");
            if v.len > v.preview.len() && !v.preview.is_empty() {
                shown.push_str(" …");
            }
            let state = if v.locked {
                format!("{shown} (locked)")
            } else {
                shown
            };
            (
                size,
                state,
                dash(),
                json!({"type": v.type_name, "len": v.len, "locking": v.locking,
                       "locked": v.locked, "preview": v.preview}),
            )
        }
        _ => return None,
    };
    let mut obj = json!({"name": name, "kind": kind.as_str()});
    if let (Some(o), Some(e)) = (obj.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    Some((
        vec![
            name.to_string(),
            kind.as_str().to_string(),
            size,
            state,
            waiters,
        ],
        obj,
    ))
}
