//! Producer and consumer threads moving items through one queue, shared by
//! the Redis measuring examples (`redis_bench`, `redis_scale`).

use mproc::{ByteQueue, GetError, Namespace};

/// Moves `per` 16-byte items from each of `producers` threads to
/// `consumers` threads through the existing queue `name` (in batches of
/// `batch` with `put_many` / `get_many`; one by one when `batch` ≤ 1),
/// closes the queue and returns the items delivered (checked: each once).
pub(crate) fn move_items(
    ns: &Namespace,
    name: &str,
    producers: usize,
    consumers: usize,
    per: usize,
    batch: usize,
) -> usize {
    let payload = [7u8; 16];
    let mut threads = Vec::new();
    for _ in 0..producers {
        let q = ByteQueue::open_in(ns, name).unwrap();
        threads.push(std::thread::spawn(move || {
            if batch <= 1 {
                for _ in 0..per {
                    q.put(&payload).unwrap();
                }
            } else {
                let msgs: Vec<&[u8]> = vec![&payload[..]; batch];
                let mut left = per;
                while left > 0 {
                    let k = left.min(batch);
                    q.put_many(&msgs[..k]).unwrap();
                    left -= k;
                }
            }
        }));
    }
    let mut takers = Vec::new();
    for _ in 0..consumers {
        let q = ByteQueue::open_in(ns, name).unwrap();
        takers.push(std::thread::spawn(move || {
            let mut n = 0usize;
            loop {
                let r = if batch <= 1 {
                    q.get().map(|_| 1)
                } else {
                    q.get_many_with(batch, |_| {})
                };
                match r {
                    Ok(k) => n += k,
                    Err(GetError::Closed) => return n,
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    ByteQueue::open_in(ns, name).unwrap().close();
    let got: usize = takers.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(got, per * producers, "every item arrives once");
    got
}
