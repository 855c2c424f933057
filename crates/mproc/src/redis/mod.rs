//! The Redis backend: named objects on a Redis (or Valkey) server, so that
//! processes on several machines share them.
//!
//! * `mod`   — the server ([`Remote`], from a `redis://` / `rediss://` URL),
//!   its connection pool, key naming and namespace operations.
//! * `queue` — [`RedisQueue`](queue::RedisQueue): lists, `BLMOVE` into a
//!   per-consumer processing list, Lua scripts for bounded put, close, ack and
//!   reclaim.
//! * `lock`  — [`RedisLock`](lock::RedisLock): a lease with a random token,
//!   a monotonic fencing counter and automatic renewal.
//! * `rwlock` — [`RedisRwLock`](rwlock::RedisRwLock): writer and reader
//!   leases, renewed by a thread, writers preferred.
//!
//! Every key of one object shares the hash tag `{PREFIX:NAME}`, so each
//! script and blocking command touches a single cluster slot.

/// Defines `fn NAME() -> &'static Script`, compiling the Lua source once
/// per process (used by `lock` and `queue`).
macro_rules! script {
    ($name:ident, $src:expr) => {
        fn $name() -> &'static Script {
            static S: OnceLock<Script> = OnceLock::new();
            S.get_or_init(|| Script::new($src))
        }
    };
}

pub(crate) mod lock;
pub(crate) mod queue;
pub(crate) mod rwlock;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterConnection};
use redis::{Client, Cmd, Connection, ConnectionLike, RedisError, RedisResult, Value};

use crate::error::{NamespaceError, RemoveError};
use crate::name::validate_name;
use crate::object::ObjectInfo;
use crate::object::ObjectKind;

/// The default key prefix.
const DEFAULT_PREFIX: &str = "mproc";
/// Default time a single server round trip may take.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default lock lease.
const DEFAULT_LEASE: Duration = Duration::from_secs(10);
/// Default consumer heartbeat lease: a consumer whose heartbeat (every
/// lease/3) stopped for this long is presumed dead. Short, so that a dead
/// consumer's items come back within about 2.7 s (lease + one beat); a
/// live consumer is never presumed dead however slow its work, only if
/// its whole process stalls (SIGSTOP, a VM pause) for longer.
const DEFAULT_CONSUMER_LEASE: Duration = Duration::from_secs(2);
/// The longest a blocking server command is asked to block in one slice.
pub(crate) const MAX_SLICE: Duration = Duration::from_secs(2);

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

/// The URL schemes of the Redis backend.
pub(crate) const SCHEMES: [&str; 5] = [
    "redis://",
    "rediss://",
    "redis+cluster://",
    "rediss+cluster://",
    "redis+sentinel://",
];

/// Whether `url` names a Redis server or cluster.
pub(crate) fn is_redis_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    SCHEMES.iter().any(|s| lower.starts_with(s))
}

/// Options the client library itself reads from a URL (passed on).
const CLIENT_OPTIONS: [&str; 1] = ["protocol"];

/// Our URL options, for the message naming an unknown one.
const OPTIONS: [&str; 5] = ["prefix", "timeout", "lease", "consumer_lease", "strict"];

/// What a `redis+sentinel://` URL names.
#[derive(Clone, PartialEq, Eq)]
struct SentinelSpec {
    /// The sentinels' addresses.
    sentinels: Vec<(String, u16)>,
    /// The monitored master's name.
    master: String,
    /// The master's user name.
    username: Option<String>,
    /// The master's password.
    password: Option<String>,
    /// The master's database.
    db: i64,
}

/// Parses a sentinel URL's base: `redis+sentinel://[cred@]h:p[,h:p]/MASTER[/DB]`.
fn sentinel_spec(base: &str) -> Result<SentinelSpec, String> {
    const NO_NAME: &str = "the master's name is missing (redis+sentinel://HOST:PORT/MASTER_NAME)";
    let rest = base.split_once("://").ok_or("no scheme")?.1;
    let (cred, rest) = match rest.rsplit_once('@') {
        Some((c, r)) => (Some(c), r),
        None => (None, rest),
    };
    let (hosts, path) = rest.split_once('/').ok_or(NO_NAME)?;
    let mut parts = path.split('/').filter(|p| !p.is_empty());
    let master = parts.next().ok_or(NO_NAME)?.to_owned();
    let db = match parts.next() {
        Some(d) => d
            .parse()
            .map_err(|_| format!("database {d:?} is not a number"))?,
        None => 0,
    };
    let mut sentinels = Vec::new();
    for h in hosts.split(',').filter(|h| !h.is_empty()) {
        let (host, port) = match h.rsplit_once(':') {
            Some((host, p)) => (
                host,
                p.parse::<u16>()
                    .map_err(|_| format!("port {p:?} of {h:?} is not a number"))?,
            ),
            None => (h, 26379),
        };
        sentinels.push((host.to_owned(), port));
    }
    if sentinels.is_empty() {
        return Err("no sentinel address".into());
    }
    let (username, password) = match cred {
        Some(c) => match c.split_once(':') {
            Some((u, p)) => (Some(u).filter(|u| !u.is_empty()), Some(p)),
            None => (Some(c), None),
        },
        None => (None, None),
    };
    Ok(SentinelSpec {
        sentinels,
        master,
        username: username.map(str::to_owned),
        password: password.map(str::to_owned),
        db,
    })
}

/// Splits a cluster URL's base (`redis+cluster://[cred@]h:p,h:p[/]`) into
/// one `redis://` / `rediss://` URL per seed node.
fn cluster_nodes(base: &str, fragment: &str) -> Result<Vec<String>, String> {
    let (scheme, rest) = base.split_once("://").ok_or("no scheme")?;
    let node_scheme = if scheme.eq_ignore_ascii_case("rediss+cluster") {
        "rediss"
    } else {
        "redis"
    };
    let (cred, hosts) = match rest.rsplit_once('@') {
        Some((c, h)) => (format!("{c}@"), h),
        None => (String::new(), rest),
    };
    let hosts = match hosts.split_once('/') {
        Some((h, "")) => h,
        Some((_, db)) => return Err(format!("a cluster has only database 0 (remove \"/{db}\")")),
        None => hosts,
    };
    let nodes: Vec<String> = hosts
        .split(',')
        .filter(|h| !h.is_empty())
        .map(|h| format!("{node_scheme}://{cred}{h}/{fragment}"))
        .collect();
    if nodes.is_empty() {
        return Err("no seed node (redis+cluster://HOST:PORT[,HOST:PORT...])".into());
    }
    Ok(nodes)
}

/// The URL with any password replaced by `***`, for messages.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let Some(at) = rest.find('@') else {
        return url.to_owned();
    };
    let creds = &rest[..at];
    let user = creds.split(':').next().unwrap_or("");
    format!("{}{user}:***{}", &url[..scheme_end + 3], &rest[at..])
}

fn parse_secs(key: &str, v: &str, url: &str) -> Result<Duration, NamespaceError> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| {
            NamespaceError::UnsupportedUrl(format!(
                "{}: {key}={v:?} is not a positive number of seconds",
                redact(url)
            ))
        })
}

impl Remote {
    /// Parses a `redis://` or `rediss://` URL.
    pub(crate) fn parse(url: &str) -> Result<Remote, NamespaceError> {
        let bad = |why: &str| NamespaceError::UnsupportedUrl(format!("{}: {why}", redact(url)));
        if !is_redis_url(url) {
            return Err(bad("not a redis:// or rediss:// URL"));
        }
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("rediss") && !cfg!(feature = "redis-tls") {
            return Err(bad(
                "rediss:// (TLS) needs mproc built with the \"redis-tls\" feature",
            ));
        }
        let cluster = lower.contains("+cluster://");
        let sentinel = lower.starts_with("redis+sentinel://");
        // `#insecure` (skip certificate checks) is the client's: keep it last.
        let (rest, fragment) = match url.split_once('#') {
            Some((r, f)) => (r, format!("#{f}")),
            None => (url, String::new()),
        };
        let (base, query) = match rest.split_once('?') {
            Some((b, q)) => (b, q),
            None => (rest, ""),
        };
        let mut r = Remote {
            url: url.to_owned(),
            server_url: format!("{base}{fragment}"),
            nodes: Vec::new(),
            sentinel: None,
            strict: false,
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            lease: DEFAULT_LEASE,
            consumer_lease: DEFAULT_CONSUMER_LEASE,
        };
        let mut passed = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "prefix" => {
                    validate_name(v).map_err(|e| bad(&format!("prefix: {e}")))?;
                    r.prefix = v.to_owned();
                }
                "timeout" => r.timeout = parse_secs(k, v, url)?,
                "lease" => r.lease = parse_secs(k, v, url)?,
                "consumer_lease" => r.consumer_lease = parse_secs(k, v, url)?,
                "strict" => {
                    r.strict = match v {
                        "1" | "true" | "yes" => true,
                        "0" | "false" | "no" => false,
                        _ => return Err(bad(&format!("strict={v:?} is not 0 or 1"))),
                    }
                }
                _ if CLIENT_OPTIONS.contains(&k) && !cluster && !sentinel => passed.push(pair),
                _ => {
                    return Err(bad(&format!(
                        "unknown option {k:?} (known: {})",
                        OPTIONS.join(", ")
                    )))
                }
            }
        }
        if sentinel {
            r.sentinel = Some(sentinel_spec(base).map_err(|e| bad(&e))?);
            r.server_url = base.to_owned();
            return Ok(r);
        }
        if cluster {
            r.nodes = cluster_nodes(base, &fragment).map_err(|e| bad(&e))?;
            r.server_url = r.nodes.join(" ");
            ClusterClient::new(r.nodes.iter().map(String::as_str))
                .map_err(|e| bad(&e.to_string()))?;
            return Ok(r);
        }
        if !passed.is_empty() {
            r.server_url = format!("{base}?{}{fragment}", passed.join("&"));
        }
        // Check the address now, so a typo is reported where the URL is given.
        Client::open(r.server_url.as_str()).map_err(|e| bad(&e.to_string()))?;
        Ok(r)
    }

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

    /// The hash tag shared by every key of object `name`.
    pub(crate) fn tag(&self, name: &str) -> String {
        format!("{{{}:{}}}", self.prefix, name)
    }

    /// The connection pool of this server (shared by every handle of the
    /// process). A forked child gets pools of its own: it must not talk on
    /// its parent's connections.
    pub(crate) fn pool(&self) -> io::Result<Arc<Pool>> {
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

    /// What in the server's configuration breaks the backend's guarantees,
    /// in words (every master of a cluster is asked). A server that
    /// refuses `CONFIG GET` (managed services may) or cannot be reached is
    /// not reported here: its failures show at the first operation.
    pub(crate) fn config_problems(&self) -> Vec<String> {
        let Ok(pool) = self.pool() else {
            return Vec::new();
        };
        pool.run(|c| {
            let mut out = Vec::new();
            for node in c.masters()? {
                let mut cmd = redis::cmd("CONFIG");
                cmd.arg("GET").arg("maxmemory-policy");
                let kv: Vec<String> = c.query_on(node.as_ref(), &cmd)?;
                if let Some(policy) = kv.get(1).filter(|p| p.as_str() != "noeviction") {
                    let at = node.map_or(String::new(), |n| format!(" ({}:{})", n.host, n.port));
                    out.push(format!(
                        "maxmemory-policy is {policy}{at}: a full server may evict queue items, \
                         leases and counters silently; set it to noeviction"
                    ));
                }
            }
            Ok(out)
        })
        .unwrap_or_default()
    }

    /// [`config_problems`](Self::config_problems), an error with `strict=1`.
    pub(crate) fn check_config(&self) -> Result<Vec<String>, NamespaceError> {
        let problems = self.config_problems();
        if self.strict && !problems.is_empty() {
            return Err(NamespaceError::Misconfigured {
                server: self.display(),
                problem: problems.join("; "),
            });
        }
        Ok(problems)
    }

    /// Every object under this prefix, sorted by name.
    pub(crate) fn list(&self) -> io::Result<Vec<ObjectInfo>> {
        let pool = self.pool()?;
        let pattern = format!("{{{}:*}}:meta", self.prefix);
        let keys: Vec<String> = pool.run(|c| {
            let mut out = Vec::new();
            for node in c.masters()? {
                out.extend(c.scan(node.as_ref(), &pattern)?);
            }
            Ok(out)
        })?;
        let head = format!("{{{}:", self.prefix);
        let mut out = Vec::new();
        for k in keys {
            let Some(name) = k.strip_prefix(&head).and_then(|r| r.strip_suffix("}:meta")) else {
                continue;
            };
            if validate_name(name).is_err() {
                continue;
            }
            let kind: Option<String> =
                pool.run(|c| redis::cmd("HGET").arg(&k).arg("kind").query(c))?;
            out.push(ObjectInfo {
                name: name.to_owned(),
                kind: kind.as_deref().and_then(kind_of),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes every key of object `name`.
    pub(crate) fn remove(&self, name: &str) -> Result<(), RemoveError> {
        validate_name(name)?;
        let io_err = |source| RemoveError::Io {
            name: name.to_owned(),
            source,
        };
        let pool = self.pool().map_err(io_err)?;
        let tag = self.tag(name);
        let meta = format!("{tag}:meta");
        let exists: bool = pool
            .run(|c| redis::cmd("EXISTS").arg(&meta).query(c))
            .map_err(io_err)?;
        if !exists {
            return Err(RemoveError::NotFound {
                name: name.to_owned(),
                dir: self.display(),
            });
        }
        // The meta key first: opens fail from now on. Every key of the
        // object is in one slot, so on one master: the others find none.
        let pattern = format!("{tag}:*");
        pool.run(|c| {
            redis::cmd("DEL").arg(&meta).exec(c)?;
            for node in c.masters()? {
                let keys = c.scan(node.as_ref(), &pattern)?;
                for batch in keys.chunks(500) {
                    redis::cmd("UNLINK").arg(batch).exec(c)?;
                }
            }
            Ok(())
        })
        .map_err(io_err)
    }
}

/// The object kind recorded in a meta hash.
pub(crate) fn kind_of(s: &str) -> Option<ObjectKind> {
    match s {
        "lock" => Some(ObjectKind::Lock),
        "queue" => Some(ObjectKind::Queue),
        "rwlock" => Some(ObjectKind::RwLock),
        _ => None,
    }
}

/// The client of a server, of a cluster, or of the master Sentinel names.
enum ServerClient {
    Single(Client),
    Cluster(ClusterClient),
    /// Every new connection asks the sentinels for the current master.
    Sentinel(Mutex<redis::sentinel::SentinelClient>),
}

impl ServerClient {
    fn connect(&self, timeout: Duration) -> RedisResult<Conn> {
        Ok(match self {
            ServerClient::Single(c) => Conn::Single(c.get_connection_with_timeout(timeout)?),
            ServerClient::Cluster(c) => Conn::Cluster(Box::new(c.get_connection()?)),
            ServerClient::Sentinel(s) => {
                let client = s.lock().unwrap_or_else(|p| p.into_inner()).get_client()?;
                Conn::Single(client.get_connection_with_timeout(timeout)?)
            }
        })
    }
}

/// A master of a cluster, by address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    host: String,
    port: u16,
}

/// A connection to one server, or to every node of a cluster (commands go
/// to the master of their keys' slot, following MOVED and ASK).
pub(crate) enum Conn {
    /// One server.
    Single(Connection),
    /// A cluster.
    Cluster(Box<ClusterConnection>),
}

impl Conn {
    fn set_read_timeout(&self, d: Option<Duration>) -> RedisResult<()> {
        match self {
            Conn::Single(c) => c.set_read_timeout(d),
            Conn::Cluster(c) => c.set_read_timeout(d),
        }
    }

    fn set_write_timeout(&self, d: Option<Duration>) -> RedisResult<()> {
        match self {
            Conn::Single(c) => c.set_write_timeout(d),
            Conn::Cluster(c) => c.set_write_timeout(d),
        }
    }

    /// The masters to scan: `[None]` (this server) for one server, every
    /// master's address for a cluster.
    pub(crate) fn masters(&mut self) -> RedisResult<Vec<Option<Node>>> {
        let Conn::Cluster(c) = self else {
            return Ok(vec![None]);
        };
        // [[start, end, [host, port, id…], replicas…], …]
        let slots: Vec<Vec<Value>> = redis::cmd("CLUSTER").arg("SLOTS").query(&mut **c)?;
        let mut out: Vec<Option<Node>> = Vec::new();
        for range in slots {
            let Some(Value::Array(master)) = range.get(2) else {
                continue;
            };
            let (Some(host), Some(port)) = (master.first(), master.get(1)) else {
                continue;
            };
            let host: String = redis::from_redis_value_ref(host)?;
            let port: u16 = redis::from_redis_value_ref(port)?;
            let node = Some(Node { host, port });
            if !out.contains(&node) {
                out.push(node);
            }
        }
        Ok(out)
    }

    /// Runs `cmd` on `node` (this server when `None`).
    fn query_on<T: redis::FromRedisValue>(
        &mut self,
        node: Option<&Node>,
        cmd: &Cmd,
    ) -> RedisResult<T> {
        match (node, &mut *self) {
            (Some(n), Conn::Cluster(c)) => {
                use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
                let v = c.route_command(
                    cmd,
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                        host: n.host.clone(),
                        port: n.port,
                    }),
                )?;
                Ok(redis::from_redis_value(v)?)
            }
            _ => cmd.query(self),
        }
    }

    /// Every key matching `pattern` on `node` (this server when `None`).
    pub(crate) fn scan(&mut self, node: Option<&Node>, pattern: &str) -> RedisResult<Vec<String>> {
        let mut out = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000);
            let (next, batch): (u64, Vec<String>) = self.query_on(node, &cmd)?;
            out.extend(batch);
            if next == 0 {
                return Ok(out);
            }
            cursor = next;
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn req_command(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            Conn::Single(c) => c.req_command(cmd),
            Conn::Cluster(c) => c.req_command(cmd),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }

    /// Pipelines are used only for commands on one object's keys (one
    /// slot), which the cluster connection sends to that slot's master.
    fn supports_pipelining(&self) -> bool {
        true
    }

    fn check_connection(&mut self) -> bool {
        match self {
            Conn::Single(c) => c.check_connection(),
            Conn::Cluster(c) => c.check_connection(),
        }
    }

    fn is_open(&self) -> bool {
        match self {
            Conn::Single(c) => c.is_open(),
            Conn::Cluster(c) => c.is_open(),
        }
    }
}

/// Connections to one server, reused across calls.
///
/// Each call takes a connection for its whole duration, so a blocking
/// command never shares its connection; a connection that failed is dropped
/// and the next call opens a new one (reconnecting after a server restart).
pub(crate) struct Pool {
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
    pub(crate) fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Runs `f` on a pooled connection.
    pub(crate) fn run<R>(
        &self,
        f: impl FnMut(&mut Conn) -> Result<R, RedisError>,
    ) -> io::Result<R> {
        self.run_blocking(None, f)
    }

    /// Runs `f`, which may block on the server for up to `block`.
    ///
    /// An idle connection found closed (the server restarted, or closed it)
    /// is replaced by a new one and `f` runs once more on it; any other
    /// failure is returned as it is.
    pub(crate) fn run_blocking<R>(
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
    pub(crate) fn io_error(&self, e: &RedisError) -> io::Error {
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

/// A random hex token of 16 bytes, suffixed with the process id.
pub(crate) fn token() -> String {
    let mut buf = [0u8; 16];
    let mut filled = 0;
    while filled < buf.len() {
        match crate::sys::random_bytes(&mut buf[filled..]) {
            Ok(n) if n > 0 => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            _ => {
                // No entropy source: fall back to the clock, which with
                // the pid that follows is still unique.
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                buf.copy_from_slice(&t.to_le_bytes());
                break;
            }
        }
    }
    let mut s = String::with_capacity(48);
    for b in buf {
        s.push_str(&format!("{b:02x}"));
    }
    s.push('-');
    s.push_str(&std::process::id().to_string());
    s
}

/// Seconds as the fractional number blocking commands take (never 0, which
/// would mean forever).
/// `d` in whole milliseconds, at least 1 (a lease or wait of 0 ms would
/// mean "none" to the server).
pub(crate) fn ms(d: Duration) -> u64 {
    d.as_millis().max(1) as u64
}

/// Milliseconds since the Unix epoch, by this machine's clock.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) fn block_secs(d: Duration) -> f64 {
    d.as_secs_f64().max(0.001)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let r = Remote::parse("redis://u:secret@127.0.0.1:6390/2?prefix=t1&timeout=0.5&lease=3")
            .unwrap();
        assert_eq!(r.prefix, "t1");
        assert_eq!(r.timeout, Duration::from_millis(500));
        assert_eq!(r.lease, Duration::from_secs(3));
        assert_eq!(r.server_url, "redis://u:secret@127.0.0.1:6390/2");
        assert!(!format!("{r:?}").contains("secret"));
        assert_eq!(
            r.display(),
            "redis://u:***@127.0.0.1:6390/2?prefix=t1&timeout=0.5&lease=3"
        );
        assert_eq!(r.tag("jobs"), "{t1:jobs}");
        assert!(Remote::parse("redis://h/?prefix=a/b").is_err());
        assert!(Remote::parse("redis://h/?lease=-1").is_err());
        assert!(Remote::parse("http://h/").is_err());
        let e = Remote::parse("redis://h/?consumer_leese=2").unwrap_err();
        assert!(
            e.to_string().contains("unknown option \"consumer_leese\""),
            "{e}"
        );
        assert!(Remote::parse("redis://h/?strict=2").is_err());
        assert!(Remote::parse("redis://h/?strict=1").unwrap().strict);
        let c =
            Remote::parse("redis+cluster://:pw@127.0.0.1:7000,127.0.0.1:7001/?prefix=p").unwrap();
        assert!(c.is_cluster());
        assert_eq!(
            c.nodes,
            ["redis://:pw@127.0.0.1:7000/", "redis://:pw@127.0.0.1:7001/"]
        );
        assert_eq!(
            c.display(),
            "redis+cluster://:***@127.0.0.1:7000,127.0.0.1:7001/?prefix=p"
        );
        assert!(Remote::parse("redis+cluster://127.0.0.1:7000/2").is_err());
        assert!(Remote::parse("redis+cluster:///").is_err());
        let s =
            Remote::parse("redis+sentinel://:pw@127.0.0.1:26379,h2/mymaster/2?prefix=p").unwrap();
        let spec = s.sentinel.as_ref().unwrap();
        assert_eq!(
            spec.sentinels,
            [("127.0.0.1".to_owned(), 26379), ("h2".to_owned(), 26379)]
        );
        assert_eq!((spec.master.as_str(), spec.db), ("mymaster", 2));
        assert_eq!(spec.password.as_deref(), Some("pw"));
        assert!(!format!("{s:?}").contains("pw@"));
        assert!(Remote::parse("redis+sentinel://127.0.0.1:26379/").is_err());
        assert!(Remote::parse("redis+sentinel://127.0.0.1:x/m").is_err());
        assert_eq!(
            Remote::parse("rediss://h:6380/?prefix=p#insecure").is_ok(),
            cfg!(feature = "redis-tls")
        );
    }

    #[test]
    fn tokens_differ() {
        assert_ne!(token(), token());
    }
}
