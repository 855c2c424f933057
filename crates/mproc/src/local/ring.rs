//! The bounded MPMC byte ring behind `Queue`, in one segment.
//!
//! ## Layout
//! ```text
//! offset  field
//!    128  put lock   (robust mutex; serialises producers)
//!    192  tail       u64 = put_seq << 32 | put_pos     ─┐ producer's cache lines
//!    200  closed     u32                                │
//!    208  put_total  u64 (lags tail; see `total`)      ─┘
//!    256  get lock   (robust mutex; serialises consumers)
//!    320  head       u64 = got_seq << 32 | got_pos     ─┐ consumer's cache lines
//!    328  got_total  u64                               ─┘
//!    384  not_empty  wait cell {seq, waiters}
//!    448  not_full   wait cell {seq, waiters}
//!    512  done_total u64   (JoinableQueue task_done count)
//!    520  all_done   wait cell {seq, waiters}
//!   1024  ring bytes (capacity, a power of two)
//! ```
//! A record is `[len u32][reserved u32][payload, padded to 8 bytes]`; it may
//! wrap around the end of the ring. Positions are byte counters modulo 2^32
//! (the capacity is at most 2^31) and sequence numbers count records modulo
//! 2^32, so `len = put_seq - got_seq` and `used = put_pos - got_pos` are exact
//! with wrapping arithmetic.
//!
//! ## Protocol (two-lock queue)
//! Producers hold the put lock, consumers the get lock; a producer and a
//! consumer never wait for each other's lock. A producer writes the record
//! into free space, then **publishes last** with one release store of `tail`;
//! a consumer copies the record out, then publishes one release store of
//! `head`. A process killed at any instruction therefore leaves either the old
//! or the new state (a half-written record beyond `tail` is invisible; a
//! half-read record before `head` is read again by the next consumer), and
//! the kernel hands its robust lock to the next process.
//!
//! Nothing read from the segment is trusted: every length is checked against
//! the ring's occupancy and limits before use, so a damaged segment yields
//! [`OpError::Damaged`], never an access outside the mapping.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use crate::backend::{Counters, Limits, OpError, QueueBackend};
use crate::error::{CreateError, ObjectKind, OpenError};
use crate::local::segment::{Place, Segment};
use crate::local::wait::WaitCell;
use crate::namespace::Namespace;
use crate::sys::{self, RobustLock};

const PUT_LOCK: usize = 128;
const TAIL: usize = 192;
const CLOSED: usize = 200;
const PUT_TOTAL: usize = 208;
const GET_LOCK: usize = 256;
const HEAD: usize = 320;
const GOT_TOTAL: usize = 328;
const NOT_EMPTY: usize = 384;
const NOT_FULL: usize = 448;
const DONE_TOTAL: usize = 512;
const ALL_DONE: usize = 520;
const RING: usize = 1024;

/// Bytes of a record header.
pub(crate) const REC_HEADER: usize = 8;
/// The largest ring: positions are 32-bit counters.
pub(crate) const MAX_CAPACITY: usize = 1 << 31;
/// The smallest byte budget.
pub(crate) const MIN_BYTES: usize = 64;

const _: () = assert!(std::mem::size_of::<sys::RawRobustMutex>() <= 64);

fn seq(word: u64) -> u32 {
    (word >> 32) as u32
}

fn pos(word: u64) -> u32 {
    word as u32
}

fn pack(seq: u32, pos: u32) -> u64 {
    (u64::from(seq) << 32) | u64::from(pos)
}

fn record_len(payload: usize) -> usize {
    REC_HEADER + payload.div_ceil(8) * 8
}

/// Reconstructs a 64-bit total from a lagging stored total and the exact
/// 32-bit sequence number it lags behind.
fn total(stored: u64, seq: u32) -> u64 {
    stored.wrapping_add(u64::from(seq.wrapping_sub(stored as u32)))
}

/// Checked parameters of a ring: `[maxsize, max_bytes, capacity, 0]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RingParams {
    /// Message-count bound; 0 means unbounded.
    pub(crate) maxsize: u64,
    /// Byte budget for records (headers included).
    pub(crate) max_bytes: u64,
    capacity: u64,
}

impl RingParams {
    pub(crate) fn new(maxsize: usize, max_bytes: usize) -> Result<RingParams, String> {
        if !(MIN_BYTES..=MAX_CAPACITY).contains(&max_bytes) {
            return Err(format!(
                "max_bytes must be between {MIN_BYTES} and {MAX_CAPACITY}, got {max_bytes}"
            ));
        }
        if maxsize > u32::MAX as usize / 2 {
            return Err(format!(
                "maxsize must be at most {}, got {maxsize}",
                u32::MAX / 2
            ));
        }
        Ok(RingParams {
            maxsize: maxsize as u64,
            max_bytes: max_bytes as u64,
            capacity: max_bytes.next_power_of_two() as u64,
        })
    }

    fn from_raw(p: &[u64; 4]) -> Result<RingParams, String> {
        let r = RingParams::new(
            usize::try_from(p[0]).map_err(|e| e.to_string())?,
            usize::try_from(p[1]).map_err(|e| e.to_string())?,
        )?;
        if r.capacity != p[2] || p[3] != 0 {
            return Err(format!("inconsistent ring parameters {p:?}"));
        }
        Ok(r)
    }

    fn raw(&self) -> [u64; 4] {
        [self.maxsize, self.max_bytes, self.capacity, 0]
    }

    fn seg_len(&self) -> usize {
        RING + self.capacity as usize
    }

    /// The largest payload a single message may have.
    pub(crate) fn max_message(&self) -> usize {
        (self.max_bytes as usize - REC_HEADER) & !7
    }
}

fn expected_len(p: &[u64; 4]) -> Result<usize, String> {
    RingParams::from_raw(p).map(|r| r.seg_len())
}

/// A queue ring in a mapped segment.
#[derive(Debug)]
pub(crate) struct Ring {
    seg: Segment,
    params: RingParams,
    put_lock: RobustLock,
    get_lock: RobustLock,
}

/// Holds one of the ring's robust locks; releases on drop.
struct Held<'a>(&'a RobustLock);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // SAFETY: a `Held` is made only right after this thread acquired the
        // lock, and dropped once on the same thread.
        unsafe { self.0.unlock() };
    }
}

fn acquire(l: &RobustLock, deadline: Option<Instant>) -> Result<Held<'_>, OpError> {
    // Owner death needs no repair here: all shared state is published by
    // single stores, so whatever the dead process left is consistent.
    match l.lock(deadline)? {
        Some(_) => Ok(Held(l)),
        None => Err(OpError::WouldBlock),
    }
}

impl Ring {
    pub(crate) fn create(place: Place<'_>, params: RingParams) -> Result<Ring, CreateError> {
        let seg = Segment::create(
            place,
            ObjectKind::Queue,
            params.seg_len(),
            params.raw(),
            |seg| {
                for off in [PUT_LOCK, GET_LOCK] {
                    let raw = seg.raw_at(off, std::mem::size_of::<sys::RawRobustMutex>());
                    // SAFETY: an aligned in-bounds slot reserved for a mutex, in a
                    // segment nobody else can see yet.
                    unsafe { RobustLock::from_ptr(raw.cast()).init()? };
                }
                Ok(())
            },
        )?;
        Ok(Ring::from_segment(seg))
    }

    pub(crate) fn open(ns: &Namespace, name: &str) -> Result<Ring, OpenError> {
        Segment::open(ns, name, ObjectKind::Queue, expected_len).map(Ring::from_segment)
    }

    pub(crate) fn from_fd(fd: std::os::fd::OwnedFd) -> Result<Ring, OpenError> {
        Segment::from_fd(fd, ObjectKind::Queue, expected_len).map(Ring::from_segment)
    }

    fn from_segment(seg: Segment) -> Ring {
        let params =
            RingParams::from_raw(&seg.params()).expect("validated when the segment was opened");
        let lock_at = |off| {
            let raw = seg.raw_at(off, std::mem::size_of::<sys::RawRobustMutex>());
            // SAFETY: aligned in-bounds mutex slot, initialised before the
            // segment was published; the mapping lives as long as the Ring.
            unsafe { RobustLock::from_ptr(raw.cast()) }
        };
        let put_lock = lock_at(PUT_LOCK);
        let get_lock = lock_at(GET_LOCK);
        Ring {
            seg,
            params,
            put_lock,
            get_lock,
        }
    }

    pub(crate) fn segment(&self) -> &Segment {
        &self.seg
    }

    fn u64_at(&self, off: usize) -> &AtomicU64 {
        self.seg.at(off)
    }

    fn cell(&self, off: usize) -> WaitCell<'_> {
        WaitCell {
            seq: self.seg.at::<AtomicU32>(off),
            waiters: self.seg.at::<AtomicU32>(off + 4),
        }
    }

    fn closed(&self) -> bool {
        self.seg.at::<AtomicU32>(CLOSED).load(Ordering::Acquire) != 0
    }

    fn mask(&self) -> u32 {
        (self.params.capacity - 1) as u32
    }

    /// Whether a record of `rec` bytes fits now.
    fn has_room(&self, rec: usize) -> bool {
        let head = self.u64_at(HEAD).load(Ordering::Acquire);
        let tail = self.u64_at(TAIL).load(Ordering::Acquire);
        self.room(head, tail, rec)
    }

    fn room(&self, head: u64, tail: u64, rec: usize) -> bool {
        let count = seq(tail).wrapping_sub(seq(head)) as u64;
        let used = pos(tail).wrapping_sub(pos(head)) as u64;
        (self.params.maxsize == 0 || count < self.params.maxsize)
            && used.saturating_add(rec as u64) <= self.params.max_bytes
    }

    fn non_empty(&self) -> bool {
        let head = self.u64_at(HEAD).load(Ordering::Acquire);
        let tail = self.u64_at(TAIL).load(Ordering::Acquire);
        seq(head) != seq(tail)
    }

    /// Writes `data` into the ring at byte position `at`, wrapping.
    fn write_wrapped(&self, at: u32, data: &[u8]) {
        let cap = self.params.capacity as usize;
        let off = (at & self.mask()) as usize;
        let first = data.len().min(cap - off);
        self.seg.write(RING + off, &data[..first]);
        if first < data.len() {
            self.seg.write(RING, &data[first..]);
        }
    }

    /// Reads `out.len()` bytes from byte position `at`, wrapping.
    fn read_wrapped(&self, at: u32, out: &mut [u8]) {
        let cap = self.params.capacity as usize;
        let off = (at & self.mask()) as usize;
        let first = out.len().min(cap - off);
        self.seg.read(RING + off, &mut out[..first]);
        if first < out.len() {
            self.seg.read(RING, &mut out[first..]);
        }
    }

    /// Copies out up to `max` records; the caller holds the get lock.
    fn take_locked(
        &self,
        max: usize,
        sink: &mut dyn FnMut(&[u8]),
        scratch: &mut Vec<u8>,
    ) -> Result<usize, OpError> {
        let head_word = self.u64_at(HEAD);
        let head = head_word.load(Ordering::Relaxed);
        let tail = self.u64_at(TAIL).load(Ordering::Acquire);
        let (mut s, mut p) = (seq(head), pos(head));
        let mut n = 0;
        while n < max && s != seq(tail) {
            let len = self.validate_at(s, p, tail)?;
            scratch.clear();
            scratch.resize(len, 0);
            self.read_wrapped(p.wrapping_add(REC_HEADER as u32), scratch);
            sink(scratch);
            s = s.wrapping_add(1);
            p = p.wrapping_add(record_len(len) as u32);
            n += 1;
        }
        if n > 0 {
            // Publish last: the records are consumed only by this store.
            head_word.store(pack(s, p), Ordering::Release);
            let stored = self.u64_at(GOT_TOTAL);
            stored.store(total(stored.load(Ordering::Relaxed), s), Ordering::Relaxed);
        }
        Ok(n)
    }

    /// Checks the record at (`s`, `p`) against the published tail; returns its length.
    fn validate_at(&self, s: u32, p: u32, tail: u64) -> Result<usize, OpError> {
        let used = pos(tail).wrapping_sub(p) as u64;
        let count = seq(tail).wrapping_sub(s) as u64;
        if used > self.params.capacity || count > used / REC_HEADER as u64 {
            return Err(OpError::Damaged(format!(
                "inconsistent positions: {count} records in {used} bytes (capacity {})",
                self.params.capacity
            )));
        }
        let mut hdr = [0u8; REC_HEADER];
        self.read_wrapped(p, &mut hdr);
        let len = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
        if len > self.params.max_message() || record_len(len) as u64 > used {
            return Err(OpError::Damaged(format!(
                "record of {len} bytes does not fit the {used} bytes published"
            )));
        }
        Ok(len)
    }

    fn total_put(&self) -> u64 {
        let tail = self.u64_at(TAIL).load(Ordering::Acquire);
        total(self.u64_at(PUT_TOTAL).load(Ordering::Relaxed), seq(tail))
    }
}

impl QueueBackend for Ring {
    /// Puts messages in order; returns how many were put before an error.
    ///
    /// With `try_only`, never waits. Otherwise waits while full until
    /// `deadline` (`None`: forever). All messages of a call that fit are
    /// published with a single store.
    fn put(
        &self,
        msgs: &[&[u8]],
        try_only: bool,
        deadline: Option<Instant>,
    ) -> (usize, Result<(), OpError>) {
        let limit = self.params.max_message();
        if let Some(m) = msgs.iter().find(|m| m.len() > limit) {
            return (
                0,
                Err(OpError::TooLarge {
                    size: m.len(),
                    limit,
                }),
            );
        }
        let mut done = 0;
        while done < msgs.len() {
            let first_rec = record_len(msgs[done].len());
            {
                let _held = match acquire(&self.put_lock, deadline) {
                    Ok(h) => h,
                    Err(e) => return (done, Err(e)),
                };
                if self.closed() {
                    return (done, Err(OpError::Closed));
                }
                let tail_word = self.u64_at(TAIL);
                let tail = tail_word.load(Ordering::Relaxed);
                let head = self.u64_at(HEAD).load(Ordering::Acquire);
                let (mut s, mut p) = (seq(tail), pos(tail));
                let start = done;
                let mut h = head;
                while done < msgs.len() {
                    let msg = msgs[done];
                    let rec = record_len(msg.len());
                    if !self.room(h, pack(s, p), rec) {
                        // Re-read the consumer side once before giving up on the batch.
                        let fresh = self.u64_at(HEAD).load(Ordering::Acquire);
                        if fresh == h || !self.room(fresh, pack(s, p), rec) {
                            break;
                        }
                        h = fresh;
                    }
                    let mut hdr = [0u8; REC_HEADER];
                    hdr[..4].copy_from_slice(&(msg.len() as u32).to_le_bytes());
                    self.write_wrapped(p, &hdr);
                    self.write_wrapped(p.wrapping_add(REC_HEADER as u32), msg);
                    s = s.wrapping_add(1);
                    p = p.wrapping_add(rec as u32);
                    done += 1;
                }
                if done > start {
                    // Publish last: one store makes the whole batch visible.
                    tail_word.store(pack(s, p), Ordering::Release);
                    let stored = self.u64_at(PUT_TOTAL);
                    stored.store(total(stored.load(Ordering::Relaxed), s), Ordering::Relaxed);
                }
            }
            if done > 0 {
                self.cell(NOT_EMPTY).wake_all();
            }
            if done < msgs.len() {
                if try_only {
                    return (done, Err(OpError::WouldBlock));
                }
                let rec = if done > 0 {
                    record_len(msgs[done].len())
                } else {
                    first_rec
                };
                let ok = self
                    .cell(NOT_FULL)
                    .wait_until(deadline, || self.closed() || self.has_room(rec));
                if !ok {
                    return (done, Err(OpError::WouldBlock));
                }
            }
        }
        (done, Ok(()))
    }

    /// Takes up to `max` messages (at least one), appending each to `out`
    /// through `sink(out, bytes)`. Returns how many were taken.
    fn get(
        &self,
        max: usize,
        try_only: bool,
        deadline: Option<Instant>,
        sink: &mut dyn FnMut(&[u8]),
        scratch: &mut Vec<u8>,
    ) -> Result<usize, OpError> {
        loop {
            let taken = {
                let _held = acquire(&self.get_lock, deadline)?;
                self.take_locked(max, sink, scratch)?
            };
            if taken > 0 {
                self.cell(NOT_FULL).wake_all();
                return Ok(taken);
            }
            if self.closed() {
                // `closed` is set under the put lock, after every earlier put
                // published its tail; re-check emptiness after seeing it.
                if !self.non_empty() {
                    return Err(OpError::Closed);
                }
                continue;
            }
            if try_only {
                return Err(OpError::WouldBlock);
            }
            let ok = self
                .cell(NOT_EMPTY)
                .wait_until(deadline, || self.non_empty() || self.closed());
            if !ok {
                return Err(OpError::WouldBlock);
            }
        }
    }

    /// Copies the next message without taking it.
    fn peek(&self, out: &mut Vec<u8>) -> Result<bool, OpError> {
        let _held = acquire(&self.get_lock, None)?;
        let head = self.u64_at(HEAD).load(Ordering::Relaxed);
        let tail = self.u64_at(TAIL).load(Ordering::Acquire);
        if seq(head) == seq(tail) {
            return Ok(false);
        }
        let len = self.validate_at(seq(head), pos(head), tail)?;
        out.clear();
        out.resize(len, 0);
        self.read_wrapped(pos(head).wrapping_add(REC_HEADER as u32), out);
        Ok(true)
    }

    /// Discards every message; returns how many.
    fn purge(&self) -> Result<u64, OpError> {
        let n = {
            let _held = acquire(&self.get_lock, None)?;
            let head_word = self.u64_at(HEAD);
            let head = head_word.load(Ordering::Relaxed);
            let tail = self.u64_at(TAIL).load(Ordering::Acquire);
            head_word.store(tail, Ordering::Release);
            let stored = self.u64_at(GOT_TOTAL);
            stored.store(
                total(stored.load(Ordering::Relaxed), seq(tail)),
                Ordering::Relaxed,
            );
            let n = seq(tail).wrapping_sub(seq(head)) as u64;
            // Purged items will never be processed: count them as done so
            // that `join` does not wait for them.
            self.u64_at(DONE_TOTAL).fetch_add(n, Ordering::AcqRel);
            n
        };
        self.cell(NOT_FULL).wake_all();
        self.cell(ALL_DONE).wake_all();
        Ok(n)
    }

    /// Closes the queue: later puts fail; gets drain, then report closed.
    fn close(&self) -> Result<(), OpError> {
        {
            let _held = acquire(&self.put_lock, None)?;
            self.seg.at::<AtomicU32>(CLOSED).store(1, Ordering::Release);
        }
        self.cell(NOT_EMPTY).force_wake_all();
        self.cell(NOT_FULL).force_wake_all();
        Ok(())
    }

    /// Number of messages in the queue.
    fn len(&self) -> u64 {
        // Head first: the tail read afterwards is never behind it.
        let head = self.u64_at(HEAD).load(Ordering::Acquire);
        let tail = self.u64_at(TAIL).load(Ordering::Acquire);
        seq(tail).wrapping_sub(seq(head)) as u64
    }

    /// Whether no message of the smallest size could be put now.
    fn is_full(&self) -> bool {
        !self.has_room(REC_HEADER)
    }

    fn is_closed(&self) -> bool {
        self.closed()
    }

    fn name(&self) -> Option<&str> {
        self.seg.name()
    }

    fn limits(&self) -> Limits {
        Limits {
            maxsize: self.params.maxsize,
            max_bytes: self.params.max_bytes,
            max_message: self.params.max_message(),
        }
    }

    fn counters(&self) -> Counters {
        let head = self.u64_at(HEAD).load(Ordering::Acquire);
        let got = total(self.u64_at(GOT_TOTAL).load(Ordering::Relaxed), seq(head));
        let tail = self.u64_at(TAIL).load(Ordering::Acquire);
        let put = total(self.u64_at(PUT_TOTAL).load(Ordering::Relaxed), seq(tail));
        Counters {
            len: seq(tail).wrapping_sub(seq(head)) as u64,
            bytes_used: pos(tail).wrapping_sub(pos(head)) as u64,
            closed: self.closed(),
            total_put: put,
            total_got: got,
            total_done: self.u64_at(DONE_TOTAL).load(Ordering::Acquire),
            waiting_get: self.cell(NOT_EMPTY).waiting(),
            waiting_put: self.cell(NOT_FULL).waiting(),
        }
    }

    /// Marks one task done (JoinableQueue); fails if none is unfinished.
    fn task_done(&self) -> Result<(), OpError> {
        let done = self.u64_at(DONE_TOTAL);
        let mut cur = done.load(Ordering::Acquire);
        loop {
            if cur >= self.total_put() {
                return Err(OpError::NothingOutstanding);
            }
            match done.compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        if cur + 1 >= self.total_put() {
            self.cell(ALL_DONE).wake_all();
        }
        Ok(())
    }

    /// Tasks put but not yet marked done.
    fn unfinished(&self) -> u64 {
        let done = self.u64_at(DONE_TOTAL).load(Ordering::Acquire);
        self.total_put().saturating_sub(done)
    }

    /// Waits until every task put has been marked done; false on timeout.
    fn join(&self, deadline: Option<Instant>) -> Result<bool, OpError> {
        Ok(self
            .cell(ALL_DONE)
            .wait_until(deadline, || self.unfinished() == 0))
    }
}
