//! The bounded MPMC byte ring behind `Queue`, in one segment.
//!
//! ## Layout
//! ```text
//! offset  field
//!    128  put lock   (robust lock; serialises producers)
//!    192  tail       u64 = put_seq << 32 | put_pos     ─┐ producer's cache line
//!    208  put_total  u64 (lags tail; see `total`)      ─┘
//!    256  get lock   (robust lock; serialises consumers)
//!    320  head       u64 = got_seq << 32 | got_pos     ─┐ consumer's cache lines
//!    328  got_total  u64                                │
//!    336  cursor     u64 = next record to deliver       │ (head ≤ cursor ≤ tail)
//!    344  leased     u32, requeued u32 (derived; recounted on reclaim)
//!    352  last reclaim u64, dead-lettered u64           │
//!    368  purged_total u64 (items purged: count as done) ─┘
//!    384  not_empty  wait cell {seq, waiters}         ─┐ read by both sides,
//!    392  closed     u32                               ─┘ written rarely
//!    400  purge journal: on u64, cursor u64, purged_total u64
//!    448  not_full   wait cell {seq, waiters}
//!    512  done_total u64   (JoinableQueue task_done count)
//!    520  all_done   wait cell {seq, waiters}
//!    576  lease owners: 28 × {pid u32, pad u32, start time u64}
//!   1024  sleepers: 64 × {pid u32, cell u32, start time u64}
//!   2048  ring bytes (capacity: see `capacity_for`)
//! ```
//! A record is `[len u32][meta u32][payload, padded to 8 bytes]`; its
//! 8-byte header is one aligned word, and its payload may wrap around the
//! end of the ring. `meta` holds the record's state (fresh, delivered under
//! a lease, acknowledged, requeued), the lease owner's slot and the delivery
//! count. Between `head` and `cursor`, a record still FRESH was delivered by
//! a plain get and counts as acknowledged. The word after the last record
//! is always the end mark (`len = u32::MAX`): the record budget leaves 8
//! bytes of the capacity free, so the mark always fits.
//!
//! ## Leases (at-least-once delivery)
//! Records between `head` and `cursor` have been delivered but still occupy
//! their space: a plain `get` marks its records acknowledged at once, a
//! leased get marks its record delivered to its owner slot. `head` advances
//! over the acknowledged prefix only. A consumer that dies holding a lease is
//! found by the next get (or a waiting consumer, which wakes every
//! `LEASE_SLICE` while leases are outstanding): its records are marked
//! requeued and are delivered again before any fresh record, with their
//! delivery count increased. Every state change is a single store of the
//! meta word, and the counters `leased`/`requeued` are recounted from the
//! states on each reclaim, so a kill at any instruction leaves a state that
//! the next reclaim makes exact. Positions are byte counters modulo the
//! largest multiple of the capacity that fits in 32 bits (at least 2^31),
//! so the distance between two of them is exact even when one is stale (a
//! producer's remembered `head`); a position's place in the ring is the
//! counter modulo the capacity. Sequence numbers count records modulo 2^32,
//! so `len = put_seq - got_seq` is exact with wrapping arithmetic; whether
//! `tail` is behind `head` (a dead producer left it there) is told by them.
//! The ring is as large as its budget — `max_bytes` (a message of that
//! many bytes fits) rounded up to 8, plus a header, plus the end mark —
//! rounded up to a power of two when that costs at most 1 MiB more.
//!
//! ## Protocol (two-lock queue)
//! Producers hold the put lock, consumers the get lock; a producer and a
//! consumer never wait for each other's lock, and a consumer never reads the
//! producers' cache lines. A producer writes its records and a new end mark
//! behind them into free space, then **publishes last** with one release
//! store of the first record's header over the old end mark; it then moves
//! `tail`, which only producers use (and `len`). A consumer finds records by
//! their headers at `cursor`, copies them out, then publishes one release
//! store of `cursor` and `head`. A process killed at any instruction
//! therefore leaves either the old or the new state: a half-written batch
//! behind the end mark is invisible; a half-read record is read again by the
//! next consumer; a producer killed between its header and `tail` stores
//! left published records behind `tail`, and the next producer moves `tail`
//! over them before anything else. The kernel hands a dead process's robust
//! lock to the next one.
//!
//! ## Crash recovery
//! Every store is a named crash point (`crate::crash`), and what a kill
//! after each one leaves is tabled in RELIABILITY.md. Stores under the put
//! lock need no repair: the next producer walks `tail` over what was
//! published. Stores under the get lock come in groups (a record's state and
//! the cursor, the counters, a purge); a consumer killed inside one leaves
//! the get lock's entry record set, so the next process to take the get lock
//! is told the owner died and runs [`Ring::repair_locked`] before anything
//! else: it finishes a journaled purge, restores the headers of records
//! marked but not yet delivered (the cursor did not move past them),
//! requeues the dead process's leases and recounts every derived counter
//! from the records' states. `len` and the counters run that repair first
//! when they find the get lock abandoned, so they are exact after any kill.
//!
//! Nothing read from the segment is trusted: every length is checked against
//! the ring's occupancy and limits before use, so a damaged segment yields
//! [`OpError::Damaged`], never an access outside the mapping.

mod check;
mod layout;
mod lease;
mod ops;
mod take;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use crate::backend::{Counters, Limits, OpError, QueueBackend, Receipt, ReceiptToken};
use crate::crash::crash_point;
use crate::error::{CreateError, OpenError};
use crate::local::dir::Dir;
use crate::local::segment::{Fixed, Place, Segment};
use crate::local::wait::{Gather, Sleepers, Spin, WaitCell};
use crate::object::ObjectKind;
use crate::sys::{self, RobustLock};
use layout::*;
pub(crate) use layout::{RingParams, REC_HEADER};
#[cfg(feature = "testing")]
pub(crate) use layout::{GET_LOCK, HEAD, NOT_EMPTY, PUT_LOCK, PUT_TOTAL, RING, TAIL};

/// A queue ring in a mapped segment.
#[derive(Debug)]
pub(crate) struct Ring {
    seg: Fixed<FIXED_LEN>,
    params: RingParams,
    /// This process's lease-owner slot (`u32::MAX` until claimed).
    my_slot: AtomicU32,
    /// The last `head` this handle's producers read (only under the put
    /// lock): a past value of `head`, so it can only under-estimate room;
    /// re-read when it says full. Saves a cross-core miss per put.
    seen_head: AtomicU64,
    /// Positions count modulo this multiple of the capacity (at least
    /// 2^31), so that distances between them are exact however stale.
    modulus: u64,
    /// `offset` divides by the capacity with this precomputed inverse...
    magic: u64,
    /// ...or masks with this, when the capacity is a power of two (else 0).
    mask: u32,
    /// How this handle's consumers wait on a large queue (see [`Gather`]).
    gather: Gather,
}

/// Holds one of the ring's robust locks; releases on drop.
struct Held<'a>(RobustLock<'a>);

/// Holds the get lock; after a repair, wakes consumers and producers once
/// the lock is released (the repair may have requeued items or freed space).
struct GetHeld<'a> {
    _held: Held<'a>,
    ring: &'a Ring,
    repaired: bool,
}

impl Drop for GetHeld<'_> {
    fn drop(&mut self) {
        if self.repaired {
            // Rare (only after a death): wake everyone, even before the
            // lock (released right after this body) is free.
            self.ring.cell(NOT_EMPTY).force_wake_all();
            self.ring.cell(NOT_FULL).force_wake_all();
            self.ring.cell(ALL_DONE).force_wake_all();
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // SAFETY: a `Held` is made only right after this thread acquired the
        // lock, and dropped once on the same thread.
        unsafe { self.0.unlock() };
    }
}

/// Takes `l` until `deadline`; the flag says whether its previous holder
/// died inside.
fn acquire(l: RobustLock<'_>, deadline: Option<Instant>) -> Result<(Held<'_>, bool), OpError> {
    match l.lock(deadline)? {
        Some(a) => Ok((Held(l), a == sys::Acquired::OwnerDied)),
        None => Err(OpError::WouldBlock),
    }
}

impl Ring {
    pub(crate) fn create(place: Place<'_>, params: RingParams) -> Result<Ring, CreateError> {
        let seg = Fixed::create(
            place,
            ObjectKind::Queue,
            params.seg_len(),
            params.raw(),
            |v| {
                v.robust_lock::<PUT_LOCK>().init()?;
                v.robust_lock::<GET_LOCK>().init()?;
                // The empty ring: the end mark at position 0.
                v.at::<AtomicU64, RING>().store(END_MARK, Ordering::Release);
                Ok(())
            },
        )?;
        Ok(Ring::from_segment(seg))
    }

    pub(crate) fn open(dir: &Dir, name: &str) -> Result<Ring, OpenError> {
        Fixed::open(dir, name, ObjectKind::Queue, expected_len).map(Ring::from_segment)
    }

    pub(crate) fn from_fd(fd: std::os::fd::OwnedFd) -> Result<Ring, OpenError> {
        Fixed::from_fd(fd, ObjectKind::Queue, expected_len).map(Ring::from_segment)
    }

    fn from_segment(seg: Fixed<FIXED_LEN>) -> Ring {
        let params =
            RingParams::from_raw(&seg.params()).expect("validated when the segment was opened");
        let ring = Ring {
            seg,
            params,
            my_slot: AtomicU32::new(u32::MAX),
            seen_head: AtomicU64::new(0),
            modulus: params.modulus(),
            magic: (u64::MAX / params.capacity).wrapping_add(1),
            mask: if params.capacity.is_power_of_two() {
                (params.capacity - 1) as u32
            } else {
                0
            },
            gather: Gather::new(),
        };
        ring.seen_head.store(
            ring.u64::<HEAD>().load(Ordering::Acquire),
            Ordering::Relaxed,
        );
        ring
    }

    /// The producers' robust lock.
    #[inline]
    fn put_lock(&self) -> RobustLock<'_> {
        self.seg.view().robust_lock::<PUT_LOCK>()
    }

    /// The consumers' robust lock.
    #[inline]
    fn get_lock(&self) -> RobustLock<'_> {
        self.seg.view().robust_lock::<GET_LOCK>()
    }

    pub(crate) fn segment(&self) -> &Segment {
        &self.seg
    }

    /// A counter at a varying offset (an owner slot's).
    fn u64_at(&self, off: usize) -> &AtomicU64 {
        self.seg.at(off)
    }

    /// A counter of the fixed layout, borrowed with no check per access.
    #[inline(always)]
    fn u64<const OFF: usize>(&self) -> &AtomicU64 {
        self.seg.view().at::<AtomicU64, OFF>()
    }

    fn cell(&self, off: usize) -> WaitCell<'_> {
        WaitCell {
            seq: self.seg.at::<AtomicU32>(off),
            waiters: self.seg.at::<AtomicU32>(off + 4),
            sleepers: Some((
                Sleepers::new(&self.seg, SLEEPERS, SLEEPER_SLOTS),
                off as u32,
            )),
        }
    }

    /// Takes the get lock until `deadline`; if its previous holder died
    /// inside, repairs what it left first (and wakes whoever the repair
    /// concerns once the lock is released).
    fn lock_get(&self, deadline: Option<Instant>) -> Result<GetHeld<'_>, OpError> {
        let (held, died) = acquire(self.get_lock(), deadline)?;
        if died {
            self.repair_locked()?;
        }
        Ok(GetHeld {
            _held: held,
            ring: self,
            repaired: died,
        })
    }

    /// Whether waits may let messages (or room) gather for a few
    /// microseconds: that pays when the queue holds many of them; a small
    /// queue would sit full or empty meanwhile.
    fn gathers(&self) -> bool {
        let many = self.params.maxsize == 0 || self.params.maxsize >= GATHER_MIN_ITEMS;
        many && self.params.max_bytes >= GATHER_MIN_BYTES
    }

    /// How a waiting producer spins.
    fn spin(&self) -> Spin {
        if self.gathers() {
            Spin::GATHER
        } else {
            Spin::SHORT
        }
    }

    /// How a waiting consumer spins: as it has learnt (see [`Gather`]) on a
    /// queue that gathers.
    fn consumer_spin(&self) -> Spin {
        if self.gathers() {
            self.gather.spin()
        } else {
            Spin::SHORT
        }
    }

    fn closed(&self) -> bool {
        self.seg
            .view()
            .at::<AtomicU32, CLOSED>()
            .load(Ordering::Acquire)
            != 0
    }

    /// The ring offset of position `p`: `p` modulo the capacity, by
    /// multiplication with a precomputed inverse (Lemire's direct
    /// remainder, exact for every 32-bit `p`), so that any position, even
    /// one read from a damaged word, names a byte inside the ring.
    #[inline]
    fn offset(&self, p: u32) -> usize {
        if self.mask != 0 {
            (p & self.mask) as usize
        } else {
            rem(p, self.magic, self.params.capacity) as usize
        }
    }

    /// Position `p` moved forward by `n` bytes (at most the capacity).
    #[inline]
    fn padd(&self, p: u32, n: usize) -> u32 {
        if self.mask != 0 {
            // A power-of-two ring: positions count modulo 2^32.
            return p.wrapping_add(n as u32);
        }
        let q = u64::from(p).wrapping_add(n as u64);
        (if q >= self.modulus {
            q.wrapping_sub(self.modulus)
        } else {
            q
        }) as u32
    }

    /// Bytes from position `from` forward to position `to`.
    #[inline]
    fn psub(&self, to: u32, from: u32) -> u64 {
        if self.mask != 0 {
            return u64::from(to.wrapping_sub(from));
        }
        if to >= from {
            u64::from(to - from)
        } else {
            (u64::from(to) + self.modulus).wrapping_sub(u64::from(from))
        }
    }

    /// Bytes of records from `head` to `tail`; 0 when `tail` is behind
    /// `head` (by its sequence number: a producer died before moving it
    /// over records consumed since).
    fn used(&self, head: u64, tail: u64) -> u64 {
        if ahead(seq(tail), seq(head)) == 0 {
            0
        } else {
            self.psub(pos(tail), pos(head))
        }
    }

    /// Whether a record of `rec` bytes fits now.
    fn has_room(&self, rec: usize) -> bool {
        let head = self.u64::<HEAD>().load(Ordering::Acquire);
        let tail = self.u64::<TAIL>().load(Ordering::Acquire);
        self.room(head, tail, rec)
    }

    /// Whether a record of `rec` bytes fits between `head` and `tail`. A
    /// `tail` behind `head` (a producer died before moving it over records
    /// that were consumed since) counts as empty: the next producer moves it.
    fn room(&self, head: u64, tail: u64, rec: usize) -> bool {
        let count = ahead(seq(tail), seq(head));
        let used = self.used(head, tail);
        (self.params.maxsize == 0 || count < self.params.maxsize)
            && used.saturating_add(rec as u64) <= self.params.budget
    }

    /// Whether a get may find something now (a hint for waiting consumers:
    /// read without the get lock, so it may be wrong while another
    /// consumer moves the cursor, and is then true).
    fn non_empty(&self) -> bool {
        let cursor_word = self.u64::<CURSOR>();
        let cursor = cursor_word.load(Ordering::Acquire);
        self.header(pos(cursor)).load(Ordering::Acquire) != END_MARK
            || cursor_word.load(Ordering::Acquire) != cursor
            || self.u32_at(REQUEUED).load(Ordering::Acquire) > 0
    }

    /// The header word of the record at byte position `p` (a multiple of 8
    /// for every record; rounded down otherwise, so that a damaged position
    /// still names a word inside the ring).
    fn header(&self, p: u32) -> &AtomicU64 {
        self.seg.at(RING + (self.offset(p) & !7))
    }

    fn u32_at(&self, off: usize) -> &AtomicU32 {
        self.seg.at(off)
    }

    fn read_meta(&self, p: u32) -> u32 {
        (self.header(p).load(Ordering::Relaxed) >> 32) as u32
    }

    /// Changes a delivered record's state; the caller holds the get lock
    /// (producers never write the headers of published records).
    fn write_meta(&self, p: u32, m: u32) {
        let h = self.header(p);
        h.store(
            (h.load(Ordering::Relaxed) & 0xFFFF_FFFF) | (u64::from(m) << 32),
            Ordering::Relaxed,
        );
    }

    /// Writes `data` into the ring at byte position `at`, wrapping.
    fn write_wrapped(&self, at: u32, data: &[u8]) {
        let cap = self.params.capacity as usize;
        let off = self.offset(at);
        let first = data.len().min(cap - off);
        self.seg.write(RING + off, &data[..first]);
        if first < data.len() {
            self.seg.write(RING, &data[first..]);
        }
    }

    /// Reads `out.len()` bytes from byte position `at`, wrapping.
    fn read_wrapped(&self, at: u32, out: &mut [u8]) {
        let cap = self.params.capacity as usize;
        let off = self.offset(at);
        let first = out.len().min(cap - off);
        self.seg.read(RING + off, &mut out[..first]);
        if first < out.len() {
            self.seg.read(RING, &mut out[first..]);
        }
    }

    /// Messages ever put: by `tail`, or by the cursor when it is ahead
    /// (a producer is between its header and `tail` stores, or died there).
    fn total_put(&self) -> u64 {
        let end = self.published_end();
        let put = total(self.u64::<PUT_TOTAL>().load(Ordering::Relaxed), seq(end));
        put.max(self.total_got())
    }

    /// `tail`, or past it the end of the records published beyond it (by a
    /// producer between its header and `tail` stores, or killed there): a
    /// hint read without the put lock, for `len` and the counters. The walk
    /// stops at anything that is not a plausible record.
    fn published_end(&self) -> u64 {
        let tail = self.u64::<TAIL>().load(Ordering::Acquire);
        let (mut s, mut p) = (seq(tail), pos(tail));
        if p % REC_HEADER as u32 != 0 || u64::from(p) >= self.modulus {
            return tail;
        }
        let mut walked = 0u64;
        loop {
            let word = self.header(p).load(Ordering::Acquire);
            let len = word as u32 as usize;
            let m = (word >> 32) as u32;
            walked += record_len(len.min(self.params.max_message())) as u64;
            if word == END_MARK
                || len > self.params.max_message()
                || (meta_state(m) == FRESH && m != fresh_meta(s, len))
                || walked > self.params.budget
            {
                break;
            }
            s = s.wrapping_add(1);
            p = self.padd(p, record_len(len));
        }
        pack(s, p)
    }

    /// Stores `tail` and the put total it implies; the caller holds the put
    /// lock.
    fn move_tail(&self, tail: u64) {
        self.u64::<TAIL>().store(tail, Ordering::Release);
        crash_point!("ring.put.tail");
        let stored = self.u64::<PUT_TOTAL>();
        stored.store(
            total(stored.load(Ordering::Relaxed), seq(tail)),
            Ordering::Relaxed,
        );
        crash_point!("ring.put.total");
    }

    /// Stores the cursor (delivering the records before it) and the get
    /// total it implies; the caller holds the get lock.
    fn move_cursor(&self, cursor: u64) {
        self.u64::<CURSOR>().store(cursor, Ordering::Release);
        crash_point!("ring.get.cursor");
        let stored = self.u64::<GOT_TOTAL>();
        stored.store(
            total(stored.load(Ordering::Relaxed), seq(cursor)),
            Ordering::Relaxed,
        );
        crash_point!("ring.get.total");
    }

    fn total_got(&self) -> u64 {
        let cursor = self.u64::<CURSOR>().load(Ordering::Acquire);
        total(self.u64::<GOT_TOTAL>().load(Ordering::Relaxed), seq(cursor))
    }

    /// Tasks put but not yet marked done, as the words say now.
    fn unfinished_now(&self) -> u64 {
        self.total_put().saturating_sub(self.done_total())
    }

    /// Tasks marked done, and items purged.
    fn done_total(&self) -> u64 {
        let done = self.u64::<DONE_TOTAL>().load(Ordering::Acquire);
        done.wrapping_add(self.u64::<PURGED_TOTAL>().load(Ordering::Acquire))
    }
}
