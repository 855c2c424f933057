//! `mproc sem`, `mproc event`, the new kinds in `mproc ls`, and `mproc demo
//! tickets --store shm|both`.

mod common;

use std::time::{Duration, Instant};

use common::Ns;

/// Runs `mproc --json ARGS` and parses every stdout line as JSON.
fn json_lines(ns: &Ns, args: &[&str]) -> Vec<serde_json::Value> {
    let out = ns.cmd().arg("--json").args(args).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn sem_runs_at_most_n_commands_at_once() {
    let ns = Ns::new();
    let log = ns.file("log");
    // 6 jobs of 0.3 s through `sem -j 2`: each logs start and end; at most 2 overlap.
    let script = format!(
        "for i in 1 2 3 4 5 6; do \
           \"$M\" sem -j 2 jobs -- sh -c 'echo + >> {log}; sleep 0.3; echo - >> {log}' & \
         done; wait",
        log = log.display()
    );
    let t = Instant::now();
    let (st, _) = ns.sh(&script).finish();
    let d = t.elapsed();
    assert!(st.success());
    assert!(
        d >= Duration::from_millis(800),
        "6 jobs, 2 at a time, took {d:?}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let mut inside = 0i32;
    let mut most = 0;
    for l in text.lines() {
        inside += if l == "+" { 1 } else { -1 };
        most = most.max(inside);
    }
    assert_eq!(most, 2, "log: {text}");
    assert_eq!(text.lines().count(), 12);
}

#[test]
fn sem_exit_codes_busy_and_command_status() {
    let ns = Ns::new();
    let mut holder = ns.spawn(&["sem", "-j", "1", "one", "--", "sleep", "30"]);
    ns.wait_until("the holder to run", || {
        let v = json_lines(&ns, &["ls"]);
        v[0]["objects"].as_array().is_some_and(|o| {
            o.iter()
                .any(|x| x["holders"].as_array().is_some_and(|h| !h.is_empty()))
        })
    });
    ns.cmd()
        .args(["sem", "-n", "one", "--", "true"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("no unit free"));
    ns.cmd()
        .args(["sem", "-w", "0.2", "-E", "9", "one", "--", "true"])
        .assert()
        .code(9);
    // The semaphore records its N; another -j is reported and ignored.
    ns.cmd()
        .args(["sem", "-n", "-j", "3", "one", "--", "true"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("exists with 1 units"));
    // Killing the holder (SIGKILL) returns its unit at once.
    holder.signal(libc::SIGKILL);
    holder.wait();
    ns.cmd()
        .args(["sem", "-w", "10", "one", "--", "sh", "-c", "exit 7"])
        .assert()
        .code(7);
}

#[test]
fn event_set_clear_wait_status() {
    let ns = Ns::new();
    ns.cmd()
        .args(["event", "status", "go"])
        .assert()
        .code(1)
        .stdout("clear\n");
    let t = Instant::now();
    ns.cmd()
        .args(["event", "wait", "go", "-t", "0.2"])
        .assert()
        .code(1);
    assert!(t.elapsed() >= Duration::from_millis(100));
    let waiter = ns.spawn(&["event", "wait", "go"]);
    std::thread::sleep(Duration::from_millis(200));
    ns.cmd().args(["event", "set", "go"]).assert().success();
    let (st, _) = waiter.finish();
    assert!(st.success());
    ns.cmd()
        .args(["event", "status", "go"])
        .assert()
        .success()
        .stdout("set\n");
    ns.cmd()
        .args(["event", "wait", "go", "-t", "0"])
        .assert()
        .success();
    ns.cmd().args(["event", "clear", "go"]).assert().success();
    ns.cmd()
        .args(["event", "wait", "go", "-t", "0"])
        .assert()
        .code(1);
}

#[test]
fn ls_shows_the_sync_kinds() {
    let ns = Ns::new();
    let n = mproc::Namespace::dir(ns.dir()).unwrap();
    let _r = mproc::RLock::create_in(&n, "r").unwrap();
    let s = mproc::BoundedSemaphore::create_in(&n, "s", 3).unwrap();
    s.acquire().unwrap();
    let e = mproc::Event::create_in(&n, "e").unwrap();
    e.set();
    let _c = mproc::Condition::create_in(&n, "c").unwrap();
    let _b = mproc::Barrier::create_in(&n, "b", 4).unwrap();
    let _v = mproc::Value::<i64>::create_in(&n, "v", -5, true).unwrap();
    let _a = mproc::Array::<f32>::create_in(&n, "a", &[1.5, 2.0], false).unwrap();
    let out = ns.cmd().arg("ls").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "a\tarray\tf32[2]\t1.5 2\t-",
        "b\tbarrier\t0/4\tok\t-",
        "c\tcondition\t-\tfree\t-",
        "e\tevent\t-\tset\t-",
        "r\trlock\t-\tfree\t-",
        "s\tsemaphore\t2/3\t2 free\t-",
        "v\tvalue\ti64\t-5\t-",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    let v = json_lines(&ns, &["ls"]);
    let objs = v[0]["objects"].as_array().unwrap();
    let kinds: Vec<&str> = objs.iter().map(|o| o["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "array",
            "barrier",
            "condition",
            "event",
            "rlock",
            "semaphore",
            "value"
        ]
    );
}

#[test]
fn demo_tickets_shm_store_never_oversells_and_is_measured_beside_the_file() {
    let ns = Ns::new();
    let v = json_lines(
        &ns,
        &[
            "demo",
            "tickets",
            "--store",
            "shm",
            "--buyers",
            "8",
            "--tickets",
            "3",
            "--delay",
            "0.01",
        ],
    );
    assert_eq!(v[0]["store"], "shm");
    assert_eq!(v[0]["sold"], 3);
    assert_eq!(v[0]["oversold"], 0);
    assert_eq!(v[0]["left"], 0);

    let v = json_lines(
        &ns,
        &[
            "demo",
            "tickets",
            "--store",
            "both",
            "--buyers",
            "4",
            "--tickets",
            "100000",
            "--attempts",
            "200",
            "--delay",
            "0",
        ],
    );
    assert_eq!(v.len(), 3, "{v:?}");
    assert_eq!(v[0]["store"], "file");
    assert_eq!(v[1]["store"], "shm");
    for r in &v[..2] {
        assert_eq!(r["sold"], 800);
        assert_eq!(r["left"], 100000 - 800);
        assert!(r["attempts_per_s"].as_f64().unwrap() > 0.0);
    }
    assert!(v[2]["compare"]["shm_over_file"].as_f64().unwrap() > 0.0);
}
