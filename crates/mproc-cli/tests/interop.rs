//! A typed `Queue<String>` / `Queue<Vec<u8>>` in Rust and `mproc queue` in
//! the shell read each other's messages (the README's mixed example).

mod common;

use common::Ns;
use mproc::{Namespace, Queue, QueueOptions};

#[test]
fn rust_string_queue_and_the_cli_read_each_other() {
    let ns = Ns::new();
    let space = Namespace::dir(ns.dir()).unwrap();
    let jobs: Queue<String> =
        Queue::open_or_create_in(&space, "jobs", QueueOptions::new().maxsize(100)).unwrap();
    // The shell puts, Rust gets.
    ns.cmd()
        .args(["queue", "put", "jobs", "resize photo-1.jpg"])
        .assert()
        .success();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs.get().unwrap(), "resize photo-1.jpg");
    // Rust puts, the shell gets.
    jobs.put("résumé.pdf".to_string()).unwrap();
    ns.cmd()
        .args(["queue", "get", "jobs"])
        .assert()
        .success()
        .stdout("résumé.pdf");
    // Bytes too.
    let raw: Queue<Vec<u8>> = Queue::open_in(&space, "jobs").unwrap();
    raw.put(vec![0, 1, 255]).unwrap();
    ns.cmd()
        .args(["queue", "get", "jobs"])
        .assert()
        .success()
        .stdout(vec![0u8, 1, 255]);
    // A message that is not UTF-8 is not lost by a Queue<String>.
    ns.cmd()
        .args(["queue", "put", "jobs"])
        .write_stdin(vec![0xffu8, b'x'])
        .assert()
        .success();
    let e = jobs.get().unwrap_err();
    assert!(
        matches!(e, mproc::GetError::Decode { ref bytes, .. } if bytes == &[0xff, b'x']),
        "{e:?}"
    );
}
