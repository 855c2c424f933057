//! The queue's operations, `QueueBackend` for [`RedisQueue`]: bounded put
//! (waiting for room), get, peek, purge, close, counters, `task_done` and
//! join, leased gets and their settling, reclaiming.

use std::io;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use redis::Script;

use super::consumers::sweep;
use super::{payload, RedisQueue, EOF};
use crate::backend::{Counters, Limits, OpError, QueueBackend, Receipt, ReceiptToken};
use crate::redis::time::{block_secs, MAX_SLICE};
use crate::wait::Wait;

/// Messages per put script call.
const PUT_BATCH: usize = 512;
/// Longest wait of a blocked producer before it checks for room again.
const PUT_SLICE: Duration = Duration::from_millis(100);

// The scripts, one file each under `lua/queue/`.

// Puts a batch of messages, as many as there is room for.
script!(put_script, include_str!("../lua/queue/put.lua"));
// A producer stops waiting for room.
script!(
    unregister_script,
    include_str!("../lua/queue/unregister_putter.lua")
);
// Completes one element (`JoinableQueue::task_done`).
script!(task_done_script, include_str!("../lua/queue/task_done.lua"));
// Closes the queue: appends the end marker and wakes producers.
script!(close_script, include_str!("../lua/queue/close.lua"));
// Discards the ready messages.
script!(purge_script, include_str!("../lua/queue/purge.lua"));
// Messages in the queue.
script!(len_script, include_str!("../lua/queue/len.lua"));
// The queue's counters, in one round trip.
script!(counters_script, include_str!("../lua/queue/counters.lua"));
// Acknowledges or gives back one leased element.
script!(settle_script, include_str!("../lua/queue/settle.lua"));

impl RedisQueue {
    /// Leaves the count of waiting producers (after giving up waiting).
    fn unregister_putter(&self) {
        let _ = self
            .pool
            .run(|c| unregister_script().key(&self.keys.putters).invoke::<i64>(c));
    }
}

impl QueueBackend for RedisQueue {
    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }

    /// The byte budget is recorded on the server but not enforced (only the
    /// per-message limit is): reported as 0, "none".
    fn limits(&self) -> Limits {
        Limits {
            max_bytes: 0,
            ..self.limits
        }
    }

    fn put(&self, msgs: &[&[u8]], wait: Wait) -> (usize, Result<(), OpError>) {
        let limit = self.limits.max_message;
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
        let mut waited = false;
        while done < msgs.len() {
            let batch = &msgs[done..msgs.len().min(done + PUT_BATCH)];
            let r: io::Result<i64> = self.pool.run(|c| {
                let mut inv = put_script().prepare_invoke();
                inv.key(&self.keys.meta)
                    .key(&self.keys.ready)
                    .key(&self.keys.seq)
                    .key(&self.keys.unfinished)
                    .key(&self.keys.joined)
                    .key(&self.keys.putters)
                    .arg(self.limits.maxsize)
                    .arg(u8::from(waited))
                    .arg(u8::from(!wait.is_now()));
                for m in batch {
                    inv.arg(*m);
                }
                inv.invoke(c)
            });
            waited = false;
            let n = match r {
                Ok(-1) => return (done, Err(OpError::Closed)),
                Ok(n) if n < 0 => return (done, Err(self.gone())),
                Ok(n) => n as usize,
                Err(e) => return (done, Err(OpError::Io(e))),
            };
            done += n;
            if n > 0 || done == msgs.len() {
                continue;
            }
            if wait.is_now() {
                return (done, Err(OpError::WouldBlock));
            }
            let slice = match wait.deadline() {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left.min(PUT_SLICE),
                    _ => {
                        self.unregister_putter();
                        return (done, Err(OpError::WouldBlock));
                    }
                },
                None => PUT_SLICE,
            };
            waited = true;
            // Wait for a consumer's "room was made" token, or the slice.
            let r: io::Result<Option<(String, String)>> =
                self.pool.run_blocking(Some(slice), |c| {
                    redis::cmd("BLPOP")
                        .arg(&self.keys.space)
                        .arg(block_secs(slice))
                        .query(c)
                });
            if let Err(e) = r {
                self.unregister_putter();
                return (done, Err(OpError::Io(e)));
            }
        }
        (done, Ok(()))
    }

    fn get(
        &self,
        max: usize,
        wait: Wait,
        sink: &mut dyn FnMut(&[u8]),
        scratch: &mut Vec<u8>,
    ) -> Result<usize, OpError> {
        let (_, elems) = self.take_elems(max, wait, true)?;
        self.deliver(elems, sink, scratch)
    }

    fn peek(&self, out: &mut Vec<u8>) -> Result<bool, OpError> {
        let head: Option<Vec<u8>> = self
            .pool
            .run(|c| redis::cmd("LINDEX").arg(&self.keys.ready).arg(0).query(c))?;
        match head {
            Some(e) if e != EOF => {
                out.clear();
                out.extend_from_slice(payload(&e)?);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn purge(&self) -> Result<u64, OpError> {
        let n: i64 = self.pool.run(|c| {
            purge_script()
                .key(&self.keys.ready)
                .key(&self.keys.meta)
                .key(&self.keys.unfinished)
                .key(&self.keys.joined)
                .key(&self.keys.space)
                .key(&self.keys.got)
                .invoke(c)
        })?;
        Ok(n.max(0) as u64)
    }

    fn close(&self) -> Result<(), OpError> {
        let r: i64 = self.pool.run(|c| {
            close_script()
                .key(&self.keys.meta)
                .key(&self.keys.ready)
                .key(&self.keys.space)
                .invoke(c)
        })?;
        if r < 0 {
            return Err(self.gone());
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        self.pool
            .run(|c| len_script().key(&self.keys.ready).invoke::<u64>(c))
            .unwrap_or(0)
    }

    fn is_full(&self) -> bool {
        self.limits.maxsize > 0 && self.len() >= self.limits.maxsize
    }

    fn is_closed(&self) -> bool {
        self.pool
            .run(|c| {
                redis::cmd("HGET")
                    .arg(&self.keys.meta)
                    .arg("closed")
                    .query::<Option<String>>(c)
            })
            .ok()
            .flatten()
            .as_deref()
            == Some("1")
    }

    fn counters(&self) -> Counters {
        let r: io::Result<Vec<u64>> = self.pool.run(|c| {
            counters_script()
                .key(&self.keys.ready)
                .key(&self.keys.meta)
                .key(&self.keys.seq)
                .key(&self.keys.got)
                .key(&self.keys.unfinished)
                .key(&self.keys.dead)
                .key(&self.keys.requeued)
                .key(&self.keys.consumers)
                .invoke(c)
        });
        match r.as_deref() {
            Ok(&[len, closed, put, got, unfinished, dead, requeued, leased]) => Counters {
                len,
                bytes_used: 0,
                closed: closed == 1,
                total_put: put,
                total_got: got,
                total_done: put.saturating_sub(unfinished),
                waiting_get: 0,
                waiting_put: 0,
                leased,
                requeued,
                dead_lettered: dead,
            },
            _ => Counters::default(),
        }
    }

    fn task_done(&self) -> Result<(), OpError> {
        let elem = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        let proc = self
            .consumer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|c| c.proc().to_owned())
            .unwrap_or_else(|| self.keys.proc("none"));
        let r: io::Result<i64> = self.pool.run(|c| {
            let mut inv = task_done_script().prepare_invoke();
            inv.key(&proc)
                .key(&self.keys.unfinished)
                .key(&self.keys.joined)
                .key(&self.keys.deliveries);
            if let Some(e) = &elem {
                inv.arg(e.as_slice());
            }
            inv.invoke(c)
        });
        match r {
            Ok(-2) => Err(OpError::NothingOutstanding),
            Ok(_) => Ok(()),
            Err(e) => {
                if let Some(e) = elem {
                    self.pending
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push_front(e);
                }
                Err(OpError::Io(e))
            }
        }
    }

    fn unfinished(&self) -> u64 {
        self.pool
            .run(|c| {
                redis::cmd("GET")
                    .arg(&self.keys.unfinished)
                    .query::<Option<u64>>(c)
            })
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    fn join(&self, deadline: Option<Instant>) -> Result<bool, OpError> {
        loop {
            let slice = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left.min(MAX_SLICE),
                    _ => return Ok(false),
                },
                None => MAX_SLICE,
            };
            // Rotating the list onto itself leaves the token for every joiner.
            let r: Option<Vec<u8>> = self.pool.run_blocking(Some(slice), |c| {
                redis::cmd("BLMOVE")
                    .arg(&self.keys.joined)
                    .arg(&self.keys.joined)
                    .arg("LEFT")
                    .arg("LEFT")
                    .arg(block_secs(slice))
                    .query(c)
            })?;
            if r.is_some() {
                return Ok(true);
            }
        }
    }

    fn get_leased(&self, wait: Wait, out: &mut Vec<u8>) -> Result<Receipt, OpError> {
        let (proc, mut elems) = self.take_elems(1, wait, false)?;
        // A batch of one: `take_elems` returns at least one element.
        let Some(elem) = elems.pop() else {
            return Err(OpError::WouldBlock);
        };
        out.clear();
        out.extend_from_slice(payload(&elem)?);
        let failed: Option<u32> = self
            .pool
            .run(|c| {
                redis::cmd("HGET")
                    .arg(&self.keys.deliveries)
                    .arg(elem.as_slice())
                    .query(c)
            })
            .unwrap_or(None);
        Ok(Receipt {
            deliveries: failed.unwrap_or(0).saturating_add(1),
            token: ReceiptToken::Redis { elem, proc },
        })
    }

    fn settle(&self, receipt: &Receipt, requeue: bool) -> Result<(), OpError> {
        #[allow(unreachable_patterns)]
        let ReceiptToken::Redis { elem, proc } = &receipt.token
        else {
            return Err(OpError::NothingOutstanding);
        };
        if !proc.starts_with(&self.keys.tag) {
            return Err(OpError::NothingOutstanding);
        }
        let r: i64 = self.pool.run(|c| {
            settle_script()
                .key(proc)
                .key(&self.keys.ready)
                .key(&self.keys.deliveries)
                .key(&self.keys.dead)
                .key(&self.keys.unfinished)
                .key(&self.keys.joined)
                .key(&self.keys.requeued)
                .arg(elem.as_slice())
                .arg(u8::from(requeue))
                .arg(self.max_deliveries)
                .invoke(c)
        })?;
        if r < 0 {
            return Err(OpError::NothingOutstanding);
        }
        Ok(())
    }

    fn reclaim(&self) -> Result<u64, OpError> {
        let me = self
            .consumer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|c| c.cid().to_owned())
            .unwrap_or_default();
        let n = sweep(&self.pool, &self.keys, &me, self.max_deliveries)?;
        Ok(n.max(0) as u64)
    }

    fn max_deliveries(&self) -> u32 {
        // Items are set aside on the server (the `:dead` list) when taken
        // back for the last time, so the caller never has to.
        0
    }

    fn note_dead_lettered(&self) {}

    fn dead_letters(&self) -> io::Result<Vec<Vec<u8>>> {
        RedisQueue::dead_letters(self)
    }
}
