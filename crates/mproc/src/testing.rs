//! Where things are in a segment, for tests and fuzzers that read or damage
//! segments on purpose (cargo feature `testing`). No stability promise: the
//! layouts follow [`LAYOUT_VERSION`].

use crate::local::{lock as l, ring as r, segment as s};

/// The layout version this build writes and reads.
pub const LAYOUT_VERSION: u32 = s::LAYOUT_VERSION;
/// Bytes of every segment's header (magic, version, kind, parameters).
pub const HEADER_LEN: usize = s::HEADER_LEN;

/// Offsets in a queue segment.
pub mod queue {
    use super::r;
    /// The producers' robust lock.
    pub const PUT_LOCK: usize = r::PUT_LOCK;
    /// `tail`: the producers' sequence and position word.
    pub const TAIL: usize = r::TAIL;
    /// `put_total`, the other producers' word, after `tail`.
    pub const PUT_TOTAL: usize = r::PUT_TOTAL;
    /// The consumers' robust lock.
    pub const GET_LOCK: usize = r::GET_LOCK;
    /// `head`: the consumers' mark of free space.
    pub const HEAD: usize = r::HEAD;
    /// The not-empty wait cell's sequence word.
    pub const NOT_EMPTY: usize = r::NOT_EMPTY;
    /// The first byte of the ring of records.
    pub const RING: usize = r::RING;
}

/// The layout of a lock segment.
pub mod lock {
    use super::l;
    /// Bytes of a lock segment.
    pub const SEG_LEN: usize = l::SEG_LEN;
}
