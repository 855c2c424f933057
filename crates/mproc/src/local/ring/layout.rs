//! The ring segment's layout (see the table in the parent module), the
//! encoding of its words (record headers and meta words, positions and
//! sequence numbers) and its checked parameters: pure functions of their
//! arguments, tested here.

use crate::local::wait::SLEEPER_SLOT;
use crate::sys;

pub(crate) const PUT_LOCK: usize = 128;
pub(crate) const TAIL: usize = 192;
pub(crate) const PUT_TOTAL: usize = 208;
pub(crate) const GET_LOCK: usize = 256;
pub(crate) const HEAD: usize = 320;
pub(super) const GOT_TOTAL: usize = 328;
pub(super) const CURSOR: usize = 336;
pub(super) const LEASED: usize = 344;
pub(super) const REQUEUED: usize = 348;
pub(super) const LAST_RECLAIM: usize = 352;
pub(super) const DEAD_LETTERED: usize = 360;
pub(super) const PURGED_TOTAL: usize = 368;
pub(crate) const NOT_EMPTY: usize = 384;
pub(super) const CLOSED: usize = 392;
pub(super) const JOURNAL: usize = 400;
pub(super) const JOURNAL_CURSOR: usize = 408;
pub(super) const JOURNAL_PURGED: usize = 416;
pub(super) const NOT_FULL: usize = 448;
pub(super) const DONE_TOTAL: usize = 512;
pub(super) const ALL_DONE: usize = 520;
pub(super) const OWNERS: usize = 576;
/// Processes that may hold leases at once.
pub(crate) const OWNER_SLOTS: usize = 28;
pub(super) const SLEEPERS: usize = 1024;
/// Processes (threads) counted as asleep on the queue at once; more are
/// counted in the cells' plain counters.
pub(super) const SLEEPER_SLOTS: usize = 64;
pub(crate) const RING: usize = 2048;
/// The fixed part of the layout: everything up to and including the first
/// word of the ring (every ring is longer).
pub(super) const FIXED_LEN: usize = RING + 8;
const _: () = assert!(OWNERS + OWNER_SLOTS * 16 <= SLEEPERS);
const _: () = assert!(SLEEPERS + SLEEPER_SLOTS * SLEEPER_SLOT <= RING);

/// Record states (low two bits of the record's meta word).
pub(super) const FRESH: u32 = 0;
pub(super) const DELIVERED: u32 = 1;
pub(super) const ACKED: u32 = 2;
pub(super) const REQUEUED_STATE: u32 = 3;
/// How often (at most) gets look for leases of dead consumers, and how long
/// a waiting consumer sleeps at most while leases are outstanding.
pub(super) const RECLAIM_EVERY_NS: u64 = 20_000_000;
/// Queues smaller than this (in items or bytes) wait with the short spin
/// (see [`Ring::spin`]).
pub(super) const GATHER_MIN_ITEMS: u64 = 256;
pub(super) const GATHER_MIN_BYTES: u64 = 64 << 10;
pub(super) const LEASE_SLICE: std::time::Duration = std::time::Duration::from_millis(50);

pub(super) fn meta(state: u32, owner: u32, deliveries: u32) -> u32 {
    state | (owner << 2) | (deliveries.min(0xff_ffff) << 8)
}

/// The meta word of a record as published: FRESH, and in the bits that
/// hold the owner and delivery count once it is delivered, a 30-bit tag of
/// its sequence number and length. A consumer finds records by their headers
/// alone, so the tag tells a record published for this position apart from
/// stale bytes of an earlier lap or a damaged length.
pub(super) fn fresh_meta(s: u32, len: usize) -> u32 {
    let mix = (u64::from(s) ^ ((len as u64) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((mix >> 34) as u32) << 2 | FRESH
}

pub(super) fn meta_state(m: u32) -> u32 {
    m & 3
}

pub(super) fn meta_owner(m: u32) -> u32 {
    (m >> 2) & 0x3f
}

pub(super) fn meta_deliveries(m: u32) -> u32 {
    m >> 8
}

/// Bytes of a record header.
pub(crate) const REC_HEADER: usize = 8;
/// The end mark: the header word after the last published record.
pub(super) const END_MARK: u64 = u32::MAX as u64;
/// The largest ring: positions are 32-bit offsets.
pub(crate) const MAX_CAPACITY: usize = 1 << 31;
/// The smallest byte budget (the limit every backend keeps).
pub(crate) const MIN_BYTES: usize = crate::backend::MIN_BYTES;
// The largest budget every backend keeps fits the largest ring.
const _: () = assert!(crate::backend::MAX_BYTES == MAX_CAPACITY - 3 * REC_HEADER);

const _: () = assert!(std::mem::size_of::<sys::RawRobustMutex>() <= 64);

pub(super) fn seq(word: u64) -> u32 {
    (word >> 32) as u32
}

pub(super) fn pos(word: u64) -> u32 {
    word as u32
}

pub(super) fn pack(seq: u32, pos: u32) -> u64 {
    (u64::from(seq) << 32) | u64::from(pos)
}

/// How far the 32-bit counter `to` is ahead of `from`, or 0 when it is
/// behind: `tail` lags the cursor and `head` while a producer is between
/// its header and `tail` stores (or died there).
pub(super) fn ahead(to: u32, from: u32) -> u64 {
    (to.wrapping_sub(from) as i32).max(0) as u64
}

/// `p % d`, given `magic = u64::MAX / d + 1` (Lemire, Kaser and Kurz,
/// "Faster remainder by direct computation": exact for all 32-bit `p` and
/// `d`), with two multiplications instead of a division.
pub(super) fn rem(p: u32, magic: u64, d: u64) -> u64 {
    let low = magic.wrapping_mul(u64::from(p));
    ((u128::from(low) * u128::from(d)) >> 64) as u64
}

/// The ring's size for a record budget: the budget and the end mark,
/// rounded up to a power of two when that costs at most [`MAX_SLACK`] more
/// (a ring of a power of two finds a position's place with a mask instead
/// of a remainder: about a tenth more messages per second here), else
/// exact. The default 1 MiB budget gets a 2 MiB ring; 16 MiB gets
/// 16 MiB + 16 bytes.
pub(super) fn capacity_for(budget: usize) -> usize {
    let exact = budget + REC_HEADER;
    let pow2 = exact.next_power_of_two();
    if pow2 - exact <= MAX_SLACK && pow2 <= MAX_CAPACITY {
        pow2
    } else {
        exact
    }
}

/// The most memory a ring takes beyond its budget to be a power of two.
pub(super) const MAX_SLACK: usize = 1 << 20;

/// The part of a byte budget a record of `payload` bytes takes.
pub(super) fn rounded(bytes: usize) -> usize {
    bytes.div_ceil(8) * 8
}

pub(super) fn record_len(payload: usize) -> usize {
    REC_HEADER + rounded(payload)
}

/// Reconstructs a 64-bit total from a lagging stored total and the exact
/// 32-bit sequence number it lags behind.
pub(super) fn total(stored: u64, seq: u32) -> u64 {
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
    pub(super) budget: u64,
    /// Bytes of the ring: the budget plus the end mark.
    pub(super) capacity: u64,
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

    pub(super) fn from_raw(p: &[u64; 4]) -> Result<RingParams, String> {
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

    pub(super) fn raw(&self) -> [u64; 4] {
        [
            self.maxsize,
            self.max_bytes,
            self.capacity,
            u64::from(self.max_deliveries),
        ]
    }

    pub(super) fn seg_len(&self) -> usize {
        RING + self.capacity as usize
    }

    /// Positions count modulo this: the largest multiple of the capacity
    /// that fits in 32 bits (at least 2^31, as the capacity is at most 2^31).
    pub(super) fn modulus(&self) -> u64 {
        (1u64 << 32) / self.capacity * self.capacity
    }

    /// The largest payload a single message may have: `max_bytes`.
    pub(crate) fn max_message(&self) -> usize {
        self.max_bytes as usize
    }
}

pub(super) fn expected_len(p: &[u64; 4]) -> Result<usize, String> {
    RingParams::from_raw(p).map(|r| r.seg_len())
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

    #[test]
    fn meta_words_round_trip() {
        for (state, owner, deliveries) in [(FRESH, 0, 0), (DELIVERED, 27, 1), (ACKED, 63, 9)] {
            let m = meta(state, owner, deliveries);
            assert_eq!(
                (meta_state(m), meta_owner(m), meta_deliveries(m)),
                (state, owner, deliveries)
            );
        }
        let m = meta(REQUEUED_STATE, 5, u32::MAX);
        assert_eq!(meta_deliveries(m), 0xff_ffff, "the count saturates");
        assert_eq!(meta_owner(m), 5, "without spilling into the owner");
        // A published record's tag depends on its sequence and length.
        assert_ne!(fresh_meta(7, 8), fresh_meta(7, 16));
        assert!((0..1000).all(|s| meta_state(fresh_meta(s, 8)) == FRESH));
    }

    #[test]
    fn positions_pack_and_parameters_round_trip() {
        let w = pack(0xdead_beef, 0x1234_5678);
        assert_eq!((seq(w), pos(w)), (0xdead_beef, 0x1234_5678));
        let mut p = RingParams::new(16, 4096).unwrap();
        p.max_deliveries = 3;
        let back = RingParams::from_raw(&p.raw()).unwrap();
        assert_eq!(
            (
                back.maxsize,
                back.max_bytes,
                back.capacity,
                back.max_deliveries
            ),
            (16, 4096, p.capacity, 3)
        );
        assert_eq!(expected_len(&p.raw()), Ok(RING + p.capacity as usize));
        let mut raw = p.raw();
        raw[2] += 8;
        assert!(RingParams::from_raw(&raw).is_err(), "capacity disagrees");
        assert!(RingParams::new(0, MIN_BYTES - 1).is_err());
        assert!(RingParams::new(u32::MAX as usize, 4096).is_err());
        assert_eq!(rounded(1), 8);
        assert_eq!(rounded(8), 8);
        assert_eq!(capacity_for(4096 + REC_HEADER), 8192);
    }
}
