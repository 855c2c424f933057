//! The Redis backend: named objects on a Redis (or Valkey) server, so that
//! processes on several machines share them.
//!
//! This file holds [`Remote`] (a server, cluster or Sentinel-named master,
//! and the settings of its URL) and the list of rooms:
//!
//! * `url`    — parsing a `redis://`, `rediss://`, `redis+cluster://` or
//!   `redis+sentinel://` URL and its options into a [`Remote`].
//! * `conn`   — one connection, to a server or to a whole cluster, and the
//!   commands sent to one cluster master (`SCAN`, `CONFIG GET`).
//! * `pool`   — the per-process connection pools, reconnection after a
//!   restart or failover, and errors that name the server.
//! * `keys`   — the hash tag of an object's keys, the kind recorded in its
//!   meta hash, and random tokens.
//! * `time`   — durations as the server takes them, the epoch clock, the
//!   longest blocking slice.
//! * `server` — namespace-wide operations: the configuration check, listing
//!   and removing objects.
//! * `queue`  — [`RedisQueue`](queue::RedisQueue): lists, `BLMOVE` into a
//!   per-consumer processing list, Lua scripts for bounded put, close, ack and
//!   reclaim.
//! * `lock`   — [`RedisLock`](lock::RedisLock): a lease with a random token,
//!   a monotonic fencing counter and automatic renewal.
//! * `rwlock` — [`RedisRwLock`](rwlock::RedisRwLock): writer and reader
//!   leases, renewed by a thread, writers preferred.
//!
//! Every key of one object shares the hash tag `{PREFIX:NAME}`, so each
//! script and blocking command touches a single cluster slot.

/// Defines `fn NAME() -> &'static Script`, compiling the Lua source once
/// per process (used by `lock`, `rwlock` and `queue`).
macro_rules! script {
    ($name:ident, $src:expr) => {
        fn $name() -> &'static Script {
            static S: OnceLock<Script> = OnceLock::new();
            S.get_or_init(|| Script::new($src))
        }
    };
}

mod conn;
mod keys;
pub(crate) mod lock;
mod pool;
pub(crate) mod queue;
pub(crate) mod rwlock;
mod server;
mod time;
mod url;

use std::fmt;
use std::time::Duration;

use self::url::{redact, SentinelSpec};

/// A Redis server (or a Redis Cluster) and the settings taken from its URL.
///
/// URL form: `redis://[user:password@]host[:port][/db][?options]` or
/// `rediss://...` for TLS; `redis+cluster://[user:password@]host:port[,host:port...][/][?options]`
/// (or `rediss+cluster://`) for a cluster given by its seed nodes. Options (all optional):
/// `prefix=NAME` (key prefix, default `mproc`), `timeout=SECS` (one round
/// trip, default 10), `lease=SECS` (lock lease, default 10),
/// `consumer_lease=SECS` (consumer heartbeat lease, default 2).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Remote {
    /// The URL as given (with its password).
    url: String,
    /// The URL handed to the client: without our options (for a cluster,
    /// the seed node URLs joined by spaces).
    server_url: String,
    /// The seed nodes of a cluster (`redis://…` URLs), empty for one server.
    nodes: Vec<String>,
    /// The sentinels and the master's name, for a `redis+sentinel://` URL.
    sentinel: Option<SentinelSpec>,
    pub(crate) prefix: String,
    pub(crate) timeout: Duration,
    pub(crate) lease: Duration,
    pub(crate) consumer_lease: Duration,
    /// `strict=1`: a server configuration that breaks the backend's
    /// guarantees (an evicting `maxmemory-policy`) is an error, not a warning.
    pub(crate) strict: bool,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("url", &redact(&self.url))
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Remote {
    /// The URL as given, password included (for handing to child processes).
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The URL without its password, for messages.
    pub(crate) fn display(&self) -> String {
        redact(&self.url)
    }

    /// Whether the URL names a Redis Cluster (`redis+cluster://`).
    pub(crate) fn is_cluster(&self) -> bool {
        !self.nodes.is_empty()
    }
}
