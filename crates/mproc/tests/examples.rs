//! The tutorial's programs (crates/mproc/examples), run with real processes.

#[path = "../examples/tickets.rs"]
#[allow(dead_code, unreachable_pub)]
mod tickets;

use tickets::{run, Options};

fn opts(dir: &std::path::Path, buyers: usize, tickets: u32, delays: bool, lock: bool) -> Options {
    Options {
        buyers,
        tickets,
        delays,
        lock,
        file: dir.join("ticket"),
        log: Some(dir.join("log")),
    }
}

#[test]
fn tickets_with_the_lock_never_oversell_over_100_runs() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..100u32 {
        let (buyers, tickets) = (4, i % 3 + 1);
        let r = run(&opts(dir.path(), buyers, tickets, false, true)).unwrap();
        assert_eq!(r.sold, tickets.min(buyers as u32), "run {i}: {r:?}");
        assert_eq!(r.oversold, 0, "run {i}: {r:?}");
        assert_eq!(r.left, tickets - r.sold, "run {i}: {r:?}");
    }
}

#[test]
fn tickets_with_the_lock_and_delays_tell_the_tutorials_story() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(&opts(dir.path(), 3, 1, true, true)).unwrap();
    assert_eq!((r.sold, r.oversold, r.left), (1, 0, 0));
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    // Everyone searched and saw the one ticket (searching takes no lock).
    for i in 0..3 {
        assert!(
            lines.contains(&format!("alex{i}: 1 tickets left").as_str()),
            "{log}"
        );
    }
    // Exactly one bought it, right after seeing it.
    let bought: Vec<usize> = (0..lines.len())
        .filter(|&k| lines[k].ends_with(" bought a ticket"))
        .collect();
    assert_eq!(bought.len(), 1, "{log}");
    let name = lines[bought[0]].trim_end_matches(" bought a ticket");
    assert_eq!(
        lines[bought[0] - 1],
        format!("{name} saw 1 tickets"),
        "{log}"
    );
}

#[test]
fn tickets_without_the_lock_oversell() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(&opts(dir.path(), 10, 1, true, false)).unwrap();
    assert!(r.oversold > 0, "{r:?}");
    assert!(r.sold > 1, "{r:?}");
}

/// The example binary cargo built beside this test (`cargo test` builds the
/// examples; with a `--test` filter it may not have: then the check is
/// skipped with a note).
fn example(name: &str) -> Option<std::process::Command> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join("examples").join(name);
    if path.exists() {
        Some(std::process::Command::new(path))
    } else {
        eprintln!("{} not built; skipped", path.display());
        None
    }
}

#[test]
fn bounded_queue_example_tells_the_story() {
    let Some(mut cmd) = example("bounded_queue") else {
        return;
    };
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "111");
    assert!(text.contains("put(6) blocked for"), "{text}");
    // The consumer's line comes from another process: its place among the
    // parent's lines is up to the scheduler.
    assert!(lines.iter().any(|l| l.contains("took 1")), "{text}");
    let went = lines
        .iter()
        .position(|l| l.contains("went through"))
        .unwrap();
    let two = lines.iter().position(|l| *l == "222").unwrap();
    assert!(went < two, "{text}");
    assert!(text.contains("[2, 3, 4, 5, 6]"), "{text}");
}

#[test]
fn producer_consumer_example_eats_every_item_both_ways() {
    let Some(mut cmd) = example("producer_consumer") else {
        return;
    };
    let out = cmd.arg("--fast").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let (sentinel, close) = text.split_once("--- with mproc::Runtime").unwrap();
    for part in [sentinel, close] {
        let ate = part.lines().filter(|l| l.contains(" ate slop")).count();
        let made = part.lines().filter(|l| l.contains("produced slop")).count();
        assert_eq!((made, ate), (50, 50), "{part}");
    }
    assert!(close.contains("produced 50, consumed 50"), "{close}");
}
