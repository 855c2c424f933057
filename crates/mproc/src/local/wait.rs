//! Waiting for a condition on shared state, without lost wake-ups.
//!
//! A [`WaitCell`] is a pair of futex words in shared memory:
//!
//! ```text
//! seq      a counter (bits 1..) and the SLEEPERS bit (bit 0): someone may be
//!          asleep on this word
//! waiters  how many processes are (about to be) asleep, for display
//! ```
//!
//! Waiter: spin briefly on the condition; then set SLEEPERS in `seq` (a
//! compare-and-swap that also reads it), full fence, re-check the condition,
//! and `FUTEX_WAIT(seq, value with SLEEPERS)`. Waker: change the state, full
//! fence, and only if SLEEPERS is set, clear it while bumping the counter,
//! and `FUTEX_WAKE` everyone. Either the waker sees the waiter's bit (and
//! wakes it), or the waiter's re-check sees the new state; and any change of
//! `seq` between the waiter's read and its sleep makes `FUTEX_WAIT` return at
//! once. The uncontended waker pays one fence and one load, no syscall.
//!
//! A waiter killed while asleep leaves SLEEPERS set: the next waker pays one
//! spare `FUTEX_WAKE` and clears it, so nothing stays slower after a crash.
//! A cell with a [`Sleepers`] registry counts its waiters there, by process
//! (pid and start time), so a waiter killed asleep stops being counted at
//! once; without one, `waiters` stays one too high after such a kill.
//!
//! A waker killed between its change of the state and its wake-up would
//! leave the sleepers asleep with the condition already true: no sleep is
//! longer than [`WAKE_SLICE`], after which the sleeper looks again.

use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::crash::crash_point;
use crate::local::segment::Segment;
use crate::sys::{self, futex_wait, futex_wake};

/// The longest single sleep of a waiter: a waker that died between its
/// change of the state and its wake-up delays its sleepers by at most this.
pub(crate) const WAKE_SLICE: Duration = Duration::from_millis(100);

/// How a waiter spins before yielding: `looks` looks at the state, `gap`
/// apart (busy, with `PAUSE`).
///
/// The spin is short on purpose: when the process that will change the
/// state runs on the same CPU (two busy processes on a 2-CPU machine, or any
/// oversubscribed one), spinning only delays it. A handoff within a few
/// microseconds is still caught here without a system call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spin {
    looks: u32,
    gap: Duration,
}

impl Spin {
    /// For state changed by one operation at a time (events, semaphores,
    /// tasks done): 16 looks 300 ns apart.
    pub(crate) const SHORT: Spin = Spin {
        looks: 16,
        gap: Duration::from_nanos(300),
    };
    /// For a consumer waiting on a stream of messages, or a producer
    /// waiting for room a consumer frees: 8 looks 2 µs apart.
    ///
    /// Each look reads a cache line the other side writes next, and makes
    /// that write slower. A consumer that keeps up with its producer (the
    /// queue empties after every message) and looks back to back keeps both
    /// in a regime where every message crosses CPUs twice; looking every
    /// 2 µs lets messages (or free space) gather, so each side works on
    /// lines the other is done with. On this project's test machine that
    /// raised unbatched 1→1 and 4→2 throughput from ~22 M to ~29 M msg/s,
    /// for a round trip of ~2.3 µs instead of ~0.65 µs (a unix socket's is
    /// ~60 µs).
    pub(crate) const GATHER: Spin = Spin {
        looks: 8,
        gap: Duration::from_micros(2),
    };

    /// The spin of a consumer whose waits adapt (see [`Gather`]): at
    /// `level` 0 it looks back to back, a request/response peer's reply
    /// caught within tens of nanoseconds; each level up doubles the gap
    /// between looks, up to [`GATHER`](Self::GATHER)'s 2 µs. Every level
    /// spins for about the same 16 µs.
    pub(crate) fn gather(level: u32) -> Spin {
        if level == 0 {
            return Spin {
                looks: 512,
                gap: Duration::ZERO,
            };
        }
        let gap_ns = 31u64 << level.min(Gather::MAX);
        Spin {
            looks: (16_000 / gap_ns).max(1) as u32,
            gap: Duration::from_nanos(gap_ns),
        }
    }
}

/// How a consumer's waits adapt to what each one found, one per handle (in
/// the process, not the segment).
///
/// A consumer in a request/response exchange finds exactly one message
/// after each wait, however long it waits: looking sooner only answers
/// sooner. A consumer behind a streaming producer finds more, the longer
/// it waits: letting them gather pays (see [`Spin::GATHER`]). So a wait
/// after which the queue still held messages sets the level to the top
/// (gather), and one that found the only message lowers it a step, down to
/// looking back to back. A streaming consumer stays at the top (each wait
/// finds a batch); a responder reaches the bottom within
/// [`MAX`](Self::MAX) exchanges.
#[derive(Debug)]
pub(crate) struct Gather(std::sync::atomic::AtomicU32);

impl Gather {
    /// The top level: [`Spin::GATHER`]'s 2 µs gaps.
    pub(crate) const MAX: u32 = 6;

    /// Starts at the top: a new consumer gathers.
    pub(crate) fn new() -> Gather {
        Gather(std::sync::atomic::AtomicU32::new(Gather::MAX))
    }

    /// The spin for the next wait.
    pub(crate) fn spin(&self) -> Spin {
        Spin::gather(self.0.load(Ordering::Relaxed))
    }

    /// Learns from a wait's outcome: whether it found more than one
    /// message (a batch took several, or some were left behind).
    pub(crate) fn learn(&self, more_left: bool) {
        let level = self.0.load(Ordering::Relaxed);
        let next = if more_left {
            Gather::MAX
        } else {
            level.saturating_sub(1)
        };
        if next != level {
            self.0.store(next, Ordering::Relaxed);
        }
    }
}

/// `sched_yield` rounds after the busy spin, before sleeping on the futex.
///
/// Yielding lets a peer on the same CPU run at once, and on an idle CPU it
/// returns within a microsecond, so these rounds keep polling for some tens
/// of microseconds (bounded) before paying for a futex sleep and wake-up,
/// which crosses CPUs through the hypervisor on a VM (~50 µs).
const YIELDS: u32 = 64;
/// The longest the spin and yield rounds last before a waiter sleeps.
const YIELD_FOR: Duration = Duration::from_micros(200);
/// Bit 0 of `seq`: a waiter may be asleep on it.
const SLEEPERS: u32 = 1;

/// A view of one wait cell (two adjacent `u32` words) in a segment.
#[derive(Clone, Copy)]
pub(crate) struct WaitCell<'a> {
    pub(crate) seq: &'a AtomicU32,
    pub(crate) waiters: &'a AtomicU32,
    /// Where sleepers register, with this cell's id, if the object keeps a
    /// registry (then `waiters` is unused).
    pub(crate) sleepers: Option<(Sleepers<'a>, u32)>,
}

/// A table of the processes asleep on an object's wait cells:
/// `n` slots of `{pid u32, cell u32, start time u64}`.
///
/// A sleeper claims a free slot (or one of a dead process) by a
/// compare-and-swap of `pid`, then writes its start time and the cell it
/// sleeps on, and frees the slot when it wakes. A kill at any point leaves
/// a slot whose process is gone, which is neither counted nor kept: the
/// next sleeper that needs it takes it.
#[derive(Clone, Copy)]
pub(crate) struct Sleepers<'a> {
    seg: &'a Segment,
    off: usize,
    n: usize,
}

/// Bytes of one sleeper slot.
pub(crate) const SLEEPER_SLOT: usize = 16;

impl<'a> Sleepers<'a> {
    pub(crate) fn new(seg: &'a Segment, off: usize, n: usize) -> Sleepers<'a> {
        Sleepers { seg, off, n }
    }

    fn pid(&self, i: usize) -> &'a AtomicU32 {
        self.seg.at(self.off + i * SLEEPER_SLOT)
    }

    fn cell(&self, i: usize) -> &'a AtomicU32 {
        self.seg.at(self.off + i * SLEEPER_SLOT + 4)
    }

    fn start(&self, i: usize) -> &'a AtomicU64 {
        self.seg.at(self.off + i * SLEEPER_SLOT + 8)
    }

    fn alive(&self, i: usize, pid: u32) -> bool {
        sys::process_alive(pid, self.start(i).load(Ordering::Acquire))
    }

    /// Registers the caller as asleep on cell `id`; `None` if every slot
    /// holds a live sleeper.
    fn register(&self, id: u32) -> Option<usize> {
        let me = sys::my_pid();
        // A free slot first; only then one of a dead process (asking
        // whether a process lives reads /proc).
        for free_only in [true, false] {
            for i in 0..self.n {
                let pid = self.pid(i);
                let cur = pid.load(Ordering::Relaxed);
                let takeable = if free_only {
                    cur == 0
                } else {
                    cur != 0 && cur != me && !self.alive(i, cur)
                };
                if takeable
                    && pid
                        .compare_exchange(cur, me, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                {
                    crash_point!("cell.wait.claimed");
                    self.start(i).store(sys::my_start(), Ordering::Relaxed);
                    crash_point!("cell.wait.started");
                    self.cell(i).store(id, Ordering::Release);
                    crash_point!("cell.wait.registered");
                    return Some(i);
                }
            }
        }
        None
    }

    /// Frees slot `i`: its start time first (0: unknown), so that the next
    /// claimer's slot never shows a stale one while it writes its own.
    fn leave(&self, i: usize) {
        self.start(i).store(0, Ordering::Relaxed);
        crash_point!("cell.wait.unstarted");
        self.pid(i).store(0, Ordering::Release);
        crash_point!("cell.wait.left");
    }

    /// Live processes asleep on cell `id`.
    fn count(&self, id: u32) -> u32 {
        (0..self.n)
            .filter(|&i| {
                let pid = self.pid(i).load(Ordering::Acquire);
                pid != 0 && self.cell(i).load(Ordering::Acquire) == id && self.alive(i, pid)
            })
            .count() as u32
    }
}

impl WaitCell<'_> {
    /// Waits until `ready()` is true or `deadline` passes; returns whether it
    /// became ready.
    pub(crate) fn wait_until(&self, deadline: Option<Instant>, ready: impl Fn() -> bool) -> bool {
        self.wait_until_checked(deadline, Spin::SHORT, &ready, &ready)
    }

    /// [`wait_until`](Self::wait_until), spinning as `spin` says, looking
    /// with `quick` while it spins and yields, and with `ready` (which also
    /// holds when `quick` does) before and after each sleep: the spin stays
    /// off cache lines that `ready` alone needs to read.
    pub(crate) fn wait_until_checked(
        &self,
        deadline: Option<Instant>,
        spin: Spin,
        quick: &dyn Fn() -> bool,
        ready: &dyn Fn() -> bool,
    ) -> bool {
        let mut yielding: Option<Instant> = None;
        for i in 0..spin.looks + YIELDS {
            if quick() {
                return true;
            }
            if i < spin.looks {
                if spin.gap.is_zero() {
                    std::hint::spin_loop();
                    continue;
                }
                let looked = Instant::now();
                while looked.elapsed() < spin.gap {
                    std::hint::spin_loop();
                }
            } else {
                // On a busy machine one yield can give the CPU away for a
                // whole time slice: bound the rounds by time, and by the
                // caller's deadline.
                let now = Instant::now();
                let since = *yielding.get_or_insert(now);
                if now.duration_since(since) > YIELD_FOR || deadline.is_some_and(|d| now >= d) {
                    break;
                }
                std::thread::yield_now();
            }
        }
        loop {
            let registered = self.enter();
            let mut seq = self.seq.load(Ordering::SeqCst);
            if seq & SLEEPERS == 0 {
                match self.seq.compare_exchange(
                    seq,
                    seq | SLEEPERS,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                ) {
                    Ok(_) => {
                        seq |= SLEEPERS;
                        crash_point!("cell.wait.sleepers");
                    }
                    Err(_) => {
                        // A waker bumped it meanwhile: look again.
                        self.leave(registered);
                        if ready() {
                            return true;
                        }
                        continue;
                    }
                }
            }
            fence(Ordering::SeqCst);
            if ready() {
                self.leave(registered);
                return true;
            }
            // Never longer than WAKE_SLICE: a waker may have died between
            // its change and its wake-up.
            let slice = Instant::now() + WAKE_SLICE;
            futex_wait(
                self.seq,
                seq,
                Some(deadline.map_or(slice, |d| d.min(slice))),
            );
            self.leave(registered);
            if ready() {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
        }
    }

    /// Counts the caller as a waiter: in the registry if the cell has one
    /// (`Some(slot)`), else in `waiters`.
    fn enter(&self) -> Option<usize> {
        if let Some((s, id)) = self.sleepers {
            if let Some(i) = s.register(id) {
                return Some(i);
            }
        }
        self.waiters.fetch_add(1, Ordering::SeqCst);
        None
    }

    fn leave(&self, registered: Option<usize>) {
        match (registered, self.sleepers) {
            (Some(i), Some((s, _))) => s.leave(i),
            _ => {
                self.waiters.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// Wakes every waiter if there may be any. Call after changing the state.
    #[inline]
    pub(crate) fn wake_all(&self) {
        fence(Ordering::SeqCst);
        self.wake_if_sleepers();
    }

    /// [`wake_all`](Self::wake_all) right after releasing a robust lock
    /// whose critical section changed the state: the release already was a
    /// full barrier ([`sys::fence_after_unlock`]), which spares a second one
    /// on every put and get.
    #[inline]
    pub(crate) fn wake_all_after_unlock(&self) {
        sys::fence_after_unlock();
        self.wake_if_sleepers();
    }

    /// The waker's half after its fence: a load, and a wake-up only if
    /// someone may sleep.
    #[inline]
    fn wake_if_sleepers(&self) {
        if self.seq.load(Ordering::Relaxed) & SLEEPERS != 0 {
            self.wake_sleepers();
        }
    }

    #[cold]
    fn wake_sleepers(&self) {
        let mut seq = self.seq.load(Ordering::Relaxed);
        while seq & SLEEPERS != 0 {
            let next = (seq & !SLEEPERS).wrapping_add(2);
            match self
                .seq
                .compare_exchange_weak(seq, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    crash_point!("cell.wake.bumped");
                    futex_wake(self.seq, i32::MAX);
                    return;
                }
                Err(now) => seq = now,
            }
        }
        // Another waker cleared the bit; it wakes the sleepers.
    }

    /// Wakes every waiter unconditionally (close, abort: rare events).
    pub(crate) fn force_wake_all(&self) {
        self.seq.fetch_add(2, Ordering::AcqRel);
        crash_point!("cell.wake.bumped");
        futex_wake(self.seq, i32::MAX);
    }

    /// Number of processes currently waiting: the live ones in the
    /// registry, plus any counted in `waiters` (a cell without a registry,
    /// or sleepers that found it full).
    pub(crate) fn waiting(&self) -> u32 {
        let counted = self.waiters.load(Ordering::Relaxed);
        match self.sleepers {
            Some((s, id)) => s.count(id) + counted,
            None => counted,
        }
    }
}
