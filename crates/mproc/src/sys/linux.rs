//! Linux implementation of the platform layer.
//!
//! * Futexes are *shared* (no `FUTEX_PRIVATE_FLAG`): the words live in
//!   `MAP_SHARED` mappings and are waited on by several processes.
//! * Deadlines use `FUTEX_WAIT_BITSET`, whose timeout is an absolute
//!   `CLOCK_MONOTONIC` instant, so retries after spurious wake-ups never drift.
//! * The robust mutex is glibc's process-shared robust `pthread_mutex_t`: the
//!   kernel walks each dying thread's robust list and marks the mutexes it held
//!   with `FUTEX_OWNER_DIED`, so a SIGKILLed holder never wedges anyone.

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
    let ts = deadline.map(|d| deadline_timespec(d, libc::CLOCK_MONOTONIC));
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a valid, aligned 32-bit atomic for the duration of the
    // call; the kernel only reads it. `ts_ptr` is null or points to `ts`, which
    // outlives the call. FUTEX_WAIT_BITSET without FUTEX_PRIVATE_FLAG is the
    // shared variant, correct for words in MAP_SHARED memory.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            FUTEX_WAIT_BITSET,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            FUTEX_BITSET_MATCH_ANY,
        )
    };
    if r == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::ETIMEDOUT) {
        WaitResult::TimedOut
    } else {
        WaitResult::Woken
    }
}

/// Wakes up to `n` processes waiting on `word`.
pub(crate) fn futex_wake(word: &AtomicU32, n: i32) {
    // SAFETY: `word` is a valid, aligned 32-bit atomic; FUTEX_WAKE does not
    // access memory beyond hashing the address.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), FUTEX_WAKE, n);
    }
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

/// The start time of process `pid` (clock ticks since boot, field 22 of
/// `/proc/PID/stat`): with the pid, it names a process uniquely.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: skip past
    // the last ')'; field 3 is then the first.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
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

/// A glibc process-shared robust mutex stored in shared memory.
///
/// This is the raw, untyped state; [`RobustLock`] is the handle that operates
/// on one in a mapping.
pub(crate) type RawRobustMutex = libc::pthread_mutex_t;

/// Outcome of a successful acquisition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// The lock was free or released normally.
    Clean,
    /// The previous owner died holding it; the state has been made consistent.
    OwnerDied,
}

extern "C" {
    /// glibc >= 2.30: like `pthread_mutex_timedlock`, on a chosen clock.
    fn pthread_mutex_clocklock(
        mutex: *mut libc::pthread_mutex_t,
        clock: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}

/// A handle to a robust mutex inside a live mapping.
///
/// Holds a raw pointer; the owner (a segment) guarantees the mapping outlives it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RobustLock {
    m: *mut libc::pthread_mutex_t,
}

// SAFETY: the pointee is a process-shared mutex designed for concurrent use.
unsafe impl Send for RobustLock {}
// SAFETY: as above.
unsafe impl Sync for RobustLock {}

impl RobustLock {
    /// Wraps a mutex at `m`.
    ///
    /// # Safety
    /// `m` must be aligned, point into a mapping that outlives every use of the
    /// returned handle, and hold a mutex initialised by [`RobustLock::init`]
    /// (or be initialised before first use).
    pub(crate) unsafe fn from_ptr(m: *mut libc::pthread_mutex_t) -> RobustLock {
        RobustLock { m }
    }

    /// Initialises the mutex as process-shared and robust.
    ///
    /// # Safety
    /// No other process may use the mutex during initialisation (it lives in a
    /// segment not yet published).
    pub(crate) unsafe fn init(&self) -> io::Result<()> {
        let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: `attr` is written by init before any other use, destroyed at
        // the end; `self.m` is valid and unshared per this function's contract.
        unsafe {
            check(libc::pthread_mutexattr_init(attr.as_mut_ptr()))?;
            let r = (|| {
                check(libc::pthread_mutexattr_setpshared(
                    attr.as_mut_ptr(),
                    libc::PTHREAD_PROCESS_SHARED,
                ))?;
                check(libc::pthread_mutexattr_setrobust(
                    attr.as_mut_ptr(),
                    libc::PTHREAD_MUTEX_ROBUST,
                ))?;
                check(libc::pthread_mutex_init(self.m, attr.as_ptr()))
            })();
            libc::pthread_mutexattr_destroy(attr.as_mut_ptr());
            r
        }
    }

    fn finish(&self, r: libc::c_int) -> io::Result<Option<Acquired>> {
        match r {
            0 => Ok(Some(Acquired::Clean)),
            libc::EOWNERDEAD => {
                // SAFETY: we now own the mutex (EOWNERDEAD means acquired), so
                // marking it consistent is permitted and required.
                unsafe { libc::pthread_mutex_consistent(self.m) };
                Ok(Some(Acquired::OwnerDied))
            }
            libc::EBUSY | libc::ETIMEDOUT => Ok(None),
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }

    /// The mutex's type word (`__kind`, at byte 16 of glibc's
    /// `pthread_mutex_t` on every 64-bit Linux target).
    fn kind_word(&self) -> &std::sync::atomic::AtomicI32 {
        const _: () = assert!(std::mem::size_of::<libc::pthread_mutex_t>() >= 20);
        // SAFETY: the pointer is valid and aligned per the constructor
        // contract; byte 16 is the 4-byte-aligned `int __kind` field, inside
        // the mutex (asserted above). Any bit pattern is a valid i32.
        unsafe { std::sync::atomic::AtomicI32::from_ptr(self.m.cast::<u8>().add(16).cast()) }
    }

    /// Refuses a mutex whose type is not the one `init` gives it.
    ///
    /// The mutex lives in memory other processes write. glibc trusts the
    /// type word: a damaged one sends it down the priority-inheritance or
    /// other paths, some of which abort the process on an assertion. Only a
    /// process-shared robust normal mutex is ever handed to glibc.
    fn check_kind(&self) -> io::Result<()> {
        let found = self.kind_word().load(std::sync::atomic::Ordering::Relaxed);
        if found == expected_kind() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("damaged lock: mutex type word is {found:#x}"),
            ))
        }
    }

    /// Blocks until acquired (or until `deadline`, returning `Ok(None)`).
    ///
    /// A wait longer than a second checks that the owner thread exists: a
    /// damaged lock word naming no thread is reported instead of waiting
    /// forever (a holder that really dies is released by the kernel).
    pub(crate) fn lock(&self, deadline: Option<Instant>) -> io::Result<Option<Acquired>> {
        // Uncontended: one compare-and-swap, no clock read.
        if let Some(a) = self.try_lock()? {
            return Ok(Some(a));
        }
        loop {
            let slice = Instant::now() + std::time::Duration::from_secs(1);
            let until = deadline.map_or(slice, |d| d.min(slice));
            let ts = deadline_timespec(until, libc::CLOCK_MONOTONIC);
            // SAFETY: `self.m` is a valid initialised mutex (constructor
            // contract); `ts` outlives the call.
            let r = unsafe { pthread_mutex_clocklock(self.m, libc::CLOCK_MONOTONIC, &ts) };
            if r != libc::ETIMEDOUT || deadline.is_some_and(|d| Instant::now() >= d) {
                return self.finish(r);
            }
            let owner = self.owner_tid();
            if owner != 0 && !pid_alive(owner) {
                return Err(io::Error::other(format!(
                    "damaged lock: held by thread {owner}, which does not exist"
                )));
            }
        }
    }

    /// Acquires without blocking, `Ok(None)` if held by someone else.
    pub(crate) fn try_lock(&self) -> io::Result<Option<Acquired>> {
        self.check_kind()?;
        // SAFETY: `self.m` is a valid initialised mutex (constructor contract).
        let r = unsafe { libc::pthread_mutex_trylock(self.m) };
        self.finish(r)
    }

    /// Releases the mutex.
    ///
    /// # Safety
    /// The calling thread must hold the mutex.
    pub(crate) unsafe fn unlock(&self) {
        // The holder may restore a type word damaged while it held the
        // mutex, so that glibc's unlock takes the path `init` chose.
        let kind = self.kind_word();
        if kind.load(std::sync::atomic::Ordering::Relaxed) != expected_kind() {
            kind.store(expected_kind(), std::sync::atomic::Ordering::Relaxed);
        }
        // SAFETY: the caller holds the mutex (function contract).
        unsafe { libc::pthread_mutex_unlock(self.m) };
    }

    /// Thread id of the current owner, if any (0 when free or owner died).
    pub(crate) fn owner_tid(&self) -> u32 {
        // SAFETY: glibc's pthread_mutex_t starts with the `int __lock` futex
        // word on every Linux target; reading it atomically is how the kernel
        // itself observes it. The pointer is valid per the constructor contract.
        let word = unsafe { AtomicU32::from_ptr(self.m.cast::<u32>()) };
        word.load(std::sync::atomic::Ordering::Relaxed) & FUTEX_TID_MASK
    }
}

/// The type word glibc gives a process-shared robust mutex, read once from
/// a mutex initialised like [`RobustLock::init`] does.
fn expected_kind() -> i32 {
    static KIND: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
    *KIND.get_or_init(|| {
        let mut m = std::mem::MaybeUninit::<libc::pthread_mutex_t>::zeroed();
        // SAFETY: a zeroed, private, properly aligned mutex; `init` only
        // needs exclusive access, which this stack slot guarantees.
        let lock = unsafe { RobustLock::from_ptr(m.as_mut_ptr()) };
        // SAFETY: as above; nobody else can see this mutex.
        match unsafe { lock.init() } {
            Ok(()) => lock.kind_word().load(std::sync::atomic::Ordering::Relaxed),
            // Unreachable in practice (init of a private mutex cannot fail);
            // then no shared mutex is ever accepted, which is safe.
            Err(_) => i32::MIN,
        }
    })
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
}

/// Bit of a robust futex word: some thread sleeps on it (see `futex(2)`).
pub(crate) const FUTEX_WAITERS: u32 = 0x8000_0000;
/// Bit of a robust futex word: its owner died holding it.
pub(crate) const FUTEX_OWNER_DIED: u32 = 0x4000_0000;

/// Sleeps until one of `words` no longer holds its expected value, a wake-up
/// reaches one of them, or `deadline` passes (`futex_waitv(2)`, Linux 5.16+).
///
/// At most 128 words. Returns at once if any word already differs. Where
/// the kernel lacks `futex_waitv`, sleeps on the first word only.
pub(crate) fn futex_waitv(words: &[(&AtomicU32, u32)], deadline: Option<Instant>) -> WaitResult {
    #[repr(C)]
    struct FutexWaitv {
        val: u64,
        uaddr: u64,
        flags: u32,
        reserved: u32,
    }
    /// `FUTEX2_SIZE_U32`, shared (no `FUTEX2_PRIVATE`).
    const FUTEX2_SIZE_U32: u32 = 0x02;
    if let Some(d) = deadline {
        if Instant::now() >= d {
            return WaitResult::TimedOut;
        }
    }
    let list: Vec<FutexWaitv> = words
        .iter()
        .take(128)
        .map(|(w, v)| FutexWaitv {
            val: u64::from(*v),
            uaddr: w.as_ptr() as u64,
            flags: FUTEX2_SIZE_U32,
            reserved: 0,
        })
        .collect();
    let ts = deadline.map(|d| deadline_timespec(d, libc::CLOCK_MONOTONIC));
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `list` is a valid array of `list.len()` futex_waitv records
    // whose addresses are live, aligned 32-bit atomics borrowed for the call;
    // `ts_ptr` is null or points to `ts`, which outlives the call. The kernel
    // only reads the words.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex_waitv,
            list.as_ptr(),
            list.len() as libc::c_uint,
            0 as libc::c_uint,
            ts_ptr,
            libc::CLOCK_MONOTONIC,
        )
    };
    match (r, io::Error::last_os_error().raw_os_error()) {
        (-1, Some(libc::ETIMEDOUT)) => WaitResult::TimedOut,
        // Kernels before 5.16: sleep on the first word alone (deaths are
        // then noticed at the next wake-up instead of at once).
        (-1, Some(libc::ENOSYS)) => match words.first() {
            Some((w, v)) => futex_wait(w, *v, deadline),
            None => WaitResult::Woken,
        },
        _ => WaitResult::Woken,
    }
}
