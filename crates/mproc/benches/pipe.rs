//! Pipe throughput (8 B, 1 KiB, 64 KiB messages, child → parent), 8-byte
//! round-trip latency, and spawn-to-first-message time; each beside a raw
//! unix stream socket carrying fixed-size messages between the same two
//! processes (no framing, no locking: the floor for a socket-based pipe).
//!
//! Python's figures come from `benches/py/pipe_bench.py`, run in the same
//! invocation by `benches/py/compare.sh`.
//!
//! ```text
//! cargo bench -p mproc --bench pipe
//! ```

#![allow(missing_docs)] // criterion_group! defines an undocumented function

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use mproc::{pipe, Connection, Process, ProcessBuilder, StartMethod};

#[derive(serde::Serialize, serde::Deserialize)]
enum Cmd {
    /// Send `count` framed messages of `size` bytes.
    Stream { count: u64, size: usize },
    /// Write `count` fixed-size messages on the raw socket.
    RawStream { count: u64, size: usize },
    /// Echo `count` framed messages.
    Echo { count: u64 },
    /// Echo `count` 8-byte messages on the raw socket.
    RawEcho { count: u64 },
}

fn raw(c: &Connection) -> UnixStream {
    UnixStream::from(c.as_fd().try_clone_to_owned().expect("dup"))
}

/// The peer process: serves commands until the parent closes its end.
fn server(c: Connection) {
    let mut sock = raw(&c);
    while let Ok(cmd) = c.recv::<Cmd>() {
        match cmd {
            Cmd::Stream { count, size } => {
                let msg = vec![0xA5u8; size];
                for _ in 0..count {
                    c.send_bytes(&msg).expect("send");
                }
            }
            Cmd::RawStream { count, size } => {
                let msg = vec![0xA5u8; size];
                for _ in 0..count {
                    sock.write_all(&msg).expect("write");
                }
            }
            Cmd::Echo { count } => {
                for _ in 0..count {
                    let m = c.recv_bytes().expect("recv");
                    c.send_bytes(&m).expect("send");
                }
            }
            Cmd::RawEcho { count } => {
                let mut b = [0u8; 8];
                for _ in 0..count {
                    sock.read_exact(&mut b).expect("read");
                    sock.write_all(&b).expect("write");
                }
            }
        }
    }
}

fn bench_pipe(c: &mut Criterion) {
    let (conn, theirs) = pipe().expect("pipe");
    let mut peer = Process::spawn(theirs, server).expect("spawn");
    let mut sock = raw(&conn);

    let mut g = c.benchmark_group("pipe_throughput");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    for size in [8usize, 1024, 65536] {
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(
            BenchmarkId::new("mproc_send_bytes", size),
            &size,
            |b, &size| {
                b.iter_custom(|iters| {
                    let t = Instant::now();
                    conn.send(&Cmd::Stream { count: iters, size }).unwrap();
                    for _ in 0..iters {
                        let m = conn.recv_bytes().unwrap();
                        debug_assert_eq!(m.len(), size);
                    }
                    t.elapsed()
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("raw_unix_socket", size),
            &size,
            |b, &size| {
                let mut buf = vec![0u8; size];
                b.iter_custom(|iters| {
                    let t = Instant::now();
                    conn.send(&Cmd::RawStream { count: iters, size }).unwrap();
                    for _ in 0..iters {
                        sock.read_exact(&mut buf).unwrap();
                    }
                    t.elapsed()
                })
            },
        );
    }
    g.finish();

    let mut g = c.benchmark_group("pipe_round_trip_8B");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    g.bench_function("mproc_send_bytes", |b| {
        let msg = [7u8; 8];
        b.iter_custom(|iters| {
            conn.send(&Cmd::Echo { count: iters }).unwrap();
            let t = Instant::now();
            for _ in 0..iters {
                conn.send_bytes(&msg).unwrap();
                conn.recv_bytes().unwrap();
            }
            t.elapsed()
        })
    });
    g.bench_function("raw_unix_socket", |b| {
        let mut buf = [7u8; 8];
        b.iter_custom(|iters| {
            conn.send(&Cmd::RawEcho { count: iters }).unwrap();
            let t = Instant::now();
            for _ in 0..iters {
                sock.write_all(&buf).unwrap();
                sock.read_exact(&mut buf).unwrap();
            }
            t.elapsed()
        })
    });
    g.finish();
    drop(sock);
    drop(conn);
    peer.join().expect("peer");

    let mut g = c.benchmark_group("spawn_to_first_message");
    g.sample_size(20);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("mproc_process_spawn", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (mine, theirs) = pipe().unwrap();
                let t = Instant::now();
                let mut p = Process::spawn(theirs, |c: Connection| {
                    c.send_bytes(b"ready").unwrap();
                })
                .unwrap();
                mine.recv_bytes().unwrap();
                total += t.elapsed();
                p.join().unwrap();
            }
            total
        })
    });
    let fork = || ProcessBuilder::new().start_method(StartMethod::Fork);
    match fork().spawn((), |()| ()) {
        Ok(mut p) => {
            p.join().expect("fork");
            g.bench_function("mproc_process_fork", |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let (mine, theirs) = pipe().unwrap();
                        let t = Instant::now();
                        let mut p = fork()
                            .spawn(theirs, |c: Connection| {
                                c.send_bytes(b"ready").unwrap();
                            })
                            .unwrap();
                        mine.recv_bytes().unwrap();
                        total += t.elapsed();
                        p.join().unwrap();
                    }
                    total
                })
            });
        }
        Err(e) => eprintln!("mproc_process_fork skipped: {e}"),
    }
    g.finish();
}

criterion_group!(benches, bench_pipe);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
