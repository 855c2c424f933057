//! Taking elements: the take script completes a handle's previous
//! elements and moves new ones into its processing list; when there are
//! none, a blocking `BLMOVE` waits for the first. Taken elements stay
//! pending until completed.

use std::collections::VecDeque;
use std::io;
use std::sync::OnceLock;
use std::time::Instant;

use redis::Script;

use super::{payload, RedisQueue, EOF};
use crate::backend::OpError;
use crate::redis::time::{block_secs, MAX_SLICE};
use crate::wait::Wait;

// Completes a consumer's previous elements and takes more without blocking.
script!(take_script, include_str!("../lua/queue/take.lua"));
// Puts back the end marker a blocking take moved.
script!(
    restore_eof_script,
    include_str!("../lua/queue/restore_eof.lua")
);

impl RedisQueue {
    /// Runs the take script: completes `prev`, takes up to `max`.
    pub(super) fn take(
        &self,
        proc: &str,
        max: usize,
        already: bool,
        prev: &VecDeque<Vec<u8>>,
    ) -> io::Result<Vec<Vec<u8>>> {
        let wake = self.limits.maxsize > 0;
        self.pool.run(|c| {
            let mut inv = take_script().prepare_invoke();
            inv.key(&self.keys.ready)
                .key(proc)
                .key(&self.keys.got)
                .key(&self.keys.space)
                .key(&self.keys.deliveries)
                .key(&self.keys.putters)
                .arg(max)
                .arg(u8::from(wake))
                .arg(u8::from(already));
            for p in prev {
                inv.arg(p.as_slice());
            }
            inv.invoke(c)
        })
    }

    /// Hands the taken elements to `sink` and records them as pending.
    pub(super) fn deliver(
        &self,
        elems: Vec<Vec<u8>>,
        sink: &mut dyn FnMut(&[u8]),
        scratch: &mut Vec<u8>,
    ) -> Result<usize, OpError> {
        let n = elems.len();
        let mut bad = None;
        for e in &elems {
            match payload(e) {
                Ok(p) => {
                    scratch.clear();
                    scratch.extend_from_slice(p);
                    sink(scratch);
                }
                Err(e) => bad = Some(e),
            }
        }
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(elems);
        match bad {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }

    pub(super) fn take_pending(&self) -> VecDeque<Vec<u8>> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn restore_pending(&self, prev: VecDeque<Vec<u8>>) {
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let newer = std::mem::replace(&mut *p, prev);
        p.extend(newer);
    }

    /// Takes up to `max` elements into this handle's processing list,
    /// first completing its previous ones when `complete`; waits for the
    /// first as long as `wait` allows. Returns the processing list and the elements.
    pub(super) fn take_elems(
        &self,
        max: usize,
        wait: Wait,
        complete: bool,
    ) -> Result<(String, Vec<Vec<u8>>), OpError> {
        let max = max.max(1);
        let proc = self.consumer()?;
        let prev = if complete {
            self.take_pending()
        } else {
            VecDeque::new()
        };
        let got = match self.take(&proc, max, false, &prev) {
            Ok(g) => g,
            Err(e) => {
                self.restore_pending(prev);
                return Err(OpError::Io(e));
            }
        };
        if got.len() == 1 && got[0] == EOF {
            return Err(OpError::Closed);
        }
        if !got.is_empty() {
            return Ok((proc, got));
        }
        if wait.is_now() {
            return Err(OpError::WouldBlock);
        }
        loop {
            let slice = match wait.deadline() {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left.min(MAX_SLICE),
                    _ => return Err(OpError::WouldBlock),
                },
                None => MAX_SLICE,
            };
            let first: Option<Vec<u8>> = self.pool.run_blocking(Some(slice), |c| {
                redis::cmd("BLMOVE")
                    .arg(&self.keys.ready)
                    .arg(&proc)
                    .arg("LEFT")
                    .arg("RIGHT")
                    .arg(block_secs(slice))
                    .query(c)
            })?;
            let Some(first) = first else { continue };
            if first == EOF {
                self.pool.run(|c| {
                    restore_eof_script()
                        .key(&self.keys.ready)
                        .key(&proc)
                        .invoke::<i64>(c)
                })?;
                return Err(OpError::Closed);
            }
            // Count it, wake a producer and take more without blocking. If
            // this fails, the element stays in the processing list and is
            // completed or taken back like any other.
            let mut all = vec![first];
            if let Ok(more) = self.take(&proc, max - 1, true, &VecDeque::new()) {
                all.extend(more.into_iter().filter(|e| e != EOF));
            }
            return Ok((proc, all));
        }
    }
}
