//! Leases (at-least-once delivery): owner slots, settling, and the
//! reclaim that requeues the leases of dead consumers.

use std::sync::atomic::{AtomicU32, Ordering};

use super::layout::*;
use super::*;
use crate::wait::Wait;

impl Ring {
    /// Requeues the leases of dead owners and recounts `leased`/`requeued`;
    /// the caller holds the get lock. Returns how many were requeued.
    pub(super) fn reclaim_locked(&self) -> Result<u64, OpError> {
        self.u64::<LAST_RECLAIM>()
            .store(sys::now_realtime_ns(), Ordering::Relaxed);
        crash_point!("ring.reclaim.stamp");
        let mut alive = [None::<bool>; OWNER_SLOTS];
        let head = self.u64::<HEAD>().load(Ordering::Relaxed);
        let cursor = self.u64::<CURSOR>().load(Ordering::Relaxed);
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

    pub(super) fn owner_alive(&self, slot: usize) -> bool {
        let pid = self
            .seg
            .at::<AtomicU32>(OWNERS + slot * 16)
            .load(Ordering::Acquire);
        let start = self.u64_at(OWNERS + slot * 16 + 8).load(Ordering::Relaxed);
        pid != 0 && sys::process_alive(pid, start)
    }

    /// This process's owner slot, claimed on first use.
    pub(super) fn owner_slot(&self) -> Result<u32, OpError> {
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

    pub(super) fn maybe_reclaim_locked(&self) -> Result<(), OpError> {
        if self.u32_at(LEASED).load(Ordering::Relaxed) > 0 {
            let last = self.u64::<LAST_RECLAIM>().load(Ordering::Relaxed);
            if sys::now_realtime_ns().saturating_sub(last) >= RECLAIM_EVERY_NS
                && self.reclaim_locked()? > 0
            {
                self.cell(NOT_EMPTY).wake_all();
            }
        }
        Ok(())
    }

    /// Takes one record under a lease for this process.
    pub(super) fn lease_get(
        &self,
        wait: Wait,
        out: &mut Vec<u8>,
    ) -> Result<(u32, u32, u32, u32), OpError> {
        let mut receipt = None;
        let (_, slot) = self.get_core(1, wait, &mut |_| {}, out, Some(&mut receipt))?;
        let (s, p, d) = receipt.ok_or_else(|| OpError::Damaged("lease without a record".into()))?;
        Ok((s, p, slot, d))
    }

    /// Settles the lease on record (`s`, `p`) held by `slot`: acknowledged,
    /// or (`requeue`) given back for another delivery.
    pub(super) fn lease_settle(
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
            let head = self.u64::<HEAD>().load(Ordering::Relaxed);
            let cursor = self.u64::<CURSOR>().load(Ordering::Relaxed);
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
    pub(super) fn lease_reclaim(&self) -> Result<u64, OpError> {
        let n = {
            let _held = self.lock_get(None)?;
            self.reclaim_locked()?
        };
        if n > 0 {
            self.cell(NOT_EMPTY).wake_all();
        }
        Ok(n)
    }
}
