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
const FUTEX_TID_MASK: u32 = 0x3fff_ffff;

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
fn futex(
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
fn proc_stat(id: u32) -> Option<(u8, u64)> {
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
fn my_who() -> u64 {
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

/// A robust lock's state in shared memory: a priority-inheritance futex word
/// and the holder's entry record. No pointers: nothing read from it is ever
/// followed, so a writer who damages it can make the lock misbehave (appear
/// held, appear abandoned) but never make a process touch other memory.
///
/// ```text
/// offset  field
///      0  word      u32  owner's thread id | FUTEX_WAITERS (0 = free)
///      4  held      u32  thread id of the holder inside its critical section
///      8  who       u64  that holder's process: pid | start time (low 32 bits) << 32
/// ```
///
/// The holder's process is named by its pid *and* its start time, so a dead
/// holder whose pid (and thread id) the kernel has given to another process
/// is still recognised as gone.
#[derive(Debug)]
#[repr(C, align(8))]
pub(crate) struct RawRobustMutex {
    word: AtomicU32,
    held: AtomicU32,
    who: std::sync::atomic::AtomicU64,
}

/// Outcome of a successful acquisition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// The lock was free or released normally.
    Clean,
    /// The previous owner died holding it; the state has been made consistent.
    OwnerDied,
}

const FUTEX_UNLOCK_PI: libc::c_int = 7;
const FUTEX_LOCK_PI: libc::c_int = 6;
const FUTEX_TRYLOCK_PI: libc::c_int = 8;
/// Like `FUTEX_LOCK_PI`, with an absolute `CLOCK_MONOTONIC` timeout (5.14+).
const FUTEX_LOCK_PI2: libc::c_int = 13;

/// Looks at the word before a contended `lock` yields its CPU.
const LOCK_SPINS: u32 = 12;
/// Most `PAUSE`s between two of those looks (the gap doubles from 1): the
/// whole spin is ~770 `PAUSE`s, some microseconds.
const LOCK_SPIN_GAP_MAX: u32 = 128;
/// Yields of the CPU after the spin, before a contended `lock` sleeps.
const LOCK_YIELDS: u32 = 16;
/// The longest those yields last.
const LOCK_YIELD_FOR: std::time::Duration = std::time::Duration::from_micros(200);
/// Longest single sleep of a contended `lock`: after it, the waiter checks
/// that the owner named by the word is the thread that took the lock.
const OWNER_CHECK_SLICE: std::time::Duration = std::time::Duration::from_millis(500);
/// How long a live thread may own the word without entering before the
/// word is taken for damaged (a holder enters right after taking it).
const STRANGER_FOR: std::time::Duration = std::time::Duration::from_secs(1);
/// How long a lock whose word the kernel keeps refusing (`EINVAL`: a
/// hand-over in progress, or a damaged word) is retried before it is
/// reported as damaged.
const REFUSED_FOR: std::time::Duration = std::time::Duration::from_secs(2);

thread_local! {
    /// (process id, thread id) of the calling thread, filled on first use.
    static TID: std::cell::Cell<(u32, u32)> = const { std::cell::Cell::new((0, 0)) };
}

/// The calling thread's id, without a system call after the first (a forked
/// child notices the new process id and asks again).
pub(crate) fn my_tid() -> u32 {
    let pid = my_pid();
    TID.with(|c| {
        let (p, t) = c.get();
        if p == pid {
            t
        } else {
            let t = gettid();
            c.set((pid, t));
            t
        }
    })
}

/// Whether thread `tid` is gone: `tgkill(pid, tid, 0)` when the thread's
/// process is known (a thread id reused by another process counts as gone),
/// and that process's start time must still match (a pid reused by a
/// process that started later counts as gone); `kill(tid, 0)` otherwise. A
/// zombie (killed, not yet reaped) is gone too.
fn thread_gone(tid: u32, process: Option<(u32, u64)>) -> bool {
    if tid == 0 || tid > i32::MAX as u32 {
        return true;
    }
    // SAFETY: signal 0 performs only the existence and permission checks.
    let r = unsafe {
        match process {
            Some((pid, _)) if pid != 0 && pid <= i32::MAX as u32 => {
                libc::syscall(libc::SYS_tgkill, pid as libc::pid_t, tid as libc::pid_t, 0)
                    as libc::c_int
            }
            _ => libc::kill(tid as libc::pid_t, 0),
        }
    };
    if r == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
        return true;
    }
    if let Some((pid, start)) = process {
        if pid != 0 && !process_alive(pid, start) {
            return true;
        }
    }
    // Only a process's first thread lingers as a zombie.
    proc_stat(tid).is_some_and(|(state, _)| state == b'Z' || state == b'X')
}

/// A handle to a robust lock inside a live mapping.
///
/// The lock is a priority-inheritance futex (`FUTEX_LOCK_PI`): uncontended,
/// locking and unlocking are one compare-and-swap each. When the owner dies:
/// - with threads asleep on the lock, the kernel hands it to one of them at
///   the owner's exit;
/// - otherwise the next locker finds the word naming a thread that no longer
///   exists (`ESRCH` from the kernel, or the same check in `try_lock`) and
///   takes it over.
///
/// Either way the new holder finds the dead holder's `held` record still set
/// and is told [`Acquired::OwnerDied`]. A holder killed after taking the word
/// but before entering (or after leaving but before releasing) leaves no
/// record, and its successor is told `Clean`: the critical section had not
/// started, or had finished.
///
/// Unlike a glibc robust mutex, nothing in the shared state is a pointer: the
/// kernel's robust list, whose links glibc keeps inside each held mutex and
/// follows on unlock, is not used.
///
/// The handle borrows the lock's state, so it cannot outlive the mapping
/// that holds it; [`Segment::robust_lock`](crate::local::segment::Segment::robust_lock)
/// hands one out for an offset of its layout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RobustLock<'a> {
    m: &'a RawRobustMutex,
}

impl<'a> RobustLock<'a> {
    /// Wraps the lock state `m`.
    pub(crate) fn new(m: &'a RawRobustMutex) -> RobustLock<'a> {
        RobustLock { m }
    }

    #[inline]
    fn raw(&self) -> &'a RawRobustMutex {
        self.m
    }

    /// Sets the lock free with no holder record: only for a lock in a
    /// segment not yet published (a lock in use would be freed under its
    /// holder).
    pub(crate) fn init(&self) -> io::Result<()> {
        let r = self.raw();
        r.word.store(0, std::sync::atomic::Ordering::Relaxed);
        r.held.store(0, std::sync::atomic::Ordering::Relaxed);
        r.who.store(0, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Records the caller as inside; reports whether the previous holder
    /// died inside.
    #[inline]
    fn enter(&self, tid: u32) -> Acquired {
        use std::sync::atomic::Ordering::Relaxed;
        let r = self.raw();
        crate::crash::crash_point!("lock.acquire.word");
        let died = r.held.load(Relaxed) != 0;
        // The process first, then the thread: `held` names the holder only
        // once `who` names its process (a kill between the two leaves the
        // previous record, whose owner is gone, or none).
        r.who.store(my_who(), Relaxed);
        crate::crash::crash_point!("lock.acquire.who");
        r.held.store(tid, Relaxed);
        crate::crash::crash_point!("lock.acquire.entered");
        if died {
            Acquired::OwnerDied
        } else {
            Acquired::Clean
        }
    }

    /// Takes the word over from `seen`, whose owner is gone (or names no
    /// thread). Returns whether it did.
    #[inline]
    fn take_over(&self, seen: u32, tid: u32) -> bool {
        self.raw()
            .word
            .compare_exchange(
                seen,
                tid,
                std::sync::atomic::Ordering::Acquire,
                std::sync::atomic::Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Whether the owner named by word value `w` is gone.
    fn word_owner_gone(&self, w: u32) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let owner = w & FUTEX_TID_MASK;
        let r = self.raw();
        // The entry record names the owner's process once it has entered:
        // then a thread id or pid reused by another process is recognised.
        let process = (r.held.load(Relaxed) == owner).then(|| {
            let who = r.who.load(Relaxed);
            (who as u32, who >> 32)
        });
        thread_gone(owner, process)
    }

    /// Acquires the lock if it is free: one compare-and-swap and the entry
    /// record's two stores, no system call, no clock read.
    #[inline]
    pub(crate) fn lock_free(&self) -> Option<Acquired> {
        let tid = my_tid();
        self.take_over(0, tid).then(|| self.enter(tid))
    }

    /// Acquires without a system call if the lock is free or freed within a
    /// short spin; `None` otherwise.
    pub(crate) fn lock_spin(&self) -> Option<Acquired> {
        if let Some(a) = self.lock_free() {
            return Some(a);
        }
        self.spin_then_take()
    }

    /// The spin and yields of [`lock_spin`](Self::lock_spin), after its
    /// first compare-and-swap failed.
    #[cold]
    #[inline(never)]
    pub(crate) fn spin_then_take(&self) -> Option<Acquired> {
        let tid = my_tid();
        let word = &self.raw().word;
        let freed_and_taken =
            || word.load(std::sync::atomic::Ordering::Relaxed) == 0 && self.take_over(0, tid);
        // Briefly contended: the holder is usually about to leave.
        // Looks at the word back off exponentially: each look pulls the
        // holder's cache line over and slows its next lock or unlock.
        for i in 0..LOCK_SPINS {
            for _ in 0..(1u32 << i).min(LOCK_SPIN_GAP_MAX) {
                std::hint::spin_loop();
            }
            if freed_and_taken() {
                return Some(self.enter(tid));
            }
        }
        // Still held: the holder may be waiting for a CPU. Give it ours a
        // few times before sleeping, since a sleeper is handed the lock
        // directly on unlock and the lock then waits for it to be scheduled.
        // On a busy machine one yield can give the CPU away for a whole
        // time slice: the rounds are bounded by time too.
        let yielding = Instant::now();
        for _ in 0..LOCK_YIELDS {
            std::thread::yield_now();
            if freed_and_taken() {
                return Some(self.enter(tid));
            }
            if yielding.elapsed() > LOCK_YIELD_FOR {
                break;
            }
        }
        None
    }

    /// [`try_lock`](Self::try_lock) if `try_only`, else [`lock`](Self::lock).
    pub(crate) fn acquire(
        &self,
        try_only: bool,
        deadline: Option<Instant>,
    ) -> io::Result<Option<Acquired>> {
        if try_only {
            self.try_lock()
        } else {
            self.lock(deadline)
        }
    }

    /// Blocks until acquired (or until `deadline`, returning `Ok(None)`).
    ///
    /// A thread that already holds the lock waits out its deadline (the lock
    /// is not re-entrant); without a deadline it gets an error instead of a
    /// deadlock.
    pub(crate) fn lock(&self, deadline: Option<Instant>) -> io::Result<Option<Acquired>> {
        if let Some(a) = self.lock_spin() {
            return Ok(Some(a));
        }
        self.lock_slow(deadline)
    }

    /// [`lock`](Self::lock) without its spin, for a caller that has just
    /// spun with [`lock_spin`](Self::lock_spin).
    pub(crate) fn lock_slow(&self, deadline: Option<Instant>) -> io::Result<Option<Acquired>> {
        use std::sync::atomic::Ordering::Relaxed;
        let tid = my_tid();
        let word = &self.raw().word;
        let held_here = |w: u32| -> io::Result<Option<Acquired>> {
            let Some(d) = deadline else {
                return Err(io::Error::other(
                    "lock already held by this thread: waiting would deadlock",
                ));
            };
            while futex_wait(word, w, Some(d)) != WaitResult::TimedOut {}
            Ok(None)
        };
        let mut refused_since: Option<Instant> = None;
        let mut gone_but_alive = 0u32;
        loop {
            let w = word.load(Relaxed);
            if w & FUTEX_TID_MASK == tid {
                return held_here(w);
            }
            let slice = Instant::now() + OWNER_CHECK_SLICE;
            let until = deadline.map_or(slice, |d| d.min(slice));
            match self.futex_lock_pi(until) {
                Ok(()) => return Ok(Some(self.enter(tid))),
                Err(e) => match e.raw_os_error() {
                    Some(libc::ETIMEDOUT) => {
                        // Is the owner a thread that took the lock, and still
                        // there? Asked at every timeout, however short the
                        // caller's deadline: a dead owner (its thread id, or
                        // its pid, reused by another process or not) is
                        // taken over; so is a live thread that has not
                        // entered for over a second (a holder enters right
                        // after taking the word): a damaged word, or a holder
                        // killed before entering whose id was reused.
                        let w = word.load(Relaxed);
                        let owner = w & FUTEX_TID_MASK;
                        if owner != 0 && owner != tid {
                            let stranger = self.raw().held.load(Relaxed) != owner;
                            let long_stranger = stranger && self.suspected_for(w) > STRANGER_FOR;
                            if (long_stranger || self.word_owner_gone(w)) && self.take_over(w, tid)
                            {
                                return Ok(Some(self.enter(tid)));
                            }
                        }
                        if deadline.is_some_and(|d| Instant::now() >= d) {
                            return Ok(None);
                        }
                    }
                    // The kernel found the owner it looked at gone (or the
                    // word named no thread). The word may name another owner
                    // by now, even the same thread id again after another
                    // waiter took the lock over from a dead holder, so check
                    // the owner it names now before taking it over.
                    Some(libc::ESRCH) => {
                        let now = word.load(Relaxed);
                        if (now & FUTEX_TID_MASK == 0 || self.word_owner_gone(now))
                            && self.take_over(now, tid)
                        {
                            return Ok(Some(self.enter(tid)));
                        }
                        gone_but_alive += 1;
                        if gone_but_alive > 3 {
                            // The kernel and procfs disagree (a procfs of
                            // another pid namespace): do not spin on it.
                            std::thread::sleep(std::time::Duration::from_millis(1));
                        }
                    }
                    Some(libc::EINTR) | Some(libc::EAGAIN) => {}
                    // The kernel's record and the word disagree: a hand-over
                    // after a death is in progress, or the word is damaged.
                    Some(libc::EINVAL) => {
                        let since = *refused_since.get_or_insert_with(Instant::now);
                        if since.elapsed() > REFUSED_FOR {
                            return Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!("damaged lock: the kernel refuses lock word {w:#x}"),
                            ));
                        }
                        if deadline.is_some_and(|d| Instant::now() >= d) {
                            return Ok(None);
                        }
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    Some(libc::EDEADLK) => return held_here(w),
                    // The word names a kernel thread, which can never hold
                    // a lock: a damaged word. Take it over unless a holder
                    // record says that thread entered (it cannot have).
                    Some(libc::EPERM) => {
                        let now = word.load(Relaxed);
                        if now & FUTEX_TID_MASK != tid && self.take_over(now, tid) {
                            return Ok(Some(self.enter(tid)));
                        }
                    }
                    _ => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("damaged lock: word {w:#x}: {e}"),
                        ))
                    }
                },
            }
        }
    }

    /// How long this process has seen the word hold `w` with no holder
    /// entered (0 the first time); remembered across calls, so that callers
    /// with short deadlines add up.
    fn suspected_for(&self, w: u32) -> std::time::Duration {
        static SUSPECTS: std::sync::Mutex<Vec<(usize, u32, Instant)>> =
            std::sync::Mutex::new(Vec::new());
        let at = std::ptr::from_ref(self.m) as usize;
        let mut v = SUSPECTS.lock().unwrap_or_else(|e| e.into_inner());
        v.retain(|&(_, _, since)| since.elapsed() < STRANGER_FOR * 8);
        match v.iter().find(|&&(a, word, _)| a == at && word == w) {
            Some(&(_, _, since)) => since.elapsed(),
            None => {
                v.push((at, w, Instant::now()));
                std::time::Duration::ZERO
            }
        }
    }

    /// A priority-inheritance futex operation on the word, with an absolute
    /// timeout on `clock` if `until` is set.
    fn futex_pi(
        &self,
        op: libc::c_int,
        until: Option<(Instant, libc::clockid_t)>,
    ) -> io::Result<()> {
        futex(&self.raw().word, op, 0, until, 0)
    }

    /// `FUTEX_LOCK_PI2` until `until` (monotonic), or `FUTEX_LOCK_PI` with a
    /// wall-clock deadline on kernels before 5.14.
    fn futex_lock_pi(&self, until: Instant) -> io::Result<()> {
        static NO_PI2: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !NO_PI2.load(std::sync::atomic::Ordering::Relaxed) {
            match self.futex_pi(FUTEX_LOCK_PI2, Some((until, libc::CLOCK_MONOTONIC))) {
                Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                    NO_PI2.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                r => return r,
            }
        }
        // FUTEX_LOCK_PI's timeout is absolute on CLOCK_REALTIME.
        self.futex_pi(FUTEX_LOCK_PI, Some((until, libc::CLOCK_REALTIME)))
    }

    /// Acquires without blocking, `Ok(None)` if held by someone else.
    pub(crate) fn try_lock(&self) -> io::Result<Option<Acquired>> {
        let tid = my_tid();
        if self.take_over(0, tid) {
            return Ok(Some(self.enter(tid)));
        }
        let w = self.raw().word.load(std::sync::atomic::Ordering::Relaxed);
        let owner = w & FUTEX_TID_MASK;
        if owner == tid {
            return Ok(None);
        }
        if owner == 0 {
            // Free apart from stray bits.
            return Ok(self.take_over(w, tid).then(|| self.enter(tid)));
        }
        if !self.word_owner_gone(w) {
            return Ok(None);
        }
        if w & FUTEX_WAITERS == 0 {
            return Ok(self.take_over(w, tid).then(|| self.enter(tid)));
        }
        // Sleepers were (or are being) attached to the dead owner: let the
        // kernel, which knows, decide.
        match self.futex_pi(FUTEX_TRYLOCK_PI, None) {
            Ok(()) => Ok(Some(self.enter(tid))),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                Ok(self.take_over(w, tid).then(|| self.enter(tid)))
            }
            Err(_) => Ok(None),
        }
    }

    /// Releases the lock. It ends with a full memory barrier: a locked
    /// compare-and-swap, or a fence after the system call (which
    /// [`fence_after_unlock`](super::fence_after_unlock) relies on).
    ///
    /// # Safety
    /// The calling thread must hold the lock.
    #[inline]
    pub(crate) unsafe fn unlock(&self) {
        use std::sync::atomic::Ordering::{Relaxed, Release};
        let r = self.raw();
        // Leave first: a kill between the two stores leaves a finished
        // critical section and a lock whose owner is gone.
        r.held.store(0, Release);
        crate::crash::crash_point!("lock.release.left");
        let w = r.word.load(Relaxed);
        if w & FUTEX_WAITERS != 0 || r.word.compare_exchange(w, 0, Release, Relaxed).is_err() {
            // Sleepers: the kernel hands the lock to one of them (it checks
            // that the caller owns the word).
            self.unlock_slow();
        }
        crate::crash::crash_point!("lock.release.word");
    }

    /// Hands the lock to a sleeper: the kernel picks one (it checks that the
    /// caller owns the word).
    #[cold]
    #[inline(never)]
    fn unlock_slow(&self) {
        let _ = self.futex_pi(FUTEX_UNLOCK_PI, None);
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether the lock is held by a live thread (a system call when it is
    /// held, to check that).
    pub(crate) fn is_held(&self) -> bool {
        self.owner_tid() != 0 && !self.abandoned()
    }

    /// Whether the lock is held by a thread that no longer exists.
    pub(crate) fn abandoned(&self) -> bool {
        let w = self.raw().word.load(std::sync::atomic::Ordering::Relaxed);
        w & FUTEX_TID_MASK != 0 && self.word_owner_gone(w)
    }

    /// Frees the lock whatever its state, and forgets its holder record:
    /// the way out of a lock word damaged beyond what [`lock`](Self::lock)
    /// repairs by itself. The next locker is told `Clean`.
    pub(crate) fn force_free(&self) {
        let r = self.raw();
        r.held.store(0, std::sync::atomic::Ordering::Relaxed);
        r.who.store(0, std::sync::atomic::Ordering::Relaxed);
        r.word.store(0, std::sync::atomic::Ordering::Release);
    }

    /// Whether the calling thread holds the lock: the word names its thread
    /// and the entry record its process (pid and start time), so a thread
    /// whose id once belonged to a dead holder is not taken for it.
    pub(crate) fn held_by_me(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let tid = my_tid();
        let r = self.raw();
        r.word.load(Relaxed) & FUTEX_TID_MASK == tid
            && r.held.load(Relaxed) == tid
            && r.who.load(Relaxed) == my_who()
    }

    /// Process id of the holder, once it has entered (its entry record
    /// names the thread the word names).
    pub(crate) fn holder_pid(&self) -> Option<u32> {
        use std::sync::atomic::Ordering::Relaxed;
        let r = self.raw();
        let tid = r.word.load(Relaxed) & FUTEX_TID_MASK;
        (tid != 0 && r.held.load(Relaxed) == tid).then(|| r.who.load(Relaxed) as u32)
    }

    /// Thread id of the current owner, if any (0 when free).
    pub(crate) fn owner_tid(&self) -> u32 {
        self.raw().word.load(std::sync::atomic::Ordering::Relaxed) & FUTEX_TID_MASK
    }
}

/// Bit of a PI futex word: some thread sleeps on it (see `futex(2)`).
pub(crate) const FUTEX_WAITERS: u32 = 0x8000_0000;

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
