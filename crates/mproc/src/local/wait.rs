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
use std::time::{Duration, Instant};

use crate::sys::{self, futex_wait, futex_wake, WaitResult};

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
}
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
        for i in 0..spin.looks + YIELDS {
            if quick() {
                return true;
            }
            if i < spin.looks {
                let looked = Instant::now();
                while looked.elapsed() < spin.gap {
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
