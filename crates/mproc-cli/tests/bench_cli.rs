//! `mproc bench`: the JSON object has every documented key, each a number
//! (Python's figure may be null when python3 is missing), and the human form
//! prints a table.

mod common;

use common::Ns;

const NUMBER_KEYS: [&str; 10] = [
    "queue_1to1_8b_msgs_per_s",
    "queue_4to2_8b_msgs_per_s",
    "queue_1to1_64k_mb_per_s",
    "roundtrip_8b_us",
    "roundtrip_8b_p99_us",
    "lock_uncontended_ops_per_s",
    "lock_2procs_ops_per_s",
    "lock_2procs_min_share",
    "lock_longest_wait_ms",
    "tickets_4x10k_buys_per_s",
];

#[test]
fn json_has_every_key_with_a_number() {
    let ns = Ns::new();
    let out = ns
        .cmd()
        .args(["--json", "bench", "--seconds", "0.15"])
        .timeout(common::WATCHDOG)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in NUMBER_KEYS {
        let x = v[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{k} is not a number: {v}"));
        assert!(x.is_finite() && x > 0.0, "{k} = {x}");
    }
    let share = v["lock_2procs_min_share"].as_f64().unwrap();
    assert!(share <= 0.5, "the smaller of two shares: {share}");
    assert!(
        v["roundtrip_8b_p99_us"].as_f64() >= v["roundtrip_8b_us"].as_f64(),
        "p99 below the median: {v}"
    );
    let py = &v["python_queue_1to1_8b_msgs_per_s"];
    assert!(py.is_null() || py.as_f64().is_some_and(|x| x > 0.0), "{py}");
    let has_python = std::process::Command::new("python3")
        .arg("-c")
        .arg("import multiprocessing")
        .status()
        .is_ok_and(|s| s.success());
    assert_eq!(
        py.is_null(),
        !has_python,
        "python3 present: {has_python}, got {py}"
    );
}

#[test]
fn human_output_is_a_table() {
    let ns = Ns::new();
    let out = ns
        .cmd()
        .args(["-q", "bench", "--seconds", "0.1"])
        .timeout(common::WATCHDOG)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("round trip"), "{text}");
    assert!(text.contains("tickets"), "{text}");
}
