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
//! (It leaves the display count `waiters` one too high.)

use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::time::Instant;

use crate::sys::{self, futex_wait, futex_wake, WaitResult};

/// Iterations of the busy spin before yielding.
///
/// Short on purpose: when the process that will change the state runs on
/// the same CPU (two busy processes on a 2-CPU machine, or any oversubscribed
/// one), spinning only delays it, and one `PAUSE` costs from ~10 to ~140
/// cycles depending on the CPU. A handoff within a few hundred nanoseconds is
/// still caught here without a system call.
const SPIN: u32 = 16;
/// Pause between two looks at the state during the busy spin.
///
/// Each look reads a cache line the other side writes, and makes its next
/// write slower. When a consumer keeps up with a producer (the queue empties
/// after every message), looking back to back keeps both in a regime where
/// every message crosses CPUs several times; looking every ~300 ns lets a few
/// messages gather, which on this project's test machine raises the median
/// unbatched 1→1 throughput by about half, for ~0.25 µs more round trip.
const SPIN_GAP: std::time::Duration = std::time::Duration::from_nanos(300);
/// `sched_yield` rounds after the busy spin, before sleeping on the futex.
///
/// Yielding lets a peer on the same CPU run at once, and on an idle CPU it
/// returns within a microsecond, so these rounds keep polling for some tens
/// of microseconds (bounded) before paying for a futex sleep and wake-up,
/// which crosses CPUs through the hypervisor on a VM (~50 µs).
const YIELDS: u32 = 64;
/// Bit 0 of `seq`: a waiter may be asleep on it.
const SLEEPERS: u32 = 1;

/// A view of one wait cell (two adjacent `u32` words) in a segment.
#[derive(Clone, Copy)]
pub(crate) struct WaitCell<'a> {
    pub(crate) seq: &'a AtomicU32,
    pub(crate) waiters: &'a AtomicU32,
}

impl WaitCell<'_> {
    /// Waits until `ready()` is true or `deadline` passes; returns whether it
    /// became ready.
    pub(crate) fn wait_until(&self, deadline: Option<Instant>, ready: impl Fn() -> bool) -> bool {
        self.wait_until_checked(deadline, &ready, &ready)
    }

    /// [`wait_until`](Self::wait_until), looking with `quick` while it
    /// spins and with `ready` (which also holds when `quick` does) before
    /// and after each sleep: the spin stays off cache lines that `ready`
    /// alone needs to read.
    pub(crate) fn wait_until_checked(
        &self,
        deadline: Option<Instant>,
        quick: &dyn Fn() -> bool,
        ready: &dyn Fn() -> bool,
    ) -> bool {
        for i in 0..SPIN + YIELDS {
            if quick() {
                return true;
            }
            if i < SPIN {
                let looked = Instant::now();
                while looked.elapsed() < SPIN_GAP {
                    std::hint::spin_loop();
                }
            } else {
                std::thread::yield_now();
            }
        }
        loop {
            self.waiters.fetch_add(1, Ordering::SeqCst);
            let mut seq = self.seq.load(Ordering::SeqCst);
            if seq & SLEEPERS == 0 {
                match self.seq.compare_exchange(
                    seq,
                    seq | SLEEPERS,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                ) {
                    Ok(_) => seq |= SLEEPERS,
                    Err(_) => {
                        // A waker bumped it meanwhile: look again.
                        self.waiters.fetch_sub(1, Ordering::SeqCst);
                        if ready() {
                            return true;
                        }
                        continue;
                    }
                }
            }
            fence(Ordering::SeqCst);
            if ready() {
                self.waiters.fetch_sub(1, Ordering::SeqCst);
                return true;
            }
            let r = futex_wait(self.seq, seq, deadline);
            self.waiters.fetch_sub(1, Ordering::SeqCst);
            if ready() {
                return true;
            }
            if r == WaitResult::TimedOut {
                return false;
            }
        }
    }

    /// Wakes every waiter if there may be any. Call after changing the state.
    #[inline]
    pub(crate) fn wake_all(&self) {
        fence(Ordering::SeqCst);
        if self.seq.load(Ordering::Relaxed) & SLEEPERS != 0 {
            self.wake_sleepers();
        }
    }

    /// [`wake_all`](Self::wake_all) right after releasing a robust lock
    /// whose critical section changed the state: the release already was a
    /// full barrier ([`sys::fence_after_unlock`]), which spares a second one
    /// on every put and get.
    #[inline]
    pub(crate) fn wake_all_after_unlock(&self) {
        sys::fence_after_unlock();
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
        futex_wake(self.seq, i32::MAX);
    }

    /// Number of processes currently registered as waiting.
    pub(crate) fn waiting(&self) -> u32 {
        self.waiters.load(Ordering::Relaxed)
    }
}
