//! The lock on Redis: a lease with a random token and a fencing counter.
//!
//! ## Keys (all under the hash tag `{PREFIX:NAME}`)
//! ```text
//! :meta      hash    kind=lock
//! :owner     string  the holder's random token, with a PX lease
//! :fence     counter incremented at every grant, never reset: the fencing token
//! :held      string  the holder's token without expiry; still there at the next
//!                    grant means the previous holder never released (OwnerDied)
//! :info      hash    holder pid, since (ms), tag; expires with the lease
//! :wake      list    ≤ 1 token pushed at release, wakes one waiter
//! :waiters   zset    waiting processes, scored by when their entry expires
//! :cell:<c>  string  integers written only under the lock ("fenced writes")
//! ```
//! Release, renewal and fenced writes are scripts that first compare the
//! owner token, so a holder whose lease expired can neither release nor
//! renew another's holding, and its fenced writes are refused.
//!
//! ## Rooms
//! * `mod`    — [`RedisLock`]: its keys, create and open, and the raw lock
//!   (`LockBackend`): acquire, release, holder, waiters.
//! * `lease`  — the holding's lease: its state, the renewal and watch
//!   threads, loss callbacks, and `Lease` for [`RedisLock`].
//! * `fence`  — the fencing token and fenced writes to cells.
//! * `holder` — holder tokens that tell the next holder whether the previous
//!   one died or only lost its lease.

mod fence;
mod holder;
mod lease;

use std::fmt;
use std::io;
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant, UNIX_EPOCH};

use redis::Script;

use self::holder::{holder_token, previous_holder, Previous};
use self::lease::{Holding, Shared};
use super::keys::{check_kind, create_io, lock_gone, open_io};
use super::pool::Pool;
use super::time::{ms, now_ms};
use super::Remote;
use crate::backend::{Acquired, Holder, LockBackend, Waiter, TAG_MAX};
use crate::error::{CreateError, OpenError};
use crate::name::validate_name;
use crate::object::ObjectKind;
use crate::wait::Wait;

/// Longest wait of a blocked acquirer before it tries again.
const WAIT_SLICE: Duration = Duration::from_millis(100);

// KEYS meta → 'created' or the existing kind
script!(
    create_script,
    r"
local k = redis.call('HGET', KEYS[1], 'kind')
if k then return k end
redis.call('HSET', KEYS[1], 'kind', 'lock')
return 'created'
"
);

// KEYS meta owner fence info held waiters
// ARGV token lease_ms pid waiter wait_ms
// → {1, fence, previous holder's token or ''} acquired, {0, pttl, ''} busy,
// {-2, 0, ''} gone. A previous token still in `held` means its holder never
// released: it died, or its lease ran out.
script!(
    acquire_script,
    r"
if redis.call('HGET', KEYS[1], 'kind') ~= 'lock' then return {-2, 0, ''} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local f = redis.call('INCR', KEYS[3])
  redis.call('DEL', KEYS[4])
  redis.call('HSET', KEYS[4], 'pid', ARGV[3], 'since', now)
  redis.call('PEXPIRE', KEYS[4], ARGV[2])
  local prev = redis.call('GET', KEYS[5]) or ''
  redis.call('SET', KEYS[5], ARGV[1])
  redis.call('ZREM', KEYS[6], ARGV[4])
  return {1, f, prev}
end
if tonumber(ARGV[5]) > 0 then
  redis.call('ZADD', KEYS[6], now + tonumber(ARGV[5]), ARGV[4])
end
redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now)
return {0, redis.call('PTTL', KEYS[2]), ''}
"
);

// KEYS owner wake info held   ARGV token → 1 released, 0 the lease was lost
script!(
    release_script,
    r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[3], KEYS[4], KEYS[2])
  redis.call('RPUSH', KEYS[2], '1')
  return 1
end
if redis.call('GET', KEYS[4]) == ARGV[1] then
  redis.call('DEL', KEYS[4], KEYS[2])
  redis.call('RPUSH', KEYS[2], '1')
end
return 0
"
);

// KEYS owner info   ARGV token tag
script!(
    tag_script,
    r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('HSET', KEYS[2], 'tag', ARGV[2])
  return 1
end
return 0
"
);

/// The key names of one lock.
#[derive(Debug)]
struct Keys {
    tag: String,
    meta: String,
    owner: String,
    fence: String,
    info: String,
    held: String,
    wake: String,
    waiters: String,
}

impl Keys {
    fn new(tag: String) -> Keys {
        let k = |s: &str| format!("{tag}:{s}");
        Keys {
            meta: k("meta"),
            owner: k("owner"),
            fence: k("fence"),
            info: k("info"),
            held: k("held"),
            wake: k("wake"),
            waiters: k("waiters"),
            tag,
        }
    }

    fn cell(&self, name: &str) -> String {
        format!("{}:cell:{name}", self.tag)
    }
}

/// A lock on a Redis server.
pub(crate) struct RedisLock {
    name: String,
    url: String,
    pool: Arc<Pool>,
    keys: Arc<Keys>,
    lease: Duration,
    shared: Arc<Shared>,
}

impl fmt::Debug for RedisLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLock")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl RedisLock {
    /// Creates lock `name`; fails if an object of that name exists.
    pub(crate) fn create(remote: &Remote, name: &str) -> Result<RedisLock, CreateError> {
        validate_name(name)?;
        let io_err = create_io(name);
        let pool = remote.pool().map_err(io_err)?;
        let keys = Keys::new(remote.tag(name));
        let r: String = pool
            .run(|c| create_script().key(&keys.meta).invoke(c))
            .map_err(io_err)?;
        if r != "created" {
            return Err(CreateError::AlreadyExists {
                name: name.to_owned(),
                dir: remote.display(),
            });
        }
        Ok(RedisLock::with(remote, name, pool, keys))
    }

    /// Opens the existing lock `name`.
    pub(crate) fn open(remote: &Remote, name: &str) -> Result<RedisLock, OpenError> {
        validate_name(name)?;
        let io_err = open_io(name);
        let pool = remote.pool().map_err(io_err)?;
        let keys = Keys::new(remote.tag(name));
        let kind: Option<String> = pool
            .run(|c| redis::cmd("HGET").arg(&keys.meta).arg("kind").query(c))
            .map_err(io_err)?;
        check_kind(remote, name, kind.as_deref(), ObjectKind::Lock)?;
        Ok(RedisLock::with(remote, name, pool, keys))
    }

    fn with(remote: &Remote, name: &str, pool: Arc<Pool>, keys: Keys) -> RedisLock {
        RedisLock {
            name: name.to_owned(),
            url: remote.url().to_owned(),
            pool,
            keys: Arc::new(keys),
            lease: remote.lease,
            shared: Arc::new(Shared::default()),
        }
    }

    /// Whether the last grant followed a holder whose lease ran out while
    /// its process was (or may have been) alive.
    pub(crate) fn took_expired(&self) -> bool {
        self.shared.lock().took_expired
    }

    /// The namespace URL (with its password, for handing to children).
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The lock's name.
    pub(crate) fn object_name(&self) -> &str {
        &self.name
    }

    fn current_token(&self) -> Option<String> {
        self.shared.lock().holding.as_ref().map(|h| h.token.clone())
    }
}

impl Drop for RedisLock {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.cv.notify_all();
    }
}

// SAFETY: the server grants the lock key to one token at a time (`SET NX`
// with a lease; every holder's operation checks its token).
unsafe impl LockBackend for RedisLock {
    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }

    fn took_expired_lease(&self) -> bool {
        self.took_expired()
    }

    fn acquire(&self, wait: Wait) -> io::Result<Option<Acquired>> {
        let token = holder_token();
        let waiter = format!("{}:{}:{token}", std::process::id(), now_ms());
        let wait_ms = if wait.is_now() { 0 } else { ms(WAIT_SLICE * 3) };
        let result = loop {
            let sent = Instant::now();
            let r: (i64, i64, String) = self.pool.run(|c| {
                acquire_script()
                    .key(&self.keys.meta)
                    .key(&self.keys.owner)
                    .key(&self.keys.fence)
                    .key(&self.keys.info)
                    .key(&self.keys.held)
                    .key(&self.keys.waiters)
                    .arg(&token)
                    .arg(ms(self.lease))
                    .arg(std::process::id())
                    .arg(&waiter)
                    .arg(wait_ms)
                    .invoke(c)
            })?;
            match r {
                (1, fence, prev) => {
                    self.start_renewer()?;
                    let previous = previous_holder(&prev);
                    let mut st = self.shared.lock();
                    st.holding = Some(Holding {
                        token: token.clone(),
                        fence: u64::try_from(fence).unwrap_or(0),
                        lost: false,
                        valid_until: sent + self.lease,
                        next: sent + self.lease / 3,
                    });
                    st.on_lost.clear();
                    st.took_expired = previous == Previous::Expired;
                    drop(st);
                    self.shared.cv.notify_all();
                    return Ok(Some(if previous == Previous::Released {
                        Acquired::Clean
                    } else {
                        Acquired::OwnerDied
                    }));
                }
                (0, pttl, _) => {
                    if wait.is_now() {
                        return Ok(None);
                    }
                    let mut slice = WAIT_SLICE;
                    if pttl > 0 {
                        slice = slice.min(Duration::from_millis(pttl as u64 + 1));
                    }
                    match self.pool.wait_wake(&self.keys.wake, slice, wait) {
                        Ok(true) => {}
                        Ok(false) => break Ok(None),
                        Err(e) => break Err(e),
                    }
                }
                _ => break Err(lock_gone(&self.name)),
            }
        };
        // Leave the waiter list (best effort: entries also expire).
        let _ = self.pool.run(|c| {
            redis::cmd("ZREM")
                .arg(&self.keys.waiters)
                .arg(&waiter)
                .exec(c)
        });
        result
    }

    unsafe fn release(&self) {
        let mut st = self.shared.lock();
        st.on_lost.clear();
        let Some(h) = st.holding.take() else {
            return;
        };
        drop(st);
        self.shared.cv.notify_all();
        // A failure leaves the lease to expire on the server. A holding
        // lost, or whose renewals have been failing, keeps trying for one
        // lease: clearing its mark tells the next holder that no holder
        // died (see `previous_holder`).
        let now = Instant::now();
        let failing = h.lost || now + self.lease / 3 >= h.valid_until;
        let give_up = now + if failing { self.lease } else { Duration::ZERO };
        loop {
            let r = self.pool.run(|c| {
                release_script()
                    .key(&self.keys.owner)
                    .key(&self.keys.wake)
                    .key(&self.keys.info)
                    .key(&self.keys.held)
                    .arg(&h.token)
                    .invoke::<i64>(c)
            });
            if r.is_ok() || Instant::now() >= give_up {
                return;
            }
            thread::sleep(WAIT_SLICE);
        }
    }

    fn set_tag(&self, tag: &str) {
        let Some(token) = self.current_token() else {
            return;
        };
        let mut end = tag.len().min(TAG_MAX);
        while !tag.is_char_boundary(end) {
            end -= 1;
        }
        let _ = self.pool.run(|c| {
            tag_script()
                .key(&self.keys.owner)
                .key(&self.keys.info)
                .arg(&token)
                .arg(&tag[..end])
                .invoke::<i64>(c)
        });
    }

    fn is_locked(&self) -> bool {
        self.pool
            .run(|c| redis::cmd("EXISTS").arg(&self.keys.owner).query::<bool>(c))
            .unwrap_or(false)
    }

    fn holder(&self) -> Option<Holder> {
        let (owner, pid, since, tag): (Option<String>, Option<u32>, Option<u64>, Option<String>) =
            self.pool
                .run(|c| {
                    redis::pipe()
                        .cmd("GET")
                        .arg(&self.keys.owner)
                        .cmd("HGET")
                        .arg(&self.keys.info)
                        .arg("pid")
                        .cmd("HGET")
                        .arg(&self.keys.info)
                        .arg("since")
                        .cmd("HGET")
                        .arg(&self.keys.info)
                        .arg("tag")
                        .query(c)
                })
                .ok()?;
        owner?;
        Some(Holder {
            pid: pid.unwrap_or(0),
            since: since.map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
            tag: tag.filter(|t| !t.is_empty()),
        })
    }

    fn force_release(&self) -> io::Result<()> {
        self.pool
            .run(|c| {
                redis::cmd("DEL")
                    .arg(&self.keys.owner)
                    .arg(&self.keys.info)
                    .arg(&self.keys.held)
                    .query::<()>(c)
            })
            .map_err(|e| io::Error::other(e.to_string()))
    }

    fn waiters(&self) -> Vec<Waiter> {
        let now_ms = now_ms();
        let members: Vec<String> = self
            .pool
            .run(|c| {
                redis::cmd("ZRANGEBYSCORE")
                    .arg(&self.keys.waiters)
                    .arg(now_ms)
                    .arg("+inf")
                    .query(c)
            })
            .unwrap_or_default();
        members
            .iter()
            .filter_map(|m| {
                let mut it = m.splitn(3, ':');
                let pid = it.next()?.parse().ok()?;
                let since: u64 = it.next()?.parse().ok()?;
                Some(Waiter {
                    pid,
                    since: UNIX_EPOCH + Duration::from_millis(since),
                })
            })
            .collect()
    }
}
