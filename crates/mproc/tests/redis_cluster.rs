//! Redis Cluster beyond the conformance suite: objects whose slot moves to
//! another master while their handles are open keep working (the client
//! follows MOVED and refreshes its slot map).
//!
//! Runs against the cluster of `.ci/redis-cluster.sh`
//! (`MPROC_TEST_REDIS_CLUSTER_URL`, `MPROC_REDIS_CLUSTER_PORTS`); without it
//! the test prints that it was skipped, unless
//! `MPROC_REQUIRE_REDIS_CLUSTER=1`.
#![cfg(feature = "redis")]

use std::process::Command;
use std::time::Duration;

use mproc::{ByteQueue, Lock, Namespace, QueueOptions};

/// The cluster's URL and its nodes' ports.
fn cluster() -> Option<(String, Vec<u16>)> {
    let required = std::env::var("MPROC_REQUIRE_REDIS_CLUSTER").is_ok_and(|v| v == "1");
    let url = std::env::var("MPROC_TEST_REDIS_CLUSTER_URL").unwrap_or_default();
    let ports: Vec<u16> = std::env::var("MPROC_REDIS_CLUSTER_PORTS")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    if url.is_empty() || ports.is_empty() {
        assert!(
            !required,
            "MPROC_REQUIRE_REDIS_CLUSTER=1 but MPROC_TEST_REDIS_CLUSTER_URL or \
             MPROC_REDIS_CLUSTER_PORTS is not set"
        );
        eprintln!("skipped: no Redis Cluster (MPROC_TEST_REDIS_CLUSTER_URL)");
        return None;
    }
    Some((url, ports))
}

/// `redis-cli -p PORT ARGS`, its output trimmed.
fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli is installed");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The node id and port of the master serving `slot`, and of another master.
fn owner_and_other(port: u16, slot: u32) -> ((String, u16), (String, u16)) {
    let nodes = cli(port, &["cluster", "nodes"]);
    let masters: Vec<(String, u16, bool)> = nodes
        .lines()
        .filter(|l| l.contains("master"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let port = f[1]
                .split(['@', ':'])
                .nth(1)
                .and_then(|p| p.parse().ok())
                .unwrap();
            let serves = f[8..].iter().any(|r| {
                let (a, b) = r.split_once('-').unwrap_or((r, r));
                matches!((a.parse::<u32>(), b.parse::<u32>()),
                         (Ok(a), Ok(b)) if a <= slot && slot <= b)
            });
            (f[0].to_owned(), port, serves)
        })
        .collect();
    let owner = masters
        .iter()
        .find(|m| m.2)
        .expect("a master serves the slot");
    let other = masters.iter().find(|m| !m.2).expect("another master");
    ((owner.0.clone(), owner.1), (other.0.clone(), other.1))
}

/// Moves `slot` with its keys from master `from` to master `to` (the
/// manual resharding procedure), telling every master.
fn move_slot(slot: u32, from: &(String, u16), to: &(String, u16), all: &[u16]) {
    let s = slot.to_string();
    assert_eq!(
        cli(to.1, &["cluster", "setslot", &s, "importing", &from.0]),
        "OK"
    );
    assert_eq!(
        cli(from.1, &["cluster", "setslot", &s, "migrating", &to.0]),
        "OK"
    );
    loop {
        let keys = cli(from.1, &["cluster", "getkeysinslot", &s, "100"]);
        let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
        if keys.is_empty() {
            break;
        }
        let port = to.1.to_string();
        let mut args = vec!["migrate", "127.0.0.1", &port, "", "0", "5000", "keys"];
        args.extend(keys);
        assert_eq!(cli(from.1, &args), "OK");
    }
    for p in all {
        cli(*p, &["cluster", "setslot", &s, "node", &to.0]);
    }
}

#[test]
#[ignore = "needs MPROC_TEST_REDIS_CLUSTER_URL"]
fn objects_keep_working_when_their_slot_moves_to_another_master() {
    let Some((url, ports)) = cluster() else {
        return;
    };
    let prefix = format!("reshard{}", std::process::id());
    let ns = Namespace::from_url(&format!("{url}?prefix={prefix}&lease=2")).unwrap();
    let q = ByteQueue::create_in(&ns, "jobs", QueueOptions::new()).unwrap();
    let lock = Lock::create_in(&ns, "printer").unwrap();
    q.put(b"a").unwrap();
    q.put(b"b").unwrap();
    let fence_before = lock.lock().unwrap().fence().unwrap();

    let slot: u32 = cli(
        ports[0],
        &["cluster", "keyslot", &format!("{{{prefix}:jobs}}")],
    )
    .parse()
    .unwrap();
    let (from, to) = owner_and_other(ports[0], slot);
    move_slot(slot, &from, &to, &ports);
    let key = format!("{{{prefix}:jobs}}:ready");
    assert_eq!(cli(to.1, &["llen", &key]), "2", "the items moved");

    // The same handles: the first command meets MOVED, the client follows
    // it and learns the new slot map.
    q.put(b"c").unwrap();
    assert_eq!(cli(to.1, &["llen", &key]), "3", "written on the new master");
    let got: Vec<Vec<u8>> = (0..3)
        .map(|_| q.get_timeout(Duration::from_secs(5)).unwrap())
        .collect();
    assert_eq!(got, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    // A blocking get on the moved slot wakes for a put from another handle.
    let other = ByteQueue::open_in(&ns, "jobs").unwrap();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        other.put(b"d").unwrap();
    });
    assert_eq!(q.get_timeout(Duration::from_secs(5)).unwrap(), b"d");
    t.join().unwrap();
    // The lock (another slot, maybe on any master) still works.
    let g = lock.lock().unwrap();
    assert!(g.fence().unwrap() > fence_before);
    let names: Vec<String> = ns.list().unwrap().into_iter().map(|o| o.name).collect();
    assert_eq!(names, ["jobs", "printer"]);
    drop(g);
    ns.remove("jobs").unwrap();
    ns.remove("printer").unwrap();
    assert!(ns.list().unwrap().is_empty());
}
