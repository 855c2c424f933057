//! `mproc --url` / `MPROC_URL` against a Redis server: queue and lock
//! commands, and the demos across processes with their guarantees (no
//! ticket oversold, every pipeline item exactly once).
//!
//! Every scenario runs twice: on one server (`server::`, from
//! `MPROC_TEST_REDIS_URL`, see `.ci/redis.sh`) and on a 3-master Redis
//! Cluster (`cluster::`, from `MPROC_TEST_REDIS_CLUSTER_URL`, see
//! `.ci/redis-cluster.sh`). They are `#[ignore]`d, so a run without the
//! servers lists them as ignored; `-- --ignored` runs them. Without the
//! variable they then print that they were skipped, unless
//! `MPROC_REQUIRE_REDIS=1` (`MPROC_REQUIRE_REDIS_CLUSTER=1`).

use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

/// Instantiates every scenario for one server and for the cluster.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod server {
            $(#[test] #[ignore = "needs MPROC_TEST_REDIS_URL"] fn $name() {
                if let Some(u) = super::url("MPROC_TEST_REDIS_URL", "MPROC_REQUIRE_REDIS") {
                    super::$name(&u)
                }
            })*
        }
        mod cluster {
            $(#[test] #[ignore = "needs MPROC_TEST_REDIS_CLUSTER_URL"] fn $name() {
                if let Some(u) = super::url("MPROC_TEST_REDIS_CLUSTER_URL", "MPROC_REQUIRE_REDIS_CLUSTER") {
                    super::$name(&u)
                }
            })*
        }
    };
}

on_both!(
    queue_and_lock_commands_through_the_environment,
    demo_tickets_never_oversells,
    demo_pipeline_delivers_every_item_once,
    ls_lists_objects_of_every_master,
    lock_on_a_server_is_exclusive_and_holds_for_a_script,
);

/// The URL in variable `var` with a fresh prefix and short leases.
fn url(var: &str, require: &str) -> Option<String> {
    let required = std::env::var(require).is_ok_and(|v| v == "1");
    match std::env::var(var) {
        Ok(u) if !u.is_empty() => {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let sep = if u.contains('?') { '&' } else { '?' };
            Some(format!(
                "{u}{sep}prefix=cli-{}-{nanos}&lease=1&consumer_lease=1",
                std::process::id()
            ))
        }
        _ => {
            assert!(!required, "{require}=1 but {var} is not set");
            eprintln!("skipped: {var} is not set (no Redis server for this test)");
            None
        }
    }
}

fn mproc(url: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mproc"));
    c.env("MPROC_URL", url)
        .env_remove("MPROC_DIR")
        .stdin(Stdio::null());
    c
}

/// Runs `mproc ARGS` on `url`; fails the test unless it succeeds; stdout.
fn ok(url: &str, args: &[&str]) -> String {
    let out = mproc(url).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(out: &std::process::Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {text:?}, stderr {:?}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn queue_and_lock_commands_through_the_environment(url: &str) {
    let ok = |args: &[&str]| ok(url, args);
    ok(&["queue", "create", "jobs", "--maxsize", "2"]);
    ok(&["queue", "put", "jobs", "one", "two"]);
    let full = mproc(url)
        .args(["queue", "put", "-n", "jobs", "three"])
        .output()
        .unwrap();
    assert!(!full.status.success(), "the third put finds the queue full");
    assert_eq!(ok(&["queue", "len", "jobs"]).trim(), "2");
    assert_eq!(ok(&["queue", "get", "jobs"]), "one");
    // --url takes precedence over MPROC_DIR.
    let out = Command::new(env!("CARGO_BIN_EXE_mproc"))
        .args(["--url", url, "queue", "get", "jobs"])
        .env("MPROC_DIR", "/nonexistent/dir")
        .env_remove("MPROC_URL")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "two");
    ok(&["lock", "printer", "--", "true"]);
    let names = ok(&["ls"]);
    assert!(
        names.contains("jobs") && names.contains("printer"),
        "{names}"
    );
    ok(&["queue", "rm", "jobs"]);
}

fn demo_tickets_never_oversells(url: &str) {
    let out = mproc(url)
        .args([
            "--json",
            "demo",
            "tickets",
            "--buyers",
            "6",
            "--tickets",
            "3",
        ])
        .args(["--delay", "0.01"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["sold"], 3);
    assert_eq!(v["oversold"], 0);
    assert_eq!(v["left"], 0);
    let out = mproc(url)
        .args([
            "--json",
            "demo",
            "tickets",
            "--buyers",
            "4",
            "--tickets",
            "200",
        ])
        .args(["--delay", "0", "--attempts", "80"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v = json(&out);
    assert_eq!(
        (v["sold"].as_u64(), v["oversold"].as_u64()),
        (Some(200), Some(0))
    );
}

fn demo_pipeline_delivers_every_item_once(url: &str) {
    let out = mproc(url)
        .args([
            "--json",
            "demo",
            "pipeline",
            "--producers",
            "3",
            "--consumers",
            "2",
        ])
        .args(["--items", "100", "--delay", "0"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["produced"], 300);
    assert_eq!(v["consumed"], 300);
    assert_eq!(
        (v["lost"].as_u64(), v["duplicated"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(v["order_ok"], true);
}

/// Twelve objects (spread over the masters of a cluster: each name is its
/// own slot) are all listed, and all removed.
fn ls_lists_objects_of_every_master(url: &str) {
    let names: Vec<String> = (0..12).map(|i| format!("obj{i}")).collect();
    for n in &names {
        ok(url, &["queue", "create", n]);
    }
    if url.contains("+cluster://") {
        assert!(
            masters_holding(url) >= 2,
            "twelve slots should spread over the masters"
        );
    }
    let listed = ok(url, &["ls"]);
    for n in &names {
        assert!(
            listed
                .lines()
                .any(|l| l.split_whitespace().next() == Some(n)),
            "{n} missing from {listed}"
        );
    }
    for n in &names {
        ok(url, &["queue", "rm", n]);
    }
    let listed = ok(url, &["ls"]);
    assert!(
        !names.iter().any(|n| listed.contains(n.as_str())),
        "{listed}"
    );
}

/// How many of the cluster's masters (`MPROC_REDIS_CLUSTER_PORTS`) hold a
/// key under the URL's prefix.
fn masters_holding(url: &str) -> usize {
    let prefix = url
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("prefix="))
        .unwrap();
    let ports = std::env::var("MPROC_REDIS_CLUSTER_PORTS").unwrap_or_default();
    ports
        .split_whitespace()
        .filter(|p| {
            let out = Command::new("redis-cli")
                .args(["-h", "127.0.0.1", "-p", p, "--scan", "--pattern"])
                .arg(format!("{{{prefix}:*"))
                .output()
                .unwrap();
            !out.stdout.is_empty()
        })
        .count()
}

/// On a server `mproc lock` is exclusive only: `-s` and `-F` are refused
/// with words; `--hold` keeps the lock for a script until `unlock`.
fn lock_on_a_server_is_exclusive_and_holds_for_a_script(url: &str) {
    let out = mproc(url)
        .args(["lock", "-s", "k", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(65), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("exclusive only"));
    let out = mproc(url)
        .args(["lock", "-F", "k", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let out = Command::new("sh")
        .arg("-c")
        .arg(
            "$M lock --hold k || exit 9
             $M lock -n k true 2>/dev/null; echo busy=$?
             $M unlock k; echo unlock=$?
             $M lock -n k true; echo free=$?",
        )
        .env("M", env!("CARGO_BIN_EXE_mproc"))
        .env("MPROC_URL", url)
        .env_remove("MPROC_DIR")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "busy=1\nunlock=0\nfree=0\n",
        "{out:?}"
    );
}
