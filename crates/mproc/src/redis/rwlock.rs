//! The readers-writer lock on Redis: leases with random tokens.
//!
//! ## Keys (all under the hash tag `{PREFIX:NAME}`)
//! ```text
//! :meta      hash    kind=rwlock
//! :writer    string  the writer's token, with a PX lease: held by the writer,
//!                    and by a writer waiting for the readers to leave
//! :wheld     string  the last granted writer's token, without expiry; still
//!                    there at the next grant means that writer never
//!                    released (OwnerDied)
//! :winfo     hash    writer pid, since (ms)
//! :readers   zset    reader tokens, scored by when their lease runs out
//! :rinfo     hash    reader token → "pid:since_ms"
//! :wwait     zset    waiting writers "pid:since_ms:token", scored by expiry
//! :rwait     zset    waiting readers, likewise
//! :wake      list    a token pushed at every release, wakes one waiter
//! ```
//! Every holding is renewed by a thread of its handle every lease/3; a
//! holder that dies stops renewing, and its lease runs out. Writers are
//! preferred: a writer that finds readers keeps `:writer` (renewed while it
//! waits), and new readers wait behind it.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, UNIX_EPOCH};

use redis::Script;

use super::keys::{kind_of, token};
use super::pool::Pool;
use super::time::{block_secs, ms, now_ms};
use super::Remote;
use crate::backend::{Acquired, Holder, Reader, RwLockBackend, Waiter};
use crate::error::{CreateError, OpenError};
use crate::name::validate_name;
use crate::object::ObjectKind;

/// Longest wait of a blocked acquirer before it tries again.
const WAIT_SLICE: Duration = Duration::from_millis(100);

// KEYS meta → 'created' or the existing kind
script!(
    create_script,
    r"
local k = redis.call('HGET', KEYS[1], 'kind')
if k then return k end
redis.call('HSET', KEYS[1], 'kind', 'rwlock')
return 'created'
"
);

// Shared prologue: the time, and expired readers and waiters dropped.
const PROLOGUE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now)
for _, d in ipairs(dead) do redis.call('HDEL', KEYS[5], d) end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', now)
";

// KEYS meta writer wheld readers rinfo winfo wwait rwait
// ARGV token lease_ms pid waiter wait_ms
// → {1, previous writer's token or ''} granted, {0, pttl} busy, {-2, 0} gone
fn write_script() -> &'static Script {
    static S: OnceLock<Script> = OnceLock::new();
    S.get_or_init(|| {
        Script::new(&format!(
            r"
if redis.call('HGET', KEYS[1], 'kind') ~= 'rwlock' then return {{-2, 0}} end
{PROLOGUE}
local w = redis.call('GET', KEYS[2])
if (not w) or w == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  if redis.call('ZCARD', KEYS[4]) == 0 then
    local prev = redis.call('GET', KEYS[3]) or ''
    if prev == ARGV[1] then prev = '' end
    redis.call('SET', KEYS[3], ARGV[1])
    redis.call('DEL', KEYS[6])
    redis.call('HSET', KEYS[6], 'pid', ARGV[3], 'since', now)
    redis.call('ZREM', KEYS[7], ARGV[4])
    return {{1, prev}}
  end
end
if tonumber(ARGV[5]) > 0 then
  redis.call('ZADD', KEYS[7], now + tonumber(ARGV[5]), ARGV[4])
end
return {{0, redis.call('PTTL', KEYS[2])}}
"
        ))
    })
}

// KEYS as write_script   ARGV token lease_ms pid waiter wait_ms
// → {1, previous writer's token or ''} granted, {0, 0} busy, {-2, 0} gone
fn read_script() -> &'static Script {
    static S: OnceLock<Script> = OnceLock::new();
    S.get_or_init(|| {
        Script::new(&format!(
            r"
if redis.call('HGET', KEYS[1], 'kind') ~= 'rwlock' then return {{-2, 0}} end
{PROLOGUE}
if redis.call('EXISTS', KEYS[2]) == 1 then
  if tonumber(ARGV[5]) > 0 then
    redis.call('ZADD', KEYS[8], now + tonumber(ARGV[5]), ARGV[4])
  end
  return {{0, 0}}
end
local prev = redis.call('GET', KEYS[3]) or ''
redis.call('DEL', KEYS[3], KEYS[6])
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[2]), ARGV[1])
redis.call('HSET', KEYS[5], ARGV[1], ARGV[3] .. ':' .. now)
redis.call('ZREM', KEYS[8], ARGV[4])
return {{1, prev}}
"
        ))
    })
}

// KEYS writer wheld winfo wake   ARGV token → 1 released, 0 not held
script!(
    write_release_script,
    r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[3], KEYS[4])
  if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
  redis.call('RPUSH', KEYS[4], '1')
  return 1
end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2], KEYS[3]) end
return 0
"
);

// KEYS readers rinfo wake   ARGV token
script!(
    read_release_script,
    r"
local n = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
redis.call('RPUSH', KEYS[3], '1')
return n
"
);

// KEYS writer readers   ARGV lease_ms writer_token reader_tokens...
// → how many holdings were still there and renewed
script!(
    renew_script,
    r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = 0
if ARGV[2] ~= '' and redis.call('GET', KEYS[1]) == ARGV[2] then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  n = n + 1
end
for i = 3, #ARGV do
  if redis.call('ZSCORE', KEYS[2], ARGV[i]) then
    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[1]), ARGV[i])
    n = n + 1
  end
end
return n
"
);

/// The key names of one lock.
#[derive(Debug)]
struct Keys {
    meta: String,
    writer: String,
    wheld: String,
    readers: String,
    rinfo: String,
    winfo: String,
    wwait: String,
    rwait: String,
    wake: String,
}

impl Keys {
    fn new(tag: &str) -> Keys {
        let k = |s: &str| format!("{tag}:{s}");
        Keys {
            meta: k("meta"),
            writer: k("writer"),
            wheld: k("wheld"),
            readers: k("readers"),
            rinfo: k("rinfo"),
            winfo: k("winfo"),
            wwait: k("wwait"),
            rwait: k("rwait"),
            wake: k("wake"),
        }
    }
}

/// The holdings of one handle, renewed by its thread.
#[derive(Debug, Default)]
struct State {
    /// The writer token held (or held while waiting for readers).
    writer: Option<String>,
    /// Read shares: id → token.
    readers: HashMap<usize, String>,
    next_id: usize,
    renewer: bool,
    stop: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    cv: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A readers-writer lock on a Redis server.
pub(crate) struct RedisRwLock {
    name: String,
    url: String,
    pool: Arc<Pool>,
    keys: Arc<Keys>,
    lease: Duration,
    shared: Arc<Shared>,
}

impl fmt::Debug for RedisRwLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRwLock")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl RedisRwLock {
    /// Creates lock `name`; fails if an object of that name exists.
    pub(crate) fn create(remote: &Remote, name: &str) -> Result<RedisRwLock, CreateError> {
        validate_name(name)?;
        let io_err = |source| CreateError::Io {
            name: name.to_owned(),
            source,
        };
        let pool = remote.pool().map_err(io_err)?;
        let keys = Keys::new(&remote.tag(name));
        let r: String = pool
            .run(|c| create_script().key(&keys.meta).invoke(c))
            .map_err(io_err)?;
        if r != "created" {
            return Err(CreateError::AlreadyExists {
                name: name.to_owned(),
                dir: remote.display(),
            });
        }
        Ok(RedisRwLock::with(remote, name, pool, keys))
    }

    /// Opens the existing lock `name`.
    pub(crate) fn open(remote: &Remote, name: &str) -> Result<RedisRwLock, OpenError> {
        validate_name(name)?;
        let io_err = |source| OpenError::Io {
            name: name.to_owned(),
            source,
        };
        let pool = remote.pool().map_err(io_err)?;
        let keys = Keys::new(&remote.tag(name));
        let kind: Option<String> = pool
            .run(|c| redis::cmd("HGET").arg(&keys.meta).arg("kind").query(c))
            .map_err(io_err)?;
        match kind.as_deref() {
            Some("rwlock") => Ok(RedisRwLock::with(remote, name, pool, keys)),
            None => Err(OpenError::NotFound {
                kind: ObjectKind::RwLock,
                name: name.to_owned(),
                dir: remote.display(),
            }),
            Some(other) => Err(match kind_of(other) {
                Some(found) => OpenError::WrongKind {
                    name: name.to_owned(),
                    expected: ObjectKind::RwLock,
                    found,
                },
                None => OpenError::Damaged {
                    name: name.to_owned(),
                    reason: format!("unknown kind {other:?}"),
                },
            }),
        }
    }

    fn with(remote: &Remote, name: &str, pool: Arc<Pool>, keys: Keys) -> RedisRwLock {
        RedisRwLock {
            name: name.to_owned(),
            url: remote.url().to_owned(),
            pool,
            keys: Arc::new(keys),
            lease: remote.lease,
            shared: Arc::new(Shared::default()),
        }
    }

    /// The namespace URL (with its password, for handing to children).
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The lock's name.
    pub(crate) fn object_name(&self) -> &str {
        &self.name
    }

    /// Starts the renewal thread of this handle, once.
    fn start_renewer(&self) -> io::Result<()> {
        let mut st = self.shared.lock();
        if st.renewer {
            return Ok(());
        }
        let (shared, pool, keys, lease) = (
            Arc::clone(&self.shared),
            Arc::clone(&self.pool),
            Arc::clone(&self.keys),
            self.lease,
        );
        thread::Builder::new()
            .name("mproc-redis-rw".into())
            .spawn(move || renew(&shared, &pool, &keys, lease))?;
        st.renewer = true;
        Ok(())
    }

    /// One script run of `script` (read or write) for `token`.
    fn attempt(
        &self,
        script: &Script,
        token: &str,
        waiter: &str,
        wait_ms: u64,
    ) -> io::Result<(i64, redis::Value)> {
        self.pool.run(|c| {
            script
                .key(&self.keys.meta)
                .key(&self.keys.writer)
                .key(&self.keys.wheld)
                .key(&self.keys.readers)
                .key(&self.keys.rinfo)
                .key(&self.keys.winfo)
                .key(&self.keys.wwait)
                .key(&self.keys.rwait)
                .arg(token)
                .arg(ms(self.lease))
                .arg(std::process::id())
                .arg(waiter)
                .arg(wait_ms)
                .invoke(c)
        })
    }

    /// Runs `script` until granted, `try_only` or `deadline` says stop.
    /// `Ok(Some(previous writer token))` when granted.
    fn acquire(
        &self,
        write: bool,
        token: &str,
        try_only: bool,
        deadline: Option<Instant>,
    ) -> io::Result<Option<String>> {
        let script = if write { write_script() } else { read_script() };
        let waiter = format!("{}:{}:{token}", std::process::id(), now_ms());
        let wait_ms = if try_only { 0 } else { ms(WAIT_SLICE * 3) };
        if write {
            // A writer waiting for readers keeps its token renewed.
            self.start_renewer()?;
        }
        let result = loop {
            let (code, v) = self.attempt(script, token, &waiter, wait_ms)?;
            match code {
                1 => {
                    let prev: String = redis::from_redis_value(v).unwrap_or_default();
                    break Ok(Some(prev));
                }
                0 => {
                    if write {
                        // Holding `:writer` while readers leave: renewed.
                        self.shared.lock().writer = Some(token.to_owned());
                    }
                    if try_only {
                        break Ok(None);
                    }
                    let mut slice = WAIT_SLICE;
                    if let Some(d) = deadline {
                        match d.checked_duration_since(Instant::now()) {
                            Some(left) if !left.is_zero() => slice = slice.min(left),
                            _ => break Ok(None),
                        }
                    }
                    let r: io::Result<Option<(String, String)>> =
                        self.pool.run_blocking(Some(slice), |c| {
                            redis::cmd("BLPOP")
                                .arg(&self.keys.wake)
                                .arg(block_secs(slice))
                                .query(c)
                        });
                    if let Err(e) = r {
                        break Err(e);
                    }
                }
                _ => {
                    break Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!(
                        "lock '{}' no longer exists on the server (removed, or lost in a restart)",
                        self.name
                    ),
                    ))
                }
            }
        };
        let waits = if write {
            &self.keys.wwait
        } else {
            &self.keys.rwait
        };
        let _ = self
            .pool
            .run(|c| redis::cmd("ZREM").arg(waits).arg(&waiter).exec(c));
        if write && !matches!(result, Ok(Some(_))) {
            // Give up the place taken while readers left.
            self.shared.lock().writer = None;
            self.release_writer(token);
        }
        result
    }

    fn release_writer(&self, token: &str) {
        let _ = self.pool.run(|c| {
            write_release_script()
                .key(&self.keys.writer)
                .key(&self.keys.wheld)
                .key(&self.keys.winfo)
                .key(&self.keys.wake)
                .arg(token)
                .invoke::<i64>(c)
        });
    }

    pub(crate) fn read(
        &self,
        try_only: bool,
        deadline: Option<Instant>,
    ) -> io::Result<Option<(Acquired, usize)>> {
        let token = token();
        self.start_renewer()?;
        let Some(prev) = self.acquire(false, &token, try_only, deadline)? else {
            return Ok(None);
        };
        let mut st = self.shared.lock();
        let id = st.next_id;
        st.next_id += 1;
        st.readers.insert(id, token);
        Ok(Some((how(&prev), id)))
    }

    pub(crate) fn read_release(&self, id: usize) {
        let Some(token) = self.shared.lock().readers.remove(&id) else {
            return;
        };
        let _ = self.pool.run(|c| {
            read_release_script()
                .key(&self.keys.readers)
                .key(&self.keys.rinfo)
                .key(&self.keys.wake)
                .arg(&token)
                .invoke::<i64>(c)
        });
    }

    pub(crate) fn write(
        &self,
        try_only: bool,
        deadline: Option<Instant>,
    ) -> io::Result<Option<Acquired>> {
        let token = token();
        let Some(prev) = self.acquire(true, &token, try_only, deadline)? else {
            return Ok(None);
        };
        self.shared.lock().writer = Some(token);
        Ok(Some(how(&prev)))
    }

    pub(crate) fn write_release(&self) {
        let Some(token) = self.shared.lock().writer.take() else {
            return;
        };
        self.release_writer(&token);
    }

    pub(crate) fn writer(&self) -> Option<Holder> {
        let (pid, since, held): (Option<u32>, Option<u64>, Option<String>) = self
            .pool
            .run(|c| {
                redis::pipe()
                    .cmd("HGET")
                    .arg(&self.keys.winfo)
                    .arg("pid")
                    .cmd("HGET")
                    .arg(&self.keys.winfo)
                    .arg("since")
                    .cmd("GET")
                    .arg(&self.keys.writer)
                    .query(c)
            })
            .ok()?;
        held?;
        Some(Holder {
            pid: pid?,
            since: since.map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
            tag: None,
        })
    }

    pub(crate) fn readers(&self) -> Vec<Reader> {
        let r: io::Result<Vec<Reader>> = self.pool.run(|c| {
            let tokens: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                .arg(&self.keys.readers)
                .arg(now_ms())
                .arg("+inf")
                .query(c)?;
            if tokens.is_empty() {
                return Ok(Vec::new());
            }
            let infos: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(&self.keys.rinfo)
                .arg(&tokens)
                .query(c)?;
            Ok(infos
                .into_iter()
                .flatten()
                .filter_map(|i| {
                    let (pid, since) = i.split_once(':')?;
                    Some(Reader {
                        pid: pid.parse().ok()?,
                        since: UNIX_EPOCH + Duration::from_millis(since.parse().ok()?),
                    })
                })
                .collect())
        });
        r.unwrap_or_default()
    }

    fn waiting(&self, key: &str) -> Vec<Waiter> {
        let members: Vec<String> = self
            .pool
            .run(|c| {
                redis::cmd("ZRANGEBYSCORE")
                    .arg(key)
                    .arg(now_ms())
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

    pub(crate) fn waiting_writers(&self) -> Vec<Waiter> {
        self.waiting(&self.keys.wwait)
    }

    pub(crate) fn waiting_readers(&self) -> u32 {
        self.waiting(&self.keys.rwait).len() as u32
    }

    pub(crate) fn force_release(&self) -> io::Result<()> {
        self.pool.run(|c| {
            redis::cmd("DEL")
                .arg(&self.keys.writer)
                .arg(&self.keys.wheld)
                .arg(&self.keys.winfo)
                .query::<()>(c)
        })
    }
}

/// How a grant went: a previous writer that never released died (or its
/// lease ran out).
fn how(prev: &str) -> Acquired {
    if prev.is_empty() {
        Acquired::Clean
    } else {
        Acquired::OwnerDied
    }
}

/// The renewal thread: every lease/3, renews every holding of the handle.
fn renew(shared: &Shared, pool: &Pool, keys: &Keys, lease: Duration) {
    let every = lease / 3;
    let mut st = shared.lock();
    loop {
        if st.stop {
            return;
        }
        st = shared
            .cv
            .wait_timeout(st, every)
            .unwrap_or_else(|p| p.into_inner())
            .0;
        if st.stop {
            return;
        }
        let writer = st.writer.clone().unwrap_or_default();
        let readers: Vec<String> = st.readers.values().cloned().collect();
        if writer.is_empty() && readers.is_empty() {
            continue;
        }
        drop(st);
        let _ = pool.run(|c| {
            renew_script()
                .key(&keys.writer)
                .key(&keys.readers)
                .arg(ms(lease))
                .arg(&writer)
                .arg(&readers)
                .invoke::<i64>(c)
        });
        st = shared.lock();
    }
}

impl Drop for RedisRwLock {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.cv.notify_all();
    }
}

// SAFETY: the server's scripts grant the write key to one token at a time
// and only while no reader token is live, and read tokens only while no
// writer holds or waits (leases expire with a dead holder).
unsafe impl RwLockBackend for RedisRwLock {
    fn name(&self) -> Option<&str> {
        Some(self.object_name())
    }

    fn read(
        &self,
        try_only: bool,
        deadline: Option<Instant>,
    ) -> io::Result<Option<(Acquired, usize)>> {
        RedisRwLock::read(self, try_only, deadline)
    }

    unsafe fn read_release(&self, slot: usize) {
        RedisRwLock::read_release(self, slot);
    }

    fn write(&self, try_only: bool, deadline: Option<Instant>) -> io::Result<Option<Acquired>> {
        RedisRwLock::write(self, try_only, deadline)
    }

    unsafe fn write_release(&self) {
        RedisRwLock::write_release(self);
    }

    fn writer(&self) -> Option<Holder> {
        RedisRwLock::writer(self)
    }

    fn readers(&self) -> Vec<Reader> {
        RedisRwLock::readers(self)
    }

    fn waiting_writers(&self) -> Vec<Waiter> {
        RedisRwLock::waiting_writers(self)
    }

    fn waiting_readers(&self) -> u32 {
        RedisRwLock::waiting_readers(self)
    }

    fn force_release(&self) -> io::Result<()> {
        RedisRwLock::force_release(self)
    }
}
