//! [`Pipe`] and [`Connection`]: two connected ends that carry whole messages
//! between processes (Python's `multiprocessing.Pipe`), and [`wait`] over
//! several of them (Python's `multiprocessing.connection.wait`).
//!
//! An end is one descriptor of a unix-domain `SOCK_STREAM` socket pair. Every
//! message is framed by its length (4 bytes little-endian; `u32::MAX` escapes
//! to an 8-byte length), so boundaries are kept, empty messages are real
//! messages and messages of any size the receiver accepts go through
//! (a datagram or `SOCK_SEQPACKET` socket would cap them at the socket
//! buffer). A receiver reads exactly one frame at a time and never reads
//! ahead, so an end handed to another process after some messages were
//! received continues exactly where this one stopped.
//!
//! Like Python's, a pipe has no cross-process lock: two *processes* reading
//! (or writing) the same end at once may see interleaved frames. Threads of
//! one process may share an end: sends and receives are serialised inside it.

use std::fmt;
use std::io;
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::IoError;
use crate::handle::{adopt_fd, inode, note_fd};
use crate::sys::{Interest, PollFd};
use crate::util::to_deadline;

/// The largest message a [`Connection`] accepts unless told otherwise
/// ([`Connection::set_max_message`]): 1 GiB.
pub const DEFAULT_MAX_MESSAGE: usize = 1 << 30;

const ESCAPE: u32 = u32::MAX;

/// Why a pipe operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PipeError {
    /// Every copy of the other end is closed (or its processes died) and no
    /// message is left: Python's `EOFError`. On a send: nobody can read.
    #[error("the other end of the pipe is closed")]
    Disconnected,
    /// No whole message arrived before the deadline (or, for `try_` calls,
    /// none was there). A partly received message stays buffered in this
    /// end; the next receive continues it.
    #[error("timed out waiting for a message")]
    Timeout,
    /// A receive on the sending end of a one-way pipe.
    #[error("the connection is write-only")]
    WriteOnly,
    /// A send on the receiving end of a one-way pipe.
    #[error("the connection is read-only")]
    ReadOnly,
    /// The incoming message is longer than this end accepts. The stream
    /// cannot be resynchronised; the end is unusable for receiving.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The announced message length.
        size: u64,
        /// The limit ([`Connection::max_message`]).
        limit: usize,
    },
    /// The other end closed in the middle of a message.
    #[error("the other end closed in the middle of a message")]
    Truncated,
    /// The value could not be encoded; nothing was sent.
    #[error("cannot encode the message: {0}")]
    Encode(String),
    /// A whole message was received but is not a valid value of the
    /// requested type; it has been consumed.
    #[error("cannot decode the message: {0}")]
    Decode(String),
    /// The operating system reported an error.
    #[error("pipe i/o error: {0}")]
    Io(IoError),
}

impl PipeError {
    /// Whether the other end is gone (Python's `EOFError`).
    pub fn is_disconnected(&self) -> bool {
        *self == PipeError::Disconnected
    }

    /// Whether no message was there in time.
    pub fn is_timeout(&self) -> bool {
        *self == PipeError::Timeout
    }

    fn io(e: io::Error) -> PipeError {
        match e.kind() {
            // EPIPE and ECONNRESET.
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => PipeError::Disconnected,
            _ => PipeError::Io(e.into()),
        }
    }
}

/// Creates pipes: [`Pipe::duplex`] (what [`pipe()`] returns) and
/// [`Pipe::simplex`].
///
/// ```
/// use mproc::{Pipe, Process};
///
/// let (parent, child) = Pipe::duplex().unwrap();
/// let mut p = Process::spawn(child, |c: mproc::Connection| {
///     let n: u32 = c.recv().unwrap();
///     c.send(&(n + 1)).unwrap();
/// })
/// .unwrap();
/// // `child` moved into the spawn call and was closed here: once the
/// // process exits, `parent` sees the end of the stream.
/// parent.send(&41u32).unwrap();
/// assert_eq!(parent.recv::<u32>().unwrap(), 42);
/// p.join().unwrap();
/// assert!(parent.recv::<u32>().unwrap_err().is_disconnected());
/// ```
#[derive(Debug)]
pub enum Pipe {}

impl Pipe {
    /// Two ends, each able to send and receive.
    pub fn duplex() -> Result<(Connection, Connection), PipeError> {
        let (a, b) = crate::sys::stream_socketpair().map_err(PipeError::io)?;
        Ok((
            Connection::new(a, true, true),
            Connection::new(b, true, true),
        ))
    }

    /// A one-way pipe: `(receiver, sender)`, in Python's order
    /// (`Pipe(duplex=False)` returns the reader first).
    pub fn simplex() -> Result<(Connection, Connection), PipeError> {
        let (r, w) = crate::sys::stream_socketpair().map_err(PipeError::io)?;
        // The kernel enforces the direction too. Failure only loses that
        // second guard; the ends check their own direction anyway.
        let _ = crate::sys::shutdown(r.as_fd(), Shutdown::Write);
        let _ = crate::sys::shutdown(w.as_fd(), Shutdown::Read);
        Ok((
            Connection::new(r, true, false),
            Connection::new(w, false, true),
        ))
    }
}

/// A duplex pipe: Python's `multiprocessing.Pipe()`. See [`Pipe`].
pub fn pipe() -> Result<(Connection, Connection), PipeError> {
    Pipe::duplex()
}

/// The receive state of an end: the frame being read.
#[derive(Default)]
struct Rx {
    header: [u8; 12],
    header_len: usize,
    /// The body received so far (its length) and room for the rest.
    body: Vec<u8>,
    /// The length, once the header is complete.
    want: Option<usize>,
    /// Set when the stream can no longer be trusted.
    broken: Option<PipeError>,
}

/// One end of a [`Pipe`]: Python's `multiprocessing.connection.Connection`.
///
/// Closing is dropping. An end passed to [`Process::spawn`](crate::Process)
/// is inherited by exactly that child; drop the parent's copy afterwards,
/// or the other end never sees [`PipeError::Disconnected`] when the child
/// exits. (An end can only be handed to a child by spawning it: its wire
/// form names a descriptor, which means nothing in any other process, and
/// decoding it anywhere else fails.) A message this end has partly received
/// after a timed-out `recv_timeout` stays with this end, not the child.
///
/// Sends block while the socket buffer is full, until the other side reads,
/// like Python's.
pub struct Connection {
    fd: OwnedFd,
    readable: bool,
    writable: bool,
    max_message: usize,
    rx: Mutex<Rx>,
    tx: Mutex<()>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("fd", &self.fd.as_raw_fd())
            .field("readable", &self.readable)
            .field("writable", &self.writable)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Connection {
    fn new(fd: OwnedFd, readable: bool, writable: bool) -> Connection {
        Connection {
            fd,
            readable,
            writable,
            max_message: DEFAULT_MAX_MESSAGE,
            rx: Mutex::new(Rx::default()),
            tx: Mutex::new(()),
        }
    }

    /// Whether this end can receive.
    pub fn is_readable(&self) -> bool {
        self.readable
    }

    /// Whether this end can send.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// The largest message this end accepts.
    pub fn max_message(&self) -> usize {
        self.max_message
    }

    /// Sets the largest message this end accepts (Python's `maxlength`); a
    /// longer one fails with [`PipeError::TooLarge`]. It bounds what a peer
    /// can make this process allocate.
    pub fn set_max_message(&mut self, limit: usize) {
        self.max_message = limit;
    }

    // ------------------------------------------------------------- sending

    /// Sends one value, encoded with postcard.
    pub fn send<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), PipeError> {
        let bytes = postcard::to_allocvec(value).map_err(|e| PipeError::Encode(e.to_string()))?;
        self.send_bytes(&bytes)
    }

    /// Sends one message of raw bytes (possibly empty). It blocks while the
    /// socket buffer is full, until the receiver makes room.
    pub fn send_bytes(&self, msg: &[u8]) -> Result<(), PipeError> {
        if !self.writable {
            return Err(PipeError::ReadOnly);
        }
        let mut header = [0u8; 12];
        let header = match u32::try_from(msg.len()) {
            Ok(n) if n != ESCAPE => {
                header[..4].copy_from_slice(&n.to_le_bytes());
                &header[..4]
            }
            _ => {
                header[..4].copy_from_slice(&ESCAPE.to_le_bytes());
                header[4..].copy_from_slice(&(msg.len() as u64).to_le_bytes());
                &header[..]
            }
        };
        let _g = lock(&self.tx);
        let (mut h, mut m) = (header, msg);
        while !h.is_empty() || !m.is_empty() {
            let bufs = [IoSlice::new(h), IoSlice::new(m)];
            let mut n = match crate::sys::send_vectored(self.fd.as_fd(), &bufs) {
                Ok(n) => n,
                Err(e) => match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => {
                        // Someone made the socket non-blocking: wait for room.
                        crate::sys::poll_one(self.fd.as_fd(), Interest::Write, None)
                            .map_err(PipeError::io)?;
                        continue;
                    }
                    _ => return Err(PipeError::io(e)),
                },
            };
            let from_h = n.min(h.len());
            h = &h[from_h..];
            n -= from_h;
            m = &m[n..];
        }
        Ok(())
    }

    // ----------------------------------------------------------- receiving

    /// Receives one value, waiting as long as it takes.
    pub fn recv<T: DeserializeOwned>(&self) -> Result<T, PipeError> {
        decode(self.recv_inner(None)?)
    }

    /// Receives one value if a whole one can be had without waiting.
    pub fn try_recv<T: DeserializeOwned>(&self) -> Result<T, PipeError> {
        decode(self.recv_inner(Some(Instant::now()))?)
    }

    /// Receives one value, waiting at most `timeout`.
    pub fn recv_timeout<T: DeserializeOwned>(&self, timeout: Duration) -> Result<T, PipeError> {
        decode(self.recv_inner(to_deadline(timeout))?)
    }

    /// Receives one value, waiting until `deadline`.
    pub fn recv_deadline<T: DeserializeOwned>(&self, deadline: Instant) -> Result<T, PipeError> {
        decode(self.recv_inner(Some(deadline))?)
    }

    /// Receives one message of raw bytes, waiting as long as it takes.
    pub fn recv_bytes(&self) -> Result<Vec<u8>, PipeError> {
        self.recv_inner(None)
    }

    /// Receives one message of raw bytes if a whole one can be had without
    /// waiting.
    pub fn try_recv_bytes(&self) -> Result<Vec<u8>, PipeError> {
        self.recv_inner(Some(Instant::now()))
    }

    /// Receives one message of raw bytes, waiting at most `timeout`.
    pub fn recv_bytes_timeout(&self, timeout: Duration) -> Result<Vec<u8>, PipeError> {
        self.recv_inner(to_deadline(timeout))
    }

    /// Receives one message of raw bytes, waiting until `deadline`.
    pub fn recv_bytes_deadline(&self, deadline: Instant) -> Result<Vec<u8>, PipeError> {
        self.recv_inner(Some(deadline))
    }

    /// Receives one message into `buf` (Python's `recv_bytes_into`) and
    /// returns its length. A message longer than `buf` is returned whole in
    /// `Err` (Python's `BufferTooShort`), consumed.
    pub fn recv_bytes_into(&self, buf: &mut [u8]) -> Result<usize, RecvIntoError> {
        let msg = self.recv_inner(None).map_err(RecvIntoError::Pipe)?;
        match buf.get_mut(..msg.len()) {
            Some(dst) => {
                dst.copy_from_slice(&msg);
                Ok(msg.len())
            }
            None => Err(RecvIntoError::BufferTooShort(msg)),
        }
    }

    fn recv_inner(&self, deadline: Option<Instant>) -> Result<Vec<u8>, PipeError> {
        if !self.readable {
            return Err(PipeError::WriteOnly);
        }
        let mut rx = lock(&self.rx);
        if let Some(e) = &rx.broken {
            return Err(e.clone());
        }
        let r = self.read_frame(&mut rx, deadline);
        if let Err(e) = &r {
            if matches!(
                e,
                PipeError::TooLarge { .. } | PipeError::Truncated | PipeError::Io(..)
            ) {
                rx.broken = Some(e.clone());
            }
        }
        r
    }

    fn read_frame(&self, rx: &mut Rx, deadline: Option<Instant>) -> Result<Vec<u8>, PipeError> {
        let want = loop {
            if let Some(w) = rx.want {
                break w;
            }
            let need = if rx.header_len >= 4
                && u32::from_le_bytes([rx.header[0], rx.header[1], rx.header[2], rx.header[3]])
                    == ESCAPE
            {
                12
            } else {
                4
            };
            if rx.header_len == need {
                let size = if need == 4 {
                    u64::from(u32::from_le_bytes([
                        rx.header[0],
                        rx.header[1],
                        rx.header[2],
                        rx.header[3],
                    ]))
                } else {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&rx.header[4..12]);
                    u64::from_le_bytes(b)
                };
                if size > self.max_message as u64 {
                    return Err(PipeError::TooLarge {
                        size,
                        limit: self.max_message,
                    });
                }
                rx.want = Some(size as usize);
                continue;
            }
            let start = rx.header_len;
            let n = self.read_some(&mut rx.header[start..need], deadline)?;
            if n == 0 {
                return Err(if start == 0 {
                    PipeError::Disconnected
                } else {
                    PipeError::Truncated
                });
            }
            rx.header_len += n;
        };
        while rx.body.len() < want {
            if rx.body.capacity() == rx.body.len() {
                // Grow with the data actually arriving, not with the length
                // the peer announced.
                let have = rx.body.len();
                let target = want.min(have.saturating_mul(2).max(1 << 20));
                rx.body.reserve_exact(target - have);
            }
            let max = want - rx.body.len();
            let n = self.read_spare(&mut rx.body, max, deadline)?;
            if n == 0 {
                return Err(PipeError::Truncated);
            }
        }
        let body = std::mem::take(&mut rx.body);
        rx.header_len = 0;
        rx.want = None;
        Ok(body)
    }

    /// Reads at least one byte into `v`'s spare capacity (at most `max`).
    fn read_spare(
        &self,
        v: &mut Vec<u8>,
        max: usize,
        deadline: Option<Instant>,
    ) -> Result<usize, PipeError> {
        let spare = v.spare_capacity_mut();
        let len = spare.len().min(max);
        let spare: &mut [MaybeUninit<u8>] = &mut spare[..len];
        let n = self.read_with(deadline, |fd, dont_wait| {
            crate::sys::recv_uninit(fd, spare, dont_wait)
        })?;
        // SAFETY: `recv_uninit` initialised the first `n <= len` bytes of
        // the spare capacity, which follow the current length.
        unsafe { v.set_len(v.len() + n) };
        Ok(n)
    }

    /// Reads at least one byte (0 means end of stream) or times out.
    fn read_some(&self, buf: &mut [u8], deadline: Option<Instant>) -> Result<usize, PipeError> {
        self.read_with(deadline, |fd, dont_wait| {
            crate::sys::recv(fd, buf, dont_wait)
        })
    }

    /// Reads at least one byte (0 means end of stream) or times out, with
    /// `recv(fd, dont_wait)`: one receive, which waits for data itself
    /// unless `dont_wait` (set when there is a deadline: `poll` waits then).
    fn read_with(
        &self,
        deadline: Option<Instant>,
        mut recv: impl FnMut(BorrowedFd<'_>, bool) -> io::Result<usize>,
    ) -> Result<usize, PipeError> {
        let fd = self.fd.as_fd();
        loop {
            let e = match recv(fd, deadline.is_some()) {
                Ok(n) => return Ok(n),
                Err(e) => e,
            };
            match e.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock => {
                    if !crate::sys::poll_one(fd, Interest::Read, deadline).map_err(PipeError::io)? {
                        return Err(PipeError::Timeout);
                    }
                }
                io::ErrorKind::ConnectionReset => return Ok(0),
                _ => return Err(PipeError::io(e)),
            }
        }
    }

    /// Whether a message (or the end of the stream) is ready to be received,
    /// waiting at most `timeout` (Python's `poll`; `Duration::ZERO` does not
    /// wait). It never consumes anything, so it is safe on an end shared
    /// with another process.
    pub fn poll(&self, timeout: Duration) -> Result<bool, PipeError> {
        self.poll_inner(to_deadline(timeout))
    }

    /// Like [`poll`](Self::poll), waiting until `deadline`.
    pub fn poll_deadline(&self, deadline: Instant) -> Result<bool, PipeError> {
        self.poll_inner(Some(deadline))
    }

    fn poll_inner(&self, deadline: Option<Instant>) -> Result<bool, PipeError> {
        if !self.readable {
            return Err(PipeError::WriteOnly);
        }
        if let Some(e) = &lock(&self.rx).broken {
            return Err(e.clone());
        }
        crate::sys::poll_one(self.fd.as_fd(), Interest::Read, deadline).map_err(PipeError::io)
    }
}

fn decode<T: DeserializeOwned>(bytes: Vec<u8>) -> Result<T, PipeError> {
    postcard::from_bytes(&bytes).map_err(|e| PipeError::Decode(e.to_string()))
}

/// Why [`Connection::recv_bytes_into`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvIntoError {
    /// The message did not fit; here it is (consumed from the pipe).
    #[error("the buffer is too short for a message of {} bytes", .0.len())]
    BufferTooShort(Vec<u8>),
    /// Receiving failed.
    #[error(transparent)]
    Pipe(PipeError),
}

impl AsFd for Connection {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

// ------------------------------------------------------------------ wait

/// Something [`wait`] can watch: a [`Connection`] (ready when a message or
/// the end of the stream can be received) or a [`Process`](crate::Process)
/// (ready when it has ended, Python's `Process.sentinel`).
pub trait Waitable {
    /// The descriptor that becomes readable when the object is ready, or
    /// `None` when it is ready already.
    fn wait_fd(&self) -> Option<BorrowedFd<'_>>;
}

impl Waitable for Connection {
    fn wait_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.fd.as_fd())
    }
}

/// Waits until at least one of `objects` is ready or `timeout` passes
/// (`None`: no limit), and returns the indices of the ready ones, in order;
/// empty on timeout. Python's `multiprocessing.connection.wait`.
///
/// ```
/// use std::time::Duration;
/// let (a, b) = mproc::pipe().unwrap();
/// let (c, d) = mproc::pipe().unwrap();
/// assert!(mproc::wait(&[&a, &c], Some(Duration::ZERO)).unwrap().is_empty());
/// d.send(&1u8).unwrap();
/// assert_eq!(mproc::wait(&[&a, &c], None).unwrap(), vec![1]);
/// # drop(b);
/// ```
pub fn wait(objects: &[&dyn Waitable], timeout: Option<Duration>) -> io::Result<Vec<usize>> {
    wait_deadline(objects, timeout.and_then(to_deadline))
}

/// Like [`wait`], with a deadline instead of a timeout (`None`: no limit).
pub fn wait_deadline(
    objects: &[&dyn Waitable],
    deadline: Option<Instant>,
) -> io::Result<Vec<usize>> {
    let mut fds = Vec::with_capacity(objects.len());
    let mut ready = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        match o.wait_fd() {
            Some(fd) => fds.push(PollFd::new(fd, Interest::Read)),
            None => ready.push(i),
        }
    }
    if !ready.is_empty() {
        return Ok(ready);
    }
    if objects.is_empty() {
        return Ok(ready);
    }
    crate::sys::poll(&mut fds, deadline)?;
    Ok(fds
        .iter()
        .enumerate()
        .filter(|(_, p)| p.is_ready())
        .map(|(i, _)| i)
        .collect())
}

// ---------------------------------------------------- passing to children

#[derive(Serialize, Deserialize)]
struct Wire {
    fd: RawFd,
    /// The socket's inode: a number that is not this very socket in the
    /// receiving process (an end sent anywhere but to a spawned child) is
    /// refused instead of silently aliasing some other descriptor.
    ino: u64,
    readable: bool,
    writable: bool,
}

impl Serialize for Connection {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let fd = self.fd.as_raw_fd();
        note_fd(fd);
        let ino = inode(self.fd.as_fd()).map_err(serde::ser::Error::custom)?;
        Wire {
            fd,
            ino,
            readable: self.readable,
            writable: self.writable,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Connection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Connection, D::Error> {
        let w = Wire::deserialize(d)?;
        let fd = adopt_fd(w.fd, w.ino)?;
        if !crate::sys::is_unix_stream_socket(fd.as_fd()) {
            return Err(D::Error::custom(format!(
                "descriptor {} is not a pipe end",
                w.fd
            )));
        }
        Ok(Connection::new(fd, w.readable, w.writable))
    }
}

crate::error::from_io!(PipeError);
