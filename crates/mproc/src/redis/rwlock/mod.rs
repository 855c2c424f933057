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
//!
//! ## Rooms
//! * `mod`     — [`RedisRwLock`]: its keys, the state a handle shares with
//!   its renewal thread, create and open, and `RwLockBackend`.
//! * `acquire` — granting and releasing: the read and write scripts, waiting
//!   for a wake-up, release.
//! * `renew`   — the renewal thread that keeps every holding's lease.
//! * `info`    — who holds and who waits, and forced release.

mod acquire;
mod info;
mod renew;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use redis::Script;

use super::keys::{check_kind, create_io, open_io};
use super::pool::Pool;
use super::Remote;
use crate::backend::{Acquired, Holder, Reader, RwLockBackend, Waiter};
use crate::error::{CreateError, OpenError};
use crate::name::validate_name;
use crate::object::ObjectKind;
use crate::wait::Wait;

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
        let io_err = create_io(name);
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
        let io_err = open_io(name);
        let pool = remote.pool().map_err(io_err)?;
        let keys = Keys::new(&remote.tag(name));
        let kind: Option<String> = pool
            .run(|c| redis::cmd("HGET").arg(&keys.meta).arg("kind").query(c))
            .map_err(io_err)?;
        check_kind(remote, name, kind.as_deref(), ObjectKind::RwLock)?;
        Ok(RedisRwLock::with(remote, name, pool, keys))
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

    fn read(&self, wait: Wait) -> io::Result<Option<(Acquired, usize)>> {
        RedisRwLock::read(self, wait)
    }

    unsafe fn read_release(&self, slot: usize) {
        RedisRwLock::read_release(self, slot);
    }

    fn write(&self, wait: Wait) -> io::Result<Option<Acquired>> {
        RedisRwLock::write(self, wait)
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
