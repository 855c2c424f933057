//! The Rust IPC crates and std's Unix socket as contenders: N child producers
//! -> one parent consumer (`tput`), ping-pong (`pingpong`), and the child side
//! of both (`child_transport`).

use std::io::{Read, Write};
use std::process::Child;
use std::time::Duration;

use ipc_channel::ipc::{self, IpcBytesReceiver, IpcBytesSender, IpcOneShotServer, IpcSender};
use serde::{Deserialize, Serialize};

use crate::proc::{finish_child, ms, spawn_child, uniq};
use crate::report::rtt_stats;
use crate::wire::{consume, echo, ping, produce, Consumed, Framed, Rx, Tx};

const RING_BYTES: u32 = 4 << 20; // ipmpsc ring size (as in the shared peer suite)
const RING_BYTES_1M: u32 = 1 << 20; // ipmpsc with mproc's default byte budget

#[derive(Clone, Copy, PartialEq)]
pub enum Kind {
    IpcChannel,
    Interprocess,
    Ipmpsc,
    Ipmpsc1M,
    UnixStream,
    Crossbeam,
}
impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::IpcChannel => "ipc-channel 0.23 (IpcBytesSender)",
            Kind::Interprocess => "interprocess 2 (local socket, sync)",
            Kind::Ipmpsc => "ipmpsc 0.5 (shm ring, 4 MiB)",
            Kind::Ipmpsc1M => "ipmpsc 0.5 (shm ring, 1 MiB)",
            Kind::UnixStream => "std UnixStream + u32 framing",
            Kind::Crossbeam => "crossbeam bounded(1024), threads",
        }
    }
    fn tag(self) -> &'static str {
        match self {
            Kind::IpcChannel => "ipc",
            Kind::Interprocess => "interprocess",
            Kind::Ipmpsc | Kind::Ipmpsc1M => "ipmpsc",
            Kind::UnixStream => "unix",
            Kind::Crossbeam => "crossbeam",
        }
    }
}

#[derive(Serialize, Deserialize)]
pub struct Setup {
    tx: Option<IpcBytesSender>,
    rx: Option<IpcBytesReceiver>,
}

/// Consume from several byte streams, one thread per connection (what a plain
/// std user would write), and merge the results.
pub fn consume_streams<S: Read + Write + Send + 'static>(conns: Vec<S>, size: usize) -> Consumed {
    if conns.len() == 1 {
        let mut f = Framed::new(conns.into_iter().next().unwrap());
        return consume(&mut f, 1, size);
    }
    let hs: Vec<_> = conns
        .into_iter()
        .map(|c| {
            std::thread::spawn(move || {
                let mut f = Framed::new(c);
                consume(&mut f, 1, size)
            })
        })
        .collect();
    let rs: Vec<Consumed> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    Consumed {
        msgs: rs.iter().map(|r| r.msgs).sum(),
        bytes: rs.iter().map(|r| r.bytes).sum(),
        first: rs.iter().map(|r| r.first).min().unwrap(),
        last: rs.iter().map(|r| r.last).max().unwrap(),
    }
}

pub fn ns_name(n: &str) -> interprocess::local_socket::Name<'static> {
    use interprocess::local_socket::{GenericNamespaced, ToNsName};
    n.to_string().to_ns_name::<GenericNamespaced>().unwrap()
}

/// N producers -> 1 consumer. Returns (msgs/s, MB/s).
pub fn tput(kind: Kind, size: usize, producers: usize, dur: Duration) -> (f64, f64) {
    let child_args = |target: &str| -> Vec<String> {
        vec![kind.tag().into(), "produce".into(), target.into(), size.to_string(), ms(dur)]
    };
    let (c, sent): (Consumed, u64) = match kind {
        Kind::UnixStream => {
            let path = uniq("sock");
            let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
            let kids: Vec<Child> = (0..producers).map(|_| spawn_child(&child_args(&path))).collect();
            let conns: Vec<_> = (0..producers).map(|_| l.accept().unwrap().0).collect();
            let c = consume_streams(conns, size);
            let sent = kids.into_iter().map(finish_child).sum();
            let _ = std::fs::remove_file(&path);
            (c, sent)
        }
        Kind::Interprocess => {
            use interprocess::local_socket::{prelude::*, ListenerOptions};
            let name = sock_name();
            let l = ListenerOptions::new().name(ns_name(&name)).create_sync().unwrap();
            let kids: Vec<Child> = (0..producers).map(|_| spawn_child(&child_args(&name))).collect();
            let conns: Vec<_> = (0..producers).map(|_| l.accept().unwrap()).collect();
            let c = consume_streams(conns, size);
            let sent = kids.into_iter().map(finish_child).sum();
            (c, sent)
        }
        Kind::IpcChannel => {
            let (tx, mut rx) = ipc::bytes_channel().unwrap();
            let mut kids = Vec::new();
            for _ in 0..producers {
                let (server, name) = IpcOneShotServer::<IpcSender<Setup>>::new().unwrap();
                kids.push(spawn_child(&child_args(&name)));
                let (_, stx) = server.accept().unwrap();
                stx.send(Setup { tx: Some(tx.clone()), rx: None }).unwrap();
            }
            drop(tx);
            let c = consume(&mut rx, producers, size);
            (c, kids.into_iter().map(finish_child).sum())
        }
        Kind::Ipmpsc | Kind::Ipmpsc1M => {
            let path = uniq("ring");
            let bytes = if kind == Kind::Ipmpsc { RING_BYTES } else { RING_BYTES_1M };
            let mut rx = ipmpsc::Receiver::new(ipmpsc::SharedRingBuffer::create(&path, bytes).unwrap());
            let kids: Vec<Child> = (0..producers).map(|_| spawn_child(&child_args(&path))).collect();
            let c = consume(&mut rx, producers, size);
            let sent = kids.into_iter().map(finish_child).sum();
            let _ = std::fs::remove_file(&path);
            (c, sent)
        }
        Kind::Crossbeam => {
            let (tx, mut rx) = crossbeam_channel::bounded::<Vec<u8>>(1024);
            let hs: Vec<_> = (0..producers)
                .map(|_| {
                    let mut tx = tx.clone();
                    std::thread::spawn(move || produce(&mut tx, size, dur))
                })
                .collect();
            drop(tx);
            let c = consume(&mut rx, producers, size);
            (c, hs.into_iter().map(|h| h.join().unwrap()).sum())
        }
    };
    assert_eq!(c.msgs, sent, "{}: received {} != sent {}", kind.name(), c.msgs, sent);
    let secs = (c.last - c.first).as_secs_f64();
    (c.msgs as f64 / secs, c.bytes as f64 / secs / 1e6)
}

/// Abstract-namespace socket name for interprocess (unique per process and call).
pub fn sock_name() -> String {
    let p = uniq("ls");
    let base = p.rsplit('/').next().unwrap().to_string();
    format!("{base}.sock")
}

/// Ping-pong round trips; returns (median µs, p99 µs).
pub fn pingpong(kind: Kind, size: usize, dur: Duration) -> (f64, f64) {
    let s = match kind {
        Kind::UnixStream => {
            let path = uniq("sock");
            let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
            let kid = spawn_child(&[kind.tag().into(), "echo".into(), path.clone()]);
            let mut f = Framed::new(l.accept().unwrap().0);
            let mut f2 = Framed::new(f.r.get_ref().try_clone().unwrap());
            let s = ping(&mut f2, &mut f, size, dur);
            finish_child(kid);
            let _ = std::fs::remove_file(&path);
            s
        }
        Kind::Interprocess => {
            use interprocess::local_socket::{prelude::*, ListenerOptions};
            let name = sock_name();
            let l = ListenerOptions::new().name(ns_name(&name)).create_sync().unwrap();
            let kid = spawn_child(&[kind.tag().into(), "echo".into(), name]);
            let conn = l.accept().unwrap();
            // Framed sends through get_mut() and receives through its BufReader.
            let f = std::cell::RefCell::new(Framed::new(conn));
            struct T<'a, S: Read + Write>(&'a std::cell::RefCell<Framed<S>>);
            impl<S: Read + Write> Tx for T<'_, S> {
                fn send(&mut self, b: &[u8]) {
                    self.0.borrow_mut().send(b)
                }
            }
            impl<S: Read + Write> Rx for T<'_, S> {
                fn recv(&mut self) -> Vec<u8> {
                    self.0.borrow_mut().recv()
                }
            }
            let s = ping(&mut T(&f), &mut T(&f), size, dur);
            finish_child(kid);
            s
        }
        Kind::IpcChannel => {
            let (mut p2c_tx, p2c_rx) = ipc::bytes_channel().unwrap();
            let (c2p_tx, mut c2p_rx) = ipc::bytes_channel().unwrap();
            let (server, name) = IpcOneShotServer::<IpcSender<Setup>>::new().unwrap();
            let kid = spawn_child(&[kind.tag().into(), "echo".into(), name]);
            let (_, stx) = server.accept().unwrap();
            stx.send(Setup { tx: Some(c2p_tx), rx: Some(p2c_rx) }).unwrap();
            let s = ping(&mut p2c_tx, &mut c2p_rx, size, dur);
            finish_child(kid);
            s
        }
        Kind::Ipmpsc | Kind::Ipmpsc1M => {
            let (a, b) = (uniq("ring"), uniq("ring"));
            let mut tx = ipmpsc::Sender::new(ipmpsc::SharedRingBuffer::create(&a, RING_BYTES).unwrap());
            let mut rx = ipmpsc::Receiver::new(ipmpsc::SharedRingBuffer::create(&b, RING_BYTES).unwrap());
            let kid = spawn_child(&[kind.tag().into(), "echo".into(), format!("{a},{b}")]);
            let s = ping(&mut tx, &mut rx, size, dur);
            finish_child(kid);
            let _ = std::fs::remove_file(&a);
            let _ = std::fs::remove_file(&b);
            s
        }
        Kind::Crossbeam => {
            let (mut atx, mut arx) = crossbeam_channel::bounded::<Vec<u8>>(1024);
            let (mut btx, mut brx) = crossbeam_channel::bounded::<Vec<u8>>(1024);
            let h = std::thread::spawn(move || echo(&mut arx, &mut btx));
            let s = ping(&mut atx, &mut brx, size, dur);
            h.join().unwrap();
            s
        }
    };
    rtt_stats(s)
}

pub fn child_transport(tag: &str, role: &str, target: &str, rest: &[String]) {
    let parse = |i: usize| rest[i].parse::<u64>().unwrap();
    let run = |tx: &mut dyn Tx, rx: Option<&mut dyn Rx>| {
        if role == "produce" {
            let n = produce(tx, parse(0) as usize, Duration::from_millis(parse(1)));
            println!("{n}");
        } else {
            echo(rx.unwrap(), tx);
        }
    };
    match tag {
        "unix" => {
            let s = std::os::unix::net::UnixStream::connect(target).unwrap();
            let mut w = Framed::new(s.try_clone().unwrap());
            let mut r = Framed::new(s);
            run(&mut w, Some(&mut r));
        }
        "interprocess" => {
            use interprocess::local_socket::{prelude::*, Stream};
            let s = Stream::connect(ns_name(target)).unwrap();
            let f = std::cell::RefCell::new(Framed::new(s));
            struct T<'a, S: Read + Write>(&'a std::cell::RefCell<Framed<S>>);
            impl<S: Read + Write> Tx for T<'_, S> {
                fn send(&mut self, b: &[u8]) {
                    self.0.borrow_mut().send(b)
                }
            }
            impl<S: Read + Write> Rx for T<'_, S> {
                fn recv(&mut self) -> Vec<u8> {
                    self.0.borrow_mut().recv()
                }
            }
            run(&mut T(&f), Some(&mut T(&f)));
        }
        "ipc" => {
            let boot = IpcSender::<IpcSender<Setup>>::connect(target.to_string()).unwrap();
            let (stx, srx) = ipc::channel::<Setup>().unwrap();
            boot.send(stx).unwrap();
            let setup = srx.recv().unwrap();
            let mut tx = setup.tx.unwrap();
            match setup.rx {
                Some(mut rx) => run(&mut tx, Some(&mut rx)),
                None => run(&mut tx, None),
            }
        }
        "ipmpsc" => {
            if role == "produce" {
                let mut tx = ipmpsc::Sender::new(ipmpsc::SharedRingBuffer::open(target).unwrap());
                run(&mut tx, None);
            } else {
                let (a, b) = target.split_once(',').unwrap();
                let mut rx = ipmpsc::Receiver::new(ipmpsc::SharedRingBuffer::open(a).unwrap());
                let mut tx = ipmpsc::Sender::new(ipmpsc::SharedRingBuffer::open(b).unwrap());
                run(&mut tx, Some(&mut rx));
            }
        }
        _ => panic!("unknown transport {tag}"),
    }
}
