//! Participant slots: noticing that a process died while it held a
//! semaphore unit or waited at a barrier.
//!
//! A slot is a robust lock plus a pid and one `u32` of payload. A
//! participant claims a free slot and *holds its lock* for as long as it
//! takes part (holds a unit, waits at the barrier). If it dies, the lock
//! names a thread that no longer exists: the next look at the slot sees a
//! dead participant, and a reaper takes the lock over (`OwnerDied`) and
//! moves the payload back.
//!
//! Nothing in the kernel changes a word when a process dies without the
//! robust list, whose links would have to live in shared memory (where a
//! writer could redirect them). A watcher therefore sleeps on the object's
//! own sequence word (an ordinary state change wakes it at once) for at most
//! [`WATCH_SLICE`] while some slot is occupied, and looks at the slots again
//! after each sleep.
//!
//! ```text
//! slot (64 bytes)
//!      0    16  robust lock
//!     16     8  start time of the claimer (0 = not yet known)
//!     48     4  pid   (0 = free)
//!     52     4  payload (units held, ...)
//!     56     8  aux (a ticket, ...)
//! ```
//!
//! Lifecycle: claim = CAS pid 0 → me, then lock; leave = unlock, then
//! pid = 0. A dead participant's slot keeps its pid until a reaper (holding
//! the object's state lock) takes the lock (`OwnerDied`), moves the payload
//! back, unlocks and frees it.

use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use crate::local::segment::Segment;
use crate::sys::{self, Acquired, RobustLock, WaitResult};

/// Longest sleep of a watcher while some participant could die unseen.
pub(crate) const WATCH_SLICE: std::time::Duration = std::time::Duration::from_millis(50);

/// Bytes per slot.
pub(crate) const SLOT_LEN: usize = 64;
/// The claimer's start time (0: not yet written, or a free slot): with
/// `PID`, names its process uniquely.
const START: usize = 16;
const PID: usize = 48;
const PAYLOAD: usize = 52;
const AUX: usize = 56;

const _: () = assert!(std::mem::size_of::<sys::RawRobustMutex>() <= START);

/// A table of `n` slots at offset `off` of a segment.
#[derive(Clone, Copy)]
pub(crate) struct Slots<'a> {
    seg: &'a Segment,
    off: usize,
    n: usize,
}

/// What a look at a slot found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotState {
    /// Nobody.
    Free,
    /// A live participant.
    Live(u32),
    /// Its participant died; the payload is still there.
    Dead(u32),
}

impl<'a> Slots<'a> {
    /// The table of `n` slots at `off`.
    pub(crate) fn new(seg: &'a Segment, off: usize, n: usize) -> Slots<'a> {
        Slots { seg, off, n }
    }

    /// Bytes the table takes.
    pub(crate) const fn len_for(n: usize) -> usize {
        n * SLOT_LEN
    }

    fn base(&self, i: usize) -> usize {
        self.off + i * SLOT_LEN
    }

    fn mutex(&self, i: usize) -> RobustLock<'a> {
        self.seg.robust_lock(self.base(i))
    }

    /// The slot's pid word.
    pub(crate) fn pid(&self, i: usize) -> &'a AtomicU32 {
        self.seg.at::<AtomicU32>(self.base(i) + PID)
    }

    /// The slot's payload word.
    fn start(&self, i: usize) -> &'a AtomicU64 {
        self.seg.at::<AtomicU64>(self.base(i) + START)
    }

    /// Whether the process that claimed slot `i` as `pid` is alive (by pid
    /// alone while its start time is not yet written).
    fn claimer_alive(&self, i: usize, pid: u32) -> bool {
        sys::process_alive(pid, self.start(i).load(Ordering::Relaxed))
    }

    /// Frees slot `i`: its start time first, so that the next claimer's
    /// slot never shows a stale one.
    fn free(&self, i: usize) {
        self.start(i).store(0, Ordering::Relaxed);
        self.pid(i).store(0, Ordering::Release);
    }

    pub(crate) fn payload(&self, i: usize) -> &'a AtomicU32 {
        self.seg.at::<AtomicU32>(self.base(i) + PAYLOAD)
    }

    /// The slot's auxiliary word.
    pub(crate) fn aux(&self, i: usize) -> &'a AtomicU64 {
        self.seg.at::<AtomicU64>(self.base(i) + AUX)
    }

    /// Initialises every mutex (segment not yet published).
    pub(crate) fn init(&self) -> io::Result<()> {
        for i in 0..self.n {
            self.mutex(i).init()?;
        }
        Ok(())
    }

    /// Claims a free slot for the calling thread and locks its mutex;
    /// `None` when every slot is taken.
    pub(crate) fn claim(&self, payload: u32) -> io::Result<Option<usize>> {
        let me = sys::my_pid();
        for i in 0..self.n {
            let pid = self.pid(i);
            if pid.load(Ordering::Relaxed) != 0
                || pid
                    .compare_exchange(0, me, Ordering::AcqRel, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            self.start(i).store(sys::my_start(), Ordering::Relaxed);
            crate::crash::crash_point!("slot.claim.pid");
            self.payload(i).store(payload, Ordering::Relaxed);
            crate::crash::crash_point!("slot.claim.payload");
            // A reaper may hold the mutex for an instant (it looked while the
            // pid was set but the mutex not yet taken): wait for it.
            match self.mutex(i).lock(None) {
                Ok(Some(_)) => return Ok(Some(i)),
                Ok(None) => {
                    pid.store(0, Ordering::Release);
                    return Err(io::Error::other("slot mutex not acquired"));
                }
                Err(e) => {
                    pid.store(0, Ordering::Release);
                    return Err(e);
                }
            }
        }
        Ok(None)
    }

    /// Leaves slot `i`, claimed by this thread.
    ///
    /// # Safety
    /// The calling thread must have claimed slot `i` and not left it yet.
    pub(crate) unsafe fn leave(&self, i: usize) {
        self.payload(i).store(0, Ordering::Relaxed);
        crate::crash::crash_point!("slot.leave.payload");
        // SAFETY: this thread holds the slot's mutex (function contract).
        unsafe { self.mutex(i).unlock() };
        self.free(i);
        crate::crash::crash_point!("slot.leave.pid");
    }

    /// Whether the calling thread holds slot `i` (claimed it and has not
    /// left it).
    pub(crate) fn held_by_me(&self, i: usize) -> bool {
        self.pid(i).load(Ordering::Acquire) == sys::my_pid() && self.mutex(i).held_by_me()
    }

    /// Looks at slot `i` without changing it.
    pub(crate) fn state(&self, i: usize) -> SlotState {
        let pid = self.pid(i).load(Ordering::Acquire);
        if pid == 0 {
            return SlotState::Free;
        }
        let m = self.mutex(i);
        // Once the participant holds the lock, the lock knows its thread;
        // before that (or if it was killed right there) only the pid tells.
        let dead = if m.owner_tid() != 0 {
            m.abandoned()
        } else {
            !self.claimer_alive(i, pid)
        };
        if dead {
            SlotState::Dead(pid)
        } else {
            SlotState::Live(pid)
        }
    }

    /// If slot `i`'s participant is dead, takes the slot, calls `reap` with
    /// its payload, and frees it. Returns whether it reaped.
    ///
    /// Call with the object's state lock held, so that `reap` can move the
    /// payload back consistently.
    /// Takes a dead participant's payload and hands it to `reap`. A kill
    /// in between (the reaper holds the object's state lock) leaves the
    /// payload neither in the slot nor moved back: the state lock's next
    /// holder is told its owner died and recomputes what it protects.
    fn take_payload(&self, i: usize, reap: impl FnOnce(u32)) {
        let units = self.payload(i).swap(0, Ordering::AcqRel);
        crate::crash::crash_point!("slot.reap.taken");
        reap(units);
    }

    pub(crate) fn reap(&self, i: usize, reap: impl FnOnce(u32)) -> io::Result<bool> {
        let pid = self.pid(i).load(Ordering::Acquire);
        if pid == 0 {
            return Ok(false);
        }
        let m = self.mutex(i);
        match m.try_lock()? {
            None => Ok(false),
            Some(Acquired::OwnerDied) => {
                self.take_payload(i, reap);
                // SAFETY: try_lock just acquired it for this thread.
                unsafe { m.unlock() };
                self.free(i);
                crate::crash::crash_point!("slot.reap.freed");
                Ok(true)
            }
            Some(Acquired::Clean) => {
                // Free mutex with a pid: a participant between its pid and
                // its lock (alive), or one killed right there (no payload
                // moved yet, since payloads move only under the mutex).
                let dead =
                    !self.claimer_alive(i, pid) && self.pid(i).load(Ordering::Acquire) == pid;
                if dead {
                    self.take_payload(i, reap);
                }
                // SAFETY: try_lock just acquired it for this thread.
                unsafe { m.unlock() };
                if dead && self.pid(i).load(Ordering::Acquire) == pid {
                    self.start(i).store(0, Ordering::Relaxed);
                    let _ =
                        self.pid(i)
                            .compare_exchange(pid, 0, Ordering::AcqRel, Ordering::Relaxed);
                    crate::crash::crash_point!("slot.reap.freed");
                }
                Ok(dead)
            }
        }
    }

    /// Sleeps until `seq` moves away from `seen`, or for at most
    /// [`WATCH_SLICE`] while a participant other than `skip` could die, or
    /// until `deadline` passes.
    ///
    /// Returns `TimedOut` only when the deadline passed; any other return
    /// means "look again" (possibly spurious).
    pub(crate) fn sleep(
        &self,
        seq: &AtomicU32,
        seen: u32,
        skip: Option<usize>,
        deadline: Option<Instant>,
    ) -> WaitResult {
        for i in (0..self.n).filter(|&i| Some(i) != skip) {
            match self.state(i) {
                SlotState::Free => {}
                SlotState::Dead(_) => return WaitResult::Woken,
                SlotState::Live(_) => {}
            }
        }
        // Sliced even when no other slot is taken: a waker may have died
        // between its change of the state and its wake-up.
        let slice = Instant::now() + WATCH_SLICE;
        let until = Some(deadline.map_or(slice, |d| d.min(slice)));
        match sys::futex_wait(seq, seen, until) {
            WaitResult::TimedOut if deadline.is_some_and(|d| Instant::now() >= d) => {
                WaitResult::TimedOut
            }
            _ => WaitResult::Woken,
        }
    }
}
