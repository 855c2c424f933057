//! Value and Array across real processes: a counter under the built-in
//! lock, arrays, type checks at open, and a lock holder killed with SIGKILL.

mod common;

use std::time::Duration;

use common::{namespace, JOIN};
use mproc::{Array, Event, LockError, Process, Value, ValueInfo};

#[test]
fn test_counter_under_the_lock_is_exact() {
    let (_d, ns) = namespace();
    let v = Value::<i64>::create_in(&ns, "n", 0, true).unwrap();
    let mut kids: Vec<_> = (0..4)
        .map(|_| {
            Process::spawn(v.clone(), |v: Value<i64>| {
                for _ in 0..1000 {
                    *v.get_lock().unwrap() += 1;
                }
            })
            .unwrap()
        })
        .collect();
    for p in &mut kids {
        p.join_timeout(JOIN).unwrap();
    }
    assert_eq!(v.get(), 4000);
    assert_eq!(Value::<i64>::open_in(&ns, "n").unwrap().get(), 4000);
}

#[test]
fn test_open_checks_type_and_kind() {
    let (_d, ns) = namespace();
    Value::<u64>::create_in(&ns, "v", 7, false).unwrap();
    assert!(Value::<f64>::open_in(&ns, "v").is_err());
    assert!(Value::<u32>::open_in(&ns, "v").is_err());
    assert!(Array::<u64>::open_in(&ns, "v").is_err());
    assert_eq!(Value::<u64>::open_in(&ns, "v").unwrap().get(), 7);
    let info = ValueInfo::inspect(&ns, "v").unwrap();
    assert_eq!((info.type_name, info.len), ("u64", 1));
    assert_eq!(info.preview, vec!["7".to_string()]);
}

#[test]
fn test_array_shared_with_child() {
    let a = Array::<f64>::with_lock(&[0.0; 8]).unwrap();
    let mut child = Process::spawn(a.clone(), |a: Array<f64>| {
        let mut g = a.get_lock().unwrap();
        for (i, x) in g.iter_mut().enumerate() {
            *x = i as f64 * 0.5;
        }
        a.len()
    })
    .unwrap();
    assert_eq!(child.join_timeout(JOIN).unwrap(), 8);
    assert_eq!(a.get(3), Some(1.5));
    assert_eq!(a.get(8), None);
    assert!(!a.set(8, 1.0));
    assert_eq!(a.to_vec().iter().sum::<f64>(), 14.0);
}

#[test]
fn test_lock_holder_killed_next_gets_owner_died_with_data() {
    let v = Value::<i64>::with_lock(3).unwrap();
    let ready = Event::new().unwrap();
    let mut child = Process::<()>::spawn(
        (v.clone(), ready.clone()),
        |(v, ready): (Value<i64>, Event)| {
            let mut g = v.get_lock().unwrap();
            *g = 2;
            ready.set();
            loop {
                std::thread::park();
            }
        },
    )
    .unwrap();
    assert!(ready.wait_timeout(JOIN));
    assert!(v.try_get_lock().unwrap_err().is_would_block());
    child.kill().unwrap();
    let _ = child.join_timeout(JOIN);
    match v.get_lock_timeout(Duration::from_secs(10)) {
        Err(LockError::OwnerDied(o)) => {
            let mut g = o.into_inner();
            assert_eq!(*g, 2);
            *g -= 1;
        }
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    assert_eq!(v.get(), 1);
    assert!(v.get_lock().is_ok(), "clean after the repair");
}

#[test]
fn test_get_and_set_while_holding_the_guard_do_not_deadlock() {
    let v = Value::<u32>::with_lock(1).unwrap();
    let g = v.get_lock().unwrap();
    v.set(v.get() + 1); // Python: `with v.get_lock(): v.value += 1`
    assert_eq!(*g, 2);
    drop(g);
    assert_eq!(v.update(|n| n * 10), 20);
}

#[test]
fn test_arrays_of_arrays_are_told_apart() {
    let (_d, ns) = namespace();
    Value::<[u16; 3]>::create_in(&ns, "v", [1, 2, 3], true).unwrap();
    assert!(Value::<[[u8; 2]; 3]>::open_in(&ns, "v").is_err());
    assert_eq!(
        Value::<[u16; 3]>::open_in(&ns, "v").unwrap().get(),
        [1, 2, 3]
    );
}
