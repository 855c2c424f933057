//! The robust lock: a priority-inheritance futex word and an entry record
//! in shared memory, with no pointers (Linux).
//!
//! The kernel hands a dead owner's lock to a sleeping waiter at its exit,
//! and a later locker sees that the owner named by the word is gone (its
//! thread, or its process by pid and start time), so a SIGKILLed holder
//! never wedges anyone.

use std::io;
use std::sync::atomic::AtomicU32;
use std::time::Instant;

use super::imp::*;
use crate::wait::Wait;

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
/// that holds it; a segment hands one out for an offset of its layout.
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
        r.held.store(tid, std::sync::atomic::Ordering::Release);
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
        let process = (r.held.load(std::sync::atomic::Ordering::Acquire) == owner).then(|| {
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

    /// [`try_lock`](Self::try_lock) for [`Wait::Now`], else [`lock`](Self::lock) until `wait`'s deadline.
    pub(crate) fn acquire(&self, wait: Wait) -> io::Result<Option<Acquired>> {
        if wait.is_now() {
            self.try_lock()
        } else {
            self.lock(wait.deadline())
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
        use std::sync::atomic::Ordering::{Acquire, Relaxed};
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
                        // taken over; so is a live thread watched for a
                        // second without a break owning the word but not
                        // entered (a holder enters right after taking the
                        // word): a damaged word, or a holder killed before
                        // entering whose id was reused.
                        let w = word.load(Relaxed);
                        let owner = w & FUTEX_TID_MASK;
                        if owner != 0 && owner != tid {
                            let stranger = self.raw().held.load(Acquire) != owner;
                            let long_stranger =
                                stranger && self.watch_stranger(w, deadline) >= STRANGER_FOR;
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
                        if deadline.is_some_and(|d| Instant::now() >= d) {
                            return Ok(None);
                        }
                    }
                    // EAGAIN: the owner is exiting; the kernel hands the lock
                    // on once it is gone. Give it the CPU meanwhile, and keep
                    // the caller's deadline.
                    Some(libc::EINTR) | Some(libc::EAGAIN) => {
                        if deadline.is_some_and(|d| Instant::now() >= d) {
                            return Ok(None);
                        }
                        std::thread::yield_now();
                    }
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

    /// How long the word has been seen holding `w` with no holder entered,
    /// without a break: watched now, one look a millisecond, until that
    /// reaches [`STRANGER_FOR`] or `deadline` passes, and added to what this
    /// process watched for the same lock and word just before (so that
    /// callers with short deadlines add up). Any look that finds the word
    /// changed or its owner entered ends the count at zero.
    ///
    /// A live holder is between taking the word and entering only for the
    /// few instructions between the two, or while it waits for a CPU: it
    /// is never seen there for a second of looks. A single sighting is not
    /// enough, since the same thread takes the same lock again and again
    /// and is caught in that window now and then on a busy machine.
    fn watch_stranger(&self, w: u32, deadline: Option<Instant>) -> std::time::Duration {
        use std::sync::atomic::Ordering::{Acquire, Relaxed};
        use std::time::Duration;
        /// Longest gap between two watches whose counts add up.
        const CARRY: Duration = Duration::from_secs(1);
        static WATCHED: std::sync::Mutex<Vec<(usize, u32, Duration, Instant)>> =
            std::sync::Mutex::new(Vec::new());
        let at = std::ptr::from_ref(self.m) as usize;
        let owner = w & FUTEX_TID_MASK;
        let r = self.raw();
        let mut seen = {
            let mut v = WATCHED.lock().unwrap_or_else(|e| e.into_inner());
            v.retain(|&(_, _, _, last)| last.elapsed() < CARRY);
            let i = v.iter().position(|&(a, word, _, _)| a == at && word == w);
            i.map_or(Duration::ZERO, |i| v.swap_remove(i).2)
        };
        let mut last = Instant::now();
        loop {
            if r.word.load(Relaxed) != w || r.held.load(Acquire) == owner {
                return Duration::ZERO;
            }
            let now = Instant::now();
            seen += now - last;
            last = now;
            if seen >= STRANGER_FOR || deadline.is_some_and(|d| now >= d) {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut v = WATCHED.lock().unwrap_or_else(|e| e.into_inner());
        v.push((at, w, seen, last));
        seen
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
