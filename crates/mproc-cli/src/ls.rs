//! `mproc ls`: every object in the namespace, with its kind, size or
//! capacity, and holder or waiters.

use mproc::{ByteQueue, Lock, ObjectKind, RwLock};
use serde_json::json;

use crate::ctx::{self, Ctx};
use crate::exit;

/// Runs `mproc ls`.
pub(crate) fn run(ctx: &Ctx) -> anyhow::Result<u8> {
    let ns = ctx.ns()?;
    let list = ns
        .list()
        .map_err(|e| exit::from_io(&e, (exit::SOFTWARE, "internal"), &ns.location()))?;
    let mut rows = Vec::new();
    let mut objects = Vec::new();
    for info in list {
        let name = info.name;
        match info.kind {
            Some(kind @ (ObjectKind::Lock | ObjectKind::RwLock)) => {
                let target = if kind == ObjectKind::Lock {
                    Lock::open_in(&ns, &name)
                        .map(crate::lock::Target::Lock)
                        .ok()
                } else {
                    RwLock::open_in(&ns, &name)
                        .map(crate::lock::Target::Rw)
                        .ok()
                };
                let Some(target) = target else {
                    continue;
                };
                let (state, waiters) = crate::lock::summary(&target);
                rows.push(vec![
                    name.clone(),
                    kind.as_str().into(),
                    "-".into(),
                    state,
                    waiters,
                ]);
                objects.push(crate::lock::ls_json(&name, target));
            }
            Some(ObjectKind::Queue) => {
                let Ok(q) = ByteQueue::open_in(&ns, &name) else {
                    continue;
                };
                let s = q.stats();
                let size = match s.maxsize {
                    Some(m) => format!("{}/{m}", s.len),
                    None => s.len.to_string(),
                };
                let state = if s.closed { "closed" } else { "open" };
                let waiters = if s.waiting_get + s.waiting_put == 0 {
                    "-".to_string()
                } else {
                    format!("get {} put {}", s.waiting_get, s.waiting_put)
                };
                rows.push(vec![
                    name.clone(),
                    "queue".into(),
                    size,
                    state.into(),
                    waiters,
                ]);
                let mut v = crate::queue::stats_json(&name, &s);
                if let Some(o) = v.as_object_mut() {
                    o.insert("name".into(), json!(name));
                    o.insert("kind".into(), json!("queue"));
                    o.remove("queue");
                }
                objects.push(v);
            }
            Some(kind) if crate::sync_ls::handles(kind) => {
                if let Some((row, obj)) = crate::sync_ls::describe(&ns, &name, kind) {
                    rows.push(row);
                    objects.push(obj);
                }
            }
            _ => {
                rows.push(vec![
                    name.clone(),
                    "?".into(),
                    "-".into(),
                    "not a readable mproc object".into(),
                    "-".into(),
                ]);
                objects.push(json!({"name": name, "kind": null}));
            }
        }
    }
    if ctx.json {
        ctx::out_json(&json!({"dir": ns.location(), "objects": objects}))?;
    } else {
        ctx::out_table(ctx, &["NAME", "KIND", "SIZE", "STATE", "WAITERS"], &rows)?;
    }
    Ok(exit::OK)
}
