//! The cross-process [`Event`].
//!
//! ```text
//! offset  size  field
//!     64     4  flag (0 clear, 1 set)
//!     72     4  seq      } wait cell
//!     76     4  waiters  }
//! ```
//!
//! A single store changes the flag, so a process killed anywhere leaves a
//! valid event; no lock is involved, so nothing can be left held.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{CreateError, OpenError};
use crate::local::segment::{Fixed, Place, Segment};
use crate::local::wait::WaitCell;
use crate::namespace::Namespace;
use crate::object::ObjectKind;
use crate::util::to_deadline;

const FLAG: usize = 64;
const SEQ: usize = 72;
const WAITERS: usize = 76;
const SEG_LEN: usize = 128;

fn expected_len(_: &[u64; 4]) -> Result<usize, String> {
    Ok(SEG_LEN)
}

/// A flag that processes can wait for: Python's `multiprocessing.Event`.
///
/// [`set`](Event::set) releases every waiter at once; waiting never misses
/// a `set` that happens while it goes to sleep.
///
/// ```
/// use std::time::Duration;
/// let e = mproc::Event::new().unwrap();
/// assert!(!e.wait_timeout(Duration::from_millis(10)));
/// e.set();
/// assert!(e.is_set() && e.wait_timeout(Duration::ZERO));
/// e.clear();
/// assert!(!e.is_set());
/// ```
#[derive(Clone)]
pub struct Event {
    seg: Arc<Fixed<SEG_LEN>>,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("name", &self.name())
            .field("set", &self.is_set())
            .finish()
    }
}

impl Event {
    crate::util::named_constructors!("event (clear when created)");

    /// Creates an anonymous, clear event.
    pub fn new() -> Result<Event, CreateError> {
        Event::make(Place::Anonymous)
    }

    /// Creates the named (clear) event in `ns`; fails if it exists.
    pub fn create_in(ns: &Namespace, name: &str) -> Result<Event, CreateError> {
        Event::make(ns.create_place(ObjectKind::Event, name)?)
    }

    /// Opens the existing named event in `ns`.
    pub fn open_in(ns: &Namespace, name: &str) -> Result<Event, OpenError> {
        Fixed::open(
            ns.open_dir(ObjectKind::Event, name)?,
            name,
            ObjectKind::Event,
            expected_len,
        )
        .map(Event::wrap)
    }

    fn make(place: Place<'_>) -> Result<Event, CreateError> {
        Fixed::create(place, ObjectKind::Event, SEG_LEN, [0; 4], |_| Ok(())).map(Event::wrap)
    }

    pub(crate) fn from_fd(fd: std::os::fd::OwnedFd) -> Result<Event, OpenError> {
        Fixed::from_fd(fd, ObjectKind::Event, expected_len).map(Event::wrap)
    }

    fn wrap(seg: Fixed<SEG_LEN>) -> Event {
        Event { seg: Arc::new(seg) }
    }

    pub(crate) fn segment(&self) -> &Segment {
        &self.seg
    }

    /// The name; `None` when anonymous.
    pub fn name(&self) -> Option<&str> {
        self.seg.name()
    }

    fn flag(&self) -> &AtomicU32 {
        self.seg.view().at::<AtomicU32, FLAG>()
    }

    fn cell(&self) -> WaitCell<'_> {
        WaitCell {
            seq: self.seg.view().at::<AtomicU32, SEQ>(),
            waiters: self.seg.view().at::<AtomicU32, WAITERS>(),
            sleepers: None,
        }
    }

    /// Whether the event is set.
    pub fn is_set(&self) -> bool {
        self.flag().load(Ordering::Acquire) != 0
    }

    /// Sets the event and wakes every process waiting for it.
    pub fn set(&self) {
        self.flag().store(1, Ordering::Release);
        crate::crash::crash_point!("event.set.flag");
        self.cell().wake_all();
    }

    /// Clears the event.
    pub fn clear(&self) {
        self.flag().store(0, Ordering::Release);
        crate::crash::crash_point!("event.clear.flag");
    }

    /// Processes asleep waiting for the event.
    pub fn waiting(&self) -> u32 {
        self.cell().waiting()
    }

    fn wait_inner(&self, deadline: Option<Instant>) -> bool {
        self.cell().wait_until(deadline, || self.is_set())
    }

    /// Waits until the event is set (returns at once if it is).
    pub fn wait(&self) {
        self.wait_inner(None);
    }

    /// Whether the event is set, without waiting (Python's `wait(0)`).
    pub fn try_wait(&self) -> bool {
        self.is_set()
    }

    /// Waits at most `timeout`; returns whether the event is set (Python's
    /// `wait(timeout)`).
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        if timeout.is_zero() {
            return self.is_set();
        }
        self.wait_inner(to_deadline(timeout))
    }

    /// Waits until `deadline`; returns whether the event is set.
    pub fn wait_deadline(&self, deadline: Instant) -> bool {
        self.wait_inner(Some(deadline))
    }
}
