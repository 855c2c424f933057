//! Linux implementation of the platform layer.
//!
//! * Futexes are *shared* (no `FUTEX_PRIVATE_FLAG`): the words live in
//!   `MAP_SHARED` mappings and are waited on by several processes.
//! * Deadlines use `FUTEX_WAIT_BITSET`, whose timeout is an absolute
//!   `CLOCK_MONOTONIC` instant, so retries after spurious wake-ups never drift.
//! * The robust lock is a priority-inheritance futex word plus an entry
//!   record, with no pointers in shared memory: the kernel hands a dead
//!   owner's lock to a sleeping waiter at its exit, and a later locker sees
//!   that the owner named by the word is gone, so a SIGKILLed holder never
//!   wedges anyone.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::time::Instant;

const FUTEX_WAKE: libc::c_int = 1;
const FUTEX_WAIT_BITSET: libc::c_int = 9;
const FUTEX_BITSET_MATCH_ANY: u32 = u32::MAX;
/// Mask of the owner's thread id in a robust futex word (see `futex(2)`).
pub(super) const FUTEX_TID_MASK: u32 = 0x3fff_ffff;

/// How a futex wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitResult {
    /// Woken, interrupted, or the word no longer held the expected value.
    Woken,
    /// The deadline passed.
    TimedOut,
}

/// Converts an `Instant` deadline into an absolute timespec on `clock`.
fn deadline_timespec(deadline: Instant, clock: libc::clockid_t) -> libc::timespec {
    let remaining = deadline.saturating_duration_since(Instant::now());
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; `clock` is MONOTONIC or REALTIME.
    unsafe { libc::clock_gettime(clock, &mut now) };
    let mut sec = now
        .tv_sec
        .saturating_add(remaining.as_secs().min(i64::MAX as u64 / 2) as libc::time_t);
    let mut nsec = now.tv_nsec + remaining.subsec_nanos() as libc::c_long;
    if nsec >= 1_000_000_000 {
        nsec -= 1_000_000_000;
        sec = sec.saturating_add(1);
    }
    libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    }
}

/// Wall-clock time in nanoseconds since the Unix epoch.
pub(crate) fn now_realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Wall-clock time at tick resolution (a few ms), always served without a
/// system call: for records shown to people, on hot paths.
pub(crate) fn now_coarse_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_REALTIME_COARSE
    // exists on every Linux since 2.6.32.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

static PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

extern "C" fn forget_pid() {
    PID.store(0, std::sync::atomic::Ordering::Relaxed);
}

/// This process's id, without a system call after the first (glibc no
/// longer caches it). A forked child forgets the cached value.
pub(crate) fn my_pid() -> u32 {
    let pid = PID.load(std::sync::atomic::Ordering::Relaxed);
    if pid != 0 {
        return pid;
    }
    static AT_FORK: std::sync::Once = std::sync::Once::new();
    AT_FORK.call_once(|| {
        // SAFETY: registers a handler that only stores to an atomic, which is
        // async-signal-safe as a forked child requires.
        unsafe { libc::pthread_atfork(None, None, Some(forget_pid)) };
    });
    let pid = std::process::id();
    PID.store(pid, std::sync::atomic::Ordering::Relaxed);
    pid
}

/// Sleeps while `*word == expected`, until woken or `deadline` passes.
///
/// Returns at once if the word differs. Spurious wake-ups are reported as
/// [`WaitResult::Woken`]; callers re-check their condition in a loop.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> WaitResult {
    if let Some(d) = deadline {
        if Instant::now() >= d {
            return WaitResult::TimedOut;
        }
    }
    // FUTEX_WAIT_BITSET: the timeout is an absolute CLOCK_MONOTONIC instant.
    let until = deadline.map(|d| (d, libc::CLOCK_MONOTONIC));
    match futex(
        word,
        FUTEX_WAIT_BITSET,
        expected,
        until,
        FUTEX_BITSET_MATCH_ANY,
    ) {
        Err(e) if e.raw_os_error() == Some(libc::ETIMEDOUT) => WaitResult::TimedOut,
        _ => WaitResult::Woken,
    }
}

/// One `futex(2)` call on `word`: `op` with `val` and `val3`, and an absolute
/// timeout on the given clock if `until` is set.
///
/// Every operation used here only reads the word, compare-and-swaps it, or
/// hashes its address; none touches other memory of the caller. The call is
/// *shared* (no `FUTEX_PRIVATE_FLAG`), as the words live in `MAP_SHARED`
/// mappings.
pub(super) fn futex(
    word: &AtomicU32,
    op: libc::c_int,
    val: u32,
    until: Option<(Instant, libc::clockid_t)>,
    val3: u32,
) -> io::Result<()> {
    let ts = until.map(|(t, clock)| deadline_timespec(t, clock));
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a valid, aligned 32-bit atomic for the duration of
    // the call; `ts_ptr` is null or points to `ts`, which outlives the call;
    // the second address is unused by these operations (null).
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            op,
            val,
            ts_ptr,
            std::ptr::null::<u32>(),
            val3,
        )
    };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Wakes up to `n` processes waiting on `word`.
pub(crate) fn futex_wake(word: &AtomicU32, n: i32) {
    let _ = futex(word, FUTEX_WAKE, n as u32, None, 0);
}

/// The calling thread's kernel thread id.
pub(crate) fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

/// Whether a process with this pid exists (zombies count as alive).
pub(crate) fn pid_alive(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: signal 0 performs only the existence and permission check.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The state letter and start time of process (or thread) `id`, from
/// `/proc/ID/stat`: fields 3 and 22.
pub(super) fn proc_stat(id: u32) -> Option<(u8, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{id}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: skip past
    // the last ')'; field 3 is then the first.
    let mut rest = stat[stat.rfind(')')? + 1..].split_ascii_whitespace();
    let state = *rest.next()?.as_bytes().first()?;
    Some((state, rest.nth(18)?.parse().ok()?))
}

/// The start time of process `pid` (clock ticks since boot, field 22 of
/// `/proc/PID/stat`): with the pid, it names a process uniquely.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|(_, t)| t)
}

/// Whether the process that was `pid` with start time `start` (0: unknown)
/// still runs: it exists, is not a zombie (killed, not yet reaped), and the
/// pid has not been reused by a process that started at another time. Only
/// the low 32 bits of `start` are compared when `start` fits in 32 bits
/// (lock entry records keep those).
pub(crate) fn process_alive(pid: u32, start: u64) -> bool {
    if !pid_alive(pid) {
        return false;
    }
    match proc_stat(pid) {
        // No procfs for this pid (another pid namespace): trust kill(2).
        None => true,
        Some((state, t)) => {
            let same = start == 0
                || t == start
                || (start <= u64::from(u32::MAX) && t as u32 == start as u32);
            same && state != b'Z' && state != b'X'
        }
    }
}

/// Waits until the process that was `pid` with start time `start` has
/// ended (a zombie counts as ended), or until `deadline`; returns whether
/// it ended. Sleeps on a pidfd (Linux 5.3+), which becomes readable when
/// the process exits; without one, looks every 50 ms.
pub(crate) fn wait_process_gone(pid: u32, start: u64, deadline: Option<Instant>) -> bool {
    const SLICE: std::time::Duration = std::time::Duration::from_millis(50);
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor
    // or -1; it touches no memory of the caller.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    let fd = (raw >= 0).then(|| {
        // SAFETY: pidfd_open returned a fresh descriptor that nothing else owns.
        unsafe { OwnedFd::from_raw_fd(raw as libc::c_int) }
    });
    loop {
        // After opening: the pidfd may name a process that reused the pid.
        if !process_alive(pid, start) {
            return true;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return false;
        }
        // Sliced even with a pidfd: a pid of another pid namespace, where
        // this process's procfs cannot look, is polled with kill(2).
        let until = deadline.map_or(now + SLICE * 20, |d| d.min(now + SLICE * 20));
        match &fd {
            Some(fd) => {
                let mut p = libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                let ms = until.saturating_duration_since(now).as_millis().max(1) as libc::c_int;
                // SAFETY: `p` is one valid pollfd for the duration of the call.
                unsafe { libc::poll(&mut p, 1, ms) };
            }
            None => std::thread::sleep(SLICE.min(until.saturating_duration_since(now))),
        }
    }
}

/// This process as a lock's entry record names it (see [`RawRobustMutex`]).
pub(crate) fn my_process_word() -> u64 {
    my_who()
}

/// This process's start time (cached; a forked child asks again).
pub(crate) fn my_start() -> u64 {
    static START: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let pid = my_pid();
    let cached = START.load(std::sync::atomic::Ordering::Relaxed);
    if cached != 0 && cached >> 40 == u64::from(pid) {
        return cached & 0xff_ffff_ffff;
    }
    let t = start_time(pid).unwrap_or(0) & 0xff_ffff_ffff;
    START.store(
        u64::from(pid) << 40 | t,
        std::sync::atomic::Ordering::Relaxed,
    );
    t
}

/// This process as a lock's entry record names it: `pid | start << 32`
/// (the start time's low 32 bits), cached (a forked child computes its own).
#[inline]
pub(super) fn my_who() -> u64 {
    static WHO: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    #[cold]
    fn fill() -> u64 {
        let who = u64::from(my_pid()) | (my_start() & 0xffff_ffff) << 32;
        WHO.store(who, std::sync::atomic::Ordering::Relaxed);
        who
    }
    let who = WHO.load(std::sync::atomic::Ordering::Relaxed);
    // A forked child has another pid (see `my_pid`): ask again.
    if who != 0 && who as u32 == my_pid() {
        return who;
    }
    fill()
}

/// Ends this process at once with SIGKILL (crash points).
#[cfg(feature = "crash-points")]
pub(crate) fn kill_self() -> ! {
    // SAFETY: kill and raise have no memory preconditions.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
        libc::raise(libc::SIGKILL);
    }
    loop {
        std::hint::spin_loop();
    }
}

/// Creates an anonymous memory file (close-on-exec) for an unnamed object.
pub(crate) fn memfd(name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid NUL-terminated string; flags are valid.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: memfd_create returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A shared, read-write mapping of a whole file.
///
/// The mapping is unmapped on drop. Its length never changes.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; all access to its contents goes
// through atomics or through the segment layer's bounds-checked copies.
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` only hands out raw pointers.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd` shared and read-write.
    pub(crate) fn map(fd: BorrowedFd<'_>, len: usize) -> io::Result<Mapping> {
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty mapping"));
        }
        // SAFETY: a fresh mapping chosen by the kernel (addr null) over a valid
        // descriptor; failure is reported as MAP_FAILED and handled below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        Ok(Mapping { ptr, len })
    }

    /// Start of the mapping.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length of the mapping in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping created by `map` and not yet
        // unmapped; every borrow of it is tied to `self`'s lifetime.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The caller's effective user id.
pub(crate) fn my_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether this process is in group `gid` (effective or supplementary).
pub(crate) fn in_group(gid: u32) -> bool {
    // SAFETY: getegid has no preconditions and cannot fail.
    if unsafe { libc::getegid() } == gid {
        return true;
    }
    // SAFETY: with a size of 0, getgroups only returns the count.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    if n <= 0 {
        return false;
    }
    let mut groups = vec![0 as libc::gid_t; n as usize];
    // SAFETY: `groups` has room for `n` entries.
    let n = unsafe { libc::getgroups(n, groups.as_mut_ptr()) };
    n > 0 && groups[..n as usize].contains(&gid)
}

/// In a freshly forked child: asks the kernel to SIGKILL this process when
/// the thread that forked it exits (`PR_SET_PDEATHSIG`), then checks that
/// the parent `parent` has not already gone (the request would come too
/// late): `false` if it has.
///
/// It calls only `prctl` and `getppid` and allocates nothing, so it may run
/// between `fork` and `exec`.
pub(crate) fn die_with_parent(parent: u32) -> bool {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a plain signal number and
    // touches no memory; getppid has no preconditions.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::getppid() as u32 == parent
    }
}

/// How many threads this process has (the entries of `/proc/self/task`).
pub(crate) fn thread_count() -> io::Result<usize> {
    std::fs::read_dir("/proc/self/task").map(|d| d.count())
}

/// Fills the start of `buf` with random bytes from the kernel
/// (`getrandom(2)`): how many it wrote, at least one unless `buf` is empty.
#[cfg(feature = "redis")]
pub(crate) fn random_bytes(buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe `buf`, which stays alive and
    // exclusively borrowed for the call.
    let r = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}
