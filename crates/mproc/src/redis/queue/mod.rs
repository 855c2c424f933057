//! The queue on Redis: the reliable-queue pattern on lists.
//!
//! ## Keys (all under the hash tag `{PREFIX:NAME}`)
//! ```text
//! :meta         hash    kind=queue, maxsize, max_bytes, closed
//! :ready        list    ready elements, FIFO (RPUSH at the tail, taken from the head)
//! :proc:<cid>   list    elements consumer <cid> has taken and not completed
//! :hb:<cid>     string  consumer liveness, with a PX lease refreshed every lease/3
//! :consumers    set     registered consumer ids
//! :seq          counter message ids = messages ever put
//! :got          counter messages ever taken
//! :unfinished   counter put − task_done (JoinableQueue)
//! :joined       list    holds "J" exactly when unfinished == 0
//! :space        list    ≤ 1 token: "room was made", wakes one blocked producer
//! :deliveries   hash    element → times it was taken back from a dead consumer
//! :dead         list    elements given up on after max_deliveries
//! ```
//! An element is `D<id>:<payload>` (the unique id makes `LREM` exact), or
//! the one-byte end-of-stream marker `E`, appended by `close` and kept at the
//! tail: a consumer that takes it puts it back, so every consumer sees it.
//!
//! ## Delivery
//! `get` moves elements from `ready` into the consumer's processing list
//! atomically (`BLMOVE`, or `LMOVE` in a script for batches); they stay there
//! until the same handle's next `get` (or `task_done`, or drop) completes
//! them. A consumer whose heartbeat lease expires is presumed dead: any live
//! consumer's heartbeat thread moves its processing list back to the head of
//! `ready`, counting deliveries; after `max_deliveries` the element goes to
//! `:dead` instead. Delivery is therefore at-least-once. Registration,
//! heartbeats and taking elements back are in `consumers`; the Lua scripts
//! are files under `lua/queue/`.
//!
//! ## Rooms
//! * `mod`       — [`RedisQueue`]: its keys, create and open, the consumer
//!   registration of a handle, and what a dropped handle leaves behind.
//! * `take`      — taking elements into the processing list: the take script,
//!   the blocking `BLMOVE`, the elements pending completion.
//! * `ops`       — the operations (`QueueBackend`): put, get, peek, close,
//!   counters, `task_done`, join, leases and their settling.
//! * `consumers` — consumer registration, heartbeats, taking back a dead
//!   consumer's elements.

mod consumers;
mod ops;
mod take;

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use redis::Script;

use self::consumers::Consumer;
use super::keys::{check_kind, create_io, open_io};
use super::pool::Pool;
use super::Remote;
use crate::backend::{Limits, OpError, QueueParams};
use crate::error::{CreateError, OpenError};
use crate::name::validate_name;
use crate::object::ObjectKind;

/// The end-of-stream marker.
const EOF: &[u8] = b"E";

// The scripts, one file each under `lua/queue/`; the head of each file says
// what its KEYS and ARGV hold and what it returns.

// Creates the queue unless an object of its name exists.
script!(create_script, include_str!("../lua/queue/create.lua"));

/// The key names of one queue.
#[derive(Debug)]
struct Keys {
    tag: String,
    meta: String,
    ready: String,
    seq: String,
    got: String,
    unfinished: String,
    joined: String,
    space: String,
    consumers: String,
    deliveries: String,
    dead: String,
    requeued: String,
    putters: String,
}

impl Keys {
    fn new(tag: String) -> Keys {
        let k = |s: &str| format!("{tag}:{s}");
        Keys {
            meta: k("meta"),
            ready: k("ready"),
            seq: k("seq"),
            got: k("got"),
            unfinished: k("unfinished"),
            joined: k("joined"),
            space: k("space"),
            consumers: k("consumers"),
            deliveries: k("deliveries"),
            dead: k("dead"),
            requeued: k("requeued"),
            putters: k("putters"),
            tag,
        }
    }

    fn proc(&self, cid: &str) -> String {
        format!("{}:proc:{cid}", self.tag)
    }

    fn hb(&self, cid: &str) -> String {
        format!("{}:hb:{cid}", self.tag)
    }
}

/// A queue on a Redis server.
pub(crate) struct RedisQueue {
    name: String,
    url: String,
    pool: Arc<Pool>,
    keys: Arc<Keys>,
    limits: Limits,
    consumer_lease: Duration,
    max_deliveries: u32,
    server: String,
    consumer: Mutex<Option<Consumer>>,
    /// Elements taken by this handle and not yet completed, oldest first.
    pending: Mutex<VecDeque<Vec<u8>>>,
}

impl fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisQueue")
            .field("name", &self.name)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// The payload of a data element `D<id>:<payload>`.
fn payload(elem: &[u8]) -> Result<&[u8], OpError> {
    if elem.first() == Some(&b'D') {
        if let Some(colon) = elem.iter().position(|&b| b == b':') {
            return Ok(&elem[colon + 1..]);
        }
    }
    Err(OpError::Damaged(format!(
        "unexpected element of {} bytes in the queue",
        elem.len()
    )))
}

impl RedisQueue {
    /// Creates queue `name`; fails if an object of that name exists.
    pub(crate) fn create(
        remote: &Remote,
        name: &str,
        p: &QueueParams,
    ) -> Result<RedisQueue, CreateError> {
        validate_name(name)?;
        let (maxsize, max_bytes, max_deliveries) =
            (p.maxsize as u64, p.max_bytes as u64, p.max_deliveries);
        let pool = remote.pool().map_err(create_io(name))?;
        let keys = Keys::new(remote.tag(name));
        let r: String = pool
            .run(|c| {
                create_script()
                    .key(&keys.meta)
                    .key(&keys.joined)
                    .key(&keys.unfinished)
                    .key(&keys.ready)
                    .arg(maxsize)
                    .arg(max_bytes)
                    .arg(max_deliveries)
                    .invoke(c)
            })
            .map_err(create_io(name))?;
        if r != "created" {
            return Err(CreateError::AlreadyExists {
                name: name.to_owned(),
                dir: remote.display(),
            });
        }
        let limits = Limits {
            maxsize,
            max_bytes,
            max_message: p.max_bytes,
        };
        Ok(RedisQueue::with(
            remote,
            name,
            pool,
            keys,
            limits,
            max_deliveries,
        ))
    }

    /// Opens the existing queue `name`.
    pub(crate) fn open(remote: &Remote, name: &str) -> Result<RedisQueue, OpenError> {
        validate_name(name)?;
        let pool = remote.pool().map_err(open_io(name))?;
        let keys = Keys::new(remote.tag(name));
        type Meta = (Option<String>, Option<u64>, Option<u64>, Option<u32>);
        let (kind, maxsize, max_bytes, max_deliveries): Meta = pool
            .run(|c| {
                redis::cmd("HMGET")
                    .arg(&keys.meta)
                    .arg("kind")
                    .arg("maxsize")
                    .arg("max_bytes")
                    .arg("max_deliveries")
                    .query(c)
            })
            .map_err(open_io(name))?;
        check_kind(remote, name, kind.as_deref(), ObjectKind::Queue)?;
        let (Some(maxsize), Some(max_bytes)) = (maxsize, max_bytes) else {
            return Err(OpenError::Damaged {
                name: name.to_owned(),
                reason: "queue settings missing".into(),
            });
        };
        let max_message = QueueParams::new(
            usize::try_from(maxsize).unwrap_or(usize::MAX),
            usize::try_from(max_bytes).unwrap_or(usize::MAX),
            0,
        )
        .map(|p| p.max_bytes)
        .map_err(|reason| OpenError::Damaged {
            name: name.to_owned(),
            reason,
        })?;
        let limits = Limits {
            maxsize,
            max_bytes,
            max_message,
        };
        Ok(RedisQueue::with(
            remote,
            name,
            pool,
            keys,
            limits,
            max_deliveries.unwrap_or(0),
        ))
    }

    fn with(
        remote: &Remote,
        name: &str,
        pool: Arc<Pool>,
        keys: Keys,
        limits: Limits,
        max_deliveries: u32,
    ) -> Self {
        RedisQueue {
            name: name.to_owned(),
            url: remote.url().to_owned(),
            pool,
            keys: Arc::new(keys),
            limits,
            consumer_lease: remote.consumer_lease,
            max_deliveries,
            server: remote.display(),
            consumer: Mutex::new(None),
            pending: Mutex::new(VecDeque::new()),
        }
    }

    fn gone(&self) -> OpError {
        OpError::Damaged(format!(
            "queue '{}' no longer exists on {} (removed, or lost in a server restart)",
            self.name, self.server
        ))
    }

    /// Registers this handle as a consumer (once) and returns its
    /// processing list; starts the heartbeat thread.
    fn consumer(&self) -> Result<String, OpError> {
        let mut slot = self.consumer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = slot.as_ref() {
            return Ok(c.proc().to_owned());
        }
        let c = Consumer::register(
            &self.pool,
            &self.keys,
            self.consumer_lease,
            self.max_deliveries,
        )?;
        let proc = c.proc().to_owned();
        *slot = Some(c);
        Ok(proc)
    }

    /// The namespace URL (with its password, for handing to children).
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The queue's name.
    pub(crate) fn object_name(&self) -> &str {
        &self.name
    }

    /// The elements given up on after too many deliveries.
    pub(crate) fn dead_letters(&self) -> io::Result<Vec<Vec<u8>>> {
        let raw: Vec<Vec<u8>> = self.pool.run(|c| {
            redis::cmd("LRANGE")
                .arg(&self.keys.dead)
                .arg(0)
                .arg(-1)
                .query(c)
        })?;
        Ok(raw
            .iter()
            .filter_map(|e| payload(e).ok().map(<[u8]>::to_vec))
            .collect())
    }
}

impl Drop for RedisQueue {
    fn drop(&mut self) {
        let Some(c) = self
            .consumer
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return;
        };
        c.stop_heartbeat();
        // Best effort: complete what this handle took, hand back anything
        // else in its processing list, and deregister. If the server is
        // unreachable the others take the elements back after the lease.
        if !self.pool.healthy() {
            return;
        }
        let prev = self.take_pending();
        if !prev.is_empty() {
            let _ = self.take(c.proc(), 0, false, &prev);
        }
        let _ = c.leave(&self.pool, &self.keys, self.max_deliveries);
    }
}
