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

mod consumers;

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use redis::Script;

use self::consumers::{sweep, Consumer};
use super::keys::kind_of;
use super::pool::Pool;
use super::time::{block_secs, MAX_SLICE};
use super::Remote;
use crate::backend::{Counters, Limits, OpError, QueueBackend, QueueParams, Receipt, ReceiptToken};
use crate::error::{CreateError, OpenError};
use crate::name::validate_name;
use crate::object::ObjectKind;

/// Messages per put script call.
const PUT_BATCH: usize = 512;
/// Longest wait of a blocked producer before it checks for room again.
const PUT_SLICE: Duration = Duration::from_millis(100);

/// The end-of-stream marker.
const EOF: &[u8] = b"E";

// The scripts, one file each under `lua/queue/`; the head of each file says
// what its KEYS and ARGV hold and what it returns.

// Creates the queue unless an object of its name exists.
script!(create_script, include_str!("lua/queue/create.lua"));
// Puts a batch of messages, as many as there is room for.
script!(put_script, include_str!("lua/queue/put.lua"));
// Completes a consumer's previous elements and takes more without blocking.
script!(take_script, include_str!("lua/queue/take.lua"));
// A producer stops waiting for room.
script!(
    unregister_script,
    include_str!("lua/queue/unregister_putter.lua")
);
// Puts back the end marker a blocking take moved.
script!(
    restore_eof_script,
    include_str!("lua/queue/restore_eof.lua")
);
// Completes one element (`JoinableQueue::task_done`).
script!(task_done_script, include_str!("lua/queue/task_done.lua"));
// Closes the queue: appends the end marker and wakes producers.
script!(close_script, include_str!("lua/queue/close.lua"));
// Discards the ready messages.
script!(purge_script, include_str!("lua/queue/purge.lua"));
// Messages in the queue.
script!(len_script, include_str!("lua/queue/len.lua"));
// The queue's counters, in one round trip.
script!(counters_script, include_str!("lua/queue/counters.lua"));
// Acknowledges or gives back one leased element.
script!(settle_script, include_str!("lua/queue/settle.lua"));

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

fn create_io(name: &str) -> impl Fn(io::Error) -> CreateError + '_ {
    move |source| CreateError::Io {
        name: name.to_owned(),
        source,
    }
}

fn open_io(name: &str) -> impl Fn(io::Error) -> OpenError + '_ {
    move |source| OpenError::Io {
        name: name.to_owned(),
        source,
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
        match kind.as_deref() {
            None => {
                return Err(OpenError::NotFound {
                    kind: ObjectKind::Queue,
                    name: name.to_owned(),
                    dir: remote.display(),
                })
            }
            Some("queue") => {}
            Some(other) => {
                return Err(match kind_of(other) {
                    Some(found) => OpenError::WrongKind {
                        name: name.to_owned(),
                        expected: ObjectKind::Queue,
                        found,
                    },
                    None => OpenError::Damaged {
                        name: name.to_owned(),
                        reason: format!("unknown kind {other:?}"),
                    },
                })
            }
        }
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

    /// Runs the take script: completes `prev`, takes up to `max`.
    fn take(
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
    fn deliver(
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

    fn take_pending(&self) -> VecDeque<Vec<u8>> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn restore_pending(&self, prev: VecDeque<Vec<u8>>) {
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let newer = std::mem::replace(&mut *p, prev);
        p.extend(newer);
    }

    /// Takes up to `max` elements into this handle's processing list,
    /// first completing its previous ones when `complete`; waits for the
    /// first unless `try_only`. Returns the processing list and the elements.
    fn take_elems(
        &self,
        max: usize,
        try_only: bool,
        deadline: Option<Instant>,
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
        if try_only {
            return Err(OpError::WouldBlock);
        }
        loop {
            let slice = match deadline {
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

    /// Leaves the count of waiting producers (after giving up waiting).
    fn unregister_putter(&self) {
        let _ = self
            .pool
            .run(|c| unregister_script().key(&self.keys.putters).invoke::<i64>(c));
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

    fn put(
        &self,
        msgs: &[&[u8]],
        try_only: bool,
        deadline: Option<Instant>,
    ) -> (usize, Result<(), OpError>) {
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
                    .arg(u8::from(!try_only));
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
            if try_only {
                return (done, Err(OpError::WouldBlock));
            }
            let slice = match deadline {
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
        try_only: bool,
        deadline: Option<Instant>,
        sink: &mut dyn FnMut(&[u8]),
        scratch: &mut Vec<u8>,
    ) -> Result<usize, OpError> {
        let (_, elems) = self.take_elems(max, try_only, deadline, true)?;
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

    fn get_leased(
        &self,
        try_only: bool,
        deadline: Option<Instant>,
        out: &mut Vec<u8>,
    ) -> Result<Receipt, OpError> {
        let (proc, mut elems) = self.take_elems(1, try_only, deadline, false)?;
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
