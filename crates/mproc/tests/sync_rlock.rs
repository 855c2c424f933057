//! RLock across real processes: CPython's `_TestLock.test_rlock` and
//! `test_rlock_context`, ownership errors, and a holder killed with SIGKILL.

mod common;

use std::time::Duration;

use common::{assert_about, namespace, timed, JOIN};
use mproc::{Event, LockError, Process, RLock};

const T: Duration = Duration::from_millis(200);

#[test]
fn test_rlock_reentry_and_release_counts() {
    let (_d, ns) = namespace();
    let l = RLock::create_in(&ns, "r").unwrap();
    l.acquire().unwrap();
    l.acquire().unwrap();
    l.acquire().unwrap();
    assert!(l.is_locked() && l.is_owned());
    assert_eq!(l.count(), 3);
    l.release().unwrap();
    assert!(l.is_locked());
    l.release().unwrap();
    assert!(l.is_locked());
    l.release().unwrap();
    assert!(!l.is_locked());
    assert_eq!(l.count(), 0);
    assert!(l.release().is_err(), "a 4th release is refused");
}

#[test]
fn test_rlock_context_guards_nest() {
    let l = RLock::new().unwrap();
    {
        let _a = l.lock().unwrap();
        let _b = l.try_lock().unwrap();
        assert_eq!(l.count(), 2);
        assert_eq!(l.owner().unwrap().0, std::process::id());
    }
    assert!(!l.is_locked());
}

#[test]
fn test_rlock_other_process_blocks_and_cannot_release() {
    let l = RLock::new().unwrap();
    l.acquire().unwrap();
    let mut child = Process::spawn(l.clone(), |l: RLock| {
        let not_owner = l.release().is_err();
        let (r, d) = timed(|| l.acquire_timeout(Duration::from_millis(200)));
        let busy = matches!(r, Err(LockError::WouldBlock));
        let try_busy = matches!(l.try_acquire(), Err(LockError::WouldBlock));
        (not_owner, busy, try_busy, d)
    })
    .unwrap();
    let (not_owner, busy, try_busy, d) = child.join_timeout(JOIN).unwrap();
    assert!(not_owner, "a non-owner's release is refused");
    assert!(busy && try_busy);
    assert_about(d, T);
    l.release().unwrap();
    let mut child = Process::spawn(l.clone(), |l: RLock| {
        let _g = l.lock().unwrap();
        let _h = l.lock().unwrap();
        l.count()
    })
    .unwrap();
    assert_eq!(child.join_timeout(JOIN).unwrap(), 2);
    assert!(!l.is_locked());
}

#[test]
fn test_rlock_owner_killed_next_acquirer_told() {
    let l = RLock::new().unwrap();
    let ready = Event::new().unwrap();
    let mut child =
        Process::<()>::spawn((l.clone(), ready.clone()), |(l, ready): (RLock, Event)| {
            l.acquire().unwrap();
            l.acquire().unwrap();
            ready.set();
            loop {
                std::thread::park();
            }
        })
        .unwrap();
    assert!(ready.wait_timeout(JOIN));
    assert!(l.is_locked() && !l.is_owned());
    child.kill().unwrap();
    let _ = child.join_timeout(JOIN);
    let (r, d) = timed(|| l.acquire_timeout(JOIN));
    assert!(matches!(r, Err(LockError::OwnerDied(_))), "{r:?}");
    assert!(d < Duration::from_secs(5));
    assert_eq!(
        l.count(),
        1,
        "the dead owner's recursion does not carry over"
    );
    l.release().unwrap();
    assert!(!l.is_locked());
    l.acquire().unwrap();
    l.release().unwrap();
}
