//! The ring as a [`QueueBackend`]: put, get, peek, purge, close and the
//! counters.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use super::layout::*;
use super::*;
use crate::wait::Wait;

impl QueueBackend for Ring {
    /// Puts messages in order; returns how many were put before an error.
    ///
    /// Waits while full as long as `wait` allows. All messages of a call that fit are
    /// published with a single store.
    fn put(&self, msgs: &[&[u8]], wait: Wait) -> (usize, Result<(), OpError>) {
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
                let _held = match acquire(self.put_lock(), wait.deadline()) {
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
                        let fresh = self.u64::<HEAD>().load(Ordering::Acquire);
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
                if wait.is_now() {
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
                let ok = self.cell(NOT_FULL).wait_until_checked(
                    wait.deadline(),
                    self.spin(),
                    &room,
                    &ready,
                );
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
        wait: Wait,
        sink: &mut dyn FnMut(&[u8]),
        scratch: &mut Vec<u8>,
    ) -> Result<usize, OpError> {
        self.get_core(max, wait, sink, scratch, None)
            .map(|(n, _)| n)
    }

    /// Copies the next message without taking it.
    fn peek(&self, out: &mut Vec<u8>) -> Result<bool, OpError> {
        let _held = self.lock_get(None)?;
        let head = self.u64::<HEAD>().load(Ordering::Relaxed);
        let cursor = self.u64::<CURSOR>().load(Ordering::Relaxed);
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
            let head = self.u64::<HEAD>().load(Ordering::Relaxed);
            let cursor = self.u64::<CURSOR>().load(Ordering::Relaxed);
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
            let purged = self.u64::<PURGED_TOTAL>().load(Ordering::Relaxed);
            self.u64::<JOURNAL_CURSOR>()
                .store(pack(s, p), Ordering::Relaxed);
            self.u64::<JOURNAL_PURGED>()
                .store(purged.wrapping_add(n), Ordering::Relaxed);
            // Not yet a purge: the journal is off until the next store.
            crash_point!("ring.purge.intent");
            self.u64::<JOURNAL>().store(1, Ordering::Release);
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
            let _held = acquire(self.put_lock(), None)?;
            self.seg
                .view()
                .at::<AtomicU32, CLOSED>()
                .store(1, Ordering::Release);
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
        let cursor = self.u64::<CURSOR>().load(Ordering::Acquire);
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
        let head = self.u64::<HEAD>().load(Ordering::Acquire);
        let cursor = self.u64::<CURSOR>().load(Ordering::Acquire);
        let got = self.total_got();
        let requeued = u64::from(self.u32_at(REQUEUED).load(Ordering::Acquire));
        let tail = self.published_end();
        let put = self.total_put();
        Counters {
            len: ahead(seq(tail), seq(cursor)) + requeued,
            leased: u64::from(self.u32_at(LEASED).load(Ordering::Acquire)),
            requeued,
            dead_lettered: self.u64::<DEAD_LETTERED>().load(Ordering::Relaxed),
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
        let done = self.u64::<DONE_TOTAL>();
        let mut cur = done.load(Ordering::Acquire);
        loop {
            let purged = self.u64::<PURGED_TOTAL>().load(Ordering::Acquire);
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

    fn get_leased(&self, wait: Wait, out: &mut Vec<u8>) -> Result<Receipt, OpError> {
        let (seq, pos, slot, deliveries) = self.lease_get(wait, out)?;
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

    fn dead_letter_queue(&self) -> Option<(std::path::PathBuf, String)> {
        let (dir, name) = (self.seg.dir()?, self.seg.name()?);
        Some((dir.to_owned(), format!("{name}.dlq")))
    }

    fn note_dead_lettered(&self) {
        self.u64::<DEAD_LETTERED>().fetch_add(1, Ordering::Relaxed);
        crash_point!("ring.dead_letter.counted");
    }
}
