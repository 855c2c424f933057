//! The cross-process [`Barrier`].
//!
//! ```text
//! offset  size  field
//!     64    48  state mutex (pthread, process-shared, robust)
//!    112     4  count       parties arrived in this generation
//!    116     4  generation  bumped when a round completes or is reset
//!    120     4  broken      1 = broken until reset
//!    124     4  reset mark  generation + 1 of the last round ended by reset
//!    128     4  seq      } bumped on every change waiters look at
//!    132     4  waiters  }
//!    192  8192  128 party slots (see `watch`), payload = `arrived(generation)` waited in
//! ```
//!
//! Parameters: `[parties, default timeout in µs (0 = none), 0, 0]`.
//!
//! A waiting party holds a slot whose robust lock names its thread; the
//! other waiters sleep on `seq` and look at the slots at least every
//! `WATCH_SLICE` (50 ms), so a party killed while waiting breaks the
//! barrier for everyone within that time. A party that dies before it
//! arrives cannot be told from a slow one: use a timeout for that.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{CreateError, OpenError};
use crate::local::segment::{Fixed, Place, Segment, StateHeld};
use crate::local::watch::{SlotState, Slots};
use crate::namespace::Namespace;
use crate::object::ObjectKind;
use crate::sync::BarrierError;
use crate::sys::{futex_wake, Acquired, WaitResult};
use crate::util::to_deadline;

const MUTEX: usize = 64;
const COUNT: usize = 112;
const GENERATION: usize = 116;
const BROKEN: usize = 120;
const RESET: usize = 124;
const SEQ: usize = 128;
const WAITERS: usize = 132;
const SLOTS_OFF: usize = 192;
const SLOTS: usize = 128;
const SEG_LEN: usize = SLOTS_OFF + Slots::len_for(SLOTS);
/// Most parties a barrier accepts.
const MAX_PARTIES: u32 = 1 << 20;
/// Slot payload of a party not yet counted in a generation.
const NOT_YET: u32 = u32::MAX;

/// The slot payload of a party counted in generation `g`: never 0 (a slot
/// whose claimer died before writing its payload holds 0) nor [`NOT_YET`].
fn arrived(g: u32) -> u32 {
    g % (u32::MAX - 1) + 1
}

fn expected_len(p: &[u64; 4]) -> Result<usize, String> {
    if p[0] == 0 || p[0] > u64::from(MAX_PARTIES) {
        return Err(format!("invalid number of parties {}", p[0]));
    }
    Ok(SEG_LEN)
}

/// A barrier for a fixed number of processes: Python's
/// `multiprocessing.Barrier`.
///
/// Each [`wait`](Barrier::wait) returns once `parties` processes have
/// called it, with a distinct index in `0..parties` (arrival order: exactly
/// one party gets 0). The barrier is reusable round after round. It
/// **breaks** — every waiter, and every later caller until
/// [`reset`](Barrier::reset), gets [`BarrierError::Broken`] — when a wait
/// times out, when [`abort`](Barrier::abort) is called, when `reset` is
/// called while parties wait, or when a waiting party dies (noticed
/// within 50 ms).
///
/// ```
/// let b = mproc::Barrier::new(1).unwrap();
/// assert_eq!(b.wait().unwrap(), 0); // Barrier(1) never blocks
/// assert_eq!(b.parties(), 1);
/// ```
#[derive(Clone)]
pub struct Barrier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    seg: Fixed<SEG_LEN>,
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("name", &self.name())
            .field("parties", &self.parties())
            .field("n_waiting", &self.n_waiting())
            .field("broken", &self.is_broken())
            .finish()
    }
}

impl Barrier {
    crate::util::named_constructors!("barrier (created for `parties` processes)", parties: u32);

    /// Creates an anonymous barrier for `parties` processes.
    pub fn new(parties: u32) -> Result<Barrier, CreateError> {
        Barrier::make(Place::Anonymous, parties, None)
    }

    /// Creates an anonymous barrier whose [`wait`](Barrier::wait) gives up
    /// (and breaks the barrier) after `timeout`: Python's
    /// `Barrier(parties, timeout=T)`.
    pub fn with_default_timeout(parties: u32, timeout: Duration) -> Result<Barrier, CreateError> {
        Barrier::make(Place::Anonymous, parties, Some(timeout))
    }

    /// Creates the named barrier in `ns` with a default timeout for
    /// [`wait`](Barrier::wait); fails if it exists.
    pub fn create_with_default_timeout_in(
        ns: &Namespace,
        name: &str,
        parties: u32,
        timeout: Duration,
    ) -> Result<Barrier, CreateError> {
        Barrier::make(
            ns.create_place(ObjectKind::Barrier, name)?,
            parties,
            Some(timeout),
        )
    }

    /// Creates the named barrier in `ns`; fails if it exists.
    pub fn create_in(ns: &Namespace, name: &str, parties: u32) -> Result<Barrier, CreateError> {
        Barrier::make(ns.create_place(ObjectKind::Barrier, name)?, parties, None)
    }

    /// Opens the existing named barrier in `ns`.
    pub fn open_in(ns: &Namespace, name: &str) -> Result<Barrier, OpenError> {
        Fixed::open(
            ns.open_dir(ObjectKind::Barrier, name)?,
            name,
            ObjectKind::Barrier,
            expected_len,
        )
        .map(Barrier::wrap)
    }

    fn make(
        place: Place<'_>,
        parties: u32,
        timeout: Option<Duration>,
    ) -> Result<Barrier, CreateError> {
        if parties == 0 || parties > MAX_PARTIES {
            return Err(CreateError::InvalidOptions(format!(
                "a barrier needs 1..={MAX_PARTIES} parties, not {parties}"
            )));
        }
        let micros = match timeout {
            None => 0,
            Some(t) => (t.as_micros().min(u128::from(u64::MAX))) as u64,
        };
        let params = [
            u64::from(parties),
            micros.max(u64::from(timeout.is_some())),
            0,
            0,
        ];
        Fixed::create(place, ObjectKind::Barrier, SEG_LEN, params, |seg| {
            seg.robust_lock::<MUTEX>().init()?;
            Slots::new(seg.segment(), SLOTS_OFF, SLOTS).init()
        })
        .map(Barrier::wrap)
    }

    pub(crate) fn from_fd(fd: std::os::fd::OwnedFd) -> Result<Barrier, OpenError> {
        Fixed::from_fd(fd, ObjectKind::Barrier, expected_len).map(Barrier::wrap)
    }

    fn wrap(seg: Fixed<SEG_LEN>) -> Barrier {
        Barrier {
            inner: Arc::new(Inner { seg }),
        }
    }

    pub(crate) fn segment(&self) -> &Segment {
        &self.inner.seg
    }

    /// The name; `None` when anonymous.
    pub fn name(&self) -> Option<&str> {
        self.inner.seg.name()
    }

    fn word<const OFF: usize>(&self) -> &AtomicU32 {
        self.inner.seg.view().at::<AtomicU32, OFF>()
    }

    fn slots(&self) -> Slots<'_> {
        Slots::new(&self.inner.seg, SLOTS_OFF, SLOTS)
    }

    /// The number of parties.
    pub fn parties(&self) -> u32 {
        self.inner.seg.params()[0] as u32
    }

    /// The default timeout of [`wait`](Barrier::wait), if one was given.
    pub fn default_timeout(&self) -> Option<Duration> {
        match self.inner.seg.params()[1] {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// Parties waiting in the current round.
    pub fn n_waiting(&self) -> u32 {
        if self.is_broken() {
            0
        } else {
            self.word::<COUNT>().load(Ordering::Acquire)
        }
    }

    /// Whether the barrier is broken.
    pub fn is_broken(&self) -> bool {
        self.word::<BROKEN>().load(Ordering::Acquire) != 0
    }

    fn lock_state(&self) -> Result<StateHeld<'_>, BarrierError> {
        match self.inner.seg.lock_state::<MUTEX>(None)? {
            Some((g, Acquired::Clean)) => Ok(g),
            Some((g, Acquired::OwnerDied)) => {
                // A party died mid-update: the round cannot be trusted.
                self.word::<BROKEN>().store(1, Ordering::Release);
                crate::crash::crash_point!("barrier.broken.flag");
                Ok(g)
            }
            None => Err(BarrierError::Io(
                std::io::Error::other("barrier state lock not acquired").into(),
            )),
        }
    }

    fn wake(&self) {
        let seq = self.word::<SEQ>();
        seq.fetch_add(1, Ordering::Release);
        crate::crash::crash_point!("barrier.wake.bumped");
        futex_wake(seq, i32::MAX);
    }

    /// Breaks the barrier: every waiter, and every later `wait` until
    /// [`reset`](Barrier::reset), fails with [`BarrierError::Broken`].
    pub fn abort(&self) -> Result<(), BarrierError> {
        {
            let _g = self.lock_state()?;
            self.word::<BROKEN>().store(1, Ordering::Release);
            crate::crash::crash_point!("barrier.broken.flag");
        }
        self.wake();
        Ok(())
    }

    /// Returns the barrier to its initial state; parties waiting now get
    /// [`BarrierError::Broken`].
    pub fn reset(&self) -> Result<(), BarrierError> {
        {
            let _g = self.lock_state()?;
            if self.word::<COUNT>().load(Ordering::Relaxed) > 0 {
                let g = self.word::<GENERATION>().load(Ordering::Relaxed);
                self.word::<RESET>()
                    .store(g.wrapping_add(1), Ordering::Relaxed);
                self.word::<GENERATION>()
                    .store(g.wrapping_add(1), Ordering::Release);
            }
            self.word::<COUNT>().store(0, Ordering::Relaxed);
            self.word::<BROKEN>().store(0, Ordering::Release);
        }
        self.wake();
        Ok(())
    }

    /// Breaks the barrier if a party of generation `g` died waiting
    /// (state lock taken inside); whether it did.
    fn check_dead(&self, g: u32) -> Result<bool, BarrierError> {
        let s = self.slots();
        let any = (0..SLOTS).any(|i| matches!(s.state(i), SlotState::Dead(_)));
        if !any {
            return Ok(false);
        }
        let mut broke = false;
        {
            let _st = self.lock_state()?;
            for i in 0..SLOTS {
                if let SlotState::Dead(_) = s.state(i) {
                    s.reap(i, |payload| {
                        if payload == arrived(g)
                            && self.word::<GENERATION>().load(Ordering::Acquire) == g
                        {
                            self.word::<BROKEN>().store(1, Ordering::Release);
                            broke = true;
                        }
                    })?;
                }
            }
        }
        if broke {
            self.wake();
        }
        Ok(broke)
    }

    fn wait_inner(
        &self,
        deadline: Option<Instant>,
        action: Option<&mut dyn FnMut()>,
    ) -> Result<u32, BarrierError> {
        let s = self.slots();
        let slot = s.claim(NOT_YET)?;
        let r = self.wait_in_slot(slot, deadline, action);
        if let Some(i) = slot {
            // SAFETY: claimed above by this thread, left exactly once.
            unsafe { s.leave(i) };
        }
        r
    }

    fn wait_in_slot(
        &self,
        slot: Option<usize>,
        deadline: Option<Instant>,
        action: Option<&mut dyn FnMut()>,
    ) -> Result<u32, BarrierError> {
        let parties = self.parties();
        let (g, idx) = {
            let _st = self.lock_state()?;
            if self.is_broken() {
                return Err(BarrierError::Broken);
            }
            let idx = self.word::<COUNT>().load(Ordering::Relaxed);
            let g = self.word::<GENERATION>().load(Ordering::Relaxed);
            if idx + 1 >= parties {
                if let Some(f) = action {
                    // Python runs the action in the last party to arrive,
                    // before anyone is released; if it fails, the barrier breaks.
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
                    if let Err(payload) = r {
                        self.word::<BROKEN>().store(1, Ordering::Release);
                        drop(_st);
                        self.wake();
                        std::panic::resume_unwind(payload);
                    }
                }
                self.word::<COUNT>().store(0, Ordering::Relaxed);
                crate::crash::crash_point!("barrier.wait.reset");
                self.word::<GENERATION>()
                    .store(g.wrapping_add(1), Ordering::Release);
                crate::crash::crash_point!("barrier.wait.generation");
                drop(_st);
                self.wake();
                return Ok(idx);
            }
            self.word::<COUNT>().store(idx + 1, Ordering::Relaxed);
            crate::crash::crash_point!("barrier.wait.count");
            if let Some(i) = slot {
                s_payload(self, i).store(arrived(g), Ordering::Release);
                crate::crash::crash_point!("barrier.wait.slot");
            }
            (g, idx)
        };
        // The parties already asleep watch the slots they saw; wake them to
        // watch this one too.
        if slot.is_some() && idx > 0 {
            self.wake();
        }
        let seq = self.word::<SEQ>();
        let waiters = self.word::<WAITERS>();
        let outcome = |this: &Barrier| -> Option<Result<u32, BarrierError>> {
            if this.word::<GENERATION>().load(Ordering::Acquire) != g {
                return Some(
                    if this.word::<RESET>().load(Ordering::Acquire) == g.wrapping_add(1) {
                        Err(BarrierError::Broken)
                    } else {
                        Ok(idx)
                    },
                );
            }
            if this.is_broken() {
                return Some(Err(BarrierError::Broken));
            }
            None
        };
        loop {
            waiters.fetch_add(1, Ordering::SeqCst);
            std::sync::atomic::fence(Ordering::SeqCst);
            let seen = seq.load(Ordering::SeqCst);
            if let Some(r) = outcome(self) {
                waiters.fetch_sub(1, Ordering::SeqCst);
                return r;
            }
            let r = self.slots().sleep(seq, seen, slot, deadline);
            waiters.fetch_sub(1, Ordering::SeqCst);
            if let Some(r) = outcome(self) {
                return r;
            }
            if self.check_dead(g)? {
                return Err(BarrierError::Broken);
            }
            if r == WaitResult::TimedOut {
                {
                    let _st = self.lock_state()?;
                    if self.word::<GENERATION>().load(Ordering::Acquire) == g {
                        self.word::<BROKEN>().store(1, Ordering::Release);
                    }
                }
                self.wake();
                return outcome(self).unwrap_or(Err(BarrierError::Broken));
            }
        }
    }

    /// Waits for the other parties; returns this party's arrival index.
    /// With a [default timeout](Barrier::with_default_timeout), gives up
    /// after it like [`wait_timeout`](Barrier::wait_timeout).
    pub fn wait(&self) -> Result<u32, BarrierError> {
        let deadline = self.default_timeout().and_then(to_deadline);
        self.wait_inner(deadline, None)
    }

    /// Like [`wait_timeout`](Barrier::wait_timeout) (`None`: the default
    /// timeout, if any), and
    /// if this party is the last to arrive, runs `action` before any party
    /// is released — Python's `Barrier(parties, action)`: the action runs
    /// exactly once per round, in one of the parties. Pass the same action
    /// in every party. If it panics, the barrier breaks and the panic goes
    /// on in the caller.
    pub fn wait_with(
        &self,
        timeout: Option<Duration>,
        mut action: impl FnMut(),
    ) -> Result<u32, BarrierError> {
        let deadline = timeout.or(self.default_timeout()).and_then(to_deadline);
        self.wait_inner(deadline, Some(&mut action))
    }

    /// Waits at most `timeout`; if the round is not complete by then, the
    /// barrier breaks (Python's `wait(timeout)`).
    pub fn wait_timeout(&self, timeout: Duration) -> Result<u32, BarrierError> {
        self.wait_inner(to_deadline(timeout), None)
    }

    /// Waits until `deadline`; if the round is not complete by then, the
    /// barrier breaks.
    pub fn wait_deadline(&self, deadline: Instant) -> Result<u32, BarrierError> {
        self.wait_inner(Some(deadline), None)
    }
}

fn s_payload(b: &Barrier, i: usize) -> &AtomicU32 {
    Slots::new(&b.inner.seg, SLOTS_OFF, SLOTS).payload(i)
}
