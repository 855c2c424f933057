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

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use crate::backend::{Counters, Limits, OpError, QueueBackend, Receipt, ReceiptToken};
use crate::crash::crash_point;
use crate::error::{CreateError, ObjectKind, OpenError};
use crate::local::segment::{Place, Segment};
use crate::local::wait::{Gather, Sleepers, Spin, WaitCell, SLEEPER_SLOT};
use crate::namespace::Namespace;
use crate::sys::{self, RobustLock};

const PUT_LOCK: usize = 128;
const TAIL: usize = 192;
const PUT_TOTAL: usize = 208;
const GET_LOCK: usize = 256;
const HEAD: usize = 320;
const GOT_TOTAL: usize = 328;
const CURSOR: usize = 336;
const LEASED: usize = 344;
const REQUEUED: usize = 348;
const LAST_RECLAIM: usize = 352;
const DEAD_LETTERED: usize = 360;
const PURGED_TOTAL: usize = 368;
const NOT_EMPTY: usize = 384;
const CLOSED: usize = 392;
const JOURNAL: usize = 400;
const JOURNAL_CURSOR: usize = 408;
const JOURNAL_PURGED: usize = 416;
const NOT_FULL: usize = 448;
const DONE_TOTAL: usize = 512;
const ALL_DONE: usize = 520;
const OWNERS: usize = 576;
/// Processes that may hold leases at once.
pub(crate) const OWNER_SLOTS: usize = 28;
const SLEEPERS: usize = 1024;
/// Processes (threads) counted as asleep on the queue at once; more are
/// counted in the cells' plain counters.
const SLEEPER_SLOTS: usize = 64;
const RING: usize = 2048;
const _: () = assert!(OWNERS + OWNER_SLOTS * 16 <= SLEEPERS);
const _: () = assert!(SLEEPERS + SLEEPER_SLOTS * SLEEPER_SLOT <= RING);

/// Record states (low two bits of the record's meta word).
const FRESH: u32 = 0;
const DELIVERED: u32 = 1;
const ACKED: u32 = 2;
const REQUEUED_STATE: u32 = 3;
/// How often (at most) gets look for leases of dead consumers, and how long
/// a waiting consumer sleeps at most while leases are outstanding.
const RECLAIM_EVERY_NS: u64 = 20_000_000;
/// Queues smaller than this (in items or bytes) wait with the short spin
/// (see [`Ring::spin`]).
const GATHER_MIN_ITEMS: u64 = 256;
const GATHER_MIN_BYTES: u64 = 64 << 10;
const LEASE_SLICE: std::time::Duration = std::time::Duration::from_millis(50);

fn meta(state: u32, owner: u32, deliveries: u32) -> u32 {
    state | (owner << 2) | (deliveries.min(0xff_ffff) << 8)
}

/// The meta word of a record as published: FRESH, and in the bits that
/// hold the owner and delivery count once it is delivered, a 30-bit tag of
/// its sequence number and length. A consumer finds records by their headers
/// alone, so the tag tells a record published for this position apart from
/// stale bytes of an earlier lap or a damaged length.
fn fresh_meta(s: u32, len: usize) -> u32 {
    let mix = (u64::from(s) ^ ((len as u64) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((mix >> 34) as u32) << 2 | FRESH
}

fn meta_state(m: u32) -> u32 {
    m & 3
}

fn meta_owner(m: u32) -> u32 {
    (m >> 2) & 0x3f
}

fn meta_deliveries(m: u32) -> u32 {
    m >> 8
}

/// Bytes of a record header.
pub(crate) const REC_HEADER: usize = 8;
/// The end mark: the header word after the last published record.
const END_MARK: u64 = u32::MAX as u64;
/// The largest ring: positions are 32-bit offsets.
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

/// How far the 32-bit counter `to` is ahead of `from`, or 0 when it is
/// behind: `tail` lags the cursor and `head` while a producer is between
/// its header and `tail` stores (or died there).
fn ahead(to: u32, from: u32) -> u64 {
    (to.wrapping_sub(from) as i32).max(0) as u64
}

/// `p % d`, given `magic = u64::MAX / d + 1` (Lemire, Kaser and Kurz,
/// "Faster remainder by direct computation": exact for all 32-bit `p` and
/// `d`), with two multiplications instead of a division.
fn rem(p: u32, magic: u64, d: u64) -> u64 {
    let low = magic.wrapping_mul(u64::from(p));
    ((u128::from(low) * u128::from(d)) >> 64) as u64
}

/// The ring's size for a record budget: the budget and the end mark,
/// rounded up to a power of two when that costs at most [`MAX_SLACK`] more
/// (a ring of a power of two finds a position's place with a mask instead
/// of a remainder: about a tenth more messages per second here), else
/// exact. The default 1 MiB budget gets a 2 MiB ring; 16 MiB gets
/// 16 MiB + 16 bytes.
fn capacity_for(budget: usize) -> usize {
    let exact = budget + REC_HEADER;
    let pow2 = exact.next_power_of_two();
    if pow2 - exact <= MAX_SLACK && pow2 <= MAX_CAPACITY {
        pow2
    } else {
        exact
    }
}

/// The most memory a ring takes beyond its budget to be a power of two.
const MAX_SLACK: usize = 1 << 20;

/// The part of a byte budget a record of `payload` bytes takes.
fn rounded(bytes: usize) -> usize {
    bytes.div_ceil(8) * 8
}

fn record_len(payload: usize) -> usize {
    REC_HEADER + rounded(payload)
}

/// Reconstructs a 64-bit total from a lagging stored total and the exact
/// 32-bit sequence number it lags behind.
fn total(stored: u64, seq: u32) -> u64 {
    stored.wrapping_add(u64::from(seq.wrapping_sub(stored as u32)))
}

/// Checked parameters of a ring: `[maxsize, max_bytes, capacity, max_deliveries]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RingParams {
    /// Message-count bound; 0 means unbounded.
    pub(crate) maxsize: u64,
    /// The byte budget as given: the largest message, and (with the
    /// messages' headers and padding, plus one header) what the queue
    /// holds at once.
    pub(crate) max_bytes: u64,
    /// Bytes of records (headers and padding included) held at once:
    /// `max_bytes` rounded up to 8, plus one header.
    budget: u64,
    /// Bytes of the ring: the budget plus the end mark.
    capacity: u64,
    /// Deliveries after which a leased item is dead-lettered (0: never).
    pub(crate) max_deliveries: u32,
}

impl RingParams {
    pub(crate) fn new(maxsize: usize, max_bytes: usize) -> Result<RingParams, String> {
        let most = MAX_CAPACITY - 3 * REC_HEADER;
        if !(MIN_BYTES..=most).contains(&max_bytes) {
            return Err(format!(
                "max_bytes must be between {MIN_BYTES} and {most}, got {max_bytes}"
            ));
        }
        if maxsize > u32::MAX as usize / 2 {
            return Err(format!(
                "maxsize must be at most {}, got {maxsize}",
                u32::MAX / 2
            ));
        }
        let budget = rounded(max_bytes) + REC_HEADER;
        Ok(RingParams {
            maxsize: maxsize as u64,
            max_bytes: max_bytes as u64,
            budget: budget as u64,
            capacity: capacity_for(budget) as u64,
            max_deliveries: 0,
        })
    }

    fn from_raw(p: &[u64; 4]) -> Result<RingParams, String> {
        let r = RingParams::new(
            usize::try_from(p[0]).map_err(|e| e.to_string())?,
            usize::try_from(p[1]).map_err(|e| e.to_string())?,
        )?;
        if r.capacity != p[2] || p[3] > 0xff_ffff {
            return Err(format!("inconsistent ring parameters {p:?}"));
        }
        Ok(RingParams {
            max_deliveries: p[3] as u32,
            ..r
        })
    }

    fn raw(&self) -> [u64; 4] {
        [
            self.maxsize,
            self.max_bytes,
            self.capacity,
            u64::from(self.max_deliveries),
        ]
    }

    fn seg_len(&self) -> usize {
        RING + self.capacity as usize
    }

    /// Positions count modulo this: the largest multiple of the capacity
    /// that fits in 32 bits (at least 2^31, as the capacity is at most 2^31).
    fn modulus(&self) -> u64 {
        (1u64 << 32) / self.capacity * self.capacity
    }

    /// The largest payload a single message may have: `max_bytes`.
    pub(crate) fn max_message(&self) -> usize {
        self.max_bytes as usize
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
    put_lock: RobustLock,
    get_lock: RobustLock,
    /// How this handle's consumers wait on a large queue (see [`Gather`]).
    gather: Gather,
}

/// Holds one of the ring's robust locks; releases on drop.
struct Held<'a>(&'a RobustLock);

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
fn acquire(l: &RobustLock, deadline: Option<Instant>) -> Result<(Held<'_>, bool), OpError> {
    match l.lock(deadline)? {
        Some(a) => Ok((Held(l), a == sys::Acquired::OwnerDied)),
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
                // The empty ring: the end mark at position 0.
                seg.at::<AtomicU64>(RING).store(END_MARK, Ordering::Release);
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
            put_lock,
            get_lock,
            gather: Gather::new(),
        };
        ring.seen_head
            .store(ring.u64_at(HEAD).load(Ordering::Acquire), Ordering::Relaxed);
        ring
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
        let (held, died) = acquire(&self.get_lock, deadline)?;
        if died {
            self.repair_locked()?;
        }
        Ok(GetHeld {
            _held: held,
            ring: self,
            repaired: died,
        })
    }

    /// Repairs, under the get lock, what a consumer killed inside it left
    /// (see the module's "Crash recovery"). Idempotent: a repair killed
    /// mid-way is run again by the next holder.
    fn repair_locked(&self) -> Result<(), OpError> {
        self.finish_purge_locked()?;
        // Records marked (delivered or acknowledged) but not yet passed by
        // the cursor were never handed out: give them their published
        // header back.
        let head = self.u64_at(HEAD).load(Ordering::Relaxed);
        let cursor = self.u64_at(CURSOR).load(Ordering::Relaxed);
        self.check_span(head, cursor, "the delivery cursor")?;
        let (mut s, mut p) = (seq(cursor), pos(cursor));
        loop {
            let word = self.header(p).load(Ordering::Acquire);
            let len = word as u32 as usize;
            let m = (word >> 32) as u32;
            let reach = self.psub(p, pos(head));
            if word == END_MARK
                || meta_state(m) == FRESH
                || meta_state(m) == REQUEUED_STATE
                || len > self.params.max_message()
                || reach + record_len(len) as u64 + REC_HEADER as u64 > self.params.capacity
            {
                break;
            }
            let fresh = len as u64 | (u64::from(fresh_meta(s, len)) << 32);
            self.header(p).store(fresh, Ordering::Release);
            crash_point!("ring.repair.restored");
            s = s.wrapping_add(1);
            p = self.padd(p, record_len(len));
        }
        self.reclaim_locked()?;
        self.advance_head()?;
        Ok(())
    }

    /// Runs a repair under the get lock now if the lock's holder died
    /// inside it (for `len` and the counters, which are read without it).
    ///
    /// Waits for the lock briefly only: a damaged lock word the kernel
    /// refuses is reported by the operations that need the lock, not here.
    fn repair_if_abandoned(&self) {
        if self.get_lock.owner_tid() != 0 && self.get_lock.abandoned() {
            let _ = self.lock_get(Some(Instant::now() + std::time::Duration::from_millis(10)));
        }
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
        self.seg.at::<AtomicU32>(CLOSED).load(Ordering::Acquire) != 0
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
        let head = self.u64_at(HEAD).load(Ordering::Acquire);
        let tail = self.u64_at(TAIL).load(Ordering::Acquire);
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
        let cursor_word = self.u64_at(CURSOR);
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

    /// Delivers up to `max` records, requeued ones first; the caller holds
    /// the get lock. With `lease = Some(slot)` the (single) record is leased
    /// to that owner slot and its receipt returned through `receipt`.
    fn take_locked(
        &self,
        max: usize,
        sink: &mut dyn FnMut(&[u8]),
        scratch: &mut Vec<u8>,
        lease: Option<u32>,
        receipt: &mut Option<(u32, u32, u32)>,
    ) -> Result<usize, OpError> {
        let head = self.u64_at(HEAD).load(Ordering::Relaxed);
        let cursor = self.u64_at(CURSOR).load(Ordering::Relaxed);
        self.check_span(head, cursor, "the delivery cursor")?;
        let mut n = 0;
        // Requeued records (from dead consumers) go first: they are older.
        if self.u32_at(REQUEUED).load(Ordering::Relaxed) > 0 {
            let mut found = 0u32;
            let (mut s, mut p) = (seq(head), pos(head));
            while n < max && s != seq(cursor) {
                let len = self.validate_at(s, p, cursor)?;
                let m = self.read_meta(p);
                if meta_state(m) == REQUEUED_STATE {
                    found += 1;
                    self.deliver(p, len, scratch, sink);
                    let d = meta_deliveries(m) + 1;
                    // Counters may run high, never low, across a kill (and
                    // are recounted by the repair that follows one).
                    if lease.is_some() {
                        self.u32_at(LEASED).fetch_add(1, Ordering::Relaxed);
                        crash_point!("ring.get.requeued_counted");
                        *receipt = Some((s, p, d));
                    }
                    self.write_meta(
                        p,
                        lease.map_or(meta(ACKED, 0, d), |o| meta(DELIVERED, o, d)),
                    );
                    crash_point!("ring.get.requeued_marked");
                    let r = self.u32_at(REQUEUED);
                    r.store(
                        r.load(Ordering::Relaxed).saturating_sub(1),
                        Ordering::Relaxed,
                    );
                    crash_point!("ring.get.requeued_uncounted");
                    n += 1;
                }
                s = s.wrapping_add(1);
                p = self.padd(p, record_len(len));
            }
            if found == 0 && s == seq(cursor) {
                // The counter said requeued records exist, the walk found
                // none: trust the records, not the derived counter.
                self.u32_at(REQUEUED).store(0, Ordering::Relaxed);
            }
        }
        // A plain get with nothing outstanding moves `head` to the new
        // cursor below, so its records are never looked at again: leaving
        // their meta word FRESH spares a write to the producers' cache line
        // per record. (A process killed between the cursor and the head
        // stores leaves FRESH records behind the cursor, which
        // `advance_head` treats as acknowledged.)
        let mark = lease.is_some() || head != cursor;
        let (mut s, mut p) = (seq(cursor), pos(cursor));
        while n < max {
            let Some(len) = self.published_at(head, s, p)? else {
                break;
            };
            self.deliver(p, len, scratch, sink);
            if lease.is_some() {
                self.u32_at(LEASED).fetch_add(1, Ordering::Relaxed);
                crash_point!("ring.get.leased_counted");
                *receipt = Some((s, p, 1));
            }
            if mark {
                // Ahead of the cursor until it moves: a kill before that
                // leaves a marked record that the repair restores.
                self.write_meta(
                    p,
                    lease.map_or(meta(ACKED, 0, 1), |o| meta(DELIVERED, o, 1)),
                );
                crash_point!("ring.get.marked");
            }
            s = s.wrapping_add(1);
            p = self.padd(p, record_len(len));
            n += 1;
        }
        if s != seq(cursor) {
            // Publish: the records are delivered by this store.
            self.move_cursor(pack(s, p));
            if head == cursor && lease.is_none() {
                // Nothing was outstanding and everything taken is
                // acknowledged: the free space starts at the new cursor.
                self.u64_at(HEAD).store(pack(s, p), Ordering::Release);
                crash_point!("ring.get.head");
                return Ok(n);
            }
        }
        if n > 0 {
            self.advance_head()?;
        } else if head != cursor && self.advance_head()? {
            // Nothing to take, but acknowledged records were still holding
            // space (a consumer killed between its cursor and head stores):
            // free it for the producers.
            self.cell(NOT_FULL).wake_all();
        }
        Ok(n)
    }

    fn deliver(&self, p: u32, len: usize, scratch: &mut Vec<u8>, sink: &mut dyn FnMut(&[u8])) {
        scratch.clear();
        scratch.resize(len, 0);
        self.read_wrapped(self.padd(p, REC_HEADER), scratch);
        sink(scratch);
    }

    /// Moves `head` over the acknowledged records at the front; the caller
    /// holds the get lock. Returns whether it moved.
    fn advance_head(&self) -> Result<bool, OpError> {
        let head_word = self.u64_at(HEAD);
        let head = head_word.load(Ordering::Relaxed);
        let cursor = self.u64_at(CURSOR).load(Ordering::Relaxed);
        let (mut s, mut p) = (seq(head), pos(head));
        while s != seq(cursor) {
            let len = self.validate_at(s, p, cursor)?;
            // Behind the cursor, FRESH means delivered by a plain get that
            // did not mark it (see `take_locked`): acknowledged.
            if !matches!(meta_state(self.read_meta(p)), ACKED | FRESH) {
                break;
            }
            s = s.wrapping_add(1);
            p = self.padd(p, record_len(len));
        }
        if s == seq(head) {
            return Ok(false);
        }
        head_word.store(pack(s, p), Ordering::Release);
        crash_point!("ring.get.head");
        Ok(true)
    }

    /// Requeues the leases of dead owners and recounts `leased`/`requeued`;
    /// the caller holds the get lock. Returns how many were requeued.
    fn reclaim_locked(&self) -> Result<u64, OpError> {
        self.u64_at(LAST_RECLAIM)
            .store(sys::now_realtime_ns(), Ordering::Relaxed);
        crash_point!("ring.reclaim.stamp");
        let mut alive = [None::<bool>; OWNER_SLOTS];
        let head = self.u64_at(HEAD).load(Ordering::Relaxed);
        let cursor = self.u64_at(CURSOR).load(Ordering::Relaxed);
        let (mut s, mut p) = (seq(head), pos(head));
        let (mut leased, mut requeued, mut moved) = (0u32, 0u32, 0u64);
        while s != seq(cursor) {
            let len = self.validate_at(s, p, cursor)?;
            let m = self.read_meta(p);
            match meta_state(m) {
                DELIVERED => {
                    let o = meta_owner(m) as usize;
                    let ok = *alive
                        .get_mut(o)
                        .map(|a| a.get_or_insert_with(|| self.owner_alive(o)))
                        .unwrap_or(&mut false);
                    if ok {
                        leased += 1;
                    } else {
                        self.write_meta(p, meta(REQUEUED_STATE, 0, meta_deliveries(m)));
                        crash_point!("ring.reclaim.marked");
                        requeued += 1;
                        moved += 1;
                    }
                }
                REQUEUED_STATE => requeued += 1,
                _ => {}
            }
            s = s.wrapping_add(1);
            p = self.padd(p, record_len(len));
        }
        self.u32_at(LEASED).store(leased, Ordering::Relaxed);
        self.u32_at(REQUEUED).store(requeued, Ordering::Release);
        crash_point!("ring.reclaim.counted");
        // Free the slots of every dead owner (their leases were requeued
        // above), including owners that died holding no lease.
        for (o, a) in alive.iter().enumerate() {
            let slot = self.seg.at::<AtomicU32>(OWNERS + o * 16);
            if slot.load(Ordering::Acquire) != 0 && !a.unwrap_or_else(|| self.owner_alive(o)) {
                slot.store(0, Ordering::Release);
                crash_point!("ring.reclaim.slot_freed");
            }
        }
        Ok(moved)
    }

    fn owner_alive(&self, slot: usize) -> bool {
        let pid = self
            .seg
            .at::<AtomicU32>(OWNERS + slot * 16)
            .load(Ordering::Acquire);
        let start = self.u64_at(OWNERS + slot * 16 + 8).load(Ordering::Relaxed);
        pid != 0 && sys::process_alive(pid, start)
    }

    /// This process's owner slot, claimed on first use.
    fn owner_slot(&self) -> Result<u32, OpError> {
        let me = sys::my_pid();
        let cached = self.my_slot.load(Ordering::Relaxed);
        if (cached as usize) < OWNER_SLOTS
            && self
                .seg
                .at::<AtomicU32>(OWNERS + cached as usize * 16)
                .load(Ordering::Acquire)
                == me
        {
            return Ok(cached);
        }
        let start = sys::my_start();
        for o in 0..OWNER_SLOTS {
            let slot = self.seg.at::<AtomicU32>(OWNERS + o * 16);
            if slot.load(Ordering::Acquire) == me {
                self.my_slot.store(o as u32, Ordering::Relaxed);
                return Ok(o as u32);
            }
        }
        for attempt in 0..2 {
            if attempt == 1 {
                // All taken: free the slots of owners that have died.
                self.reclaim_locked()?;
            }
            for o in 0..OWNER_SLOTS {
                let slot = self.seg.at::<AtomicU32>(OWNERS + o * 16);
                // Slots of dead owners are freed by reclaim (under the get
                // lock, which our caller holds), so a free slot is 0.
                if slot.load(Ordering::Acquire) == 0 {
                    self.u64_at(OWNERS + o * 16 + 8)
                        .store(start, Ordering::Relaxed);
                    crash_point!("ring.lease.slot_start");
                    slot.store(me, Ordering::Release);
                    crash_point!("ring.lease.slot");
                    self.my_slot.store(o as u32, Ordering::Relaxed);
                    return Ok(o as u32);
                }
            }
        }
        Err(OpError::Io(std::io::Error::other(format!(
            "more than {OWNER_SLOTS} processes hold leases on this queue"
        ))))
    }

    fn maybe_reclaim_locked(&self) -> Result<(), OpError> {
        if self.u32_at(LEASED).load(Ordering::Relaxed) > 0 {
            let last = self.u64_at(LAST_RECLAIM).load(Ordering::Relaxed);
            if sys::now_realtime_ns().saturating_sub(last) >= RECLAIM_EVERY_NS
                && self.reclaim_locked()? > 0
            {
                self.cell(NOT_EMPTY).wake_all();
            }
        }
        Ok(())
    }

    /// The shared get path: plain (`lease = false`) or leased.
    #[allow(clippy::too_many_arguments)]
    fn get_core(
        &self,
        max: usize,
        try_only: bool,
        deadline: Option<Instant>,
        sink: &mut dyn FnMut(&[u8]),
        scratch: &mut Vec<u8>,
        lease: bool,
        receipt: &mut Option<(u32, u32, u32)>,
    ) -> Result<(usize, u32), OpError> {
        // Whether this call has looked once already: an empty ring is then
        // checked against `tail` (not on the first look, which a consumer
        // keeping up with its producers makes for nearly every message:
        // `tail` is the producers' cache line).
        let mut looked = false;
        // A ring that shows nothing (and no lease that may need requeueing)
        // is not worth taking the get lock for: wait first. This is the
        // usual case of a consumer that keeps up with its producers, and it
        // spares that consumer two locked instructions per message.
        let mut skip_take =
            !try_only && self.u32_at(LEASED).load(Ordering::Relaxed) == 0 && !self.non_empty();
        loop {
            let (taken, slot) = if std::mem::take(&mut skip_take) {
                (0, 0)
            } else {
                let _held = self.lock_get(deadline)?;
                self.maybe_reclaim_locked()?;
                let slot = if lease {
                    Some(self.owner_slot()?)
                } else {
                    None
                };
                let n = self.take_locked(max, sink, scratch, slot, receipt)?;
                if n == 0 && (looked || try_only) {
                    self.check_empty_locked()?;
                }
                (n, slot.unwrap_or(0))
            };
            if taken > 0 {
                // Right after the get lock's release (the block above).
                self.cell(NOT_FULL).wake_all_after_unlock();
                if looked && self.gathers() {
                    // After a wait: was this all there was?
                    self.gather.learn(self.non_empty());
                }
                return Ok((taken, slot));
            }
            let drained = || self.closed() && self.u32_at(LEASED).load(Ordering::Acquire) == 0;
            if drained() {
                // `closed` is set under the put lock, after every earlier put
                // published its tail; re-check emptiness after seeing it.
                if !self.non_empty() {
                    return Err(OpError::Closed);
                }
                continue;
            }
            let expired = deadline.is_some_and(|d| Instant::now() >= d);
            if try_only || (expired && looked) {
                return Err(OpError::WouldBlock);
            }
            looked = true;
            if expired {
                continue;
            }
            // While leases are outstanding, wake now and then to notice a
            // dead consumer whose items must be delivered again.
            let slice = if self.u32_at(LEASED).load(Ordering::Relaxed) > 0 {
                let s = Instant::now() + LEASE_SLICE;
                Some(deadline.map_or(s, |d| d.min(s)))
            } else {
                deadline
            };
            let quick = || self.non_empty() || drained();
            // Before sleeping, also wake for a tail that claims records
            // the ring does not show (damage, reported by the next look).
            let ready = || quick() || self.tail_ahead();
            self.cell(NOT_EMPTY)
                .wait_until_checked(slice, self.consumer_spin(), &quick, &ready);
        }
    }

    /// Whether `tail` claims records beyond an end mark at the cursor
    /// (a hint, read without the get lock).
    fn tail_ahead(&self) -> bool {
        let cursor_word = self.u64_at(CURSOR);
        let cursor = cursor_word.load(Ordering::Acquire);
        let tail = self.u64_at(TAIL).load(Ordering::Acquire);
        (seq(tail).wrapping_sub(seq(cursor)) as i32) > 0
            && self.header(pos(cursor)).load(Ordering::Acquire) == END_MARK
            && cursor_word.load(Ordering::Acquire) == cursor
    }

    /// Checks an empty ring against `tail`; the caller holds the get lock.
    /// The cursor may be ahead of `tail` (by the records of a producer
    /// between its header and `tail` stores, or killed there), never behind.
    fn check_empty_locked(&self) -> Result<(), OpError> {
        let cursor = self.u64_at(CURSOR).load(Ordering::Relaxed);
        let tail = self.u64_at(TAIL).load(Ordering::Acquire);
        // Read after `tail`: a record published before that `tail` shows.
        if self.header(pos(cursor)).load(Ordering::Acquire) != END_MARK
            || tail == cursor
            || ((seq(cursor).wrapping_sub(seq(tail)) as i32) > 0
                && self.check_span(tail, cursor, "the tail").is_ok())
        {
            return Ok(());
        }
        Err(OpError::Damaged(format!(
            "the tail ({} records, byte {}) disagrees with the end of the ring \
             ({} records, byte {})",
            seq(tail),
            pos(tail),
            seq(cursor),
            pos(cursor)
        )))
    }

    /// Takes one record under a lease for this process.
    fn lease_get(
        &self,
        try_only: bool,
        deadline: Option<Instant>,
        out: &mut Vec<u8>,
    ) -> Result<(u32, u32, u32, u32), OpError> {
        let mut receipt = None;
        let (_, slot) =
            self.get_core(1, try_only, deadline, &mut |_| {}, out, true, &mut receipt)?;
        let (s, p, d) = receipt.ok_or_else(|| OpError::Damaged("lease without a record".into()))?;
        Ok((s, p, slot, d))
    }

    /// Settles the lease on record (`s`, `p`) held by `slot`: acknowledged,
    /// or (`requeue`) given back for another delivery.
    fn lease_settle(
        &self,
        s: u32,
        p: u32,
        slot: u32,
        pid: u32,
        requeue: bool,
    ) -> Result<(), OpError> {
        let moved = {
            let _held = self.lock_get(None)?;
            if slot as usize >= OWNER_SLOTS
                || self
                    .seg
                    .at::<AtomicU32>(OWNERS + slot as usize * 16)
                    .load(Ordering::Acquire)
                    != pid
            {
                return Err(OpError::NothingOutstanding);
            }
            let head = self.u64_at(HEAD).load(Ordering::Relaxed);
            let cursor = self.u64_at(CURSOR).load(Ordering::Relaxed);
            // Find the record by walking from head, so that a stale or forged
            // receipt can never make us write outside a record header.
            let (mut rs, mut rp) = (seq(head), pos(head));
            loop {
                if rs == seq(cursor) {
                    return Err(OpError::NothingOutstanding);
                }
                let len = self.validate_at(rs, rp, cursor)?;
                if rs == s {
                    break;
                }
                rs = rs.wrapping_add(1);
                rp = self.padd(rp, record_len(len));
            }
            let m = self.read_meta(rp);
            if rp != p || meta_state(m) != DELIVERED || meta_owner(m) != slot {
                return Err(OpError::NothingOutstanding);
            }
            // The state is the truth; the counters follow it (and are
            // recounted by the repair after a kill in between).
            if requeue {
                self.u32_at(REQUEUED).fetch_add(1, Ordering::Release);
                crash_point!("ring.settle.requeued_counted");
                self.write_meta(rp, meta(REQUEUED_STATE, 0, meta_deliveries(m)));
            } else {
                self.write_meta(rp, meta(ACKED, 0, meta_deliveries(m)));
            }
            crash_point!("ring.settle.marked");
            let leased = self.u32_at(LEASED);
            leased.store(
                leased.load(Ordering::Relaxed).saturating_sub(1),
                Ordering::Relaxed,
            );
            crash_point!("ring.settle.uncounted");
            !requeue && self.advance_head()?
        };
        if requeue {
            self.cell(NOT_EMPTY).wake_all();
        }
        if moved {
            self.cell(NOT_FULL).wake_all();
        }
        Ok(())
    }

    /// Requeues the leases of dead consumers now; returns how many.
    fn lease_reclaim(&self) -> Result<u64, OpError> {
        let n = {
            let _held = self.lock_get(None)?;
            self.reclaim_locked()?
        };
        if n > 0 {
            self.cell(NOT_EMPTY).wake_all();
        }
        Ok(n)
    }

    /// Checks that `to` is at most the ring's capacity ahead of `from`, in
    /// bytes (8-aligned) and in records (at least 8 bytes each).
    fn check_span(&self, from: u64, to: u64, what: &str) -> Result<(), OpError> {
        let bytes = self.psub(pos(to), pos(from));
        let count = seq(to).wrapping_sub(seq(from)) as u64;
        let cap = self.params.capacity;
        if bytes > cap
            || u64::from(pos(from)) >= self.modulus
            || u64::from(pos(to)) >= self.modulus
            || count > bytes / REC_HEADER as u64
            || (pos(from) | pos(to)) % REC_HEADER as u32 != 0
        {
            return Err(OpError::Damaged(format!(
                "{what} lies outside the ring: {count} records in {bytes} bytes (capacity {})",
                self.params.capacity
            )));
        }
        Ok(())
    }

    /// The length of the record published at (`s`, `p`), a position at or
    /// after the cursor whose records all start at or after `head`; `None`
    /// at the end mark.
    fn published_at(&self, head: u64, s: u32, p: u32) -> Result<Option<usize>, OpError> {
        let word = self.header(p).load(Ordering::Acquire);
        if word == END_MARK {
            return Ok(None);
        }
        let len = word as u32 as usize;
        let m = (word >> 32) as u32;
        // The record and the end mark after it lie within one capacity of
        // `head`, in bytes and in records.
        let reach = self.psub(p, pos(head));
        if len > self.params.max_message()
            || m != fresh_meta(s, len)
            || reach + record_len(len) as u64 + REC_HEADER as u64 > self.params.capacity
            || s.wrapping_sub(seq(head)) as u64 > reach / REC_HEADER as u64
        {
            return Err(OpError::Damaged(format!(
                "record header {word:#018x} at byte {p} is not a published record"
            )));
        }
        Ok(Some(len))
    }

    /// Checks the record at (`s`, `p`), before `bound` (the cursor); returns its length.
    fn validate_at(&self, s: u32, p: u32, bound: u64) -> Result<usize, OpError> {
        let used = self.psub(pos(bound), p);
        let count = seq(bound).wrapping_sub(s) as u64;
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

    /// Messages ever put: by `tail`, or by the cursor when it is ahead
    /// (a producer is between its header and `tail` stores, or died there).
    fn total_put(&self) -> u64 {
        let end = self.published_end();
        let put = total(self.u64_at(PUT_TOTAL).load(Ordering::Relaxed), seq(end));
        put.max(self.total_got())
    }

    /// `tail`, or past it the end of the records published beyond it (by a
    /// producer between its header and `tail` stores, or killed there): a
    /// hint read without the put lock, for `len` and the counters. The walk
    /// stops at anything that is not a plausible record.
    fn published_end(&self) -> u64 {
        let tail = self.u64_at(TAIL).load(Ordering::Acquire);
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
        self.u64_at(TAIL).store(tail, Ordering::Release);
        crash_point!("ring.put.tail");
        let stored = self.u64_at(PUT_TOTAL);
        stored.store(
            total(stored.load(Ordering::Relaxed), seq(tail)),
            Ordering::Relaxed,
        );
        crash_point!("ring.put.total");
    }

    /// Stores the cursor (delivering the records before it) and the get
    /// total it implies; the caller holds the get lock.
    fn move_cursor(&self, cursor: u64) {
        self.u64_at(CURSOR).store(cursor, Ordering::Release);
        crash_point!("ring.get.cursor");
        let stored = self.u64_at(GOT_TOTAL);
        stored.store(
            total(stored.load(Ordering::Relaxed), seq(cursor)),
            Ordering::Relaxed,
        );
        crash_point!("ring.get.total");
    }

    fn total_got(&self) -> u64 {
        let cursor = self.u64_at(CURSOR).load(Ordering::Acquire);
        total(self.u64_at(GOT_TOTAL).load(Ordering::Relaxed), seq(cursor))
    }

    /// `tail`, moved over records a dead producer published without moving
    /// it, and checked against `head` (a past value of `head`, re-read if
    /// the check fails); the caller holds the put lock.
    fn settled_tail(&self, head: &mut u64) -> Result<u64, OpError> {
        let tail = self.u64_at(TAIL).load(Ordering::Relaxed);
        let (mut s, mut p) = (seq(tail), pos(tail));
        if p % REC_HEADER as u32 != 0 || u64::from(p) >= self.modulus {
            return Err(OpError::Damaged(format!(
                "tail position {p} is not in the ring"
            )));
        }
        let mut walked = 0u64;
        loop {
            let word = self.header(p).load(Ordering::Acquire);
            if word == END_MARK {
                break;
            }
            let len = word as u32 as usize;
            let m = (word >> 32) as u32;
            // Consumers may have delivered (and marked) these records.
            if len > self.params.max_message()
                || (meta_state(m) == FRESH && m != fresh_meta(s, len))
            {
                return Err(OpError::Damaged(format!(
                    "record header {word:#018x} at byte {p} is not a record"
                )));
            }
            s = s.wrapping_add(1);
            p = self.padd(p, record_len(len));
            walked += record_len(len) as u64;
            if walked > self.params.capacity {
                // Further than a whole ring: no end mark where one must be.
                return Err(OpError::Damaged("the ring has no end mark".into()));
            }
        }
        let fixed = pack(s, p);
        if fixed != tail {
            self.move_tail(fixed);
            crash_point!("ring.put.tail_walked");
        }
        // head <= tail, in records and in bytes, within the byte budget.
        let check = |head: u64| {
            self.check_span(head, fixed, "the tail")?;
            let used = self.used(head, fixed);
            if used > self.params.budget {
                return Err(OpError::Damaged(format!(
                    "the tail lies {used} bytes ahead of the head, beyond the budget of {}",
                    self.params.budget
                )));
            }
            Ok(())
        };
        if check(*head).is_err() {
            *head = self.u64_at(HEAD).load(Ordering::Acquire);
            check(*head)?;
        }
        Ok(fixed)
    }

    /// Carries out a journaled purge, if one is on; the caller holds the
    /// get lock. Every step can be done again: requeued records become
    /// acknowledged, the cursor and the purged total take the journal's
    /// values (purged items count as done, so `join` does not wait for
    /// them), head moves, and the journal is turned off last.
    fn finish_purge_locked(&self) -> Result<(), OpError> {
        if self.u64_at(JOURNAL).load(Ordering::Acquire) == 0 {
            return Ok(());
        }
        let target = self.u64_at(JOURNAL_CURSOR).load(Ordering::Relaxed);
        let head = self.u64_at(HEAD).load(Ordering::Relaxed);
        self.check_span(head, target, "the purge journal's cursor")?;
        let cursor = self.u64_at(CURSOR).load(Ordering::Relaxed);
        let (mut s, mut p) = (seq(head), pos(head));
        while s != seq(cursor) && s != seq(target) {
            let len = self.validate_at(s, p, cursor)?;
            let m = self.read_meta(p);
            if meta_state(m) == REQUEUED_STATE {
                self.write_meta(p, meta(ACKED, 0, meta_deliveries(m)));
                crash_point!("ring.purge.marked");
            }
            s = s.wrapping_add(1);
            p = self.padd(p, record_len(len));
        }
        self.u32_at(REQUEUED).store(0, Ordering::Relaxed);
        crash_point!("ring.purge.requeued_zeroed");
        if cursor != target {
            self.move_cursor(target);
        }
        self.u64_at(PURGED_TOTAL).store(
            self.u64_at(JOURNAL_PURGED).load(Ordering::Relaxed),
            Ordering::Release,
        );
        crash_point!("ring.purge.done");
        self.advance_head()?;
        self.u64_at(JOURNAL).store(0, Ordering::Release);
        crash_point!("ring.purge.cleared");
        Ok(())
    }

    /// Tasks put but not yet marked done, as the words say now.
    fn unfinished_now(&self) -> u64 {
        self.total_put().saturating_sub(self.done_total())
    }

    /// Tasks marked done, and items purged.
    fn done_total(&self) -> u64 {
        let done = self.u64_at(DONE_TOTAL).load(Ordering::Acquire);
        done.wrapping_add(self.u64_at(PURGED_TOTAL).load(Ordering::Acquire))
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
                // A producer killed inside needs no repair: `settled_tail`
                // below moves `tail` over whatever it published.
                let _held = match acquire(&self.put_lock, deadline) {
                    Ok((h, _)) => h,
                    Err(e) => return (done, Err(e)),
                };
                if self.closed() {
                    return (done, Err(OpError::Closed));
                }
                let mut h = self.seen_head.load(Ordering::Relaxed);
                let tail = match self.settled_tail(&mut h) {
                    Ok(t) => t,
                    Err(e) => return (done, Err(e)),
                };
                let (mut s, mut p) = (seq(tail), pos(tail));
                let start = done;
                let mut first = END_MARK;
                while done < msgs.len() {
                    let msg = msgs[done];
                    let rec = record_len(msg.len());
                    if !self.room(h, pack(s, p), rec) {
                        // Re-read the consumer side once before giving up on the batch.
                        let fresh = self.u64_at(HEAD).load(Ordering::Acquire);
                        if fresh == h {
                            break;
                        }
                        // A head beyond the tail would read as room.
                        if let Err(e) = self.check_span(fresh, pack(s, p), "the head") {
                            return (done, Err(e));
                        }
                        if !self.room(fresh, pack(s, p), rec) {
                            break;
                        }
                        h = fresh;
                    }
                    self.write_wrapped(self.padd(p, REC_HEADER), msg);
                    crash_point!("ring.put.payload");
                    let word = msg.len() as u64 | (u64::from(fresh_meta(s, msg.len())) << 32);
                    if done == start {
                        first = word;
                    } else {
                        self.header(p).store(word, Ordering::Relaxed);
                        crash_point!("ring.put.header");
                    }
                    s = s.wrapping_add(1);
                    p = self.padd(p, rec);
                    done += 1;
                }
                self.seen_head.store(h, Ordering::Relaxed);
                if done > start {
                    // The room check kept 8 free bytes after the batch
                    // (capacity >= max_bytes + 8): the new end mark.
                    self.header(p).store(END_MARK, Ordering::Relaxed);
                    crash_point!("ring.put.end_mark");
                    // Publish last: one store over the old end mark makes
                    // the whole batch visible.
                    self.header(pos(tail)).store(first, Ordering::Release);
                    crash_point!("ring.put.publish");
                    self.move_tail(pack(s, p));
                }
            }
            if done > 0 {
                // Right after the put lock's release (the block above).
                self.cell(NOT_EMPTY).wake_all_after_unlock();
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
                let room = || self.closed() || self.has_room(rec);
                // Before and after each sleep, also repair what a consumer
                // killed inside the get lock left: it may hold the room
                // this producer waits for (a cursor moved, head not yet).
                let ready = || {
                    room() || {
                        self.repair_if_abandoned();
                        room()
                    }
                };
                let ok =
                    self.cell(NOT_FULL)
                        .wait_until_checked(deadline, self.spin(), &room, &ready);
                if !ok {
                    return (done, Err(OpError::WouldBlock));
                }
            }
        }
        (done, Ok(()))
    }

    /// Takes up to `max` messages (at least one), handing each to `sink`.
    fn get(
        &self,
        max: usize,
        try_only: bool,
        deadline: Option<Instant>,
        sink: &mut dyn FnMut(&[u8]),
        scratch: &mut Vec<u8>,
    ) -> Result<usize, OpError> {
        let mut none = None;
        self.get_core(max, try_only, deadline, sink, scratch, false, &mut none)
            .map(|(n, _)| n)
    }

    /// Copies the next message without taking it.
    fn peek(&self, out: &mut Vec<u8>) -> Result<bool, OpError> {
        let _held = self.lock_get(None)?;
        let head = self.u64_at(HEAD).load(Ordering::Relaxed);
        let cursor = self.u64_at(CURSOR).load(Ordering::Relaxed);
        self.check_span(head, cursor, "the delivery cursor")?;
        let (mut s, mut p) = (seq(head), pos(head));
        if self.u32_at(REQUEUED).load(Ordering::Relaxed) > 0 {
            while s != seq(cursor) {
                let len = self.validate_at(s, p, cursor)?;
                if meta_state(self.read_meta(p)) == REQUEUED_STATE {
                    break;
                }
                s = s.wrapping_add(1);
                p = self.padd(p, record_len(len));
            }
        }
        let len = if s == seq(cursor) {
            match self.published_at(head, seq(cursor), pos(cursor))? {
                Some(len) => len,
                None => {
                    self.check_empty_locked()?;
                    return Ok(false);
                }
            }
        } else {
            self.validate_at(s, p, cursor)?
        };
        out.clear();
        out.resize(len, 0);
        self.read_wrapped(self.padd(p, REC_HEADER), out);
        Ok(true)
    }

    /// Discards every message; returns how many.
    ///
    /// Journaled, as it changes several words: the new cursor and purged
    /// total are written first, then one store turns the journal on; a
    /// purge killed after that is finished by the repair of the next get-lock
    /// holder ([`Ring::finish_purge_locked`]), one killed before it never
    /// happened.
    fn purge(&self) -> Result<u64, OpError> {
        let n = {
            let _held = self.lock_get(None)?;
            let head = self.u64_at(HEAD).load(Ordering::Relaxed);
            let cursor = self.u64_at(CURSOR).load(Ordering::Relaxed);
            self.check_span(head, cursor, "the delivery cursor")?;
            // Requeued records are dropped too; leased ones stay leased.
            let mut dropped = 0u64;
            let (mut s, mut p) = (seq(head), pos(head));
            while s != seq(cursor) {
                let len = self.validate_at(s, p, cursor)?;
                if meta_state(self.read_meta(p)) == REQUEUED_STATE {
                    dropped += 1;
                }
                s = s.wrapping_add(1);
                p = self.padd(p, record_len(len));
            }
            // The undelivered records are delivered, as acknowledged, by
            // moving the cursor past them (behind the cursor, a FRESH record
            // counts as acknowledged).
            let (mut s, mut p) = (seq(cursor), pos(cursor));
            while let Some(len) = self.published_at(head, s, p)? {
                s = s.wrapping_add(1);
                p = self.padd(p, record_len(len));
            }
            let n = s.wrapping_sub(seq(cursor)) as u64 + dropped;
            let purged = self.u64_at(PURGED_TOTAL).load(Ordering::Relaxed);
            self.u64_at(JOURNAL_CURSOR)
                .store(pack(s, p), Ordering::Relaxed);
            self.u64_at(JOURNAL_PURGED)
                .store(purged.wrapping_add(n), Ordering::Relaxed);
            // Not yet a purge: the journal is off until the next store.
            crash_point!("ring.purge.intent");
            self.u64_at(JOURNAL).store(1, Ordering::Release);
            crash_point!("ring.purge.journal");
            self.finish_purge_locked()?;
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
            crash_point!("ring.close.flag");
        }
        self.cell(NOT_EMPTY).force_wake_all();
        self.cell(NOT_FULL).force_wake_all();
        Ok(())
    }

    /// Number of messages in the queue.
    fn len(&self) -> u64 {
        self.repair_if_abandoned();
        // Cursor first: the end read afterwards is never behind it.
        let cursor = self.u64_at(CURSOR).load(Ordering::Acquire);
        let requeued = self.u32_at(REQUEUED).load(Ordering::Acquire);
        let end = self.published_end();
        ahead(seq(end), seq(cursor)) + u64::from(requeued)
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
        self.repair_if_abandoned();
        let head = self.u64_at(HEAD).load(Ordering::Acquire);
        let cursor = self.u64_at(CURSOR).load(Ordering::Acquire);
        let got = self.total_got();
        let requeued = u64::from(self.u32_at(REQUEUED).load(Ordering::Acquire));
        let tail = self.published_end();
        let put = self.total_put();
        Counters {
            len: ahead(seq(tail), seq(cursor)) + requeued,
            leased: u64::from(self.u32_at(LEASED).load(Ordering::Acquire)),
            requeued,
            dead_lettered: self.u64_at(DEAD_LETTERED).load(Ordering::Relaxed),
            bytes_used: self.used(head, tail),
            closed: self.closed(),
            total_put: put,
            total_got: got,
            total_done: self.done_total(),
            waiting_get: self.cell(NOT_EMPTY).waiting(),
            waiting_put: self.cell(NOT_FULL).waiting(),
        }
    }

    /// Marks one task done (JoinableQueue); fails if none is unfinished.
    fn task_done(&self) -> Result<(), OpError> {
        let done = self.u64_at(DONE_TOTAL);
        let mut cur = done.load(Ordering::Acquire);
        loop {
            let purged = self.u64_at(PURGED_TOTAL).load(Ordering::Acquire);
            if cur.wrapping_add(purged) >= self.total_put() {
                return Err(OpError::NothingOutstanding);
            }
            match done.compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        crash_point!("ring.task_done.counted");
        if self.unfinished_now() == 0 {
            self.cell(ALL_DONE).wake_all();
        }
        Ok(())
    }

    /// Tasks put but not yet marked done (purged items count as done),
    /// after finishing what a consumer killed inside the get lock left
    /// (a journaled purge).
    fn unfinished(&self) -> u64 {
        self.repair_if_abandoned();
        self.unfinished_now()
    }

    /// Waits until every task put has been marked done; false on timeout.
    fn join(&self, deadline: Option<Instant>) -> Result<bool, OpError> {
        Ok(self
            .cell(ALL_DONE)
            .wait_until(deadline, || self.unfinished() == 0))
    }

    fn get_leased(
        &self,
        try_only: bool,
        deadline: Option<Instant>,
        out: &mut Vec<u8>,
    ) -> Result<Receipt, OpError> {
        let (seq, pos, slot, deliveries) = self.lease_get(try_only, deadline, out)?;
        Ok(Receipt {
            deliveries,
            token: ReceiptToken::Local {
                seq,
                pos,
                slot,
                pid: std::process::id(),
            },
        })
    }

    fn settle(&self, receipt: &Receipt, requeue: bool) -> Result<(), OpError> {
        match receipt.token {
            ReceiptToken::Local {
                seq,
                pos,
                slot,
                pid,
            } => self.lease_settle(seq, pos, slot, pid, requeue),
            #[allow(unreachable_patterns)]
            _ => Err(OpError::NothingOutstanding),
        }
    }

    fn reclaim(&self) -> Result<u64, OpError> {
        self.lease_reclaim()
    }

    fn max_deliveries(&self) -> u32 {
        self.params.max_deliveries
    }

    fn note_dead_lettered(&self) {
        self.u64_at(DEAD_LETTERED).fetch_add(1, Ordering::Relaxed);
        crash_point!("ring.dead_letter.counted");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rem_is_the_remainder() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for d in [
            8u64,
            72,
            1 << 20,
            (1 << 20) + 16,
            4112,
            (1 << 31) - 8,
            1 << 31,
        ] {
            let magic = (u64::MAX / d).wrapping_add(1);
            for p in [0u32, 1, 7, d as u32 - 1, u32::MAX, u32::MAX - 7] {
                assert_eq!(rem(p, magic, d), u64::from(p) % d, "{p} % {d}");
            }
            for _ in 0..10_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let p = x as u32;
                assert_eq!(rem(p, magic, d), u64::from(p) % d, "{p} % {d}");
            }
        }
    }

    #[test]
    fn the_ring_is_as_large_as_its_budget() {
        let p = RingParams::new(0, 16 << 20).unwrap();
        assert_eq!(p.max_message(), 16 << 20);
        assert_eq!(
            p.capacity,
            (16 << 20) + 16,
            "exact: a power of two would double it"
        );
        assert!(p.modulus() >= 1 << 31 && p.modulus() % p.capacity == 0);
        let p = RingParams::new(0, 1 << 20).unwrap();
        assert_eq!(
            p.capacity,
            2 << 20,
            "a power of two, for at most 1 MiB more"
        );
        assert_eq!(p.modulus(), 1 << 32);
        let p = RingParams::new(0, 100).unwrap();
        assert_eq!((p.budget, p.capacity), (112, 128));
        let p = RingParams::new(0, MAX_CAPACITY - 3 * REC_HEADER).unwrap();
        assert_eq!(p.capacity as usize, MAX_CAPACITY);
    }

    #[test]
    fn counters_lead_and_totals() {
        assert_eq!(ahead(5, 3), 2);
        assert_eq!(ahead(3, 5), 0, "behind counts as nothing");
        assert_eq!(ahead(1, u32::MAX), 2, "across the wrap");
        assert_eq!(total(10, 12), 12);
        assert_eq!(total(u64::from(u32::MAX), 1), 1 << 32 | 1);
        assert_eq!(record_len(0), 8);
        assert_eq!(record_len(9), 24);
        assert_ne!(fresh_meta(1, 8), fresh_meta(2, 8));
        assert_eq!(meta_state(fresh_meta(1, 8)), FRESH);
    }
}
