//! The counting semaphore in a segment, with its holder slots.
//!
//! ```text
//! offset  size  field
//!     64    48  state mutex (pthread, process-shared, robust)
//!    112     4  value   units free now
//!    116     4  total   units in existence: value + units held in slots
//!    128     4  seq     } wait cell: bumped when value grows
//!    132     4  waiters }
//!    192 16384  256 holder slots (see `watch`), payload = units held
//! ```
//!
//! Parameters: `[initial value, maximum (0 = unbounded), 0, 0]`.
//!
//! Every change happens under the state mutex, and `total` and the slot
//! payloads are the truth: a process killed inside the critical section
//! the next locker told `OwnerDied`, and it recomputes
//! `value = total - Σ payloads`. Units held through a guard live in the
//! holder's slot; when the holder dies, the next process that finds no free
//! unit returns them to `value` (sleeping waiters look at the slots at
//! least every `WATCH_SLICE`, 50 ms).

use std::io;
use std::sync::atomic::{fence, AtomicU32, Ordering};

use crate::error::{CreateError, OpenError};
use crate::local::dir::Dir;
use crate::local::segment::{Fixed, Place, Segment, StateHeld};
use crate::local::watch::{SlotState, Slots};
use crate::object::ObjectKind;
use crate::sys::{futex_wake, Acquired, WaitResult};
use crate::wait::Wait;

const MUTEX: usize = 64;
const VALUE: usize = 112;
const TOTAL: usize = 116;
const SEQ: usize = 128;
const WAITERS: usize = 132;
const SLOTS_OFF: usize = 192;
/// Holder slots: units held through guards by at most this many holders at
/// once are tracked (and returned if the holder dies).
pub(crate) const SLOTS: usize = 256;
const SEG_LEN: usize = SLOTS_OFF + Slots::len_for(SLOTS);

/// Largest value a semaphore may hold.
pub(crate) const VALUE_MAX: u32 = i32::MAX as u32;

fn expected_len(p: &[u64; 4]) -> Result<usize, String> {
    if p[0] > u64::from(VALUE_MAX) || p[1] > u64::from(VALUE_MAX) {
        return Err("semaphore value out of range".into());
    }
    Ok(SEG_LEN)
}

/// Why a release was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReleaseRefused {
    /// It would exceed the bound.
    Bound(u32),
}

/// A semaphore segment.
#[derive(Debug)]
pub(crate) struct LocalSem {
    seg: Fixed<SEG_LEN>,
}

impl LocalSem {
    pub(crate) fn create(place: Place<'_>, value: u32, max: u32) -> Result<LocalSem, CreateError> {
        if value > VALUE_MAX || (max != 0 && value > max) {
            return Err(CreateError::InvalidOptions(format!(
                "initial value {value} exceeds the maximum {}",
                if max == 0 { VALUE_MAX } else { max }
            )));
        }
        let params = [u64::from(value), u64::from(max), 0, 0];
        let seg = Fixed::create(place, ObjectKind::Semaphore, SEG_LEN, params, |seg| {
            seg.robust_lock::<MUTEX>().init()?;
            Slots::new(seg.segment(), SLOTS_OFF, SLOTS).init()?;
            seg.at::<AtomicU32, VALUE>().store(value, Ordering::Relaxed);
            seg.at::<AtomicU32, TOTAL>().store(value, Ordering::Relaxed);
            Ok(())
        })?;
        Ok(LocalSem::from_segment(seg))
    }

    pub(crate) fn open(dir: &Dir, name: &str) -> Result<LocalSem, OpenError> {
        Fixed::open(dir, name, ObjectKind::Semaphore, expected_len).map(LocalSem::from_segment)
    }

    pub(crate) fn from_fd(fd: std::os::fd::OwnedFd) -> Result<LocalSem, OpenError> {
        Fixed::from_fd(fd, ObjectKind::Semaphore, expected_len).map(LocalSem::from_segment)
    }

    fn from_segment(seg: Fixed<SEG_LEN>) -> LocalSem {
        LocalSem { seg }
    }

    pub(crate) fn segment(&self) -> &Segment {
        &self.seg
    }

    /// The bound (0 = unbounded).
    pub(crate) fn max(&self) -> u32 {
        self.seg.params()[1] as u32
    }

    fn slots(&self) -> Slots<'_> {
        Slots::new(&self.seg, SLOTS_OFF, SLOTS)
    }

    fn value_word(&self) -> &AtomicU32 {
        self.seg.view().at::<AtomicU32, VALUE>()
    }

    fn total_word(&self) -> &AtomicU32 {
        self.seg.view().at::<AtomicU32, TOTAL>()
    }

    /// Units free right now.
    pub(crate) fn value(&self) -> u32 {
        self.value_word().load(Ordering::Acquire)
    }

    /// Processes holding units through guards, with their units; dead ones
    /// whose units are not yet returned are marked.
    pub(crate) fn holders(&self) -> Vec<(u32, u32, bool)> {
        let s = self.slots();
        (0..SLOTS)
            .filter_map(|i| match s.state(i) {
                SlotState::Free => None,
                SlotState::Live(pid) => Some((pid, s.payload(i).load(Ordering::Relaxed), true)),
                SlotState::Dead(pid) => Some((pid, s.payload(i).load(Ordering::Relaxed), false)),
            })
            .filter(|h| h.1 > 0)
            .collect()
    }

    /// Processes asleep in an acquire.
    pub(crate) fn waiting(&self) -> u32 {
        self.seg
            .view()
            .at::<AtomicU32, WAITERS>()
            .load(Ordering::Relaxed)
    }

    fn lock_state(&self) -> io::Result<StateHeld<'_>> {
        match self.seg.lock_state::<MUTEX>(None)? {
            Some((g, Acquired::Clean)) => Ok(g),
            Some((g, Acquired::OwnerDied)) => {
                self.repair();
                Ok(g)
            }
            None => Err(io::Error::other("semaphore state lock not acquired")),
        }
    }

    /// Recomputes `value` from the truth (state lock held).
    fn repair(&self) {
        let s = self.slots();
        let held: u64 = (0..SLOTS)
            .map(|i| u64::from(s.payload(i).load(Ordering::Relaxed)))
            .sum();
        let total = u64::from(self.total_word().load(Ordering::Relaxed));
        self.value_word()
            .store(total.saturating_sub(held) as u32, Ordering::Release);
    }

    /// Returns the units of dead holders (state lock held); whether any.
    fn reap_dead(&self) -> io::Result<bool> {
        let s = self.slots();
        let mut any = false;
        for i in 0..SLOTS {
            if let SlotState::Dead(_) = s.state(i) {
                any |= s.reap(i, |units| {
                    self.value_word().fetch_add(units, Ordering::AcqRel);
                    crate::crash::crash_point!("sem.reap.returned");
                })?;
            }
        }
        Ok(any)
    }

    fn wake(&self) {
        fence(Ordering::SeqCst);
        if self
            .seg
            .view()
            .at::<AtomicU32, WAITERS>()
            .load(Ordering::Relaxed)
            > 0
        {
            let seq = self.seg.view().at::<AtomicU32, SEQ>();
            seq.fetch_add(1, Ordering::Release);
            crate::crash::crash_point!("sem.wake.bumped");
            futex_wake(seq, i32::MAX);
        }
    }

    /// One attempt (state lock taken inside). `slot`: the holder slot the
    /// unit goes to, `None` for a raw acquire.
    fn attempt(&self, slot: Option<usize>) -> io::Result<bool> {
        let _g = self.lock_state()?;
        if self.value() == 0 && !self.reap_dead()? {
            return Ok(false);
        }
        let v = self.value();
        if v == 0 {
            return Ok(false);
        }
        match slot {
            None => {
                self.total_word().fetch_sub(1, Ordering::AcqRel);
                crate::crash::crash_point!("sem.acquire.total");
                self.value_word().store(v - 1, Ordering::Release);
                crate::crash::crash_point!("sem.acquire.value");
            }
            Some(i) => {
                self.value_word().store(v - 1, Ordering::Release);
                crate::crash::crash_point!("sem.acquire.value");
                self.slots().payload(i).fetch_add(1, Ordering::AcqRel);
                crate::crash::crash_point!("sem.acquire.held");
            }
        }
        Ok(true)
    }

    /// Takes a unit: waiting no longer than `wait` allows.
    /// With `slot`, the unit is held in that (claimed) holder slot.
    pub(crate) fn acquire(&self, slot: Option<usize>, wait: Wait) -> io::Result<bool> {
        if self.value() > 0 && self.attempt(slot)? {
            return Ok(true);
        }
        if wait.is_now() {
            return self.attempt(slot);
        }
        for _ in 0..64 {
            std::hint::spin_loop();
            if self.value() > 0 && self.attempt(slot)? {
                return Ok(true);
            }
        }
        let seq = self.seg.view().at::<AtomicU32, SEQ>();
        let waiters = self.seg.view().at::<AtomicU32, WAITERS>();
        loop {
            waiters.fetch_add(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            let seen = seq.load(Ordering::SeqCst);
            let got = self.attempt(slot);
            let r = match got {
                Ok(false) => self.slots().sleep(seq, seen, slot, wait.deadline()),
                _ => WaitResult::Woken,
            };
            waiters.fetch_sub(1, Ordering::SeqCst);
            if got? {
                return Ok(true);
            }
            if r == WaitResult::TimedOut {
                return self.attempt(slot);
            }
        }
    }

    /// Adds a unit (a raw release); refused above the bound.
    pub(crate) fn release(&self) -> io::Result<Result<(), ReleaseRefused>> {
        {
            let _g = self.lock_state()?;
            let total = self.total_word().load(Ordering::Acquire);
            let max = match self.max() {
                0 => VALUE_MAX,
                m => m,
            };
            if total >= max {
                return Ok(Err(ReleaseRefused::Bound(max)));
            }
            self.total_word().store(total + 1, Ordering::Release);
            crate::crash::crash_point!("sem.release.total");
            self.value_word().fetch_add(1, Ordering::AcqRel);
            crate::crash::crash_point!("sem.release.value");
        }
        self.wake();
        Ok(Ok(()))
    }

    /// Claims a holder slot for a guard; `None` when all are taken.
    pub(crate) fn claim_slot(&self) -> io::Result<Option<usize>> {
        self.slots().claim(0)
    }

    /// Returns the unit held in slot `i` (if any) and leaves the slot.
    ///
    /// # Safety
    /// The calling thread must have claimed slot `i` and not left it yet.
    pub(crate) unsafe fn release_slot(&self, i: usize) -> io::Result<()> {
        let s = self.slots();
        let had = {
            let _g = self.lock_state()?;
            let units = s.payload(i).swap(0, Ordering::AcqRel);
            crate::crash::crash_point!("sem.slot.units_taken");
            self.value_word().fetch_add(units, Ordering::AcqRel);
            crate::crash::crash_point!("sem.slot.units_returned");
            units
        };
        // SAFETY: forwarded from this function's contract.
        unsafe { s.leave(i) };
        if had > 0 {
            self.wake();
        }
        Ok(())
    }

    /// Returns the units of dead holders now; how many holders were reaped.
    pub(crate) fn reap(&self) -> io::Result<bool> {
        let r = {
            let _g = self.lock_state()?;
            self.reap_dead()?
        };
        if r {
            self.wake();
        }
        Ok(r)
    }
}
