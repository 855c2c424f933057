//! Trusting nothing read from the segment: spans and records checked
//! against the ring's occupancy, and the repairs run by the get lock's
//! next holder after a consumer died holding it (see the parent module).

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::layout::*;
use super::*;

impl Ring {
    /// Repairs, under the get lock, what a consumer killed inside it left
    /// (see the module's "Crash recovery"). Idempotent: a repair killed
    /// mid-way is run again by the next holder.
    pub(super) fn repair_locked(&self) -> Result<(), OpError> {
        self.finish_purge_locked()?;
        // Records marked (delivered or acknowledged) but not yet passed by
        // the cursor were never handed out: give them their published
        // header back.
        let head = self.u64::<HEAD>().load(Ordering::Relaxed);
        let cursor = self.u64::<CURSOR>().load(Ordering::Relaxed);
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
    pub(super) fn repair_if_abandoned(&self) {
        if self.get_lock().owner_tid() != 0 && self.get_lock().abandoned() {
            let _ = self.lock_get(Some(Instant::now() + std::time::Duration::from_millis(10)));
        }
    }

    /// Checks that `to` is at most the ring's capacity ahead of `from`, in
    /// bytes (8-aligned) and in records (at least 8 bytes each).
    pub(super) fn check_span(&self, from: u64, to: u64, what: &str) -> Result<(), OpError> {
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
    pub(super) fn published_at(&self, head: u64, s: u32, p: u32) -> Result<Option<usize>, OpError> {
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
    pub(super) fn validate_at(&self, s: u32, p: u32, bound: u64) -> Result<usize, OpError> {
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

    /// `tail`, moved over records a dead producer published without moving
    /// it, and checked against `head` (a past value of `head`, re-read if
    /// the check fails); the caller holds the put lock.
    pub(super) fn settled_tail(&self, head: &mut u64) -> Result<u64, OpError> {
        let tail = self.u64::<TAIL>().load(Ordering::Relaxed);
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
            *head = self.u64::<HEAD>().load(Ordering::Acquire);
            check(*head)?;
        }
        Ok(fixed)
    }

    /// Carries out a journaled purge, if one is on; the caller holds the
    /// get lock. Every step can be done again: requeued records become
    /// acknowledged, the cursor and the purged total take the journal's
    /// values (purged items count as done, so `join` does not wait for
    /// them), head moves, and the journal is turned off last.
    pub(super) fn finish_purge_locked(&self) -> Result<(), OpError> {
        if self.u64::<JOURNAL>().load(Ordering::Acquire) == 0 {
            return Ok(());
        }
        let target = self.u64::<JOURNAL_CURSOR>().load(Ordering::Relaxed);
        let head = self.u64::<HEAD>().load(Ordering::Relaxed);
        self.check_span(head, target, "the purge journal's cursor")?;
        let cursor = self.u64::<CURSOR>().load(Ordering::Relaxed);
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
        self.u64::<PURGED_TOTAL>().store(
            self.u64::<JOURNAL_PURGED>().load(Ordering::Relaxed),
            Ordering::Release,
        );
        crash_point!("ring.purge.done");
        self.advance_head()?;
        self.u64::<JOURNAL>().store(0, Ordering::Release);
        crash_point!("ring.purge.cleared");
        Ok(())
    }
}
