//! `mproc torture`: a bounded run of the kill-everything harness must find
//! no anomaly (nothing lost, nothing duplicated beyond redelivery, no lost
//! update under the lock, nothing wedged, counters matching contents).

mod common;

use common::bin;

#[test]
fn a_short_torture_run_finds_no_anomaly() {
    let out = std::process::Command::new(bin())
        .args(["--json", "torture", "--seconds", "15", "--pace-us", "20"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    for key in [
        "lost",
        "duplicated_beyond_redelivery",
        "lost_updates",
        "wedged",
    ] {
        assert_eq!(v[key], 0, "{key} in {v}");
    }
    assert_eq!(v["counters_ok"], true, "{v}");
    assert!(v["kills"].as_u64().unwrap() > 50, "{v}");
    assert!(v["items_acked"].as_u64().unwrap() > 0, "{v}");
    assert!(v["lock_sections"].as_u64().unwrap() > 0, "{v}");
    assert!(out.status.success());
}
