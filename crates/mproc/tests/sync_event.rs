//! Event across real processes: CPython's `_TestEvent.test_event`, every
//! waiter released by one `set`.

mod common;

use std::time::Duration;

use common::{assert_about, namespace, timed, JOIN};
use mproc::{Event, Process};

const T: Duration = Duration::from_millis(200);

#[test]
fn test_event() {
    let (_d, ns) = namespace();
    let e = Event::create_in(&ns, "e").unwrap();
    assert!(!e.is_set());
    let (r, d) = timed(|| e.wait_timeout(Duration::ZERO));
    assert!(!r);
    assert!(d < Duration::from_millis(100));
    let (r, d) = timed(|| e.wait_timeout(T));
    assert!(!r);
    assert_about(d, T);

    e.set();
    assert!(e.is_set());
    let (_, d) = timed(|| e.wait());
    assert!(d < Duration::from_millis(100));
    let (r, d) = timed(|| e.wait_timeout(T));
    assert!(r);
    assert!(d < Duration::from_millis(100));

    e.clear();
    assert!(!e.is_set());
    // A child sets it after T; the parent's wait returns true.
    let mut child = Process::spawn(e.clone(), |e: Event| {
        std::thread::sleep(Duration::from_millis(200));
        e.set();
    })
    .unwrap();
    let (r, d) = timed(|| e.wait_timeout(JOIN));
    assert!(r);
    assert!(d >= Duration::from_millis(100));
    child.join_timeout(JOIN).unwrap();
    // Named: another handle sees the same flag.
    assert!(Event::open_in(&ns, "e").unwrap().is_set());
}

#[test]
fn test_event_set_releases_every_waiter() {
    let e = Event::new().unwrap();
    let mut children: Vec<_> = (0..5)
        .map(|_| {
            Process::spawn(e.clone(), |e: Event| {
                e.wait_timeout(Duration::from_secs(30))
            })
            .unwrap()
        })
        .collect();
    let deadline = std::time::Instant::now() + JOIN;
    while e.waiting() < 5 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    e.set();
    for c in &mut children {
        assert!(c.join_timeout(JOIN).unwrap());
    }
}
