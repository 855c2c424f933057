//! Consumer bookkeeping for the queue on Redis: registering a handle as a
//! consumer, keeping its heartbeat lease alive from a thread, and taking
//! back the elements of consumers whose lease expired.
//!
//! A consumer is a random id `<cid>` in the `:consumers` set, with a
//! `:hb:<cid>` key that expires unless its heartbeat thread refreshes it
//! (every lease/3), and a processing list `:proc:<cid>` of the elements it
//! has taken. Every live consumer looks for dead ones at each beat.

use std::io;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use redis::Script;

use super::Keys;
use crate::backend::OpError;
use crate::redis::keys::token;
use crate::redis::pool::Pool;

// Takes back the elements of a consumer whose heartbeat expired (or, forced,
// of one that leaves) and deregisters it.
script!(reclaim_script, include_str!("../lua/queue/reclaim.lua"));
// The registered consumers whose heartbeat key is gone.
script!(dead_script, include_str!("../lua/queue/dead_consumers.lua"));

/// Stops a heartbeat thread.
#[derive(Debug, Default)]
struct Stop {
    stopped: Mutex<bool>,
    cv: Condvar,
}

/// A handle's registration as a consumer, and its heartbeat thread.
#[derive(Debug)]
pub(super) struct Consumer {
    cid: String,
    proc: String,
    stop: Arc<Stop>,
}

impl Consumer {
    /// Registers a new consumer with a heartbeat lease of `lease` and starts
    /// its heartbeat thread, which also takes back the elements of dead
    /// consumers (given up on after `max_deliveries`, if not 0).
    pub(super) fn register(
        pool: &Arc<Pool>,
        keys: &Arc<Keys>,
        lease: Duration,
        max_deliveries: u32,
    ) -> Result<Consumer, OpError> {
        let cid = token();
        let lease_ms = lease.as_millis().max(1) as u64;
        let hb = keys.hb(&cid);
        pool.run(|c| {
            redis::pipe()
                .cmd("SET")
                .arg(&hb)
                .arg(1)
                .arg("PX")
                .arg(lease_ms)
                .ignore()
                .cmd("SADD")
                .arg(&keys.consumers)
                .arg(&cid)
                .ignore()
                .exec(c)
        })?;
        let stop = Arc::new(Stop::default());
        let (pool, keys, stop2, cid2) = (
            Arc::clone(pool),
            Arc::clone(keys),
            Arc::clone(&stop),
            cid.clone(),
        );
        let proc = keys.proc(&cid);
        thread::Builder::new()
            .name("mproc-redis-heartbeat".into())
            .spawn(move || heartbeat(&pool, &keys, &cid2, lease, max_deliveries, &stop2))
            .map_err(OpError::Io)?;
        Ok(Consumer { cid, proc, stop })
    }

    /// The consumer's id.
    pub(super) fn cid(&self) -> &str {
        &self.cid
    }

    /// The key of the consumer's processing list.
    pub(super) fn proc(&self) -> &str {
        &self.proc
    }

    /// Stops the heartbeat thread (at its next wake-up, without waiting):
    /// the lease then runs out unless the consumer leaves first.
    pub(super) fn stop_heartbeat(&self) {
        *self.stop.stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.stop.cv.notify_all();
    }

    /// Deregisters the consumer, handing back whatever is left in its
    /// processing list, without counting a delivery.
    pub(super) fn leave(&self, pool: &Pool, keys: &Keys, max_deliveries: u32) -> io::Result<i64> {
        reclaim(pool, keys, &self.cid, max_deliveries, true)
    }
}

/// Runs the reclaim script for `cid`; returns how many elements it moved.
fn reclaim(
    pool: &Pool,
    keys: &Keys,
    cid: &str,
    max_deliveries: u32,
    force: bool,
) -> io::Result<i64> {
    pool.run(|c| {
        reclaim_script()
            .key(keys.hb(cid))
            .key(keys.proc(cid))
            .key(&keys.ready)
            .key(&keys.consumers)
            .key(&keys.deliveries)
            .key(&keys.dead)
            .key(&keys.unfinished)
            .key(&keys.joined)
            .key(&keys.requeued)
            .arg(cid)
            .arg(max_deliveries)
            .arg(u8::from(force))
            .invoke(c)
    })
}

/// Takes back the elements of every registered consumer but `me` whose
/// heartbeat expired: one script finds them (cheap enough for every
/// heartbeat), one more per dead consumer takes back its items.
pub(super) fn sweep(pool: &Pool, keys: &Keys, me: &str, max_deliveries: u32) -> io::Result<i64> {
    let dead: Vec<String> = pool.run(|c| dead_script().key(&keys.consumers).arg(me).invoke(c))?;
    let mut n = 0;
    for cid in &dead {
        n += reclaim(pool, keys, cid, max_deliveries, false)?;
    }
    Ok(n)
}

/// The heartbeat thread: refreshes this consumer's lease and takes back the
/// elements of consumers whose lease expired.
fn heartbeat(
    pool: &Pool,
    keys: &Keys,
    cid: &str,
    lease: Duration,
    max_deliveries: u32,
    stop: &Stop,
) {
    let every = lease / 3;
    let lease_ms = lease.as_millis().max(1) as u64;
    let hb = keys.hb(cid);
    loop {
        {
            let stopped = stop.stopped.lock().unwrap_or_else(|p| p.into_inner());
            let (stopped, _) = stop
                .cv
                .wait_timeout_while(stopped, every, |s| !*s)
                .unwrap_or_else(|p| p.into_inner());
            if *stopped {
                return;
            }
        }
        // Failures are retried at the next beat; a consumer that cannot
        // reach the server for a whole lease is treated as dead by the others.
        let _ = pool.run(|c| {
            redis::pipe()
                .cmd("SET")
                .arg(&hb)
                .arg(1)
                .arg("PX")
                .arg(lease_ms)
                .ignore()
                .cmd("SADD")
                .arg(&keys.consumers)
                .arg(cid)
                .ignore()
                .exec(c)
        });
        // Every live consumer looks for dead ones at each beat, so a dead
        // consumer's items come back at most a beat after its lease ran out.
        let _ = sweep(pool, keys, cid, max_deliveries);
    }
}
