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
use crate::backend::{Acquired, Holder, LockBackend, Waiter};
use crate::backend::{FenceFail, Lease, TAG_MAX};
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

// KEYS owner info   ARGV token lease_ms → 1 renewed, 0 lost
script!(
    extend_script,
    r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  return 1
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

// KEYS owner cell   ARGV token delta floor set(0/1)
// → {-1} lease lost, {0, current} would go below floor, {1, new}
script!(
    fenced_script,
    r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {-1} end
local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
local new = cur + tonumber(ARGV[2])
if ARGV[4] == '1' then new = tonumber(ARGV[2]) end
if ARGV[4] ~= '1' and new < tonumber(ARGV[3]) then return {0, cur} end
redis.call('SET', KEYS[2], new)
return {1, new}
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

/// The current holding through this handle.
#[derive(Debug)]
struct Holding {
    token: String,
    fence: u64,
    lost: bool,
    /// When the lease would run out on the server: the sending of the last
    /// grant or renewal that succeeded plus the lease, by this process's
    /// monotonic clock (the server started its lease later, so this errs
    /// early). Once lost: when the loss was noticed, if earlier.
    valid_until: Instant,
    /// When to renew next.
    next: Instant,
}

/// A callback run once when the holding's lease is lost.
type OnLost = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct State {
    holding: Option<Holding>,
    /// Callbacks of the current holding.
    on_lost: Vec<OnLost>,
    renewer: bool,
    stop: bool,
    /// Whether the last grant took the lock from a holder whose lease ran
    /// out while its process was (or may have been) alive, rather than
    /// from one that died.
    took_expired: bool,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("holding", &self.holding)
            .field("on_lost", &self.on_lost.len())
            .finish_non_exhaustive()
    }
}

impl State {
    /// Marks the holding lost (once) and returns the callbacks to run,
    /// after the state's mutex is released.
    fn lose(&mut self) -> Vec<OnLost> {
        match self.holding.as_mut() {
            Some(h) if !h.lost => {
                h.lost = true;
                h.valid_until = h.valid_until.min(Instant::now());
                std::mem::take(&mut self.on_lost)
            }
            _ => Vec::new(),
        }
    }
}

/// Runs loss callbacks.
fn run_all(cbs: Vec<OnLost>) {
    for cb in cbs {
        cb();
    }
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
        let io_err = |source| CreateError::Io {
            name: name.to_owned(),
            source,
        };
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
        let io_err = |source| OpenError::Io {
            name: name.to_owned(),
            source,
        };
        let pool = remote.pool().map_err(io_err)?;
        let keys = Keys::new(remote.tag(name));
        let kind: Option<String> = pool
            .run(|c| redis::cmd("HGET").arg(&keys.meta).arg("kind").query(c))
            .map_err(io_err)?;
        match kind.as_deref() {
            Some("lock") => Ok(RedisLock::with(remote, name, pool, keys)),
            None => Err(OpenError::NotFound {
                kind: ObjectKind::Lock,
                name: name.to_owned(),
                dir: remote.display(),
            }),
            Some(other) => Err(match kind_of(other) {
                Some(found) => OpenError::WrongKind {
                    name: name.to_owned(),
                    expected: ObjectKind::Lock,
                    found,
                },
                None => OpenError::Damaged {
                    name: name.to_owned(),
                    reason: format!("unknown kind {other:?}"),
                },
            }),
        }
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

    /// Starts the renewal and watch threads of this handle, once.
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
            .name("mproc-redis-renew".into())
            .spawn(move || renew(&shared, &pool, &keys, lease))?;
        let shared = Arc::clone(&self.shared);
        thread::Builder::new()
            .name("mproc-redis-lease".into())
            .spawn(move || watch(&shared))?;
        st.renewer = true;
        Ok(())
    }

    /// Until when the current holding's lease is valid by this process's
    /// clock (in the past once lost); `None` when nothing is held.
    pub(crate) fn lease_valid_until(&self) -> Option<Instant> {
        self.shared.lock().holding.as_ref().map(|h| h.valid_until)
    }

    /// Whether the current holding is valid now.
    pub(crate) fn lease_valid(&self) -> bool {
        self.shared
            .lock()
            .holding
            .as_ref()
            .is_some_and(|h| !h.lost && Instant::now() < h.valid_until)
    }

    /// Runs `f` once when the current holding's lease is lost (at once if
    /// it already was); never if it is released first.
    pub(crate) fn on_lease_lost(&self, f: OnLost) {
        let mut st = self.shared.lock();
        match st.holding.as_ref() {
            Some(h) if !h.lost => st.on_lost.push(f),
            Some(_) => {
                drop(st);
                f();
            }
            None => {}
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

    /// The fencing token of the current holding.
    pub(crate) fn fence(&self) -> Option<u64> {
        self.shared.lock().holding.as_ref().map(|h| h.fence)
    }

    /// Whether the current holding's lease was lost (asks the server).
    pub(crate) fn lease_lost(&self) -> io::Result<bool> {
        let Some(token) = self.current_token() else {
            return Ok(true);
        };
        let owner: Option<String> = self
            .pool
            .run(|c| redis::cmd("GET").arg(&self.keys.owner).query(c))?;
        let lost = owner.as_deref() != Some(token.as_str());
        if lost {
            let cbs = self.shared.lock().lose();
            run_all(cbs);
        }
        Ok(lost)
    }

    fn current_token(&self) -> Option<String> {
        self.shared.lock().holding.as_ref().map(|h| h.token.clone())
    }

    /// Adds `delta` to cell `cell` if this handle still holds the lease and
    /// the result is at least `floor` (`set`: stores `delta` instead).
    /// `Ok(Ok(new))`, or `Ok(Err(current))` when the floor refused it.
    pub(crate) fn fenced(
        &self,
        cell: &str,
        delta: i64,
        floor: i64,
        set: bool,
    ) -> Result<Result<i64, i64>, FenceFail> {
        let Some(token) = self.current_token() else {
            return Err(FenceFail::Lost);
        };
        let r: Vec<i64> = self
            .pool
            .run(|c| {
                fenced_script()
                    .key(&self.keys.owner)
                    .key(self.keys.cell(cell))
                    .arg(&token)
                    .arg(delta)
                    .arg(floor)
                    .arg(u8::from(set))
                    .invoke(c)
            })
            .map_err(FenceFail::Io)?;
        match r.as_slice() {
            [1, v] => Ok(Ok(*v)),
            [0, v] => Ok(Err(*v)),
            _ => {
                let cbs = self.shared.lock().lose();
                run_all(cbs);
                Err(FenceFail::Lost)
            }
        }
    }

    /// The value of cell `cell` (0 when never written).
    pub(crate) fn cell(&self, cell: &str) -> io::Result<i64> {
        let v: Option<i64> = self
            .pool
            .run(|c| redis::cmd("GET").arg(self.keys.cell(cell)).query(c))?;
        Ok(v.unwrap_or(0))
    }
}

/// The watch thread: marks the holding lost when its lease would have run
/// out on the server (no renewal succeeded in time), even while a renewal
/// is stuck waiting for a server that does not answer.
fn watch(shared: &Shared) {
    let mut st = shared.lock();
    loop {
        if st.stop {
            return;
        }
        let until = match st.holding.as_ref() {
            Some(h) if !h.lost => h.valid_until,
            _ => {
                st = shared.cv.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            }
        };
        let now = Instant::now();
        if now < until {
            st = shared
                .cv
                .wait_timeout(st, until - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            continue;
        }
        let cbs = st.lose();
        drop(st);
        run_all(cbs);
        st = shared.lock();
    }
}

/// The renewal thread: extends the holding's lease every lease/3; marks it
/// lost when the server says another owner has it (the watch thread does
/// when a whole lease passed without a successful renewal).
fn renew(shared: &Shared, pool: &Pool, keys: &Keys, lease: Duration) {
    let every = lease / 3;
    let mut st = shared.lock();
    loop {
        if st.stop {
            return;
        }
        let (token, due) = match st.holding.as_ref() {
            Some(h) if !h.lost => (h.token.clone(), h.next),
            _ => {
                st = shared.cv.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            }
        };
        let now = Instant::now();
        if now < due {
            st = shared
                .cv
                .wait_timeout(st, due - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            continue;
        }
        drop(st);
        let started = Instant::now();
        let r: io::Result<i64> = pool.run(|c| {
            extend_script()
                .key(&keys.owner)
                .key(&keys.info)
                .arg(&token)
                .arg(ms(lease))
                .invoke(c)
        });
        st = shared.lock();
        let Some(h) = st.holding.as_mut().filter(|h| h.token == token) else {
            continue;
        };
        match r {
            Ok(1) if !h.lost => {
                h.valid_until = started + lease;
                h.next = started + every;
                shared.cv.notify_all();
            }
            Ok(1) => {}
            Ok(_) => {
                let cbs = st.lose();
                drop(st);
                run_all(cbs);
                st = shared.lock();
            }
            // Retry soon, within the lease.
            Err(_) => h.next = Instant::now() + every / 4,
        }
    }
}

/// How the previous holding of a lock ended, as the next grant sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Previous {
    /// Released (or never held).
    Released,
    /// Never released, and its process is gone.
    Died,
    /// Never released, and its process still runs (or runs on another
    /// machine, where this one cannot look): its lease ran out.
    Expired,
}

/// This machine's boot id (distinguishes machines and boots).
fn boot_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    })
}

/// A holder's token: random, then who holds (`|BOOT|PID|START`), so that
/// the next holder can tell a dead holder from one whose lease ran out.
fn holder_token() -> String {
    let me = crate::ident::ProcessId::current();
    format!("{}|{}|{}|{}", token(), boot_id(), me.pid, me.start)
}

/// Classifies the previous holder's token left in `held` (`""`: released).
fn previous_holder(prev: &str) -> Previous {
    if prev.is_empty() {
        return Previous::Released;
    }
    let mut it = prev.split('|').skip(1);
    let (Some(boot), Some(pid), Some(start)) = (it.next(), it.next(), it.next()) else {
        return Previous::Died;
    };
    if boot.is_empty() || boot != boot_id() {
        return Previous::Expired;
    }
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return Previous::Died;
    };
    if crate::sys::process_alive(pid, start) {
        Previous::Expired
    } else {
        Previous::Died
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

    fn acquire(&self, try_only: bool, deadline: Option<Instant>) -> io::Result<Option<Acquired>> {
        let token = holder_token();
        let waiter = format!("{}:{}:{token}", std::process::id(), now_ms());
        let wait_ms = if try_only { 0 } else { ms(WAIT_SLICE * 3) };
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
                    if try_only {
                        return Ok(None);
                    }
                    let mut slice = WAIT_SLICE;
                    if pttl > 0 {
                        slice = slice.min(Duration::from_millis(pttl as u64 + 1));
                    }
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

impl Lease for RedisLock {
    fn lease_valid_until(&self) -> Option<Instant> {
        RedisLock::lease_valid_until(self)
    }

    fn lease_valid(&self) -> bool {
        RedisLock::lease_valid(self)
    }

    fn on_lease_lost(&self, f: Box<dyn FnOnce() + Send>) {
        RedisLock::on_lease_lost(self, f)
    }

    fn fence(&self) -> Option<u64> {
        RedisLock::fence(self)
    }

    fn lease_lost(&self) -> io::Result<bool> {
        RedisLock::lease_lost(self)
    }

    fn fenced(
        &self,
        cell: &str,
        delta: i64,
        floor: i64,
        set: bool,
    ) -> Result<Result<i64, i64>, FenceFail> {
        RedisLock::fenced(self, cell, delta, floor, set)
    }

    fn cell(&self, cell: &str) -> io::Result<i64> {
        RedisLock::cell(self, cell)
    }
}
