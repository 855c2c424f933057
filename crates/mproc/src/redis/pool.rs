//! The connection pools: one per server and process, shared by every
//! handle; a call takes a connection for its whole duration, reconnects
//! after a restart or a failover, and reports failures as I/O errors that
//! name the server.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use redis::cluster::ClusterClient;
use redis::{Client, RedisError};

use super::conn::{Conn, ServerClient};
use super::Remote;

impl Remote {
    /// The connection pool of this server (shared by every handle of the
    /// process). A forked child gets pools of its own: it must not talk on
    /// its parent's connections.
    pub(super) fn pool(&self) -> io::Result<Arc<Pool>> {
        static POOLS: OnceLock<Mutex<HashMap<String, Weak<Pool>>>> = OnceLock::new();
        let pools = POOLS.get_or_init(|| Mutex::new(HashMap::new()));
        let mut map = pools.lock().unwrap_or_else(|p| p.into_inner());
        let key = format!(
            "{}\u{0}{:?}\u{0}{}",
            self.server_url,
            self.timeout,
            std::process::id()
        );
        if let Some(p) = map.get(&key).and_then(Weak::upgrade) {
            return Ok(p);
        }
        map.retain(|_, w| w.strong_count() > 0);
        let invalid = |e: RedisError| io::Error::new(io::ErrorKind::InvalidInput, e.to_string());
        let client = if let Some(s) = &self.sentinel {
            use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
            let addrs = s
                .sentinels
                .iter()
                .map(|(h, p)| redis::ConnectionAddr::Tcp(h.clone(), *p));
            let mut b = SentinelClientBuilder::new(addrs, &s.master, SentinelServerType::Master)
                .map_err(invalid)?
                .set_client_to_redis_db(s.db);
            if let Some(u) = &s.username {
                b = b.set_client_to_redis_username(u);
            }
            if let Some(p) = &s.password {
                b = b.set_client_to_redis_password(p);
            }
            ServerClient::Sentinel(Mutex::new(b.build().map_err(invalid)?))
        } else if self.is_cluster() {
            // MOVED/ASK are followed at once; a slot without a master
            // (CLUSTERDOWN, TRYAGAIN during a failover or resharding) is
            // retried a few times within about one timeout, then reported.
            let wait_ms = (self.timeout.as_millis() as u64 / 8).max(10);
            ServerClient::Cluster(
                ClusterClient::builder(self.nodes.iter().map(String::as_str))
                    .connection_timeout(self.timeout)
                    .response_timeout(self.timeout)
                    .retries(4)
                    .min_retry_wait(wait_ms / 4)
                    .max_retry_wait(wait_ms)
                    .build()
                    .map_err(invalid)?,
            )
        } else {
            ServerClient::Single(Client::open(self.server_url.as_str()).map_err(invalid)?)
        };
        let pool = Arc::new(Pool {
            client,
            idle: Mutex::new(Vec::new()),
            timeout: self.timeout,
            display: self.display(),
            healthy: AtomicBool::new(true),
        });
        map.insert(key, Arc::downgrade(&pool));
        Ok(pool)
    }
}

/// Connections to one server, reused across calls.
///
/// Each call takes a connection for its whole duration, so a blocking
/// command never shares its connection; a connection that failed is dropped
/// and the next call opens a new one (reconnecting after a server restart).
pub(super) struct Pool {
    client: ServerClient,
    /// Idle connections with the read timeout they were last given.
    idle: Mutex<Vec<(Conn, Duration)>>,
    timeout: Duration,
    display: String,
    /// Whether the last call reached the server.
    healthy: AtomicBool,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("server", &self.display)
            .finish_non_exhaustive()
    }
}

/// Idle connections kept per pool.
const MAX_IDLE: usize = 16;

impl Pool {
    /// A connection: an idle one unless `fresh`; true when it was idle.
    fn take(
        &self,
        block: Option<Duration>,
        fresh: bool,
    ) -> Result<(Conn, Duration, bool), RedisError> {
        let idle = if fresh {
            None
        } else {
            self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
        };
        // A blocking command may take its block time plus one round trip.
        let read = block.map_or(self.timeout, |b| b + self.timeout);
        let (c, was_idle) = match idle {
            Some((c, set)) => {
                if set != read {
                    c.set_read_timeout(Some(read))?;
                }
                (c, true)
            }
            None => {
                let c = self.client.connect(self.timeout)?;
                c.set_read_timeout(Some(read))?;
                c.set_write_timeout(Some(self.timeout))?;
                (c, false)
            }
        };
        Ok((c, read, was_idle))
    }

    fn give_back(&self, c: Conn, read: Duration) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push((c, read));
        }
    }

    /// Whether the last call reached the server (best-effort clean-ups
    /// are skipped when it did not, rather than waiting on a dead server).
    pub(super) fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Runs `f` on a pooled connection.
    pub(super) fn run<R>(
        &self,
        f: impl FnMut(&mut Conn) -> Result<R, RedisError>,
    ) -> io::Result<R> {
        self.run_blocking(None, f)
    }

    /// Waits for a wake-up pushed on list `wake` (`BLPOP`), at most `slice`
    /// and never past `wait`'s deadline: `Ok(false)`, without waiting, when
    /// that deadline has passed.
    pub(super) fn wait_wake(
        &self,
        wake: &str,
        slice: Duration,
        wait: crate::wait::Wait,
    ) -> io::Result<bool> {
        let mut slice = slice;
        if let Some(d) = wait.deadline() {
            match d.checked_duration_since(std::time::Instant::now()) {
                Some(left) if !left.is_zero() => slice = slice.min(left),
                _ => return Ok(false),
            }
        }
        let _: Option<(String, String)> = self.run_blocking(Some(slice), |c| {
            redis::cmd("BLPOP")
                .arg(wake)
                .arg(super::time::block_secs(slice))
                .query(c)
        })?;
        Ok(true)
    }

    /// Runs `f`, which may block on the server for up to `block`.
    ///
    /// An idle connection found closed (the server restarted, or closed it)
    /// is replaced by a new one and `f` runs once more on it; any other
    /// failure is returned as it is.
    pub(super) fn run_blocking<R>(
        &self,
        block: Option<Duration>,
        mut f: impl FnMut(&mut Conn) -> Result<R, RedisError>,
    ) -> io::Result<R> {
        let mut fresh = false;
        loop {
            let (mut c, read, was_idle) = self.take(block, fresh).map_err(|e| {
                self.healthy.store(false, Ordering::Relaxed);
                self.io_error(&e)
            })?;
            match f(&mut c) {
                Ok(r) => {
                    self.healthy.store(true, Ordering::Relaxed);
                    self.give_back(c, read);
                    return Ok(r);
                }
                Err(e) if demoted(&e) => {
                    // The server became a replica (a failover): nothing was
                    // written. Every pooled connection leads there; a new
                    // one asks the sentinels for the current master.
                    drop(c);
                    self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
                    if !fresh {
                        fresh = true;
                        continue;
                    }
                    self.healthy.store(false, Ordering::Relaxed);
                    return Err(self.io_error(&e));
                }
                Err(e) => {
                    // A server-side error (a script error, a wrong type)
                    // leaves the connection usable; anything else does not.
                    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
                        drop(c);
                        let closed = e.is_connection_dropped() && !e.is_timeout();
                        if was_idle && closed && !fresh {
                            fresh = true;
                            continue;
                        }
                        self.healthy.store(false, Ordering::Relaxed);
                    } else {
                        self.give_back(c, read);
                    }
                    return Err(self.io_error(&e));
                }
            }
        }
    }

    /// A clear I/O error naming the server, saying what happened in words.
    ///
    /// Kinds: `TimedOut`, `ConnectionRefused`, `ConnectionReset`,
    /// `BrokenPipe` (the connection failed otherwise), `ResourceBusy` (the
    /// server answered that it cannot serve now: LOADING, TRYAGAIN,
    /// CLUSTERDOWN, MASTERDOWN), `Other` (any other server error).
    pub(super) fn io_error(&self, e: &RedisError) -> io::Error {
        use redis::{ErrorKind as K, ServerErrorKind as S};
        let server = &self.display;
        let (kind, what) = if e.is_timeout() {
            (
                io::ErrorKind::TimedOut,
                format!(
                    "timed out after {} s without a reply",
                    fmt_secs(self.timeout)
                ),
            )
        } else if e.is_connection_refusal() {
            (
                io::ErrorKind::ConnectionRefused,
                "connection refused (is the server running?)".to_owned(),
            )
        } else if e.is_connection_dropped() {
            (
                io::ErrorKind::ConnectionReset,
                "connection lost (the server closed it or restarted)".to_owned(),
            )
        } else if e.is_io_error() {
            (io::ErrorKind::BrokenPipe, format!("connection failed: {e}"))
        } else {
            match e.kind() {
                K::Server(S::BusyLoading) => (
                    io::ErrorKind::ResourceBusy,
                    "the server is still loading its data (LOADING)".to_owned(),
                ),
                K::Server(S::TryAgain) => (
                    io::ErrorKind::ResourceBusy,
                    "the slot is being moved between masters (TRYAGAIN)".to_owned(),
                ),
                K::Server(S::ClusterDown) => (
                    io::ErrorKind::ResourceBusy,
                    "the cluster is down (CLUSTERDOWN)".to_owned(),
                ),
                K::Server(S::ReadOnly) => (
                    io::ErrorKind::ResourceBusy,
                    "the server is now a read-only replica (READONLY): a failover is under way"
                        .to_owned(),
                ),
                _ if e.code() == Some("UNBLOCKED") => (
                    io::ErrorKind::ResourceBusy,
                    "the server stopped being the master while a call waited (UNBLOCKED)"
                        .to_owned(),
                ),
                K::Server(S::MasterDown) => (
                    io::ErrorKind::ResourceBusy,
                    "the replica lost its master (MASTERDOWN)".to_owned(),
                ),
                _ => (io::ErrorKind::Other, e.to_string()),
            }
        };
        io::Error::new(kind, format!("redis server {server}: {what}"))
    }
}

/// Whether `e` says the server stopped being a master (a failover): the
/// command was refused, and a connection to the new master is needed.
fn demoted(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
    ) || e.code() == Some("UNBLOCKED")
}

/// Seconds for messages: `10`, `0.5`.
fn fmt_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s}")
    }
}
