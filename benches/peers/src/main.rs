//! mproc beside the Rust IPC and cross-process locking crates a user would pick
//! instead, measured in the same invocation.
//!
//! Every cross-process measurement uses real OS processes: the parent re-executes
//! this same binary as `mproc-peers child ...` (no fork of a threaded process).
//! The in-process rows (crossbeam-channel, std Mutex) use threads and are only
//! there as an upper bound.
//!
//! Usage: `mproc-peers [--runs N] [--dur-ms MS] [--only SUBSTR]`
//! Prints progress to stderr and one JSON object per measurement on stdout
//! (`report.py` turns them, with the C and Python baselines, into tables).

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ipc_channel::ipc::{self, IpcBytesReceiver, IpcBytesSender, IpcOneShotServer, IpcSender};
use serde::{Deserialize, Serialize};

mod mp;

const SIZES: [usize; 2] = [8, 65536];
const RING_BYTES: u32 = 4 << 20; // ipmpsc ring size (as in the shared peer suite)
const RING_BYTES_1M: u32 = 1 << 20; // ipmpsc with mproc's default byte budget
const WARMUP_PINGS: usize = 200;
const MAX_PINGS: usize = 20_000;

// ---------------------------------------------------------------------------
// Message transports behind two tiny traits.
// An empty message is the end-of-stream marker (all benchmark payloads are >= 8 B).
// ---------------------------------------------------------------------------

trait Tx {
    fn send(&mut self, b: &[u8]);
}
trait Rx {
    fn recv(&mut self) -> Vec<u8>;
}

/// Length-prefixed framing (u32 LE) over any byte stream: used for std UnixStream
/// and for interprocess local sockets (which are byte streams, no framing of their own).
struct Framed<S: Read + Write> {
    r: BufReader<S>,
    w: Vec<u8>,
}
impl<S: Read + Write> Framed<S> {
    fn new(s: S) -> Self {
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

// ---------------------------------------------------------------------------
// Generic loops
// ---------------------------------------------------------------------------

/// Send `size`-byte messages for `dur`, then the end marker. Returns messages sent.
fn produce(tx: &mut dyn Tx, size: usize, dur: Duration) -> u64 {
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
struct Consumed {
    msgs: u64,
    bytes: u64,
    first: Instant,
    last: Instant,
}

/// Receive until `producers` end markers arrived. Time is first message -> last marker.
fn consume(rx: &mut dyn Rx, producers: usize, size: usize) -> Consumed {
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

fn echo(rx: &mut dyn Rx, tx: &mut dyn Tx) {
    loop {
        let m = rx.recv();
        tx.send(&m);
        if m.is_empty() {
            return;
        }
    }
}

/// Ping-pong: returns round-trip samples in ns.
fn ping(tx: &mut dyn Tx, rx: &mut dyn Rx, size: usize, dur: Duration) -> Vec<u64> {
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

// ---------------------------------------------------------------------------
// Process helpers
// ---------------------------------------------------------------------------

fn scratch_dir() -> PathBuf {
    let d = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    d
}

fn uniq(tag: &str) -> String {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    scratch_dir()
        .join(format!("mproc-peers-{}-{}-{}", std::process::id(), tag, n))
        .to_string_lossy()
        .into_owned()
}

fn spawn_child(args: &[String]) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .arg("child")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child")
}

/// Wait for a child, require success, return what it printed.
fn finish_child_text(c: Child) -> String {
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success(), "child failed: {:?}", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Wait for a child, require success, return the number it printed (0 if none).
fn finish_child(c: Child) -> u64 {
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success(), "child failed: {:?}", out.status);
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

fn ms(d: Duration) -> String {
    d.as_millis().to_string()
}

// ---------------------------------------------------------------------------
// Transports: parent side (tput = N child producers -> parent consumer; pp = ping-pong)
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    IpcChannel,
    Interprocess,
    Ipmpsc,
    Ipmpsc1M,
    UnixStream,
    Crossbeam,
}
impl Kind {
    fn name(self) -> &'static str {
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
struct Setup {
    tx: Option<IpcBytesSender>,
    rx: Option<IpcBytesReceiver>,
}

/// Consume from several byte streams, one thread per connection (what a plain
/// std user would write), and merge the results.
fn consume_streams<S: Read + Write + Send + 'static>(conns: Vec<S>, size: usize) -> Consumed {
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

fn ns_name(n: &str) -> interprocess::local_socket::Name<'static> {
    use interprocess::local_socket::{GenericNamespaced, ToNsName};
    n.to_string().to_ns_name::<GenericNamespaced>().unwrap()
}

/// N producers -> 1 consumer. Returns (msgs/s, MB/s).
fn tput(kind: Kind, size: usize, producers: usize, dur: Duration) -> (f64, f64) {
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
fn sock_name() -> String {
    let p = uniq("ls");
    let base = p.rsplit('/').next().unwrap().to_string();
    format!("{base}.sock")
}

/// Ping-pong round trips; returns (median µs, p99 µs).
fn pingpong(kind: Kind, size: usize, dur: Duration) -> (f64, f64) {
    let mut s = match kind {
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
    s.sort_unstable();
    let med = s[s.len() / 2] as f64 / 1e3;
    let p99 = s[((s.len() * 99) / 100).min(s.len() - 1)] as f64 / 1e3;
    (med, p99)
}

// ---------------------------------------------------------------------------
// Child side of the transports
// ---------------------------------------------------------------------------

fn child_transport(tag: &str, role: &str, target: &str, rest: &[String]) {
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

// ---------------------------------------------------------------------------
// Locks
// ---------------------------------------------------------------------------

// Shared-memory layout (file-backed MAP_SHARED mapping in /dev/shm).
const OFF_READY: usize = 0;
const OFF_GO: usize = 64;
const OFF_COUNTER: usize = 128;
const OFF_MUTEX: usize = 256;
const SHM_LEN: usize = 4096;

struct Shm(*mut u8);
impl Shm {
    fn map(path: &str, create: bool) -> Shm {
        let f = OpenOptions::new().read(true).write(true).create(create).open(path).unwrap();
        if create {
            f.set_len(SHM_LEN as u64).unwrap();
        }
        use std::os::fd::AsRawFd;
        // SAFETY: a fresh shared mapping of an open file of SHM_LEN bytes; the
        // result is checked against MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                SHM_LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        Shm(p as *mut u8)
    }
    fn atomic(&self, off: usize) -> &AtomicU32 {
        // SAFETY: `off` is one of the 4-aligned OFF_* slots inside the
        // SHM_LEN-byte mapping, which is never unmapped.
        unsafe { &*(self.0.add(off) as *const AtomicU32) }
    }
    fn counter(&self) -> *mut u64 {
        // SAFETY: OFF_COUNTER is an 8-aligned slot inside the mapping.
        unsafe { self.0.add(OFF_COUNTER) as *mut u64 }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum LockKind {
    StdFileLock,
    Fs4,
    FdLock,
    NamedLock,
    RawSync,
    Mproc,
}
impl LockKind {
    fn name(self) -> &'static str {
        match self {
            LockKind::StdFileLock => "std File::lock (flock, std >= 1.89)",
            LockKind::Fs4 => "fs4 1.1 FileExt::lock (flock)",
            LockKind::FdLock => "fd-lock 4 RwLock::write (flock)",
            LockKind::NamedLock => "named-lock 0.4 (flock + in-proc mutex)",
            LockKind::RawSync => "raw_sync 0.1 Mutex (pthread, shm)",
            LockKind::Mproc => "mproc Lock",
        }
    }
    fn tag(self) -> &'static str {
        match self {
            LockKind::StdFileLock => "std",
            LockKind::Fs4 => "fs4",
            LockKind::FdLock => "fdlock",
            LockKind::NamedLock => "namedlock",
            LockKind::RawSync => "rawsync",
            LockKind::Mproc => "mproc",
        }
    }
    fn from_tag(t: &str) -> LockKind {
        [LockKind::StdFileLock, LockKind::Fs4, LockKind::FdLock, LockKind::NamedLock, LockKind::RawSync, LockKind::Mproc]
            .into_iter()
            .find(|k| k.tag() == t)
            .unwrap()
    }
}

enum AnyLock {
    Std(File),
    Fs4(File),
    FdLock(fd_lock::RwLock<File>),
    Named(named_lock::NamedLock),
    Raw(Box<dyn raw_sync::locks::LockImpl>),
    Mproc(mproc::Lock),
}
impl AnyLock {
    fn open(kind: LockKind, lock_path: &str, shm: &Shm, create: bool) -> AnyLock {
        let file = || OpenOptions::new().read(true).write(true).create(true).truncate(false).open(lock_path).unwrap();
        match kind {
            LockKind::StdFileLock => AnyLock::Std(file()),
            LockKind::Fs4 => AnyLock::Fs4(file()),
            LockKind::FdLock => AnyLock::FdLock(fd_lock::RwLock::new(file())),
            LockKind::NamedLock => AnyLock::Named(named_lock::NamedLock::with_path(lock_path).unwrap()),
            LockKind::RawSync => {
                use raw_sync::locks::{LockInit, Mutex};
                // SAFETY: both offsets are inside the mapping.
                let (mem, data) = unsafe { (shm.0.add(OFF_MUTEX), shm.0.add(OFF_COUNTER)) };
                // SAFETY: OFF_MUTEX reserves room for raw_sync's mutex; the
                // creator initialises it before any child opens it.
                let (m, _) = unsafe {
                    if create {
                        Mutex::new(mem, data).unwrap()
                    } else {
                        Mutex::from_existing(mem, data).unwrap()
                    }
                };
                AnyLock::Raw(m)
            }
            LockKind::Mproc => {
                let ns = mproc::Namespace::dir(format!("{lock_path}.ns")).unwrap();
                AnyLock::Mproc(if create {
                    mproc::Lock::create_in(&ns, "l").unwrap()
                } else {
                    mproc::Lock::open_in(&ns, "l").unwrap()
                })
            }
        }
    }
    /// lock; f(); unlock
    #[inline]
    fn with(&mut self, f: impl FnOnce()) {
        match self {
            AnyLock::Std(fl) => {
                fl.lock().unwrap();
                f();
                fl.unlock().unwrap();
            }
            AnyLock::Fs4(fl) => {
                fs4::FileExt::lock(fl).unwrap();
                f();
                fs4::FileExt::unlock(fl).unwrap();
            }
            AnyLock::FdLock(l) => {
                let _g = l.write().unwrap();
                f();
            }
            AnyLock::Named(l) => {
                let _g = l.lock().unwrap();
                f();
            }
            AnyLock::Raw(m) => {
                let _g = m.lock().unwrap();
                f();
            }
            AnyLock::Mproc(l) => {
                let _g = l.lock().unwrap_or_else(|e| panic!("mproc lock: {e}"));
                f();
            }
        }
    }
}

/// Increment the shared counter under the lock until `dur` elapsed.
/// Returns (increments done, handoffs seen: acquisitions where the other process
/// had incremented since our own previous increment, longest batch of 16
/// acquisitions in ns: an upper bound of the longest wait for the lock, off
/// by the batch's own few hundred nanoseconds).
fn lock_loop(l: &mut AnyLock, shm: &Shm, dur: Duration) -> (u64, u64, u64) {
    let c = shm.counter();
    let end = Instant::now() + dur;
    let (mut n, mut handoffs, mut longest) = (0u64, 0u64, 0u64);
    let mut last = u64::MAX;
    let mut batch = Instant::now();
    loop {
        for _ in 0..16 {
            // SAFETY: the counter lives in the mapping and the lock is held.
            l.with(|| unsafe {
                let v = c.read_volatile();
                if v != last && last != u64::MAX {
                    handoffs += 1;
                }
                last = v + 1;
                c.write_volatile(last)
            });
        }
        n += 16;
        let now = Instant::now();
        longest = longest.max(now.duration_since(batch).as_nanos() as u64);
        batch = now;
        if now >= end {
            return (n, handoffs, longest);
        }
    }
}

/// Single process, no contention: lock+increment+unlock per second.
fn lock_uncontended(kind: LockKind, dur: Duration) -> f64 {
    let (sp, lp) = (uniq("shm"), uniq("lock"));
    let shm = Shm::map(&sp, true);
    let mut l = AnyLock::open(kind, &lp, &shm, true);
    let t = Instant::now();
    let (n, _, _) = lock_loop(&mut l, &shm, dur);
    let secs = t.elapsed().as_secs_f64();
    // SAFETY: the counter is in the mapping; no other process runs.
    assert_eq!(unsafe { *shm.counter() }, n);
    drop(l);
    let _ = std::fs::remove_file(&sp);
    let _ = std::fs::remove_file(&lp);
    let _ = std::fs::remove_dir_all(format!("{lp}.ns"));
    n as f64 / secs
}

/// Two processes incrementing one shared counter under the lock.
/// Returns (ops/s total, smaller process share, handoffs/s, longest wait
/// in ms, counter_exact).
fn lock_contended(kind: LockKind, procs: usize, dur: Duration) -> (f64, f64, f64, f64, bool) {
    let (sp, lp) = (uniq("shm"), uniq("lock"));
    let shm = Shm::map(&sp, true);
    let mut l = AnyLock::open(kind, &lp, &shm, true);
    let kids: Vec<Child> = (1..procs)
        .map(|_| spawn_child(&["lock".into(), kind.tag().into(), sp.clone(), lp.clone(), ms(dur)]))
        .collect();
    while shm.atomic(OFF_READY).load(Ordering::Acquire) < (procs - 1) as u32 {
        std::thread::yield_now();
    }
    shm.atomic(OFF_GO).store(1, Ordering::Release);
    let t = Instant::now();
    let (mine, h1, l1) = lock_loop(&mut l, &shm, dur);
    let (mut counts, mut hand, mut longest) = (vec![mine], h1, l1);
    for kid in kids {
        let txt = finish_child_text(kid);
        let mut it = txt.split_whitespace().map(|x| x.parse::<u64>().unwrap());
        counts.push(it.next().unwrap());
        hand += it.next().unwrap();
        longest = longest.max(it.next().unwrap());
    }
    let secs = t.elapsed().as_secs_f64();
    // SAFETY: the counter is in the mapping; every child has exited.
    let total = unsafe { *shm.counter() };
    let sum: u64 = counts.iter().sum();
    let exact = total == sum;
    assert!(exact, "{}: counter {} != {:?}", kind.name(), total, counts);
    drop(l);
    let _ = std::fs::remove_file(&sp);
    let _ = std::fs::remove_file(&lp);
    if kind == LockKind::Mproc {
        let _ = std::fs::remove_dir_all(format!("{lp}.ns"));
    }
    let smallest = *counts.iter().min().unwrap() as f64 / total as f64;
    (total as f64 / secs, smallest, hand as f64 / secs, longest as f64 / 1e6, exact)
}

fn child_lock(tag: &str, shm_path: &str, lock_path: &str, dur_ms: &str) {
    let kind = LockKind::from_tag(tag);
    let shm = Shm::map(shm_path, false);
    let mut l = AnyLock::open(kind, lock_path, &shm, false);
    shm.atomic(OFF_READY).fetch_add(1, Ordering::AcqRel);
    while shm.atomic(OFF_GO).load(Ordering::Acquire) == 0 {
        std::hint::spin_loop();
    }
    let (n, h, longest) = lock_loop(&mut l, &shm, Duration::from_millis(dur_ms.parse().unwrap()));
    println!("{n} {h} {longest}");
}

/// In-process reference: std::sync::Mutex<u64> shared by `threads` threads.
/// Returns (ops/s, smallest thread share, handoffs/s).
fn std_mutex(threads: usize, dur: Duration) -> (f64, f64, f64) {
    use std::sync::{Arc, Mutex};
    let m = Arc::new(Mutex::new(0u64));
    let t = Instant::now();
    let hs: Vec<_> = (0..threads)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || {
                let end = Instant::now() + dur;
                let (mut n, mut h, mut last) = (0u64, 0u64, u64::MAX);
                loop {
                    for _ in 0..16 {
                        let mut g = m.lock().unwrap();
                        if *g != last && last != u64::MAX {
                            h += 1;
                        }
                        *g += 1;
                        last = *g;
                    }
                    n += 16;
                    if Instant::now() >= end {
                        return (n, h);
                    }
                }
            })
        })
        .collect();
    let rs: Vec<(u64, u64)> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    let secs = t.elapsed().as_secs_f64();
    let total = *m.lock().unwrap();
    assert_eq!(total, rs.iter().map(|r| r.0).sum::<u64>());
    let hand: u64 = rs.iter().map(|r| r.1).sum();
    (total as f64 / secs, rs.iter().map(|r| r.0).min().unwrap() as f64 / total as f64, hand as f64 / secs)
}

// ---------------------------------------------------------------------------
// Driver
// ---------------------------------------------------------------------------

fn emit(v: serde_json::Value) {
    println!("{v}");
}

fn rtt_stats(mut s: Vec<u64>) -> (f64, f64) {
    s.sort_unstable();
    let med = s[s.len() / 2] as f64 / 1e3;
    let p99 = s[((s.len() * 99) / 100).min(s.len() - 1)] as f64 / 1e3;
    (med, p99)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        match args[2].as_str() {
            "lock" => child_lock(&args[3], &args[4], &args[5], &args[6]),
            "mq" | "ticket" => mp::child(&args[2..]),
            _ => child_transport(&args[2], &args[3], &args[4], &args[5..]),
        }
        return;
    }

    let mut runs = 1usize;
    let mut dur = Duration::from_millis(200);
    let mut only = String::new();
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--runs" => {
                runs = args[i + 1].parse().unwrap();
                i += 1;
            }
            "--dur-ms" => {
                dur = Duration::from_millis(args[i + 1].parse().unwrap());
                i += 1;
            }
            "--only" => {
                only = args[i + 1].clone();
                i += 1;
            }
            a => panic!("unknown argument {a}"),
        }
        i += 1;
    }
    let want = |s: &str| only.is_empty() || only.split(',').any(|o| s.contains(o));
    let started = Instant::now();
    let kinds = [Kind::IpcChannel, Kind::Interprocess, Kind::Ipmpsc, Kind::UnixStream, Kind::Crossbeam];
    let lkinds =
        [LockKind::Mproc, LockKind::RawSync, LockKind::StdFileLock, LockKind::Fs4, LockKind::FdLock, LockKind::NamedLock];
    let progress = |r: usize, what: &str| eprint!("\rrun {}/{} {:<60}", r + 1, runs, what);

    // Runs are interleaved (outer loop = run number) so that a slow phase of the
    // shared machine hits every contender rather than one of them.
    for r in 0..runs {
        // ---- queues, 1 -> 1 ----
        if want("tput") {
            for &size in &SIZES {
                for batched in [false, true] {
                    progress(r, &format!("mproc 1->1 {size} B batched={batched}"));
                    let (m, mb) = mp::tput(size, 1, 1, batched, 0, dur);
                    let c = if batched { "mproc (put_many/get_many_with)" } else { "mproc (put/get_into)" };
                    emit(serde_json::json!({"group":"tput","contender":c,"size":size,"procs":"1->1","msgs":m,"mbs":mb}));
                }
                for &kind in kinds.iter().chain(&[Kind::Ipmpsc1M]) {
                    progress(r, &format!("{} 1->1 {size} B", kind.name()));
                    let (m, mb) = tput(kind, size, 1, dur);
                    emit(serde_json::json!({"group":"tput","contender":kind.name(),"size":size,"procs":"1->1","msgs":m,"mbs":mb}));
                }
            }
        }
        // ---- queues, 4 -> 2 (mproc is the only MPMC contender; Python's Queue comes from py_ipc.py) ----
        if want("mpmc") {
            for batched in [false, true] {
                progress(r, &format!("mproc 4->2 8 B batched={batched}"));
                let (m, _) = mp::tput(8, 4, 2, batched, 0, dur);
                let c = if batched { "mproc (put_many/get_many_with)" } else { "mproc (put/get_into)" };
                emit(serde_json::json!({"group":"tput","contender":c,"size":8,"procs":"4->2","msgs":m}));
            }
            progress(r, "ipmpsc 4->1 8 B");
            let (m, _) = tput(Kind::Ipmpsc, 8, 4, dur);
            emit(serde_json::json!({"group":"tput","contender":Kind::Ipmpsc.name(),"size":8,"procs":"4->1","msgs":m}));
        }
        // ---- round trips ----
        if want("rtt") {
            progress(r, "mproc rtt");
            let (s, cpu) = mp::pingpong(dur, MAX_PINGS, WARMUP_PINGS);
            let (med, p99) = rtt_stats(s);
            emit(serde_json::json!({"group":"rtt","contender":"mproc (2 queues, put/get_into)","size":8,"median_us":med,"p99_us":p99,"cpu_us_per_rt":cpu/1e3}));
            for &kind in &kinds {
                progress(r, &format!("{} rtt", kind.name()));
                let (med, p99) = pingpong(kind, 8, dur);
                emit(serde_json::json!({"group":"rtt","contender":kind.name(),"size":8,"median_us":med,"p99_us":p99}));
            }
        }
        // ---- locks ----
        if want("lock") {
            for &kind in &lkinds {
                progress(r, kind.name());
                let u = lock_uncontended(kind, dur);
                emit(serde_json::json!({"group":"lock","contender":kind.name(),"procs":1,"ops":u}));
                let procs: &[usize] = if matches!(kind, LockKind::Mproc | LockKind::RawSync | LockKind::StdFileLock) { &[2, 4] } else { &[2] };
                for &p in procs {
                    let (ops, sh, h, longest, _) = lock_contended(kind, p, dur);
                    emit(serde_json::json!({"group":"lock","contender":kind.name(),"procs":p,"ops":ops,"smallest_share":sh,"handoffs":h,"longest_wait_ms":longest}));
                }
            }
            progress(r, "std mutex");
            emit(serde_json::json!({"group":"lock","contender":"std::sync::Mutex (threads, in-process bound)","procs":1,"ops":std_mutex(1, dur).0}));
            let (ops, sh, h) = std_mutex(2, dur);
            emit(serde_json::json!({"group":"lock","contender":"std::sync::Mutex (threads, in-process bound)","procs":2,"ops":ops,"smallest_share":sh,"handoffs":h}));
        }
        // ---- ticket loop ----
        if want("ticket") {
            progress(r, "mproc tickets json");
            let b = mp::tickets(true, 4, 10_000, 20_000);
            emit(serde_json::json!({"group":"ticket","contender":"mproc Lock, JSON file on tmpfs","buys":b}));
            progress(r, "mproc tickets shm");
            let b = mp::tickets(false, 4, 10_000, 20_000);
            emit(serde_json::json!({"group":"ticket","contender":"mproc Lock, count in shared memory","buys":b}));
        }
        // ---- cost growth ----
        if want("scale") {
            for n in [1usize, 2, 4, 8] {
                for batched in [false, true] {
                    progress(r, &format!("mproc {n}->{n} batched={batched}"));
                    let (m, _) = mp::tput(8, n, n, batched, 0, dur);
                    emit(serde_json::json!({"group":"scale_procs","batched":batched,"n":n,"msgs":m}));
                }
            }
            for cap in [16usize, 256, 4096, 65536, 1 << 20] {
                for batched in [false, true] {
                    progress(r, &format!("mproc cap {cap} batched={batched}"));
                    let (m, _) = mp::tput(8, 1, 1, batched, cap, dur);
                    emit(serde_json::json!({"group":"scale_cap","batched":batched,"cap":cap,"msgs":m}));
                }
            }
        }
    }
    eprintln!("\rrust contenders: {:.1} s{:<60}", started.elapsed().as_secs_f64(), "");
}
