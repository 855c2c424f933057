//! At-least-once delivery: leased gets, acknowledgements, redelivery of the
//! items of consumers killed before acknowledging, and dead-lettering.

mod common;

use std::time::{Duration, Instant};

use common::{namespace, JOIN};
use mproc::{AckError, ByteQueue, GetError, Process, Queue, QueueOptions};

#[test]
fn ack_settles_a_lease_once() {
    let q: Queue<String> = Queue::new(0).unwrap();
    q.put("a".into()).unwrap();
    q.put("b".into()).unwrap();
    let l = q.get_leased().unwrap();
    assert_eq!((l.item.as_str(), l.deliveries()), ("a", 1));
    let s = q.stats();
    assert_eq!((s.len, s.leased), (1, 1));
    q.ack(&l.receipt).unwrap();
    assert_eq!(q.ack(&l.receipt).unwrap_err(), AckError::NotHeld);
    assert_eq!(q.stats().leased, 0);
    assert_eq!(q.get().unwrap(), "b");
}

#[test]
fn leased_items_keep_their_space_until_acknowledged() {
    let q = ByteQueue::with_options(QueueOptions::new().maxsize(2)).unwrap();
    q.put(b"1").unwrap();
    q.put(b"2").unwrap();
    let (_, r1) = q.get_leased().unwrap();
    let (_, r2) = q.get_leased().unwrap();
    assert_eq!(q.len(), 0);
    assert!(
        q.try_put(b"3").unwrap_err().is_full(),
        "unacknowledged items still count"
    );
    // Acknowledged out of order: space returns once the front is settled.
    q.ack(&r2).unwrap();
    assert!(q.try_put(b"3").unwrap_err().is_full());
    q.ack(&r1).unwrap();
    q.try_put(b"3").unwrap();
    q.try_put(b"4").unwrap();
    assert_eq!(q.get().unwrap(), b"3");
}

#[test]
fn a_killed_consumer_s_item_is_delivered_again_first() {
    let q: Queue<u32> = Queue::new(0).unwrap();
    for i in 0..3 {
        q.put(i).unwrap();
    }
    let ready: Queue<u32> = Queue::new(0).unwrap();
    let mut victim = Process::spawn(
        (q.clone(), ready.clone()),
        |(q, ready): (Queue<u32>, Queue<u32>)| {
            let l = q.get_leased().unwrap();
            ready.put(l.item).unwrap();
            std::thread::sleep(Duration::from_secs(600));
        },
    )
    .unwrap();
    assert_eq!(ready.get_timeout(JOIN).unwrap(), 0);
    assert_eq!(q.stats().leased, 1);
    victim.kill().unwrap();
    let _ = victim.join_timeout(JOIN);
    // The next get finds the dead consumer's item and delivers it first.
    let l = q.get_leased_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!((l.item, l.deliveries()), (0, 2));
    q.ack(&l.receipt).unwrap();
    assert_eq!(q.get().unwrap(), 1);
    assert_eq!(q.get().unwrap(), 2);
    let s = q.stats();
    assert_eq!((s.len, s.leased, s.requeued), (0, 0, 0));
}

#[test]
fn a_waiting_consumer_wakes_for_a_reclaimed_item() {
    let q: Queue<u32> = Queue::new(0).unwrap();
    q.put(42).unwrap();
    let ready: Queue<u32> = Queue::new(0).unwrap();
    let mut victim = Process::spawn(
        (q.clone(), ready.clone()),
        |(q, ready): (Queue<u32>, Queue<u32>)| {
            let l = q.get_leased().unwrap();
            ready.put(l.item).unwrap();
            std::thread::sleep(Duration::from_secs(600));
        },
    )
    .unwrap();
    ready.get_timeout(JOIN).unwrap();
    // A second consumer blocks on the (now empty) queue...
    let mut waiter = Process::spawn(q.clone(), |q: Queue<u32>| {
        let l = q.get_leased().unwrap();
        q.ack(&l.receipt).unwrap();
        (l.item, l.deliveries())
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(waiter.is_alive());
    // ...and gets the item soon after its holder is killed.
    let t = Instant::now();
    victim.kill().unwrap();
    let _ = victim.join_timeout(JOIN);
    assert_eq!(waiter.join_timeout(JOIN).unwrap(), (42, 2));
    eprintln!("redelivered {:?} after the kill", t.elapsed());
}

#[test]
fn items_whose_consumers_keep_dying_go_to_the_dead_letter_queue() {
    let (_d, ns) = namespace();
    let q = ByteQueue::create_in(&ns, "jobs", QueueOptions::new().max_deliveries(2)).unwrap();
    q.put(b"poison").unwrap();
    q.put(b"fine").unwrap();
    for round in 1..=2u32 {
        let mut c = Process::spawn(q.clone(), |q: ByteQueue| {
            let (item, r) = q.get_leased().unwrap();
            assert_eq!(item, b"poison");
            // Dies without acknowledging.
            r.deliveries()
        })
        .unwrap();
        assert_eq!(c.join_timeout(JOIN).unwrap(), round);
    }
    // Third delivery would exceed the limit: it is dead-lettered instead.
    assert_eq!(q.reclaim().unwrap(), 1);
    let (item, r) = q.get_leased_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(item, b"fine");
    q.ack(&r).unwrap();
    assert_eq!(q.stats().dead_lettered, 1);
    let dlq = ByteQueue::open_in(&ns, "jobs.dlq").unwrap();
    assert_eq!(dlq.get().unwrap(), b"poison");
    assert_eq!(q.try_get().unwrap_err(), GetError::Empty);
}

#[test]
fn close_waits_for_outstanding_leases_before_ending_the_stream() {
    let q: Queue<u32> = Queue::new(0).unwrap();
    q.put(1).unwrap();
    let mut c = Process::spawn(q.clone(), |q: Queue<u32>| {
        let _lease = q.get_leased().unwrap();
        // Dies holding it.
    })
    .unwrap();
    c.join_timeout(JOIN).unwrap();
    q.close();
    // The dead consumer's item comes back before end of stream.
    let l = q.get_leased_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!((l.item, l.deliveries()), (1, 2));
    q.ack(&l.receipt).unwrap();
    assert_eq!(
        q.get_timeout(Duration::from_secs(5)).unwrap_err(),
        GetError::Closed
    );
}

#[test]
fn nack_gives_an_item_back_first_with_its_count() {
    let q: Queue<u32> = Queue::new(0).unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    let l = q.get_leased().unwrap();
    q.nack(&l.receipt).unwrap();
    assert_eq!(q.nack(&l.receipt).unwrap_err(), AckError::NotHeld);
    assert_eq!(q.len(), 2);
    let again = q.get_leased().unwrap();
    assert_eq!((again.item, again.deliveries()), (1, 2));
    q.ack(&again.receipt).unwrap();
    assert_eq!(q.get().unwrap(), 2);
}
