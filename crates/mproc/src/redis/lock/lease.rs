//! The lease of a lock's holding: the state a handle shares with its
//! threads, the renewal thread (every lease/3), the watch thread that marks
//! the holding lost when no renewal succeeded in time, loss callbacks, and
//! `Lease` for [`RedisLock`].

use std::fmt;
use std::io;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use redis::Script;

use super::{Keys, RedisLock};
use crate::backend::{FenceFail, Lease};
use crate::redis::pool::Pool;
use crate::redis::time::ms;

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

/// The current holding through this handle.
#[derive(Debug)]
pub(super) struct Holding {
    pub(super) token: String,
    pub(super) fence: u64,
    pub(super) lost: bool,
    /// When the lease would run out on the server: the sending of the last
    /// grant or renewal that succeeded plus the lease, by this process's
    /// monotonic clock (the server started its lease later, so this errs
    /// early). Once lost: when the loss was noticed, if earlier.
    pub(super) valid_until: Instant,
    /// When to renew next.
    pub(super) next: Instant,
}

/// A callback run once when the holding's lease is lost.
pub(super) type OnLost = Box<dyn FnOnce() + Send>;

#[derive(Default)]
pub(super) struct State {
    pub(super) holding: Option<Holding>,
    /// Callbacks of the current holding.
    pub(super) on_lost: Vec<OnLost>,
    pub(super) renewer: bool,
    pub(super) stop: bool,
    /// Whether the last grant took the lock from a holder whose lease ran
    /// out while its process was (or may have been) alive, rather than
    /// from one that died.
    pub(super) took_expired: bool,
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
    pub(super) fn lose(&mut self) -> Vec<OnLost> {
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
pub(super) fn run_all(cbs: Vec<OnLost>) {
    for cb in cbs {
        cb();
    }
}

#[derive(Debug, Default)]
pub(super) struct Shared {
    pub(super) state: Mutex<State>,
    pub(super) cv: Condvar,
}

impl Shared {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RedisLock {
    /// Starts the renewal and watch threads of this handle, once.
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
