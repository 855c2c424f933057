//! Drivers shared by the fuzz targets and the `replay` binary.
//!
//! Everything goes through mproc's public API, exactly as an application
//! would: the fuzzer's bytes become a segment file in a private namespace
//! (on tmpfs when `/dev/shm` exists), which is then opened and used. Any
//! panic, abort, crash or hang is a finding; typed errors are the expected
//! outcome for garbage.
//!
//! * [`segment_bytes`]: the input is a whole segment file (after one
//!   selector byte) — header validation, size checks, and then every
//!   operation on whatever opens.
//! * [`segment_mutate`]: a valid queue with messages in it, whose shared
//!   state (head and tail words, counters, wait cells, ring bytes) is
//!   overwritten at fuzzer-chosen offsets between operations, while it is
//!   mapped — what a malicious or buggy writer with access could do.
//!
//! Every call made here has a bound on its waiting (`try_*`, `*_timeout`
//! with a few milliseconds), so a hang is a bug, not a blocking call.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use mproc::{ByteQueue, JoinableQueue, Lock, Namespace, Queue, QueueOptions};

/// The name every driver uses inside its namespace.
const NAME: &str = "fuzzed";

/// Offset of the queue's put lock in its segment.
pub const QUEUE_PUT_LOCK: usize = mproc::testing::queue::PUT_LOCK;
/// Offset of the queue's tail word.
pub const QUEUE_TAIL: usize = mproc::testing::queue::TAIL;
/// Offset of the queue's get lock.
pub const QUEUE_GET_LOCK: usize = mproc::testing::queue::GET_LOCK;
/// Offset of the queue's head word.
pub const QUEUE_HEAD: usize = mproc::testing::queue::HEAD;
/// Offset of the queue's ring bytes.
pub const QUEUE_RING: usize = mproc::testing::queue::RING;

/// Where the drivers make their namespace: `MPROC_FUZZ_DIR` if set, else
/// `/dev/shm` (tmpfs, fastest), else the temporary directory.
fn base_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("MPROC_FUZZ_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    }
}

/// One private namespace per process. Statics are never dropped: the
/// `replay` driver removes it with [`cleanup`]; a libFuzzer run leaves it
/// behind (`mproc-fuzz-*` in the base directory; `.ci/fuzz.sh` points
/// `MPROC_FUZZ_DIR` at a directory it removes).
static NS: OnceLock<(tempfile::TempDir, Namespace)> = OnceLock::new();

fn namespace() -> &'static (tempfile::TempDir, Namespace) {
    NS.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("mproc-fuzz-")
            .tempdir_in(base_dir())
            .expect("cannot make a temporary directory for the fuzz namespace");
        let ns = Namespace::dir(dir.path()).expect("a fresh private directory is a namespace");
        (dir, ns)
    })
}

/// Removes this process's namespace directory (statics are never
/// dropped, so a driver that returns from `main` calls this).
pub fn cleanup() {
    if let Some((dir, _)) = NS.get() {
        let _ = std::fs::remove_dir_all(dir.path());
    }
}

fn write_segment(ns: &Namespace, bytes: &[u8]) {
    let path = ns.path().join(NAME);
    let _ = std::fs::remove_file(&path);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .expect("cannot write the fuzzed segment");
    f.write_all(bytes).expect("cannot write the fuzzed segment");
}

/// Short timeouts: long enough to take the waiting paths, short enough for
/// thousands of executions per second.
const WAIT: Duration = Duration::from_millis(1);

/// Whether one of the lock words at `offs` of `seg` names a live thread.
///
/// A call without a deadline on such a lock waits about a second before it
/// takes the lock over (a live thread that never entered is only presumed
/// absent after two half-second checks; see the bad-input test
/// `damaged_lock_words_are_taken_over_or_refused_never_followed`). The
/// drivers keep to calls with deadlines in that state, to stay fast.
fn names_live_thread(seg: &[u8], offs: &[usize]) -> bool {
    offs.iter().any(|&off| {
        let Some(w) = seg.get(off..off + 4) else {
            return false;
        };
        let tid = u32::from_le_bytes([w[0], w[1], w[2], w[3]]) & 0x3fff_ffff;
        tid != 0 && std::path::Path::new(&format!("/proc/{tid}")).exists()
    })
}

/// The lock words of the live segment file.
fn lock_words(file: &std::fs::File) -> [u8; 260] {
    let mut b = [0u8; 260];
    let _ = file.read_exact_at(&mut b, 0);
    b
}

fn exercise_byte_queue(q: &ByteQueue, untimed: bool) {
    let _ = q.len();
    let _ = q.is_empty();
    let _ = q.is_full();
    let _ = q.maxsize();
    let _ = q.max_message();
    let _ = q.is_closed();
    let _ = q.stats();
    for _ in 0..3 {
        let _ = q.get_timeout(WAIT);
    }
    let _ = q.put_timeout(b"fuzz", WAIT);
    let _ = q.put_timeout(&[0xA5; 40], WAIT);
    let _ = q.get_many_with_timeout(4, WAIT, |m| {
        std::hint::black_box(m);
    });
    // At-least-once consumption: a leased get, then ack or nack.
    for ack in [true, false] {
        if let Ok((m, receipt)) = q.get_leased_timeout(WAIT) {
            std::hint::black_box(&m);
            let _ = if ack {
                q.ack(&receipt)
            } else {
                q.nack(&receipt)
            };
        }
    }
    if untimed {
        let _ = q.peek();
        for _ in 0..3 {
            let _ = q.try_get();
        }
        let _ = q.try_put(b"x");
        q.close();
        let _ = q.get_timeout(WAIT);
        let _ = q.purge();
    }
    let _ = q.stats();
}

fn exercise_typed(q: &Queue<Vec<u8>>, untimed: bool) {
    let _ = q.len();
    let _ = q.stats();
    for _ in 0..3 {
        let _ = q.get_timeout(WAIT);
    }
    let _ = q.put_timeout(vec![1, 2, 3], WAIT);
    let _ = q.get_many_timeout(3, WAIT);
    if untimed {
        let _ = q.peek();
        let _ = q.try_get();
        let _ = q.try_put(vec![7; 9]);
        q.close();
    }
}

fn exercise_joinable(q: &JoinableQueue<Vec<u8>>, untimed: bool) {
    let _ = q.unfinished();
    let _ = q.get_timeout(WAIT);
    let _ = q.task_done();
    let _ = q.task_done();
    let _ = q.join_timeout(WAIT);
    if untimed {
        let _ = q.try_get();
        let _ = q.task_done();
    }
}

fn exercise_lock(l: &Lock) {
    let _ = l.is_locked();
    let _ = l.holder();
    let _ = l.waiters();
    for _ in 0..2 {
        match l.lock_timeout(WAIT) {
            Ok(g) => {
                g.set_tag("fuzz");
                let _ = l.holder();
                drop(g);
            }
            Err(e) => drop(e.into_guard()),
        }
    }
    let _ = l.holder();
}

/// Valid segments of each kind, made by this build, as templates for the
/// checks on lock words and as the seed corpus.
pub fn valid_segments() -> Vec<(&'static str, Vec<u8>)> {
    let (_, ns) = namespace();
    let mut out = Vec::new();
    let read = |name: &str| std::fs::read(ns.path().join(name)).expect("read back a segment");
    {
        let _ = ns.remove("seed-q");
        let q = ByteQueue::create_in(ns, "seed-q", QueueOptions::new().maxsize(8).max_bytes(64))
            .expect("create a seed queue");
        q.put(b"one").unwrap();
        q.put(b"").unwrap();
        q.put(b"three three").unwrap();
        out.push(("queue", read("seed-q")));
        let _ = q.get();
        let _ = q.get();
        q.put(&[9u8; 20]).unwrap();
        out.push(("queue-wrapped", read("seed-q")));
        let _ = ns.remove("seed-q");
    }
    {
        let _ = ns.remove("seed-l");
        let l = Lock::create_in(ns, "seed-l").expect("create a seed lock");
        out.push(("lock", read("seed-l")));
        drop(l);
        let _ = ns.remove("seed-l");
    }
    out
}

/// Target 1: `data[0]` picks the opener, `data[1..]` is the whole segment file.
pub fn segment_bytes(data: &[u8]) {
    let Some((&sel, seg)) = data.split_first() else {
        return;
    };
    let (_, ns) = namespace();
    let kind = sel % 4;
    write_segment(ns, seg);
    match kind {
        0 => {
            if let Ok(q) = ByteQueue::open_in(ns, NAME) {
                exercise_byte_queue(
                    &q,
                    !names_live_thread(seg, &[QUEUE_PUT_LOCK, QUEUE_GET_LOCK]),
                );
            }
        }
        1 => {
            if let Ok(q) = Queue::<Vec<u8>>::open_in(ns, NAME) {
                exercise_typed(
                    &q,
                    !names_live_thread(seg, &[QUEUE_PUT_LOCK, QUEUE_GET_LOCK]),
                );
            }
        }
        2 => {
            if let Ok(q) = JoinableQueue::<Vec<u8>>::open_in(ns, NAME) {
                exercise_joinable(
                    &q,
                    !names_live_thread(seg, &[QUEUE_PUT_LOCK, QUEUE_GET_LOCK]),
                );
            }
        }
        _ => {
            if let Ok(l) = Lock::open_in(ns, NAME) {
                exercise_lock(&l);
            }
        }
    }
    // Also through the namespace listing, which peeks at every header.
    let _ = ns.list();
}

/// A little reader over the fuzzer's bytes.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }

    fn bytes(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
}

/// Size of the queue [`segment_mutate`] works on (`max_bytes` 256: a
/// 512-byte ring).
pub const MUTATE_SEG_LEN: usize = QUEUE_RING + 512;

/// Target 2: a valid queue holding `data[0] % 12` messages, then a program:
/// each step is either a patch (`0..=3`: overwrite 1, 2, 4 or 8 bytes at a
/// 16-bit offset folded into `[192, segment end)`, skipping the get lock)
/// or an operation (`4..`: get, peek, len, stats, put, close...).
pub fn segment_mutate(data: &[u8]) {
    let mut inp = Input(data);
    let Some(n_msgs) = inp.byte() else {
        return;
    };
    let (_, ns) = namespace();
    let _ = ns.remove(NAME);
    let q: Queue<Vec<u8>> =
        match Queue::create_in(ns, NAME, QueueOptions::new().maxsize(16).max_bytes(256)) {
            Ok(q) => q,
            Err(e) => panic!("cannot create the queue to mutate: {e}"),
        };
    for i in 0..(n_msgs % 12) {
        let _ = q.try_put(vec![i; usize::from(i) * 3]);
    }
    // Consumed messages move the head, so that patches land on a ring
    // that has wrapped.
    for _ in 0..(n_msgs / 12 % 4) {
        let _ = q.try_get();
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(ns.path().join(NAME))
        .expect("reopen the segment file");
    let raw = q.as_bytes();
    let untimed =
        |f: &std::fs::File| !names_live_thread(&lock_words(f), &[QUEUE_PUT_LOCK, QUEUE_GET_LOCK]);
    let mut steps = 0;
    while let Some(op) = inp.byte() {
        steps += 1;
        if steps > 64 {
            break;
        }
        match op % 16 {
            w @ 0..=3 => {
                let width = 1usize << w;
                let Some(off) = inp.u16() else { break };
                let Some(val) = inp.bytes(width) else { break };
                // Fold into [128, len - width]: both locks, the
                // positions, counters, wait cells and the ring.
                let span = MUTATE_SEG_LEN - QUEUE_PUT_LOCK - width + 1;
                let at = QUEUE_PUT_LOCK + usize::from(off) % span;
                file.write_all_at(val, at as u64)
                    .expect("patch the segment");
            }
            4 | 5 if untimed(&file) => {
                let _ = q.try_get();
            }
            6 => {
                let _ = q.get_timeout(WAIT);
            }
            7 if untimed(&file) => {
                let _ = q.peek();
            }
            8 => {
                let _ = q.len();
                let _ = q.is_full();
                let _ = q.is_empty();
            }
            9 => {
                let _ = q.stats();
            }
            10 => {
                let n = usize::from(inp.byte().unwrap_or(0));
                let _ = q.try_put(vec![0x5A; n]);
            }
            11 => {
                let _ = raw.get_many_with_timeout(5, WAIT, |m| {
                    std::hint::black_box(m);
                });
            }
            12 => {
                // Plain gets only: leased gets on damaged state can leave the
                // derived lease counters claiming records that are not there,
                // and gets then spin past their deadline (a known gap,
                // `damaged_requeued_counter_does_not_make_get_spin`).
                let _ = raw.try_get();
            }
            // `close` is left out: a closed queue with a lease outstanding
            // (one whose ack failed on damaged state, say) makes gets spin
            // past their deadline, a known gap
            // (`a_closed_queue_with_an_outstanding_lease_honours_deadlines`).
            13 if untimed(&file) => {
                let _ = q.peek();
            }
            14 if untimed(&file) => {
                let _ = raw.purge();
            }
            4 | 5 | 7 | 13 | 14 => {}
            _ => {
                let _ = raw.put_timeout(b"abc", WAIT);
            }
        }
    }
    drop(q);
    let _ = ns.remove(NAME);
}
