//! The renewal thread of a handle: every lease/3 it renews the handle's
//! writer token and read shares in one script run.

use std::io;
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::Duration;

use redis::Script;

use super::{Keys, RedisRwLock, Shared};
use crate::redis::pool::Pool;
use crate::redis::time::ms;

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

impl RedisRwLock {
    /// Starts the renewal thread of this handle, once.
    pub(super) fn start_renewer(&self) -> io::Result<()> {
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
