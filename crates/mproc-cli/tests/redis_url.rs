//! `mproc --url` / `MPROC_URL` against a Redis server: queue and lock
//! commands, and the demos across processes with their guarantees (no
//! ticket oversold, every pipeline item exactly once).
//!
//! The server comes from `MPROC_TEST_REDIS_URL` (see `.ci/redis.sh`);
//! without it the tests print that they were skipped, unless
//! `MPROC_REQUIRE_REDIS=1`.

use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

fn url() -> Option<String> {
    let required = std::env::var("MPROC_REQUIRE_REDIS").is_ok_and(|v| v == "1");
    match std::env::var("MPROC_TEST_REDIS_URL") {
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
            assert!(
                !required,
                "MPROC_REQUIRE_REDIS=1 but MPROC_TEST_REDIS_URL is not set"
            );
            eprintln!("skipped: MPROC_TEST_REDIS_URL is not set (no Redis server for this test)");
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

#[test]
#[ignore = "needs MPROC_TEST_REDIS_URL"]
fn queue_and_lock_commands_through_the_environment() {
    let Some(url) = url() else { return };
    let ok = |args: &[&str]| {
        let out = mproc(&url).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(&["queue", "create", "jobs", "--maxsize", "2"]);
    ok(&["queue", "put", "jobs", "one", "two"]);
    let full = mproc(&url)
        .args(["queue", "put", "-n", "jobs", "three"])
        .output()
        .unwrap();
    assert!(!full.status.success(), "the third put finds the queue full");
    assert_eq!(ok(&["queue", "len", "jobs"]).trim(), "2");
    assert_eq!(ok(&["queue", "get", "jobs"]), "one");
    // --url takes precedence over MPROC_DIR.
    let out = Command::new(env!("CARGO_BIN_EXE_mproc"))
        .args(["--url", &url, "queue", "get", "jobs"])
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

#[test]
#[ignore = "needs MPROC_TEST_REDIS_URL"]
fn demo_tickets_never_oversells() {
    let Some(url) = url() else { return };
    let out = mproc(&url)
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
    let out = mproc(&url)
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

#[test]
#[ignore = "needs MPROC_TEST_REDIS_URL"]
fn demo_pipeline_delivers_every_item_once() {
    let Some(url) = url() else { return };
    let out = mproc(&url)
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
