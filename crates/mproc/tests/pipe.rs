//! Pipe / Connection / wait across real processes: CPython's
//! `_TestConnection`, `_TestPoll` and `TestWait` scenarios.

mod common;

use std::time::{Duration, Instant};

use common::{assert_about, timed, JOIN};
use mproc::{pipe, wait, Connection, Pipe, PipeError, Process, RecvIntoError, Waitable};

const T: Duration = Duration::from_millis(300);

fn echo(c: Connection) {
    while let Ok(m) = c.recv_bytes() {
        if c.send_bytes(&m).is_err() {
            return;
        }
    }
}

#[test]
fn test_connection_echo_child() {
    let (conn, child_conn) = pipe().unwrap();
    let mut p = Process::spawn(child_conn, echo).unwrap();
    // test_spawn_close: `child_conn` moved into spawn and is closed here.

    let seq = vec![1u32, 2, 3];
    conn.send(&seq).unwrap();
    assert_eq!(conn.recv::<Vec<u32>>().unwrap(), seq);

    let msg = b"hello world".to_vec();
    conn.send_bytes(&msg).unwrap();
    assert_eq!(conn.recv_bytes().unwrap(), msg);

    conn.send_bytes(b"abcdef").unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(conn.recv_bytes_into(&mut buf).unwrap(), 6);
    assert_eq!(&buf[..6], b"abcdef");
    conn.send_bytes(b"abcdef").unwrap();
    assert_eq!(conn.recv_bytes_into(&mut buf[8..]).unwrap(), 6);
    assert_eq!(&buf[8..14], b"abcdef");
    conn.send_bytes(&msg).unwrap();
    match conn.recv_bytes_into(&mut buf[..4]) {
        Err(RecvIntoError::BufferTooShort(m)) => assert_eq!(m, msg),
        other => panic!("expected BufferTooShort, got {other:?}"),
    }

    let (r, d) = timed(|| conn.poll(Duration::ZERO));
    assert!(!r.unwrap());
    assert!(d < Duration::from_millis(100));
    let (r, d) = timed(|| conn.poll(T));
    assert!(!r.unwrap());
    assert_about(d, T);

    conn.send(&None::<u8>).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let (r, d) = timed(|| conn.poll(T));
    assert!(r.unwrap());
    assert!(d < Duration::from_millis(100));
    assert_eq!(conn.recv::<Option<u8>>().unwrap(), None);

    let big: Vec<u8> = (0..16 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    conn.send_bytes(&big).unwrap();
    assert_eq!(conn.recv_bytes().unwrap(), big);

    // The peer process dies: its end closes with it.
    p.kill().unwrap();
    assert!(p.join_timeout(JOIN).is_err());
    assert!(conn.recv::<u8>().unwrap_err().is_disconnected());
    assert!(conn.recv_bytes().unwrap_err().is_disconnected());
    assert_eq!(
        conn.poll(Duration::ZERO),
        Ok(true),
        "end of stream is readable"
    );
}

#[test]
fn eof_when_the_child_returns_and_send_fails_after() {
    let (conn, child_conn) = pipe().unwrap();
    let mut p = Process::spawn(child_conn, |c: Connection| {
        c.send(&"bye").unwrap();
    })
    .unwrap();
    assert_eq!(conn.recv::<String>().unwrap(), "bye");
    p.join_timeout(JOIN).unwrap();
    assert_eq!(conn.recv::<String>(), Err(PipeError::Disconnected));
    assert_eq!(conn.send(&1u8), Err(PipeError::Disconnected));
}

#[test]
fn parent_keeping_the_child_end_never_sees_eof() {
    let (conn, child_conn) = pipe().unwrap();
    let mut p = Process::spawn(dup_end(&child_conn), |c: Connection| drop(c)).unwrap();
    p.join_timeout(JOIN).unwrap();
    assert_eq!(conn.recv_bytes_timeout(T), Err(PipeError::Timeout));
    drop(child_conn);
    assert_eq!(conn.recv_bytes_timeout(T), Err(PipeError::Disconnected));
}

/// A second copy of an end in this process (as a parent that forgot to
/// close its copy would have): decoding an end in the process that holds it
/// duplicates the descriptor.
fn dup_end(c: &Connection) -> Connection {
    let (tx, rx) = pipe().unwrap();
    tx.send(c).unwrap();
    rx.recv().unwrap()
}

#[test]
fn test_duplex_false() {
    let (reader, writer) = Pipe::simplex().unwrap();
    assert!(reader.is_readable() && !reader.is_writable());
    assert!(writer.is_writable() && !writer.is_readable());
    assert_eq!(reader.send_bytes(b"x"), Err(PipeError::ReadOnly));
    assert_eq!(writer.recv_bytes(), Err(PipeError::WriteOnly));
    assert_eq!(writer.poll(Duration::ZERO), Err(PipeError::WriteOnly));
    writer.send(&5u16).unwrap();
    assert_eq!(reader.recv::<u16>().unwrap(), 5);
    // Across processes.
    let mut p = Process::spawn(writer, |w: Connection| {
        for i in 0..3u8 {
            w.send(&i).unwrap();
        }
    })
    .unwrap();
    let got: Vec<u8> = (0..3).map(|_| reader.recv().unwrap()).collect();
    assert_eq!(got, [0, 1, 2]);
    p.join_timeout(JOIN).unwrap();
    assert!(reader.recv::<u8>().unwrap_err().is_disconnected());
}

#[test]
fn test_sendbytes_slices() {
    let (a, b) = pipe().unwrap();
    let msg = b"abcdefghijklmnopqrstuvwxyz";
    a.send_bytes(msg).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), msg);
    a.send_bytes(&msg[5..]).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), &msg[5..]);
    a.send_bytes(&msg[7..15]).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), &msg[7..15]);
    a.send_bytes(&msg[26..]).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), b"");
}

#[test]
fn test_context_closing_both_ends() {
    let (a, b) = pipe().unwrap();
    drop((a, b));
    // Use after close is prevented by ownership; a pipe whose peer is
    // closed reports the end of the stream.
    let (a, b) = pipe().unwrap();
    drop(b);
    assert_eq!(a.recv_bytes(), Err(PipeError::Disconnected));
}

#[test]
fn test_empty_string() {
    let (a, b) = pipe().unwrap();
    assert!(!a.poll(Duration::ZERO).unwrap());
    b.send_bytes(b"").unwrap();
    assert!(a.poll(Duration::ZERO).unwrap());
    assert!(a.poll(Duration::ZERO).unwrap(), "poll does not consume");
    assert_eq!(a.recv_bytes().unwrap(), b"");
    assert!(!a.poll(Duration::ZERO).unwrap());
}

#[test]
fn test_strings_with_empty_messages_in_order() {
    let strings: Vec<&[u8]> = vec![b"hello", b"", b"a", b"b", b"", b"bye", b"", b"lop"];
    let (a, b) = Pipe::simplex().unwrap();
    let mut p = Process::spawn(b, |w: Connection| {
        let strings: Vec<&[u8]> = vec![b"hello", b"", b"a", b"b", b"", b"bye", b"", b"lop"];
        for s in strings {
            w.send_bytes(s).unwrap();
        }
    })
    .unwrap();
    for s in &strings {
        assert!(a.poll(Duration::from_secs(60)).unwrap());
        assert_eq!(a.recv_bytes().unwrap(), *s);
    }
    p.join_timeout(JOIN).unwrap();
    assert!(a.recv_bytes().unwrap_err().is_disconnected());
}

#[test]
fn test_boundaries_poll_in_another_process_consumes_nothing() {
    let (r, w) = Pipe::simplex().unwrap();
    let mut p = Process::spawn(dup_end(&r), |r: Connection| {
        // Polling may see the data but must not take part of a message.
        r.poll(Duration::from_secs(5)).unwrap()
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let l: Vec<&[u8]> = vec![b"first", b"second"];
    for m in &l {
        w.send_bytes(m).unwrap();
    }
    drop(w);
    assert!(p.join_timeout(JOIN).unwrap());
    assert_eq!(r.recv_bytes().unwrap(), l[0]);
    assert_eq!(r.recv_bytes().unwrap(), l[1]);
}

#[test]
fn test_dont_merge() {
    let (a, b) = pipe().unwrap();
    a.send_bytes(b"a").unwrap();
    a.send_bytes(b"b").unwrap();
    a.send_bytes(b"cd").unwrap();
    assert!(b.poll(Duration::ZERO).unwrap());
    assert!(b.poll(Duration::ZERO).unwrap());
    assert_eq!(b.recv_bytes().unwrap(), b"a");
    assert_eq!(b.recv_bytes().unwrap(), b"b");
    assert!(b.poll(Duration::ZERO).unwrap());
    assert_eq!(b.recv_bytes().unwrap(), b"cd");
    assert!(!b.poll(Duration::ZERO).unwrap());
}

#[test]
fn try_recv_and_timeouts_keep_partial_messages() {
    let (a, b) = pipe().unwrap();
    assert_eq!(b.try_recv::<u8>(), Err(PipeError::Timeout));
    let (r, d) = timed(|| b.recv_timeout::<u8>(T));
    assert_eq!(r, Err(PipeError::Timeout));
    assert_about(d, T);
    // A writer that stalls in the middle of a big message: the reader times
    // out, then picks the message up whole.
    let big = vec![7u8; 4 * 1024 * 1024];
    let writer = std::thread::spawn(move || a.send_bytes(&big).map(|()| a));
    let mut got = None;
    let deadline = Instant::now() + JOIN;
    while Instant::now() < deadline {
        match b.recv_bytes_timeout(Duration::from_millis(1)) {
            Ok(m) => {
                got = Some(m);
                break;
            }
            Err(PipeError::Timeout) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let m = got.expect("the message arrived");
    assert_eq!(m.len(), 4 * 1024 * 1024);
    assert!(m.iter().all(|&x| x == 7));
    let a = writer.join().unwrap().unwrap();
    a.send(&3u8).unwrap();
    assert_eq!(b.try_recv::<u8>().unwrap(), 3);
}

#[test]
fn oversized_and_undecodable_messages_are_errors() {
    let (a, mut b) = pipe().unwrap();
    a.send_bytes(&[0xff; 3]).unwrap();
    assert!(matches!(b.recv::<String>(), Err(PipeError::Decode(_))));
    b.set_max_message(10);
    a.send_bytes(&[0; 11]).unwrap();
    assert_eq!(
        b.recv_bytes(),
        Err(PipeError::TooLarge {
            size: 11,
            limit: 10
        })
    );
    assert!(matches!(b.recv_bytes(), Err(PipeError::TooLarge { .. })));
}

#[test]
fn peer_killed_mid_stream_is_disconnected() {
    let (conn, child_conn) = pipe().unwrap();
    let mut p = Process::spawn(child_conn, |c: Connection| {
        c.send(&1u8).unwrap();
        std::thread::sleep(Duration::from_secs(60));
    })
    .unwrap();
    assert_eq!(conn.recv::<u8>().unwrap(), 1);
    p.kill().unwrap();
    let (r, d) = timed(|| conn.recv::<u8>());
    assert_eq!(r, Err(PipeError::Disconnected));
    assert!(d < Duration::from_secs(10));
    assert!(p.join_timeout(JOIN).is_err());
}

#[test]
fn threads_share_an_end() {
    let (a, b) = pipe().unwrap();
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let a = &a;
            s.spawn(move || {
                for i in 0..500u32 {
                    a.send(&(t, i, vec![t as u8; (i % 7) as usize * 1000]))
                        .unwrap();
                }
            });
        }
        let mut last = [None::<u32>; 4];
        for _ in 0..2000 {
            let (t, i, v): (u32, u32, Vec<u8>) = b.recv().unwrap();
            assert_eq!(v.len(), (i % 7) as usize * 1000);
            assert!(last[t as usize].map_or(i == 0, |l| l + 1 == i));
            last[t as usize] = Some(i);
        }
    });
}

#[test]
fn test_wait_drains_four_pipes_to_eof() {
    let mut readers = Vec::new();
    let mut procs = Vec::new();
    for i in 0..4u32 {
        let (r, w) = Pipe::simplex().unwrap();
        procs.push(
            Process::spawn((w, i), |(w, i): (Connection, u32)| {
                for j in 0..10u32 {
                    w.send(&(i, j)).unwrap();
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
            .unwrap(),
        );
        readers.push(Some(r));
    }
    let mut got = Vec::new();
    while readers.iter().any(Option::is_some) {
        let live: Vec<usize> = (0..4).filter(|&i| readers[i].is_some()).collect();
        let objs: Vec<&dyn Waitable> = live
            .iter()
            .map(|&i| readers[i].as_ref().unwrap() as &dyn Waitable)
            .collect();
        let ready = wait(&objs, Some(JOIN)).unwrap();
        assert!(!ready.is_empty());
        for k in ready {
            let i = live[k];
            match readers[i].as_ref().unwrap().recv::<(u32, u32)>() {
                Ok(m) => got.push(m),
                Err(PipeError::Disconnected) => readers[i] = None,
                Err(e) => panic!("{e}"),
            }
        }
    }
    got.sort();
    let want: Vec<(u32, u32)> = (0..4).flat_map(|i| (0..10).map(move |j| (i, j))).collect();
    assert_eq!(got, want);
    for p in &mut procs {
        p.join_timeout(JOIN).unwrap();
    }
}

#[test]
fn test_wait_timeout() {
    let (a, b) = pipe().unwrap();
    let (c, d) = pipe().unwrap();
    let (r, dt) = timed(|| wait(&[&a, &c], Some(Duration::from_secs(1))));
    assert!(r.unwrap().is_empty());
    assert!(dt >= Duration::from_millis(990), "{dt:?}");
    d.send(&1u8).unwrap();
    assert_eq!(
        wait(&[&a, &c], Some(Duration::from_secs(1))).unwrap(),
        vec![1]
    );
    let (r, dt) = timed(|| wait(&[&a], Some(Duration::ZERO)));
    assert!(r.unwrap().is_empty());
    assert!(dt < Duration::from_secs(1));
    drop(b);
    assert_eq!(wait(&[&a, &c], None).unwrap(), vec![0, 1], "EOF is ready");
}

#[test]
fn test_wait_on_process_sentinels() {
    let mut ps: Vec<Process<u64>> = [300u64, 0, 600]
        .into_iter()
        .map(|ms| {
            Process::spawn(ms, |ms: u64| {
                std::thread::sleep(Duration::from_millis(ms));
                ms
            })
            .unwrap()
        })
        .collect();
    let (r, d) = timed(|| wait(&[&ps[0], &ps[1], &ps[2]], Some(JOIN)));
    assert_eq!(r.unwrap(), vec![1]);
    assert!(d < Duration::from_millis(290) + Duration::from_secs(5));
    assert_eq!(ps[1].join_timeout(JOIN).unwrap(), 0);
    // A joined process is ready at once.
    assert!(wait(&[&ps[1]], Some(Duration::ZERO)).unwrap() == vec![0]);
    let (r, d) = timed(|| wait(&[&ps[0], &ps[2]], Some(JOIN)));
    assert_eq!(r.unwrap(), vec![0]);
    assert!(d >= Duration::from_millis(150), "{d:?}");
    for p in &mut ps[..] {
        let _ = p.join_timeout(JOIN);
    }
}

#[test]
fn an_end_sent_where_it_cannot_be_inherited_is_refused() {
    // An end's wire form names a descriptor of *this* process; decoding it
    // in another process (not through spawn) must fail, never alias.
    let (a, _b) = pipe().unwrap();
    let (rx, tx) = Pipe::simplex().unwrap();
    let mut p = Process::spawn(tx, |tx: Connection| {
        // Send an end of a pipe made here; the parent cannot use it.
        let (x, _y) = pipe().unwrap();
        tx.send(&x).unwrap();
    })
    .unwrap();
    let r = rx.recv::<Connection>();
    assert!(matches!(r, Err(PipeError::Decode(_))), "{r:?}");
    p.join_timeout(JOIN).unwrap();
    drop(a);
}
