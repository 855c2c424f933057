//! The consumer's path: taking records under the get lock, moving
//! `head` over the acknowledged prefix, and waiting for records.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::layout::*;
use super::*;
use crate::wait::Wait;

impl Ring {
    /// Delivers up to `max` records, requeued ones first; the caller holds
    /// the get lock. With `lease = Some(slot)` the (single) record is leased
    /// to that owner slot and its receipt returned through `receipt`.
    pub(super) fn take_locked(
        &self,
        max: usize,
        sink: &mut dyn FnMut(&[u8]),
        scratch: &mut Vec<u8>,
        lease: Option<u32>,
        receipt: &mut Option<(u32, u32, u32)>,
    ) -> Result<usize, OpError> {
        let head = self.u64::<HEAD>().load(Ordering::Relaxed);
        let cursor = self.u64::<CURSOR>().load(Ordering::Relaxed);
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
                self.u64::<HEAD>().store(pack(s, p), Ordering::Release);
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

    pub(super) fn deliver(
        &self,
        p: u32,
        len: usize,
        scratch: &mut Vec<u8>,
        sink: &mut dyn FnMut(&[u8]),
    ) {
        scratch.clear();
        scratch.resize(len, 0);
        self.read_wrapped(self.padd(p, REC_HEADER), scratch);
        sink(scratch);
    }

    /// Moves `head` over the acknowledged records at the front; the caller
    /// holds the get lock. Returns whether it moved.
    pub(super) fn advance_head(&self) -> Result<bool, OpError> {
        let head_word = self.u64::<HEAD>();
        let head = head_word.load(Ordering::Relaxed);
        let cursor = self.u64::<CURSOR>().load(Ordering::Relaxed);
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

    /// The shared get path: plain, or leased when `receipt` is given (the
    /// record's receipt is then written there).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn get_core(
        &self,
        max: usize,
        wait: Wait,
        sink: &mut dyn FnMut(&[u8]),
        scratch: &mut Vec<u8>,
        mut receipt: Option<&mut Option<(u32, u32, u32)>>,
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
            !wait.is_now() && self.u32_at(LEASED).load(Ordering::Relaxed) == 0 && !self.non_empty();
        loop {
            let (taken, slot) = if std::mem::take(&mut skip_take) {
                (0, 0)
            } else {
                let _held = self.lock_get(wait.deadline())?;
                self.maybe_reclaim_locked()?;
                let slot = match receipt {
                    Some(_) => Some(self.owner_slot()?),
                    None => None,
                };
                let mut unused = None;
                let out = receipt.as_deref_mut().unwrap_or(&mut unused);
                let n = self.take_locked(max, sink, scratch, slot, out)?;
                if n == 0 && (looked || wait.is_now()) {
                    self.check_empty_locked()?;
                }
                (n, slot.unwrap_or(0))
            };
            if taken > 0 {
                // Right after the get lock's release (the block above).
                self.cell(NOT_FULL).wake_all_after_unlock();
                if looked && self.gathers() {
                    // After a wait: was this all there was? A batch that
                    // took several, or messages left behind, say no.
                    self.gather.learn(taken > 1 || self.non_empty());
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
            let expired = wait.deadline().is_some_and(|d| Instant::now() >= d);
            if wait.is_now() || (expired && looked) {
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
                Some(wait.deadline().map_or(s, |d| d.min(s)))
            } else {
                wait.deadline()
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
    pub(super) fn tail_ahead(&self) -> bool {
        let cursor_word = self.u64::<CURSOR>();
        let cursor = cursor_word.load(Ordering::Acquire);
        let tail = self.u64::<TAIL>().load(Ordering::Acquire);
        (seq(tail).wrapping_sub(seq(cursor)) as i32) > 0
            && self.header(pos(cursor)).load(Ordering::Acquire) == END_MARK
            && cursor_word.load(Ordering::Acquire) == cursor
    }

    /// Checks an empty ring against `tail`; the caller holds the get lock.
    /// The cursor may be ahead of `tail` (by the records of a producer
    /// between its header and `tail` stores, or killed there), never behind.
    pub(super) fn check_empty_locked(&self) -> Result<(), OpError> {
        let cursor = self.u64::<CURSOR>().load(Ordering::Relaxed);
        let tail = self.u64::<TAIL>().load(Ordering::Acquire);
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
}
