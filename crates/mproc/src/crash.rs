//! Named crash points: every store to shared memory (and every system call
//! that changes shared state) in the ring, lease, lock, semaphore, event,
//! condition, barrier, value and readers-writer lock protocols has a name.
//!
//! With the cargo feature `crash-points`, the environment variable
//! `MPROC_CRASH_AT=NAME:K` makes the process SIGKILL itself the K-th time it
//! reaches point `NAME`, right *after* the store the point names (so a kill
//! at `ring.put.publish` leaves the record published and `tail` not yet
//! moved). Without the feature, [`crash_point!`] expands to nothing.
//!
//! `MPROC_CRASH_TRACE=PATH` appends the name of every point reached to
//! `PATH`, one per line, so that a sweep can learn which points an operation
//! passes and how often. [`POINTS`] lists every point with the operations
//! that pass it; a unit test checks that the list and the source agree.

/// Every crash point: its name and the operations that reach it.
///
/// Names are `object.operation.store`; each names the store right before it.
#[cfg_attr(not(any(test, feature = "crash-points")), allow(dead_code))]
pub(crate) const POINTS: &[(&str, &str)] = &[
    // The robust lock (under every lock, queue, semaphore, value...).
    (
        "lock.acquire.word",
        "lock, takeover, put, get, ... (the word is taken)",
    ),
    (
        "lock.acquire.who",
        "lock, takeover, put, get, ... (entry record: the holder's process)",
    ),
    (
        "lock.acquire.entered",
        "lock, takeover, put, get, ... (entry record written)",
    ),
    (
        "lock.release.left",
        "unlock, put, get, ... (entry record cleared)",
    ),
    (
        "lock.release.word",
        "unlock, put, get, ... (the word is released)",
    ),
    (
        "lock.record.holder",
        "lock that waited, tag, record_since (holding's start recorded)",
    ),
    (
        "lock.record.cleared",
        "unlock of a recorded holding (record cleared)",
    ),
    ("lock.waiter.claimed", "lock (waiter slot's pid claimed)"),
    ("lock.waiter.registered", "lock (waiter slot claimed)"),
    ("lock.waiter.left", "lock (waiter slot freed)"),
    // The readers-writer lock (besides the robust lock, reader slots and
    // wait cell it is made of).
    (
        "rwlock.waiter.claimed",
        "rwlock write (a waiting-writer slot's pid is claimed)",
    ),
    (
        "rwlock.waiter.registered",
        "rwlock write (a waiting-writer slot is claimed)",
    ),
    (
        "rwlock.waiter.left",
        "rwlock write (a waiting-writer slot is freed)",
    ),
    (
        "rwlock.read.since",
        "rwlock read (the reader slot's start of reading is written)",
    ),
    (
        "rwlock.write.recorded",
        "rwlock write (the writer record is written, readers drained)",
    ),
    (
        "rwlock.write.tagged",
        "rwlock write guard set_tag (the tag is stored)",
    ),
    (
        "rwlock.write.cleared",
        "rwlock write release, read over a dead writer (the writer record is cleared)",
    ),
    (
        "rwlock.admit.opened",
        "rwlock write release with readers waiting (readers are let in before the next writer)",
    ),
    (
        "rwlock.admit.closed",
        "rwlock write after a writer that let readers in (the door is closed again)",
    ),
    (
        "rwlock.exec.marked",
        "rwlock keep_until_exit (the holder kept across exec is recorded)",
    ),
    (
        "rwlock.exec.cleared",
        "rwlock read, write after a holder kept across exec ended (its record is cleared)",
    ),
    // Wait cells (blocking queue calls, events, join).
    (
        "cell.wait.claimed",
        "get, put, join, event wait (a sleeper slot's pid is claimed)",
    ),
    (
        "cell.wait.started",
        "get, put, join, event wait (the sleeper's start time is written)",
    ),
    (
        "cell.wait.registered",
        "get, put, join, event wait (a sleeper slot is claimed)",
    ),
    (
        "cell.wait.sleepers",
        "get, put, join, event wait (the sleepers bit is set)",
    ),
    (
        "cell.wait.unstarted",
        "get, put, join, event wait (a sleeper slot's start time is cleared)",
    ),
    (
        "cell.wait.left",
        "get, put, join, event wait (a sleeper slot is freed)",
    ),
    (
        "cell.wake.bumped",
        "put, get, ack, nack, task_done, close, purge, event set (waiters are woken)",
    ),
    // Segments (every named object).
    (
        "segment.create.temp",
        "queue create, ... (the hidden file is made and sized)",
    ),
    (
        "segment.create.published",
        "queue create, ... (the header's magic is written)",
    ),
    (
        "segment.create.linked",
        "queue create, ... (the file is linked under its name)",
    ),
    // The queue ring.
    (
        "ring.put.tail_walked",
        "put (tail moved over a dead producer's records)",
    ),
    ("ring.put.payload", "put, put_many (a payload is written)"),
    (
        "ring.put.header",
        "put_many (a header after the first is written)",
    ),
    (
        "ring.put.end_mark",
        "put, put_many (the new end mark is written)",
    ),
    (
        "ring.put.publish",
        "put, put_many (the first header is published)",
    ),
    ("ring.put.tail", "put, put_many (tail is moved)"),
    ("ring.put.total", "put, put_many (the put total is stored)"),
    (
        "ring.get.requeued_counted",
        "get_leased (a requeued record is counted leased)",
    ),
    (
        "ring.get.requeued_marked",
        "get, get_leased (a requeued record is marked)",
    ),
    (
        "ring.get.requeued_uncounted",
        "get, get_leased (the requeued count drops)",
    ),
    (
        "ring.get.leased_counted",
        "get_leased (the leased count rises)",
    ),
    (
        "ring.get.marked",
        "get, get_many, get_leased (a record's state is written)",
    ),
    (
        "ring.get.cursor",
        "get, get_many, get_leased, purge (the cursor is moved)",
    ),
    (
        "ring.get.total",
        "get, get_many, get_leased, purge (the get total is stored)",
    ),
    ("ring.get.head", "get, get_many, ack, purge (head is moved)"),
    (
        "ring.lease.slot_start",
        "get_leased (an owner slot's start time is written)",
    ),
    ("ring.lease.slot", "get_leased (an owner slot is claimed)"),
    (
        "ring.settle.requeued_counted",
        "nack (the requeued count rises)",
    ),
    (
        "ring.settle.marked",
        "ack, nack (the record's state is written)",
    ),
    (
        "ring.settle.uncounted",
        "ack, nack (the leased count drops)",
    ),
    (
        "ring.reclaim.stamp",
        "reclaim, get (the reclaim time is stored)",
    ),
    (
        "ring.reclaim.marked",
        "reclaim (a dead owner's record is requeued)",
    ),
    (
        "ring.reclaim.counted",
        "reclaim (leased and requeued are recounted)",
    ),
    (
        "ring.reclaim.slot_freed",
        "reclaim (a dead owner's slot is freed)",
    ),
    (
        "ring.repair.restored",
        "repair (a marked record's header is restored)",
    ),
    (
        "ring.purge.intent",
        "purge (the journal's cursor and purged total are written)",
    ),
    ("ring.purge.journal", "purge (the purge is journaled)"),
    ("ring.purge.marked", "purge (a requeued record is dropped)"),
    (
        "ring.purge.requeued_zeroed",
        "purge (the requeued count is zeroed)",
    ),
    ("ring.purge.done", "purge (the purged total is stored)"),
    ("ring.purge.cleared", "purge (the journal is cleared)"),
    (
        "ring.task_done.counted",
        "task_done (the done total is raised)",
    ),
    ("ring.close.flag", "close (the closed flag is set)"),
    (
        "ring.dead_letter.counted",
        "nack (a dead-lettered item is counted)",
    ),
    // Participant slots (semaphore holders, barrier parties, condition waiters).
    (
        "slot.claim.pid",
        "sem acquire, barrier wait, condition wait (a slot is claimed)",
    ),
    (
        "slot.claim.payload",
        "sem acquire, barrier wait, condition wait (the slot's payload is set)",
    ),
    (
        "slot.leave.payload",
        "sem release, barrier wait, condition wait (the payload is cleared)",
    ),
    (
        "slot.leave.pid",
        "sem release, barrier wait, condition wait (the slot is freed)",
    ),
    // Semaphores.
    (
        "slot.reap.taken",
        "sem acquire, sem reclaim (a dead participant's payload is taken)",
    ),
    (
        "slot.reap.freed",
        "sem acquire, sem reclaim, barrier wait (a dead participant's slot is freed)",
    ),
    (
        "sem.acquire.total",
        "sem acquire (an untracked unit leaves the total)",
    ),
    ("sem.acquire.value", "sem acquire (the value drops)"),
    ("sem.acquire.held", "sem acquire (the slot's units rise)"),
    ("sem.release.total", "sem release (the total rises)"),
    ("sem.release.value", "sem release (the value rises)"),
    (
        "sem.slot.units_taken",
        "sem release (the slot's units are taken)",
    ),
    (
        "sem.slot.units_returned",
        "sem release (the slot's units return to the value)",
    ),
    (
        "sem.reap.returned",
        "sem reclaim, sem acquire (a dead holder's units return)",
    ),
    ("sem.wake.bumped", "sem release (waiters are woken)"),
    // Events.
    ("event.set.flag", "event set (the flag is stored)"),
    ("event.clear.flag", "event clear (the flag is stored)"),
    // Conditions.
    (
        "condition.notify.slot",
        "condition notify (a waiter is marked notified)",
    ),
    // Barriers.
    (
        "barrier.wait.count",
        "barrier wait (the arrival count rises)",
    ),
    (
        "barrier.wait.slot",
        "barrier wait (the party's slot records the generation)",
    ),
    (
        "barrier.wait.reset",
        "barrier wait (the last party resets the count)",
    ),
    (
        "barrier.wait.generation",
        "barrier wait (the last party opens the generation)",
    ),
    (
        "barrier.wake.bumped",
        "barrier wait, abort (waiters are woken)",
    ),
    (
        "barrier.broken.flag",
        "barrier wait, abort (the broken flag is set)",
    ),
    // Values and arrays.
    ("value.write.element", "value write (an element is stored)"),
];

/// Marks a crash point: with the `crash-points` feature, the process may
/// SIGKILL itself here (see the module documentation); without it, nothing.
macro_rules! crash_point {
    ($name:literal) => {
        #[cfg(feature = "crash-points")]
        $crate::crash::reached($name);
    };
}
pub(crate) use crash_point;

#[cfg(feature = "crash-points")]
mod armed {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    struct Plan {
        at: Option<(String, u64)>,
        trace: Option<std::sync::Mutex<std::fs::File>>,
    }

    static PLAN: OnceLock<Plan> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);

    fn plan() -> &'static Plan {
        PLAN.get_or_init(|| {
            let at = std::env::var("MPROC_CRASH_AT").ok().and_then(|v| {
                let (name, k) = v.rsplit_once(':')?;
                Some((name.to_string(), k.parse().ok()?))
            });
            let trace = std::env::var_os("MPROC_CRASH_TRACE").and_then(|p| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .ok()
                    .map(std::sync::Mutex::new)
            });
            Plan { at, trace }
        })
    }

    /// A crash point was reached: trace it, and die if it is the one.
    pub(crate) fn reached(name: &'static str) {
        let plan = plan();
        if let Some(f) = &plan.trace {
            if let Ok(mut f) = f.lock() {
                let _ = writeln!(f, "{name}");
            }
        }
        if let Some((at, k)) = &plan.at {
            if at == name && HITS.fetch_add(1, Ordering::Relaxed) + 1 == *k {
                crate::sys::kill_self();
            }
        }
    }
}

#[cfg(feature = "crash-points")]
pub(crate) use armed::reached;

#[cfg(test)]
mod tests {
    use super::POINTS;

    /// Every `crash_point!("…")` in the source is listed, and every listed
    /// point is used.
    #[test]
    fn the_list_matches_the_source() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut used = Vec::new();
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("crash.rs") {
                    let text = std::fs::read_to_string(&p).unwrap();
                    for part in text.split("crash_point!(\"").skip(1) {
                        used.push(part.split('"').next().unwrap().to_string());
                    }
                }
            }
        }
        for u in &used {
            assert!(
                POINTS.iter().any(|(n, _)| n == u),
                "crash point {u} is not listed in POINTS"
            );
        }
        for (n, _) in POINTS {
            assert!(
                used.iter().any(|u| u == n),
                "listed crash point {n} is never reached"
            );
        }
        let mut names: Vec<_> = POINTS.iter().map(|(n, _)| n).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), POINTS.len(), "duplicate crash point names");
    }
}
