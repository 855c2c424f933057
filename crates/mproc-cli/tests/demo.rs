//! `mproc demo`: the ticket grab (with the lock nothing is oversold,
//! without it the buyers oversell) and the producer-consumer pipeline
//! (nothing lost, nothing duplicated, per-producer order kept).

mod common;

use common::Ns;
use predicates::prelude::*;

/// Runs a demo with `--json` and returns its summary.
fn json_of(ns: &Ns, args: &[&str]) -> serde_json::Value {
    let out = ns.cmd().arg("--json").args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn tickets_with_the_lock_never_oversell() {
    let ns = Ns::new();
    let v = json_of(
        &ns,
        &[
            "demo",
            "tickets",
            "--buyers",
            "8",
            "--tickets",
            "3",
            "--delay",
            "0.01",
        ],
    );
    assert_eq!(v["buyers"], 8);
    assert_eq!(v["tickets"], 3);
    assert_eq!(v["sold"], 3);
    assert_eq!(v["oversold"], 0);
    assert_eq!(v["left"], 0);
    assert!(v["elapsed_s"].as_f64().unwrap() > 0.0);
    // More tickets than buyers: everyone buys, the rest are left.
    let v = json_of(
        &ns,
        &[
            "demo",
            "tickets",
            "--buyers",
            "4",
            "--tickets",
            "10",
            "--delay",
            "0",
        ],
    );
    assert_eq!(v["sold"], 4);
    assert_eq!(v["oversold"], 0);
    assert_eq!(v["left"], 6);
}

#[test]
fn tickets_without_the_lock_oversell() {
    let ns = Ns::new();
    let v = json_of(
        &ns,
        &[
            "demo",
            "tickets",
            "--no-lock",
            "--delay",
            "0.1",
            "--buyers",
            "10",
            "--tickets",
            "3",
        ],
    );
    assert!(v["oversold"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(
        v["sold"].as_u64().unwrap(),
        3 + v["oversold"].as_u64().unwrap()
    );
}

#[test]
fn tickets_prints_the_tutorial_lines() {
    let ns = Ns::new();
    let out = ns
        .cmd()
        .args([
            "demo",
            "tickets",
            "--buyers",
            "3",
            "--tickets",
            "1",
            "--delay",
            "0.05",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for k in 0..3 {
        assert!(text.contains(&format!("alex{k}: 1 ticket left")), "{text}");
    }
    assert_eq!(text.matches(" bought a ticket").count(), 1, "{text}");
    assert_eq!(text.matches(" sees 1 ticket").count(), 1, "{text}");
    // The buyers who came too late say what they saw and did too.
    assert_eq!(text.matches(" sees ").count(), 3, "{text}");
    assert_eq!(text.matches(" sees 0 tickets").count(), 2, "{text}");
    assert_eq!(
        text.matches(" bought nothing: sold out").count(),
        2,
        "{text}"
    );
    assert!(text.contains("sold 1 of 1 ticket to 3 buyers: oversold 0, 0 left"));
    assert!(text.contains("attempts/s"));
    // The demo leaves nothing in the user's namespace.
    ns.cmd().arg("ls").assert().success().stdout("");
}

#[test]
fn pipeline_delivers_every_item_once_in_order() {
    let ns = Ns::new();
    let v = json_of(
        &ns,
        &[
            "demo",
            "pipeline",
            "--producers",
            "3",
            "--consumers",
            "2",
            "--items",
            "300",
            "--maxsize",
            "5",
            "--delay",
            "0",
        ],
    );
    assert_eq!(v["produced"], 900);
    assert_eq!(v["consumed"], 900);
    assert_eq!(v["lost"], 0);
    assert_eq!(v["duplicated"], 0);
    assert_eq!(v["order_ok"], true);
    assert!(v["elapsed_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn pipeline_human_summary() {
    let ns = Ns::new();
    ns.cmd()
        .args([
            "demo",
            "pipeline",
            "--producers",
            "2",
            "--consumers",
            "3",
            "--items",
            "20",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "2 producers made 40 items; 3 consumers ate 40",
        ))
        .stdout(predicate::str::contains(
            "lost 0, duplicated 0, per-producer order kept",
        ));
}

#[test]
fn demo_arguments_are_checked() {
    let ns = Ns::new();
    ns.cmd()
        .args(["demo", "tickets", "--buyers", "0"])
        .assert()
        .code(64);
    ns.cmd()
        .args(["demo", "tickets", "--delay", "inf"])
        .assert()
        .code(64);
    ns.cmd()
        .args(["demo", "pipeline", "--maxsize", "0"])
        .assert()
        .code(64);
}
