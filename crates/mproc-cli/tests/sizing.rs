//! A queue takes the memory its budget says, and holds a message of that
//! many bytes.

mod common;

use common::Ns;

#[test]
fn max_bytes_is_the_memory_and_the_largest_message() {
    let ns = Ns::new();
    ns.cmd()
        .args(["queue", "create", "q", "--max-bytes", "4M"])
        .assert()
        .success();
    let size = std::fs::metadata(ns.dir().join("q")).unwrap().len();
    assert!(
        (4 << 20..(4 << 20) + 4096).contains(&size),
        "a 4 MiB budget takes {size} bytes"
    );
    // A message of exactly 4 MiB fits, one byte more is refused with the
    // flag to raise.
    ns.cmd()
        .args(["queue", "put", "q"])
        .write_stdin(vec![b'x'; 4 << 20])
        .assert()
        .success();
    let out = ns
        .cmd()
        .args(["queue", "put", "q"])
        .write_stdin(vec![b'y'; (4 << 20) + 1])
        .assert()
        .code(65);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("--max-bytes"), "{err}");
    let got = ns.cmd().args(["queue", "get", "q"]).assert().success();
    assert_eq!(got.get_output().stdout.len(), 4 << 20);
}
