//! The crash sweep: every crash point of every operation, killed there.
//!
//! For each scenario (an operation on a fresh object, sometimes with a peer
//! process blocked on that object), a first run records which crash points
//! the operation passes and how often (`MPROC_CRASH_TRACE`). Then, for every
//! point and every pass K (up to [`MAX_K`]), a fresh run kills the operation
//! there (`MPROC_CRASH_AT=NAME:K`), and a fresh process checks the object:
//! it opens, its invariants hold (exact `len`, byte budget, counters), every
//! item is where the operation's contract allows (nothing acknowledged is
//! lost, nothing delivered twice beyond redelivery), a blocked peer woke if
//! the state let it, and a new round trip works.
//!
//! Needs the `crash-points` feature (`cargo test --all-features`).
#![cfg(feature = "crash-points")]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mproc::{
    Barrier, ByteQueue, Event, GetError, JoinableQueue, Lock, LockError, Namespace, QueueOptions,
    RwLock, Semaphore, Value,
};

/// Passes of one point that are killed at, at most (the states after
/// further passes of a loop repeat those of the first).
const MAX_K: usize = 4;
/// How long a blocked peer may take to notice a state that lets it go.
const PEER_WAKE: Duration = Duration::from_millis(1500);
/// How long any child may run before the sweep calls it wedged.
const CHILD_LIMIT: Duration = Duration::from_secs(20);

const ROLE: &str = "MPROC_SWEEP_ROLE";
const SCENARIO: &str = "MPROC_SWEEP_SCENARIO";
const PEER: &str = "MPROC_SWEEP_PEER";
const PROGRESS: &str = "MPROC_SWEEP_PROGRESS";

/// When a blocked peer must have finished.
#[derive(Clone, Copy, PartialEq)]
enum PeerRule {
    /// Before the check, if the state lets it go (the check is told
    /// whether it did, and judges).
    BeforeCheck,
    /// Within a few seconds after the check (which frees it).
    AfterCheck,
}

/// A peer's body: what it saw, as one word (`got:x`, `joined`, ...).
type PeerFn = fn(&Namespace) -> String;
/// An operation's body; it marks its progress with the function given.
type OpFn = fn(&Namespace, &dyn Fn(&str));

struct Scenario {
    name: &'static str,
    setup: fn(&Namespace),
    peer: Option<(PeerFn, PeerRule)>,
    op: OpFn,
    check: fn(&Namespace, &Outcome),
}

/// What the parent knows when the check runs.
struct Outcome {
    /// The operation's last progress mark (written after each step).
    progress: String,
    /// The peer's result, or "waiting" if it was still blocked (and killed).
    peer: String,
}

fn opts() -> QueueOptions {
    QueueOptions::new().maxsize(8).max_bytes(4096)
}

fn q(ns: &Namespace) -> ByteQueue {
    ByteQueue::open_in(ns, "q").unwrap()
}

fn jq(ns: &Namespace) -> JoinableQueue<String> {
    JoinableQueue::open_in(ns, "q").unwrap()
}

fn make_q(ns: &Namespace, items: &[&str]) -> ByteQueue {
    let q = ByteQueue::create_in(ns, "q", opts()).unwrap();
    for i in items {
        q.put(i.as_bytes()).unwrap();
    }
    q
}

fn make_jq(ns: &Namespace, items: &[&str]) -> JoinableQueue<String> {
    let q = JoinableQueue::create_in(ns, "q", opts()).unwrap();
    for i in items {
        q.queue().put(i.to_string()).unwrap();
    }
    q
}

/// Runs a helper role to its end (a process that leases and dies, a
/// producer killed at a point, ...).
fn helper(ns: &Namespace, role: &str, crash_at: Option<&str>) {
    let mut c = child(ns, role, "", crash_at, None, "");
    let _ = wait_for(&mut c, CHILD_LIMIT).expect("helper wedged");
}

/// Takes every item left, after requeueing the leases of dead consumers:
/// the queue's contents. Checks on the way that `len` and the byte count
/// agree with them.
fn drain(q: &ByteQueue) -> Vec<String> {
    let s = q.stats();
    let leased = s.leased;
    q.reclaim().unwrap();
    let len = q.len();
    let mut out = Vec::new();
    loop {
        match q.try_get() {
            Ok(v) => out.push(String::from_utf8(v).unwrap()),
            Err(GetError::Empty) | Err(GetError::Closed) => break,
            Err(e) => panic!("get after the kill: {e}"),
        }
    }
    assert_eq!(
        len,
        out.len(),
        "len is not exact: {s:?}, leased was {leased}"
    );
    let s = q.stats();
    assert_eq!(
        (s.len, s.leased, s.requeued),
        (0, 0, 0),
        "after draining: {s:?}"
    );
    assert_eq!(s.bytes_used, 0, "space is still held after draining: {s:?}");
    assert_eq!(s.total_put, s.total_got, "counters disagree: {s:?}");
    assert_eq!(
        (s.waiting_get, s.waiting_put),
        (0, 0),
        "dead or killed waiters are counted: {s:?}"
    );
    out
}

/// The whole byte budget is free and a round trip works.
fn round_trip(q: &ByteQueue) {
    if q.is_closed() {
        assert!(q.try_put(b"rt").is_err());
        return;
    }
    let big = vec![7u8; q.max_message()];
    q.try_put(&big)
        .expect("the whole budget is free after draining");
    assert_eq!(q.try_get().unwrap(), big);
    q.try_put(b"rt").unwrap();
    assert_eq!(q.try_get().unwrap(), b"rt");
}

/// The queue holds exactly `want` (after requeueing dead leases), and
/// works.
fn left_exactly(ns: &Namespace, want: &[&str]) {
    let q = q(ns);
    assert_eq!(drain(&q), strs(want));
    round_trip(&q);
}

/// A queue of `items` whose first was leased by a consumer that died, and
/// requeued.
fn a_requeued(ns: &Namespace, items: &[&str]) {
    drop(make_q(ns, items));
    helper(ns, "lease_and_die", None);
    q(ns).reclaim().unwrap();
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn peer_got(o: &Outcome) -> Option<String> {
    o.peer.strip_prefix("got:").map(str::to_owned)
}

fn scenarios() -> Vec<Scenario> {
    vec![
        // put: a consumer is blocked in get.
        Scenario {
            name: "put",
            setup: |ns| drop(make_q(ns, &[])),
            peer: Some((
                |ns| match q(ns).get_timeout(Duration::from_secs(15)) {
                    Ok(v) => format!("got:{}", String::from_utf8(v).unwrap()),
                    Err(e) => format!("err:{e}"),
                },
                PeerRule::BeforeCheck,
            )),
            op: |ns, mark| {
                q(ns).put(b"x").unwrap();
                mark("put");
            },
            check: |ns, o| {
                let q = q(ns);
                let left = drain(&q);
                match peer_got(o) {
                    Some(x) => assert!(x == "x" && left.is_empty(), "{left:?}"),
                    None => {
                        assert_eq!(o.peer, "waiting");
                        assert!(left.is_empty(), "x was published but the peer slept on");
                        assert!(o.progress != "put", "a put that returned is lost");
                    }
                }
                round_trip(&q);
            },
        },
        // put_many: one publication for the whole batch.
        Scenario {
            name: "put_many",
            setup: |ns| drop(make_q(ns, &["a"])),
            peer: None,
            op: |ns, mark| {
                q(ns).put_many(&[b"b", b"c", b"d"]).unwrap();
                mark("put");
            },
            check: |ns, o| {
                let q = q(ns);
                let left = drain(&q);
                assert!(
                    left == strs(&["a"]) && o.progress != "put"
                        || left == strs(&["a", "b", "c", "d"]),
                    "{left:?}"
                );
                round_trip(&q);
            },
        },
        // put after a producer died between publishing and moving tail.
        Scenario {
            name: "put_after_dead_producer",
            setup: |ns| {
                drop(make_q(ns, &["a"]));
                helper(ns, "put_b", Some("ring.put.publish:1"));
            },
            peer: None,
            op: |ns, mark| {
                q(ns).put(b"c").unwrap();
                mark("put");
            },
            check: |ns, o| {
                let q = q(ns);
                let left = drain(&q);
                assert!(
                    left == strs(&["a", "b"]) && o.progress != "put"
                        || left == strs(&["a", "b", "c"]),
                    "{left:?}"
                );
                round_trip(&q);
            },
        },
        // get (plain, at most once): a producer is blocked on a full queue.
        Scenario {
            name: "get",
            setup: |ns| {
                let q = ByteQueue::create_in(ns, "q", QueueOptions::new().maxsize(2)).unwrap();
                q.put(b"a").unwrap();
                q.put(b"b").unwrap();
            },
            peer: Some((
                |ns| match q(ns).put_timeout(b"c", Duration::from_secs(15)) {
                    Ok(()) => "put".into(),
                    Err(e) => format!("err:{e}"),
                },
                PeerRule::BeforeCheck,
            )),
            op: |ns, mark| {
                let got = q(ns).get().unwrap();
                assert_eq!(got, b"a");
                mark("got");
            },
            check: |ns, o| {
                let q = q(ns);
                let left = drain(&q);
                let mut want = vec!["b"];
                if o.peer == "put" {
                    want.push("c");
                } else {
                    assert_eq!(o.peer, "waiting");
                }
                if left.first().map(String::as_str) == Some("a") {
                    want.insert(0, "a");
                    assert!(o.progress != "got", "a get that returned left its item");
                    assert_eq!(o.peer, "waiting", "room appeared with a still queued");
                } else {
                    assert_eq!(o.peer, "put", "room appeared but the producer slept on");
                }
                assert_eq!(left, strs(&want));
                round_trip(&q);
            },
        },
        // get_many: one cursor store takes the whole batch.
        Scenario {
            name: "get_many",
            setup: |ns| drop(make_q(ns, &["a", "b", "c", "d"])),
            peer: None,
            op: |ns, mark| {
                let mut got = Vec::new();
                q(ns).get_many_with(3, |m| got.push(m.to_vec())).unwrap();
                assert_eq!(got.len(), 3);
                mark("got");
            },
            check: |ns, o| {
                let q = q(ns);
                let left = drain(&q);
                assert!(
                    left == strs(&["a", "b", "c", "d"]) && o.progress != "got"
                        || left == strs(&["d"]),
                    "{left:?}"
                );
                round_trip(&q);
            },
        },
        // get behind a live lease: records are marked before the cursor moves.
        Scenario {
            name: "get_behind_lease",
            setup: |ns| drop(make_q(ns, &["a", "b", "c"])),
            peer: Some((
                |ns| {
                    // A live lease holder: takes a, holds it until killed.
                    let q = q(ns);
                    let (m, _r) = q.get_leased().unwrap();
                    assert_eq!(m, b"a");
                    std::fs::write(ns.path().join("leased"), "1").unwrap();
                    std::thread::sleep(Duration::from_secs(60));
                    "done".into()
                },
                PeerRule::AfterCheck,
            )),
            op: |ns, mark| {
                while !ns.path().join("leased").exists() {
                    std::thread::sleep(Duration::from_millis(1));
                }
                assert_eq!(q(ns).get().unwrap(), b"b");
                mark("got");
            },
            check: |ns, o| {
                let q = q(ns);
                // a is leased by the live peer: not in len, not drained.
                let left = drain_live_lease(&q);
                assert!(
                    left == strs(&["b", "c"]) && o.progress != "got" || left == strs(&["c"]),
                    "{left:?}"
                );
            },
        },
        // get_leased: at least once; the dead consumer's item comes back.
        Scenario {
            name: "get_leased",
            setup: |ns| drop(make_q(ns, &["a", "b"])),
            peer: None,
            op: |ns, mark| {
                let (m, _r) = q(ns).get_leased().unwrap();
                assert_eq!(m, b"a");
                mark("leased");
            },
            check: |ns, _| left_exactly(ns, &["a", "b"]),
        },
        // get_leased of a requeued item (a consumer died holding it).
        Scenario {
            name: "get_leased_requeued",
            setup: |ns| a_requeued(ns, &["a", "b"]),
            peer: None,
            op: |ns, mark| {
                let (m, r) = q(ns).get_leased().unwrap();
                assert_eq!((m.as_slice(), r.deliveries()), (&b"a"[..], 2));
                mark("leased");
            },
            check: |ns, _| left_exactly(ns, &["a", "b"]),
        },
        // plain get of a requeued item (at most once).
        Scenario {
            name: "get_requeued",
            setup: |ns| a_requeued(ns, &["a", "b"]),
            peer: None,
            op: |ns, mark| {
                assert_eq!(q(ns).get().unwrap(), b"a");
                mark("got");
            },
            check: |ns, o| {
                let q = q(ns);
                let left = drain(&q);
                assert!(
                    left == strs(&["a", "b"]) && o.progress != "got" || left == strs(&["b"]),
                    "{left:?}"
                );
                round_trip(&q);
            },
        },
        // ack: the item is gone only once the ack's store is made.
        Scenario {
            name: "ack",
            setup: |ns| drop(make_q(ns, &["a", "b"])),
            peer: None,
            op: |ns, mark| {
                let q = q(ns);
                let (_, r) = q.get_leased().unwrap();
                mark("leased");
                q.ack(&r).unwrap();
                mark("acked");
            },
            check: |ns, o| {
                let q = q(ns);
                let left = drain(&q);
                assert!(
                    left == strs(&["a", "b"]) && o.progress != "acked"
                        || left == strs(&["b"]) && !o.progress.is_empty(),
                    "{left:?} after {:?}",
                    o.progress
                );
                round_trip(&q);
            },
        },
        // nack: the item comes back either way.
        Scenario {
            name: "nack",
            setup: |ns| drop(make_q(ns, &["a", "b"])),
            peer: None,
            op: |ns, mark| {
                let q = q(ns);
                let (_, r) = q.get_leased().unwrap();
                q.nack(&r).unwrap();
                mark("nacked");
            },
            check: |ns, _| left_exactly(ns, &["a", "b"]),
        },
        // reclaim of a dead consumer's lease.
        Scenario {
            name: "reclaim",
            setup: |ns| {
                drop(make_q(ns, &["a", "b"]));
                helper(ns, "lease_and_die", None);
            },
            peer: None,
            op: |ns, mark| {
                q(ns).reclaim().unwrap();
                mark("reclaimed");
            },
            check: |ns, _| left_exactly(ns, &["a", "b"]),
        },
        // task_done: a process is blocked in join.
        Scenario {
            name: "task_done",
            setup: |ns| {
                let q = make_jq(ns, &["a"]);
                assert_eq!(q.queue().get().unwrap(), "a");
            },
            peer: Some((
                |ns| match jq(ns).join_timeout(Duration::from_secs(15)) {
                    Ok(()) => "joined".into(),
                    Err(e) => format!("err:{e}"),
                },
                PeerRule::BeforeCheck,
            )),
            op: |ns, mark| {
                jq(ns).task_done().unwrap();
                mark("done");
            },
            check: |ns, o| {
                let q = jq(ns);
                let u = q.unfinished();
                assert!(u == 0 || (u == 1 && o.progress != "done"), "unfinished {u}");
                assert_eq!(
                    o.peer == "joined",
                    u == 0,
                    "join vs unfinished {u}: {}",
                    o.peer
                );
                assert!(drain(q.queue().as_bytes()).is_empty());
            },
        },
        // close: a consumer is blocked in get.
        Scenario {
            name: "close",
            setup: |ns| drop(make_q(ns, &[])),
            peer: Some((
                |ns| match q(ns).get_timeout(Duration::from_secs(15)) {
                    Ok(_) => "got".into(),
                    Err(GetError::Closed) => "closed".into(),
                    Err(e) => format!("err:{e}"),
                },
                PeerRule::BeforeCheck,
            )),
            op: |ns, mark| {
                q(ns).close();
                mark("closed");
            },
            check: |ns, o| {
                let q = q(ns);
                assert_eq!(
                    q.is_closed(),
                    o.peer == "closed",
                    "closed vs the blocked consumer: {}",
                    o.peer
                );
                if o.progress == "closed" {
                    assert!(q.is_closed());
                }
                assert!(drain(&q).is_empty());
                round_trip(&q);
            },
        },
        // purge (journaled), with a requeued item and a joiner.
        Scenario {
            name: "purge",
            setup: |ns| {
                drop(make_jq(ns, &["a", "b", "c"]));
                helper(ns, "lease_and_die", None);
                q(ns).reclaim().unwrap();
            },
            peer: Some((
                |ns| match jq(ns).join_timeout(Duration::from_secs(15)) {
                    Ok(()) => "joined".into(),
                    Err(e) => format!("err:{e}"),
                },
                PeerRule::BeforeCheck,
            )),
            op: |ns, mark| {
                assert_eq!(q(ns).purge().unwrap(), 3);
                mark("purged");
            },
            check: |ns, o| {
                let q = jq(ns);
                let u = q.unfinished();
                let b = q.queue().as_bytes();
                let len = b.len();
                assert!(
                    (u, len) == (0, 0) || (u, len) == (3, 3) && o.progress != "purged",
                    "unfinished {u}, len {len}"
                );
                assert_eq!(o.peer == "joined", u == 0, "join vs unfinished: {}", o.peer);
                let mut left = Vec::new();
                while let Ok(s) = q.queue().try_get() {
                    left.push(s);
                    q.task_done().unwrap();
                }
                assert_eq!(left.len(), len);
                assert_eq!(q.unfinished(), 0);
                round_trip(b);
            },
        },
        // lock and unlock, with a counter under the lock.
        Scenario {
            name: "lock",
            setup: |ns| {
                drop(Lock::create_in(ns, "l").unwrap());
                drop(Value::<u64>::create_in(ns, "n", 0, false).unwrap());
            },
            peer: None,
            op: |ns, mark| {
                let l = Lock::open_in(ns, "l").unwrap();
                let n = Value::<u64>::open_in(ns, "n").unwrap();
                let g = l.lock().unwrap();
                n.set(n.get() + 1);
                drop(g);
                mark("unlocked");
            },
            check: |ns, o| check_lock(ns, o),
        },
        // takeover of a lock whose holder died.
        Scenario {
            name: "takeover",
            setup: |ns| {
                drop(Lock::create_in(ns, "l").unwrap());
                drop(Value::<u64>::create_in(ns, "n", 0, false).unwrap());
                helper(ns, "lock_and_die", None);
            },
            peer: None,
            op: |ns, mark| {
                let l = Lock::open_in(ns, "l").unwrap();
                let n = Value::<u64>::open_in(ns, "n").unwrap();
                let g = match l.lock() {
                    Err(LockError::OwnerDied(d)) => d.into_inner(),
                    other => panic!("expected OwnerDied: {other:?}"),
                };
                n.set(n.get() + 1);
                drop(g);
                mark("unlocked");
            },
            check: |ns, o| check_lock(ns, o),
        },
        // semaphore acquire (tracked unit) and release, with a blocked peer.
        Scenario {
            name: "semaphore",
            setup: |ns| drop(Semaphore::create_in(ns, "s", 1).unwrap()),
            peer: Some((
                |ns| {
                    let s = Semaphore::open_in(ns, "s").unwrap();
                    while !ns.path().join("held").exists() {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    let r = match s.hold_timeout(Duration::from_secs(15)) {
                        Ok(g) => {
                            drop(g);
                            "acquired".to_string()
                        }
                        Err(e) => format!("err:{e}"),
                    };
                    r
                },
                PeerRule::AfterCheck,
            )),
            op: |ns, mark| {
                let s = Semaphore::open_in(ns, "s").unwrap();
                let g = s.hold().unwrap();
                std::fs::write(ns.path().join("held"), "1").unwrap();
                std::thread::sleep(Duration::from_millis(20));
                drop(g);
                mark("released");
            },
            check: |ns, o| {
                let _ = std::fs::write(ns.path().join("held"), "1");
                let s = Semaphore::open_in(ns, "s").unwrap();
                let t = Instant::now();
                // The dead holder's unit comes back; the peer may hold it
                // for an instant.
                loop {
                    s.reclaim().unwrap();
                    if s.value() == 1 {
                        break;
                    }
                    assert!(
                        t.elapsed() < Duration::from_secs(5),
                        "unit lost: {}",
                        o.peer
                    );
                    std::thread::sleep(Duration::from_millis(5));
                }
            },
        },
        // semaphore reclaim: a dead holder's unit returns.
        Scenario {
            name: "semaphore_reclaim",
            setup: |ns| {
                drop(Semaphore::create_in(ns, "s", 1).unwrap());
                helper(ns, "hold_and_die", None);
            },
            peer: None,
            op: |ns, mark| {
                assert!(Semaphore::open_in(ns, "s").unwrap().reclaim().unwrap());
                mark("reclaimed");
            },
            check: |ns, _| {
                let s = Semaphore::open_in(ns, "s").unwrap();
                s.reclaim().unwrap();
                // Exactly the one unit: returned once, never twice.
                assert_eq!(s.value(), 1);
                s.try_acquire().unwrap();
                assert!(s.try_acquire().is_err());
            },
        },
        // semaphore release (untracked) with a blocked acquirer.
        Scenario {
            name: "semaphore_release",
            setup: |ns| drop(Semaphore::create_in(ns, "s", 0).unwrap()),
            peer: Some((
                |ns| match Semaphore::open_in(ns, "s")
                    .unwrap()
                    .acquire_timeout(Duration::from_secs(15))
                {
                    Ok(()) => "acquired".into(),
                    Err(e) => format!("err:{e}"),
                },
                PeerRule::BeforeCheck,
            )),
            op: |ns, mark| {
                Semaphore::open_in(ns, "s").unwrap().release().unwrap();
                mark("released");
            },
            check: |ns, o| {
                let s = Semaphore::open_in(ns, "s").unwrap();
                s.reclaim().unwrap();
                let v = s.value();
                match o.peer.as_str() {
                    "acquired" => assert_eq!(v, 0),
                    "waiting" => {
                        assert_eq!(v, 0, "a unit is free but the acquirer slept on");
                        assert!(o.progress != "released");
                    }
                    p => panic!("peer: {p}"),
                }
                s.release().unwrap();
                s.try_acquire().unwrap();
            },
        },
        // barrier wait (the last party), another party waiting.
        Scenario {
            name: "barrier",
            setup: |ns| drop(Barrier::create_in(ns, "b", 2).unwrap()),
            peer: Some((barrier_party, PeerRule::AfterCheck)),
            op: |ns, mark| {
                let b = Barrier::open_in(ns, "b").unwrap();
                let t = Instant::now();
                while b.n_waiting() == 0 && t.elapsed() < Duration::from_secs(10) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                b.wait().unwrap();
                mark("passed");
            },
            check: |ns, _| {
                // Reset frees (breaks) whoever still waits; then a whole
                // round works.
                let b = Barrier::open_in(ns, "b").unwrap();
                reset_and_meet(&b);
            },
        },
        // value write under its lock.
        Scenario {
            name: "value",
            setup: |ns| drop(Value::<u64>::create_in(ns, "v", 0, true).unwrap()),
            peer: None,
            op: |ns, mark| {
                Value::<u64>::open_in(ns, "v").unwrap().set(42);
                mark("set");
            },
            check: |ns, o| {
                let v = Value::<u64>::open_in(ns, "v").unwrap();
                let g = match v.get_lock_timeout(Duration::from_secs(3)) {
                    Ok(g) => g,
                    Err(LockError::OwnerDied(d)) => d.into_inner(),
                    Err(e) => panic!("value lock wedged: {e:?}"),
                };
                assert!(*g == 42 || (*g == 0 && o.progress != "set"), "{}", *g);
            },
        },
        // event set, a process waiting.
        Scenario {
            name: "event",
            setup: |ns| drop(Event::create_in(ns, "e").unwrap()),
            peer: Some((
                |ns| {
                    if Event::open_in(ns, "e")
                        .unwrap()
                        .wait_timeout(Duration::from_secs(15))
                    {
                        "set".into()
                    } else {
                        "timeout".into()
                    }
                },
                PeerRule::BeforeCheck,
            )),
            op: |ns, mark| {
                Event::open_in(ns, "e").unwrap().set();
                mark("set");
            },
            check: |ns, o| {
                let e = Event::open_in(ns, "e").unwrap();
                assert_eq!(e.is_set(), o.peer == "set", "set vs the waiter: {}", o.peer);
                assert_eq!(e.waiting(), 0);
            },
        },
        // get that blocks until a producer puts: killed while asleep.
        Scenario {
            name: "get_blocking",
            setup: |ns| drop(make_q(ns, &[])),
            peer: Some((
                |ns| {
                    std::thread::sleep(Duration::from_millis(300));
                    q(ns).put(b"x").unwrap();
                    "put".into()
                },
                PeerRule::AfterCheck,
            )),
            op: |ns, mark| {
                assert_eq!(q(ns).get().unwrap(), b"x");
                mark("got");
            },
            check: |ns, o| {
                let q = q(ns);
                // Wait for the producer's put (it sleeps first).
                let t = Instant::now();
                while q.stats().total_put == 0 && t.elapsed() < Duration::from_secs(5) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                let left = drain(&q);
                assert!(
                    left == strs(&["x"]) && o.progress != "got" || left.is_empty(),
                    "{left:?}"
                );
                round_trip(&q);
            },
        },
        // the repair itself: a consumer died between marking a record and
        // moving the cursor; the next get restores it (and requeues the
        // dead consumer's lease).
        Scenario {
            name: "repair",
            setup: |ns| {
                drop(make_q(ns, &["a", "b", "c"]));
                helper(ns, "lease_then_get", Some("ring.get.marked:2"));
            },
            peer: None,
            op: |ns, mark| {
                assert_eq!(q(ns).get().unwrap(), b"a");
                mark("got");
            },
            check: |ns, o| {
                let q = q(ns);
                let left = drain(&q);
                assert!(
                    left == strs(&["a", "b", "c"]) && o.progress != "got"
                        || left == strs(&["b", "c"]),
                    "{left:?}"
                );
                round_trip(&q);
            },
        },
        // dead-lettering an item delivered too often.
        Scenario {
            name: "dead_letter",
            setup: |ns| {
                let q = ByteQueue::create_in(ns, "q", opts().max_deliveries(1)).unwrap();
                q.put(b"a").unwrap();
                q.put(b"b").unwrap();
                helper(ns, "lease_and_die", None);
                q.reclaim().unwrap();
            },
            peer: None,
            op: |ns, mark| {
                let (m, _r) = q(ns).get_leased().unwrap();
                assert_eq!(m, b"b");
                mark("leased");
            },
            check: |ns, _| {
                let q = q(ns);
                let left = drain(&q);
                let dead = match ByteQueue::open_in(ns, "q.dlq") {
                    Ok(d) => drain(&d),
                    Err(_) => Vec::new(),
                };
                // a: in the dead-letter queue, or still in the queue (a
                // kill before it was moved), or both (a kill after the move,
                // before its acknowledgement: at least once).
                assert!(left.contains(&"b".to_string()), "b lost: {left:?}");
                assert!(dead.iter().all(|d| d == "a") && dead.len() <= 1, "{dead:?}");
                let a_main = left.iter().filter(|x| *x == "a").count();
                assert!(a_main + dead.len() >= 1 && a_main <= 1, "{left:?} {dead:?}");
                round_trip(&q);
            },
        },
        // an untracked semaphore unit.
        Scenario {
            name: "semaphore_acquire",
            setup: |ns| drop(Semaphore::create_in(ns, "s", 2).unwrap()),
            peer: None,
            op: |ns, mark| {
                Semaphore::open_in(ns, "s").unwrap().acquire().unwrap();
                mark("acquired");
            },
            check: |ns, o| {
                let s = Semaphore::open_in(ns, "s").unwrap();
                s.reclaim().unwrap();
                // An untracked unit is the caller's for good once taken.
                let v = s.value();
                assert!(v == 1 || (v == 2 && o.progress != "acquired"), "value {v}");
                s.try_acquire().unwrap();
            },
        },
        // event clear.
        Scenario {
            name: "event_clear",
            setup: |ns| Event::create_in(ns, "e").unwrap().set(),
            peer: None,
            op: |ns, mark| {
                Event::open_in(ns, "e").unwrap().clear();
                mark("cleared");
            },
            check: |ns, o| {
                let e = Event::open_in(ns, "e").unwrap();
                assert!(!e.is_set() || o.progress != "cleared");
                e.set();
                assert!(e.wait_timeout(Duration::from_millis(1)));
            },
        },
        // condition notify, a process waiting.
        Scenario {
            name: "condition",
            setup: |ns| drop(mproc::Condition::create_in(ns, "c").unwrap()),
            peer: Some((
                |ns| {
                    let c = mproc::Condition::open_in(ns, "c").unwrap();
                    let mut g = c
                        .lock()
                        .unwrap_or_else(|e| e.into_guard().expect("owner died: guard inside"));
                    std::fs::write(ns.path().join("waiting"), "1").unwrap();
                    match g.wait_timeout(Duration::from_secs(2)) {
                        Ok(n) => format!("notified:{n}"),
                        Err(e) => format!("err:{e}"),
                    }
                },
                PeerRule::AfterCheck,
            )),
            op: |ns, mark| {
                while !ns.path().join("waiting").exists() {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let c = mproc::Condition::open_in(ns, "c").unwrap();
                let mut g = c
                    .lock()
                    .unwrap_or_else(|e| e.into_guard().expect("owner died: guard inside"));
                g.notify_all();
                drop(g);
                mark("notified");
            },
            check: |ns, _| {
                let c = mproc::Condition::open_in(ns, "c").unwrap();
                let g = c.lock_timeout(Duration::from_secs(3));
                assert!(
                    !matches!(g, Err(LockError::WouldBlock)),
                    "the condition's lock is wedged"
                );
            },
        },
        // barrier wait (the first party), killed while waiting.
        Scenario {
            name: "barrier_first",
            setup: |ns| drop(Barrier::create_in(ns, "b", 2).unwrap()),
            peer: Some((
                |ns| {
                    let b = Barrier::open_in(ns, "b").unwrap();
                    let t = Instant::now();
                    while b.n_waiting() == 0 {
                        if t.elapsed() > Duration::from_secs(1) {
                            // Killed before it arrived: nobody to meet.
                            return "alone".into();
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    match b.wait_timeout(Duration::from_secs(15)) {
                        Ok(_) => "passed".into(),
                        Err(e) => format!("err:{e}"),
                    }
                },
                PeerRule::AfterCheck,
            )),
            op: |ns, mark| {
                Barrier::open_in(ns, "b").unwrap().wait().unwrap();
                mark("passed");
            },
            check: |ns, _| {
                let b = Barrier::open_in(ns, "b").unwrap();
                // The peer has met the barrier (or given up) by now.
                std::thread::sleep(Duration::from_millis(1300));
                reset_and_meet(&b);
            },
        },
        // barrier abort, a party waiting.
        Scenario {
            name: "barrier_abort",
            setup: |ns| drop(Barrier::create_in(ns, "b", 2).unwrap()),
            peer: Some((barrier_party, PeerRule::BeforeCheck)),
            op: |ns, mark| {
                Barrier::open_in(ns, "b").unwrap().abort().unwrap();
                mark("aborted");
            },
            check: |ns, o| {
                let b = Barrier::open_in(ns, "b").unwrap();
                assert_eq!(
                    b.is_broken(),
                    o.peer != "waiting",
                    "broken vs the waiting party: {}",
                    o.peer
                );
                reset_and_meet(&b);
            },
        },
        // rwlock read and its release.
        Scenario {
            name: "rwlock_read",
            setup: |ns| drop(make_rw(ns)),
            peer: None,
            op: |ns, mark| {
                let rw = rw(ns);
                let g = rw.read().unwrap();
                mark("reading");
                drop(g);
                mark("released");
            },
            check: |ns, o| check_rw(ns, o),
        },
        // rwlock write and its release, with a counter under the lock.
        Scenario {
            name: "rwlock_write",
            setup: |ns| {
                drop(make_rw(ns));
                drop(Value::<u64>::create_in(ns, "n", 0, false).unwrap());
            },
            peer: None,
            op: |ns, mark| {
                let rw = rw(ns);
                let n = Value::<u64>::open_in(ns, "n").unwrap();
                let g = rw.write().unwrap();
                g.set_tag("sweep");
                n.set(n.get() + 1);
                drop(g);
                mark("unlocked");
            },
            check: |ns, o| {
                check_rw(ns, o);
                let n = Value::<u64>::open_in(ns, "n").unwrap().get();
                assert!(n == 1 || (n == 0 && o.progress != "unlocked"), "{n}");
            },
        },
        // rwlock write while a live peer reads: the writer waits (listed
        // as waiting) for the reader to leave.
        Scenario {
            name: "rwlock_write_contended",
            setup: |ns| drop(make_rw(ns)),
            peer: Some((
                |ns| {
                    let rw = rw(ns);
                    let g = rw.read().unwrap();
                    std::fs::write(ns.path().join("held"), "1").unwrap();
                    std::thread::sleep(Duration::from_millis(400));
                    drop(g);
                    "released".into()
                },
                PeerRule::BeforeCheck,
            )),
            op: |ns, mark| {
                wait_file(ns, "held");
                let rw = rw(ns);
                let g = rw.write().unwrap();
                mark("writing");
                drop(g);
                mark("released");
            },
            check: |ns, o| {
                assert_eq!(o.peer, "released");
                check_rw(ns, o);
            },
        },
        // rwlock write release with a reader waiting, and the next write,
        // which lets that reader in first.
        Scenario {
            name: "rwlock_admit",
            setup: |ns| drop(make_rw(ns)),
            peer: Some((
                |ns| {
                    wait_file(ns, "held");
                    let rw = rw(ns);
                    match rw.read_timeout(Duration::from_secs(15)) {
                        Ok(g) => drop(g),
                        Err(LockError::OwnerDied(d)) => drop(d.into_inner()),
                        Err(e) => return format!("err:{e}"),
                    }
                    "read".into()
                },
                PeerRule::BeforeCheck,
            )),
            op: |ns, mark| {
                let rw = rw(ns);
                let g = rw.write().unwrap();
                std::fs::write(ns.path().join("held"), "1").unwrap();
                // The peer waits to read.
                let t = Instant::now();
                while rw.waiting_readers() == 0 && t.elapsed() < Duration::from_secs(5) {
                    std::thread::sleep(Duration::from_millis(2));
                }
                drop(g);
                let g = rw.write().unwrap();
                mark("writing");
                drop(g);
                mark("released");
            },
            check: |ns, o| {
                // Killed before it announced its holding, the writer left
                // the peer waiting for that announcement, not for the lock.
                if ns.path().join("held").exists() {
                    assert_eq!(o.peer, "read");
                }
                check_rw(ns, o);
            },
        },
        // rwlock read while a live peer writes: the reader waits.
        Scenario {
            name: "rwlock_read_contended",
            setup: |ns| drop(make_rw(ns)),
            peer: Some((
                |ns| {
                    let rw = rw(ns);
                    let g = rw.write().unwrap();
                    std::fs::write(ns.path().join("held"), "1").unwrap();
                    std::thread::sleep(Duration::from_millis(400));
                    drop(g);
                    "released".into()
                },
                PeerRule::BeforeCheck,
            )),
            op: |ns, mark| {
                wait_file(ns, "held");
                let rw = rw(ns);
                let g = rw.read().unwrap();
                mark("reading");
                drop(g);
                mark("released");
            },
            check: |ns, o| {
                assert_eq!(o.peer, "released");
                check_rw(ns, o);
            },
        },
        // rwlock read over a writer that died: taken over (OwnerDied).
        Scenario {
            name: "rwlock_read_takeover",
            setup: |ns| {
                drop(make_rw(ns));
                helper(ns, "rw_write_and_die", None);
            },
            peer: None,
            op: |ns, mark| {
                let rw = rw(ns);
                let g = match rw.read() {
                    Err(LockError::OwnerDied(d)) => d.into_inner(),
                    other => panic!("expected OwnerDied: {other:?}"),
                };
                drop(g);
                mark("released");
            },
            check: |ns, o| check_rw(ns, o),
        },
        // rwlock write over a reader that died: its share is returned.
        Scenario {
            name: "rwlock_write_reaps",
            setup: |ns| {
                drop(make_rw(ns));
                helper(ns, "rw_read_and_die", None);
            },
            peer: None,
            op: |ns, mark| {
                let rw = rw(ns);
                let g = rw.write().unwrap();
                drop(g);
                mark("released");
            },
            check: |ns, o| check_rw(ns, o),
        },
        // rwlock write kept until the process exits (mproc lock -F).
        Scenario {
            name: "rwlock_keep",
            setup: |ns| drop(make_rw(ns)),
            peer: None,
            op: |ns, mark| {
                let rw = rw(ns);
                rw.write().unwrap().keep_until_exit().unwrap();
                mark("kept");
            },
            check: |ns, o| check_rw(ns, o),
        },
        // rwlock write after a holder kept until exit has exited.
        Scenario {
            name: "rwlock_after_keep",
            setup: |ns| {
                drop(make_rw(ns));
                helper(ns, "rw_keep_and_exit", None);
            },
            peer: None,
            op: |ns, mark| {
                let rw = rw(ns);
                // Its holding ended as a release does: no OwnerDied.
                let g = rw.write().unwrap();
                drop(g);
                mark("released");
            },
            check: |ns, o| check_rw(ns, o),
        },
        // queue create: the object appears whole or not at all.
        Scenario {
            name: "create",
            setup: |_| {},
            peer: None,
            op: |ns, mark| {
                drop(ByteQueue::create_in(ns, "q", opts()).unwrap());
                mark("created");
            },
            check: |ns, o| {
                match ByteQueue::open_in(ns, "q") {
                    Ok(q) => round_trip(&q),
                    Err(mproc::OpenError::NotFound { .. }) => assert!(o.progress != "created"),
                    Err(e) => panic!("a killed create left {e}"),
                }
                // The next create (or listing) removes what a dead creator
                // left behind.
                drop(ByteQueue::open_or_create_in(ns, "q", opts()).unwrap());
                ns.list().unwrap();
                let hidden: Vec<_> = std::fs::read_dir(ns.path())
                    .unwrap()
                    .map(|e| e.unwrap().file_name().into_string().unwrap())
                    .filter(|n| n.starts_with(".tmp-"))
                    .collect();
                assert!(hidden.is_empty(), "left behind: {hidden:?}");
            },
        },
    ]
}

/// A party of barrier "b": what its wait gave.
fn barrier_party(ns: &Namespace) -> String {
    match Barrier::open_in(ns, "b")
        .unwrap()
        .wait_timeout(Duration::from_secs(15))
    {
        Ok(_) => "passed".into(),
        Err(e) => format!("err:{e}"),
    }
}

/// Resets a two-party barrier (breaking whoever still waits), then two
/// threads meet at it.
fn reset_and_meet(b: &Barrier) {
    b.reset().unwrap();
    let b2 = b.clone();
    let t = std::thread::spawn(move || b2.wait_timeout(Duration::from_secs(5)));
    b.wait_timeout(Duration::from_secs(5)).unwrap();
    t.join().unwrap().unwrap();
}

/// Like [`drain`] when `a` is leased by a live peer.
fn drain_live_lease(q: &ByteQueue) -> Vec<String> {
    q.reclaim().unwrap();
    let s = q.stats();
    assert_eq!(s.leased, 1, "the live lease is kept: {s:?}");
    let len = q.len();
    let mut out = Vec::new();
    while let Ok(v) = q.try_get() {
        out.push(String::from_utf8(v).unwrap());
    }
    assert_eq!(len, out.len(), "len is not exact");
    out
}

/// The lock is free (or taken over) at once, and the counter under it
/// was updated at most once.
fn check_lock(ns: &Namespace, o: &Outcome) {
    let l = Lock::open_in(ns, "l").unwrap();
    let n = Value::<u64>::open_in(ns, "n").unwrap();
    let t = Instant::now();
    let g = match l.lock_timeout(Duration::from_secs(3)) {
        Ok(g) => g,
        Err(LockError::OwnerDied(d)) => d.into_inner(),
        Err(e) => panic!("lock wedged after the kill: {e:?}"),
    };
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t.elapsed()
    );
    assert!(
        n.get() == 1 || (n.get() == 0 && o.progress != "unlocked"),
        "{}",
        n.get()
    );
    assert!(l.waiters().is_empty());
    drop(g);
    assert!(!l.is_locked());
}

fn make_rw(ns: &Namespace) -> RwLock {
    RwLock::create_in(ns, "rw").unwrap()
}

fn rw(ns: &Namespace) -> RwLock {
    RwLock::open_in(ns, "rw").unwrap()
}

/// Waits (at most 10 s) for a file a peer writes once it holds the lock.
fn wait_file(ns: &Namespace, name: &str) {
    let t = Instant::now();
    while !ns.path().join(name).exists() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The readers-writer lock is writable at once (taken over if a writer
/// died), no reader or waiter is counted, and readers share it again.
fn check_rw(ns: &Namespace, o: &Outcome) {
    let rw = rw(ns);
    let t = Instant::now();
    let g = match rw.write_timeout(Duration::from_secs(3)) {
        Ok(g) => g,
        Err(LockError::OwnerDied(d)) => d.into_inner(),
        Err(e) => panic!(
            "rwlock wedged after the kill (progress {}): {e:?}",
            o.progress
        ),
    };
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "took {:?}",
        t.elapsed()
    );
    assert!(rw.readers().is_empty(), "{:?}", rw.readers());
    assert!(
        rw.waiting_writers().is_empty(),
        "{:?}",
        rw.waiting_writers()
    );
    assert_eq!(rw.waiting_readers(), 0);
    assert!(rw.is_write_locked());
    drop(g);
    assert!(!rw.is_write_locked());
    let r1 = rw.try_read().unwrap();
    let r2 = rw.try_read().unwrap();
    assert_eq!(rw.readers().len(), 2);
    assert!(rw.try_write().is_err());
    drop((r1, r2));
    drop(rw.try_write().unwrap());
}

/// The helper roles used by setups.
fn run_helper(role: &str, ns: &Namespace) {
    match role {
        "put_b" => q(ns).put(b"b").unwrap(),
        "lease_and_die" => {
            let (m, r) = q(ns).get_leased().unwrap();
            assert_eq!(m, b"a");
            std::mem::forget(r);
        }
        "lease_then_get" => {
            let q = q(ns);
            let (m, r) = q.get_leased().unwrap();
            assert_eq!(m, b"a");
            std::mem::forget(r);
            // Killed (MPROC_CRASH_AT) between marking b and the cursor.
            let _ = q.get();
        }
        "hold_and_die" => {
            let s = Semaphore::open_in(ns, "s").unwrap();
            std::mem::forget(s.hold().unwrap());
        }
        "rw_write_and_die" => std::mem::forget(rw(ns).write().unwrap()),
        "rw_read_and_die" => std::mem::forget(rw(ns).read().unwrap()),
        "rw_keep_and_exit" => rw(ns).write().unwrap().keep_until_exit().unwrap(),
        "lock_and_die" => {
            let l = Lock::open_in(ns, "l").unwrap();
            std::mem::forget(l.lock().unwrap());
        }
        r => panic!("unknown helper {r}"),
    }
}

/// The entry point of every child: does its role and exits.
#[test]
fn sweep_child() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let ns = Namespace::from_env().unwrap();
    let name = std::env::var(SCENARIO).unwrap_or_default();
    let sc = scenarios().into_iter().find(|s| s.name == name);
    match role.as_str() {
        "op" => {
            let progress = std::env::var(PROGRESS).unwrap();
            let mark = |m: &str| std::fs::write(&progress, m).unwrap();
            (sc.unwrap().op)(&ns, &mark);
        }
        "peer" => {
            let r = (sc.unwrap().peer.unwrap().0)(&ns);
            println!("RESULT:{r}");
        }
        "check" => {
            let o = Outcome {
                progress: std::env::var(PROGRESS).unwrap(),
                peer: std::env::var(PEER).unwrap(),
            };
            (sc.unwrap().check)(&ns, &o);
            println!("RESULT:ok");
        }
        helper => run_helper(helper, &ns),
    }
    std::process::exit(0);
}

/// This test binary, run as the child `role` of `scenario` in `ns`.
fn command(ns: &Namespace, role: &str, scenario: &str, progress: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", "sweep_child", "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env(SCENARIO, scenario)
        .env("MPROC_DIR", ns.path())
        .env(PROGRESS, progress)
        .env_remove("MPROC_CRASH_AT")
        .env_remove("MPROC_CRASH_TRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn child(
    ns: &Namespace,
    role: &str,
    scenario: &str,
    crash_at: Option<&str>,
    trace: Option<&Path>,
    progress: &str,
) -> Child {
    let mut c = command(ns, role, scenario, progress);
    if let Some(p) = crash_at {
        c.env("MPROC_CRASH_AT", p);
    }
    if let Some(t) = trace {
        c.env("MPROC_CRASH_TRACE", t);
    }
    c.spawn().unwrap()
}

/// Waits at most `limit`; `None` (and the child killed) if it ran longer.
fn wait_for(c: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let t = Instant::now();
    loop {
        if let Some(s) = c.try_wait().unwrap() {
            return Some(s);
        }
        if t.elapsed() > limit {
            let _ = c.kill();
            let _ = c.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn output(c: &mut Child) -> (String, String) {
    let (mut out, mut err) = (String::new(), String::new());
    c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let result = out
        .lines()
        .rev()
        .find_map(|l| l.split_once("RESULT:").map(|(_, r)| r))
        .unwrap_or("")
        .to_owned();
    (result, err)
}

/// One run of a scenario, killed at `crash_at` (or not). Returns whether
/// the operation was killed.
fn run_once(sc: &Scenario, crash_at: Option<&str>, trace: Option<&Path>) -> bool {
    let dir = tempfile::Builder::new()
        .prefix("mproc-sweep-")
        .tempdir()
        .unwrap();
    let ns = Namespace::dir(dir.path()).unwrap();
    let progress = dir.path().join(".progress");
    std::fs::write(&progress, "").unwrap();
    let progress_s = progress.to_str().unwrap().to_owned();
    let what = format!("{} killed at {:?}", sc.name, crash_at);
    (sc.setup)(&ns);
    let mut peer = sc.peer.map(|(_, rule)| {
        let p = child(&ns, "peer", sc.name, None, None, "");
        (p, rule)
    });
    if peer.is_some() {
        // Let the peer block before the operation runs.
        std::thread::sleep(Duration::from_millis(150));
    }
    let mut op = child(&ns, "op", sc.name, crash_at, trace, &progress_s);
    let status = wait_for(&mut op, CHILD_LIMIT).unwrap_or_else(|| panic!("{what}: op wedged"));
    let (_, op_err) = output(&mut op);
    let killed = std::os::unix::process::ExitStatusExt::signal(&status) == Some(SIGKILL);
    assert!(
        killed || status.success(),
        "{what}: the operation failed: {status:?}\n{op_err}"
    );
    let mut peer_result = String::new();
    if let Some((p, PeerRule::BeforeCheck)) = &mut peer {
        match wait_for(p, PEER_WAKE) {
            Some(st) => {
                let (r, err) = output(p);
                assert!(
                    st.success() && !r.is_empty(),
                    "{what}: peer failed: {st:?}\n{err}"
                );
                peer_result = r;
            }
            None => peer_result = "waiting".into(),
        }
    }
    let prog = std::fs::read_to_string(&progress).unwrap();
    let mut check = command(&ns, "check", sc.name, &prog)
        .env(PEER, &peer_result)
        .spawn()
        .unwrap();
    let st = wait_for(&mut check, CHILD_LIMIT).unwrap_or_else(|| panic!("{what}: check wedged"));
    let (res, err) = output(&mut check);
    assert!(
        st.success() && res == "ok",
        "{what}: the check failed (progress {prog:?}, peer {peer_result:?}):\n{err}"
    );
    if let Some((p, PeerRule::AfterCheck)) = &mut peer {
        // Freed by the check, or a lease holder that is simply killed.
        if sc.name == "get_behind_lease" {
            let _ = p.kill();
            let _ = p.wait();
        } else {
            let st = wait_for(p, Duration::from_secs(5))
                .unwrap_or_else(|| panic!("{what}: the blocked peer never woke"));
            let (r, err) = output(p);
            assert!(st.success(), "{what}: peer failed: {r} {err}");
        }
    }
    killed
}

const SIGKILL: i32 = 9;

#[test]
fn every_crash_point_of_every_operation_leaves_a_consistent_object() {
    if std::env::var(ROLE).is_ok() {
        return;
    }
    let only = std::env::var("MPROC_SWEEP_ONLY").ok();
    let mut total_kills = 0usize;
    let mut points_seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut report = Vec::new();
    for sc in scenarios() {
        if only.as_deref().is_some_and(|o| o != sc.name) {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let trace = dir.path().join("trace");
        assert!(
            !run_once(&sc, None, Some(&trace)),
            "{}: not killed",
            sc.name
        );
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for l in std::fs::read_to_string(&trace).unwrap_or_default().lines() {
            *counts.entry(l.to_owned()).or_default() += 1;
        }
        let mut kills = 0;
        for (point, n) in &counts {
            for k in 1..=(*n).min(MAX_K) {
                if run_once(&sc, Some(&format!("{point}:{k}")), None) {
                    kills += 1;
                }
            }
            *points_seen.entry(point.clone()).or_default() += 1;
        }
        assert!(
            kills > 0,
            "{}: no crash point killed the operation",
            sc.name
        );
        report.push(format!(
            "{:<24} {:>3} points, {:>3} kills",
            sc.name,
            counts.len(),
            kills
        ));
        total_kills += kills;
    }
    let all = mproc::crash_points();
    let mut text = String::from("crash sweep:\n");
    for r in &report {
        text += &format!("  {r}\n");
    }
    text += &format!(
        "  {} operations, {} distinct points of {} reached, {} kills\n",
        report.len(),
        points_seen.len(),
        all.len(),
        total_kills
    );
    let missing: Vec<_> = all
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !points_seen.contains_key(*n))
        .collect();
    text += &format!("  points no scenario reaches: {missing:?}\n");
    print!("{text}");
    if only.is_none() {
        // For CI's log (the test's own output is captured when it passes).
        let _ = std::fs::write(
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("crash-sweep.txt"),
            &text,
        );
        assert!(
            missing.is_empty(),
            "crash points no operation reaches: {missing:?}"
        );
    }
}
