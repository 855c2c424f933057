//! Granting and releasing the readers-writer lock: the read and write
//! scripts (writers preferred), waiting for a release's wake-up between
//! attempts, and the release scripts.

use std::io;
use std::sync::OnceLock;
use std::time::Duration;

use redis::Script;

use super::RedisRwLock;
use crate::backend::Acquired;
use crate::redis::keys::{lock_gone, token};
use crate::redis::time::{ms, now_ms};
use crate::wait::Wait;

/// Longest wait of a blocked acquirer before it tries again.
const WAIT_SLICE: Duration = Duration::from_millis(100);

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

impl RedisRwLock {
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

    /// Runs `script` until granted or `wait` says stop.
    /// `Ok(Some(previous writer token))` when granted.
    fn acquire(&self, write: bool, token: &str, wait: Wait) -> io::Result<Option<String>> {
        let script = if write { write_script() } else { read_script() };
        let waiter = format!("{}:{}:{token}", std::process::id(), now_ms());
        let wait_ms = if wait.is_now() { 0 } else { ms(WAIT_SLICE * 3) };
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
                    if wait.is_now() {
                        break Ok(None);
                    }
                    match self.pool.wait_wake(&self.keys.wake, WAIT_SLICE, wait) {
                        Ok(true) => {}
                        Ok(false) => break Ok(None),
                        Err(e) => break Err(e),
                    }
                }
                _ => break Err(lock_gone(&self.name)),
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

    pub(crate) fn read(&self, wait: Wait) -> io::Result<Option<(Acquired, usize)>> {
        let token = token();
        self.start_renewer()?;
        let Some(prev) = self.acquire(false, &token, wait)? else {
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

    pub(crate) fn write(&self, wait: Wait) -> io::Result<Option<Acquired>> {
        let token = token();
        let Some(prev) = self.acquire(true, &token, wait)? else {
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
