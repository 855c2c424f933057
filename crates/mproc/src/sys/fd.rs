//! Descriptors: pipes, unix-domain socket pairs, sending and receiving on
//! them, `poll(2)`, descriptor flags and the files behind segments.
//!
//! These are POSIX calls and flags that Linux and the BSDs share
//! (`pipe2`, `SOCK_CLOEXEC`, `MSG_NOSIGNAL`, `SO_DOMAIN`); a port to a
//! Unix without one of them replaces that function here.

use std::fs::OpenOptions;
use std::io::{self, IoSlice};
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::time::Instant;

/// Wraps the two descriptors a successful `pipe2` or `socketpair` filled in.
///
/// # Safety
/// Both must be fresh descriptors that nothing else owns.
unsafe fn owned_pair(fds: [RawFd; 2]) -> (OwnedFd, OwnedFd) {
    // SAFETY: per the contract, both descriptors are open and ours alone.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// A pipe, `(read end, write end)`, both close-on-exec.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are fresh and ours.
    Ok(unsafe { owned_pair(fds) })
}

/// A connected pair of unix-domain stream sockets, both close-on-exec.
pub(crate) fn stream_socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for socketpair to fill.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socketpair succeeded: both descriptors are fresh and ours.
    Ok(unsafe { owned_pair(fds) })
}

/// Shuts down one or both directions of the socket `fd` (`shutdown(2)`).
pub(crate) fn shutdown(fd: BorrowedFd<'_>, how: Shutdown) -> io::Result<()> {
    let how = match how {
        Shutdown::Read => libc::SHUT_RD,
        Shutdown::Write => libc::SHUT_WR,
        Shutdown::Both => libc::SHUT_RDWR,
    };
    // SAFETY: `fd` is an open descriptor for the duration of the call;
    // shutdown touches no memory of ours.
    if unsafe { libc::shutdown(fd.as_raw_fd(), how) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One `sendmsg(2)` of `bufs`, in order, on the socket `fd`, without
/// `SIGPIPE` (a closed peer is an `EPIPE` error): the number of bytes sent,
/// which may be fewer than offered. Errors are returned as they come
/// (`Interrupted` and `WouldBlock` included).
pub(crate) fn send_vectored(fd: BorrowedFd<'_>, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: an all-zero msghdr is valid (no name, no control data).
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    // `IoSlice` is ABI-compatible with `iovec` on Unix (its documented
    // guarantee); sendmsg only reads through the pointer.
    mh.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    mh.msg_iovlen = bufs.len() as _;
    // SAFETY: `mh` points at `bufs.len()` iovecs over live, readable
    // buffers of the stated lengths; `fd` is open for the call.
    let n = unsafe { libc::sendmsg(fd.as_raw_fd(), &mh, libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// One `recv(2)` on the socket `fd` into `buf`: the number of bytes
/// received (0 at the end of the stream), and the first that many bytes of
/// `buf` are initialised on return. With `dont_wait` it fails with
/// `WouldBlock` instead of blocking when nothing is there. Errors are
/// returned as they come (`Interrupted` included).
pub(crate) fn recv_uninit(
    fd: BorrowedFd<'_>,
    buf: &mut [MaybeUninit<u8>],
    dont_wait: bool,
) -> io::Result<usize> {
    let flags = if dont_wait { libc::MSG_DONTWAIT } else { 0 };
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes and recv
    // writes at most that many (initialised bytes only); `fd` is open for
    // the call.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// [`recv_uninit`] into an initialised buffer.
pub(crate) fn recv(fd: BorrowedFd<'_>, buf: &mut [u8], dont_wait: bool) -> io::Result<usize> {
    // SAFETY: `[u8]` and `[MaybeUninit<u8>]` have the same layout, and
    // `recv_uninit` only ever writes initialised bytes, so `buf` stays
    // initialised.
    let buf = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
    recv_uninit(fd, buf, dont_wait)
}

/// What a [`PollFd`] waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interest {
    /// Data (or the end of the stream) to read.
    Read,
    /// Room to write.
    Write,
}

/// One descriptor watched by [`poll`]: a `struct pollfd` that borrows its
/// descriptor for as long as it is watched.
#[repr(transparent)]
pub(crate) struct PollFd<'fd> {
    raw: libc::pollfd,
    _fd: PhantomData<BorrowedFd<'fd>>,
}

impl<'fd> PollFd<'fd> {
    /// Watches `fd` for `interest` (hang-ups and errors are always reported).
    pub(crate) fn new(fd: BorrowedFd<'fd>, interest: Interest) -> PollFd<'fd> {
        let events = match interest {
            Interest::Read => libc::POLLIN,
            Interest::Write => libc::POLLOUT,
        };
        PollFd {
            raw: libc::pollfd {
                fd: fd.as_raw_fd(),
                events,
                revents: 0,
            },
            _fd: PhantomData,
        }
    }

    /// Whether the last [`poll`] reported anything for this descriptor.
    pub(crate) fn is_ready(&self) -> bool {
        self.raw.revents != 0
    }
}

/// `poll(2)` until something is ready or `deadline` (`None`: no limit),
/// retrying on `EINTR` and on early returns: the number of ready
/// descriptors, 0 only once the deadline has passed.
pub(crate) fn poll(fds: &mut [PollFd<'_>], deadline: Option<Instant>) -> io::Result<usize> {
    loop {
        let timeout_ms = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                // Round up so that a wait never ends before the deadline.
                let ms = left.as_nanos().div_ceil(1_000_000);
                ms.min(i32::MAX as u128) as i32
            }
        };
        // SAFETY: `PollFd` is a transparent `pollfd`, so `fds` is a valid,
        // writable array of `fds.len()` pollfd structures, each naming a
        // descriptor borrowed for the call.
        let r = unsafe {
            libc::poll(
                fds.as_mut_ptr().cast::<libc::pollfd>(),
                fds.len() as libc::nfds_t,
                timeout_ms,
            )
        };
        if r >= 0 {
            if r == 0 && deadline.is_some_and(|d| Instant::now() < d) {
                continue;
            }
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Waits for `fd` to be ready for `interest` (or to report a hang-up or an
/// error) until `deadline`: whether it is.
pub(crate) fn poll_one(
    fd: BorrowedFd<'_>,
    interest: Interest,
    deadline: Option<Instant>,
) -> io::Result<bool> {
    Ok(poll(&mut [PollFd::new(fd, interest)], deadline)? > 0)
}

/// Sets or clears the close-on-exec flag of descriptor number `fd`: cleared,
/// the descriptor is inherited by programs this process executes. Only that
/// flag changes; a number that is not open fails with `EBADF`.
///
/// It calls only `fcntl` and allocates nothing, so it may run in a forked
/// child before `exec`.
pub(crate) fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    let flags = if on { libc::FD_CLOEXEC } else { 0 };
    // SAFETY: F_SETFD on a plain descriptor number only sets its flags and
    // touches no memory.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags) } == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Whether `fd` is a unix-domain stream socket.
pub(crate) fn is_unix_stream_socket(fd: BorrowedFd<'_>) -> bool {
    let get = |opt| {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `v` and `len` are valid for getsockopt to write an int.
        let r = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        (r == 0).then_some(v)
    };
    get(libc::SO_TYPE) == Some(libc::SOCK_STREAM) && get(libc::SO_DOMAIN) == Some(libc::AF_UNIX)
}

/// Makes `opts` refuse to open through a symbolic link (the open fails
/// with [`is_symlink_loop`]) and open close-on-exec; with `nonblock` also
/// `O_NONBLOCK`, so that opening a FIFO planted under the name does not
/// wait for a writer.
pub(crate) fn no_follow(opts: &mut OpenOptions, nonblock: bool) -> &mut OpenOptions {
    let mut flags = libc::O_NOFOLLOW | libc::O_CLOEXEC;
    if nonblock {
        flags |= libc::O_NONBLOCK;
    }
    opts.custom_flags(flags)
}

/// Whether `e` is the error of opening a symbolic link with
/// [`no_follow`] (`ELOOP`).
pub(crate) fn is_symlink_loop(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

/// Reserves the first `len` bytes of the file `fd`, so that a full file
/// system is an error now rather than a `SIGBUS` at the first touch of a
/// mapping. Where the file system cannot reserve space, it only sets the
/// file's length.
pub(crate) fn allocate(fd: BorrowedFd<'_>, len: usize) -> io::Result<()> {
    let len = libc::off_t::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "segment too large"))?;
    // SAFETY: `fd` is an open descriptor for the duration of the call;
    // posix_fallocate touches no memory of ours.
    let r = unsafe { libc::posix_fallocate(fd.as_raw_fd(), 0, len) };
    match r {
        0 => Ok(()),
        libc::EOPNOTSUPP | libc::EINVAL => {
            // SAFETY: as above; ftruncate only sets the size.
            if unsafe { libc::ftruncate(fd.as_raw_fd(), len) } == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        }
        e => Err(io::Error::from_raw_os_error(e)),
    }
}
