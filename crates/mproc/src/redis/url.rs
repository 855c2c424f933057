//! Parsing a Redis URL into a [`Remote`]: the schemes, the seed nodes of a
//! cluster, the sentinels of a `redis+sentinel://` URL, and the backend's
//! own options (`prefix`, `timeout`, `lease`, `consumer_lease`, `strict`).

use std::time::Duration;

use redis::cluster::ClusterClient;
use redis::Client;

use super::Remote;
use crate::error::NamespaceError;
use crate::name::validate_name;

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

/// The URL schemes of the Redis backend.
const SCHEMES: [&str; 5] = [
    "redis://",
    "rediss://",
    "redis+cluster://",
    "rediss+cluster://",
    "redis+sentinel://",
];

/// Whether `url` names a Redis server or cluster.
fn is_redis_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    SCHEMES.iter().any(|s| lower.starts_with(s))
}

/// Options the client library itself reads from a URL (passed on).
const CLIENT_OPTIONS: [&str; 1] = ["protocol"];

/// Our URL options, for the message naming an unknown one.
const OPTIONS: [&str; 5] = ["prefix", "timeout", "lease", "consumer_lease", "strict"];

/// What a `redis+sentinel://` URL names.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct SentinelSpec {
    /// The sentinels' addresses.
    pub(super) sentinels: Vec<(String, u16)>,
    /// The monitored master's name.
    pub(super) master: String,
    /// The master's user name.
    pub(super) username: Option<String>,
    /// The master's password.
    pub(super) password: Option<String>,
    /// The master's database.
    pub(super) db: i64,
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
pub(super) fn redact(url: &str) -> String {
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
}
