//! Message transports behind two tiny traits, and the loops every transport
//! runs through them: produce for a duration, consume until the end markers,
//! echo, ping-pong. An empty message is the end-of-stream marker (all
//! benchmark payloads are >= 8 B).

use std::io::{BufReader, Read, Write};
use std::time::{Duration, Instant};

use ipc_channel::ipc::{IpcBytesReceiver, IpcBytesSender};

/// Round trips before the measured ones.
pub const WARMUP_PINGS: usize = 200;
/// At most this many measured round trips.
pub const MAX_PINGS: usize = 20_000;

pub trait Tx {
    fn send(&mut self, b: &[u8]);
}
pub trait Rx {
    fn recv(&mut self) -> Vec<u8>;
}

/// Length-prefixed framing (u32 LE) over any byte stream: used for std UnixStream
/// and for interprocess local sockets (which are byte streams, no framing of their own).
pub struct Framed<S: Read + Write> {
    pub r: BufReader<S>,
    w: Vec<u8>,
}
impl<S: Read + Write> Framed<S> {
    pub fn new(s: S) -> Self {
        Framed { r: BufReader::with_capacity(128 * 1024, s), w: Vec::with_capacity(8192) }
    }
}
impl<S: Read + Write> Tx for Framed<S> {
    fn send(&mut self, b: &[u8]) {
        let hdr = (b.len() as u32).to_le_bytes();
        let s = self.r.get_mut();
        if b.len() <= 4096 {
            // one syscall for small frames
            self.w.clear();
            self.w.extend_from_slice(&hdr);
            self.w.extend_from_slice(b);
            s.write_all(&self.w).unwrap();
        } else {
            s.write_all(&hdr).unwrap();
            s.write_all(b).unwrap();
        }
    }
}
impl<S: Read + Write> Rx for Framed<S> {
    fn recv(&mut self) -> Vec<u8> {
        let mut h = [0u8; 4];
        self.r.read_exact(&mut h).unwrap();
        let mut v = vec![0u8; u32::from_le_bytes(h) as usize];
        self.r.read_exact(&mut v).unwrap();
        v
    }
}

impl Tx for IpcBytesSender {
    fn send(&mut self, b: &[u8]) {
        IpcBytesSender::send(self, b).unwrap()
    }
}
impl Rx for IpcBytesReceiver {
    fn recv(&mut self) -> Vec<u8> {
        IpcBytesReceiver::recv(self).unwrap()
    }
}

impl Tx for ipmpsc::Sender {
    fn send(&mut self, b: &[u8]) {
        ipmpsc::Sender::send(self, &serde_bytes::Bytes::new(b)).unwrap()
    }
}
impl Rx for ipmpsc::Receiver {
    fn recv(&mut self) -> Vec<u8> {
        ipmpsc::Receiver::recv::<serde_bytes::ByteBuf>(self).unwrap().into_vec()
    }
}

impl Tx for crossbeam_channel::Sender<Vec<u8>> {
    fn send(&mut self, b: &[u8]) {
        crossbeam_channel::Sender::send(self, b.to_vec()).unwrap()
    }
}
impl Rx for crossbeam_channel::Receiver<Vec<u8>> {
    fn recv(&mut self) -> Vec<u8> {
        crossbeam_channel::Receiver::recv(self).unwrap()
    }
}

/// Send `size`-byte messages for `dur`, then the end marker. Returns messages sent.
pub fn produce(tx: &mut dyn Tx, size: usize, dur: Duration) -> u64 {
    let payload = vec![0xA5u8; size];
    let end = Instant::now() + dur;
    let mut n = 0u64;
    loop {
        for _ in 0..8 {
            tx.send(&payload);
        }
        n += 8;
        if Instant::now() >= end {
            break;
        }
    }
    tx.send(&[]);
    n
}

#[derive(Clone, Copy)]
pub struct Consumed {
    pub msgs: u64,
    pub bytes: u64,
    pub first: Instant,
    pub last: Instant,
}

/// Receive until `producers` end markers arrived. Time is first message -> last marker.
pub fn consume(rx: &mut dyn Rx, producers: usize, size: usize) -> Consumed {
    let mut first = None;
    let (mut msgs, mut bytes, mut done) = (0u64, 0u64, 0usize);
    loop {
        let m = rx.recv();
        if first.is_none() {
            first = Some(Instant::now());
        }
        if m.is_empty() {
            done += 1;
            if done == producers {
                return Consumed { msgs, bytes, first: first.unwrap(), last: Instant::now() };
            }
        } else {
            assert_eq!(m.len(), size, "wrong message length");
            assert_eq!(m[0], 0xA5, "corrupt payload");
            msgs += 1;
            bytes += m.len() as u64;
        }
    }
}

pub fn echo(rx: &mut dyn Rx, tx: &mut dyn Tx) {
    loop {
        let m = rx.recv();
        tx.send(&m);
        if m.is_empty() {
            return;
        }
    }
}

/// Ping-pong: returns round-trip samples in ns.
pub fn ping(tx: &mut dyn Tx, rx: &mut dyn Rx, size: usize, dur: Duration) -> Vec<u64> {
    let payload = vec![0xA5u8; size];
    for _ in 0..WARMUP_PINGS {
        tx.send(&payload);
        assert_eq!(rx.recv().len(), size);
    }
    let mut s = Vec::with_capacity(MAX_PINGS);
    let end = Instant::now() + dur;
    while s.len() < MAX_PINGS {
        let t = Instant::now();
        tx.send(&payload);
        let r = rx.recv();
        s.push(t.elapsed().as_nanos() as u64);
        assert_eq!(r.len(), size);
        if t >= end {
            break;
        }
    }
    tx.send(&[]);
    assert!(rx.recv().is_empty());
    s
}
