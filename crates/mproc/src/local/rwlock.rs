//! The readers-writer lock in a segment.
//!
//! ```text
//! offset  size  field
//!     64    16  write lock W (robust lock, see `sys`): held by the writer,
//!               and by a writer waiting for the readers to leave
//!     80     8  exec holder: pid | start time (low 32 bits) << 32 of a
//!               writer that kept its holding across exec (0 = none)
//!     96     4  seq      } wait cell: bumped when W is released and when
//!    100     4  waiters  } a reader leaves
//!    104     4  admit: 1 while the readers that waited for a writer may
//!               come in although the next writer holds W
//!    128     4  writer pid    (0 = no record)   written after W and the
//!    136     8  writer since  (ns since epoch)  readers' drain, cleared
//!    144     4  tag length                      before W is released
//!    152    64  tag bytes
//!    256   512  32 waiting-writer slots {pid u32, start time (low 32 bits) u32, since u64}
//!    768   512  32 sleeper slots of the wait cell (waiting readers, and
//!               writers waiting for readers to leave; see `wait`)
//!   1280 16384  256 reader slots (see `watch`): payload 1, aux = since
//! ```
//!
//! A reader claims a reader slot (its robust slot lock names its thread,
//! so its death is seen), then, after a full fence, looks at W: free, it
//! reads; held, it leaves the slot and waits for W. A writer takes W, then
//! after a full fence waits until no live reader holds a slot, returning
//! the slots of dead readers. Either the writer's scan sees the reader's
//! slot or the reader's look sees W: they never both go on.
//!
//! Writers are preferred: once a writer holds W (even while it waits for
//! the readers to leave), new readers wait; writers queue on W in the
//! kernel, which hands W from one to the next. So that a stream of writers
//! cannot starve readers, a writer that releases W while readers wait sets
//! `admit`; the next writer, once it has W, leaves `admit` set until the
//! readers that were asleep have come in (at most `ADMIT_FOR`), then clears
//! it, fences and waits for those readers to leave. A reader comes in while
//! W is free, or while `admit` is set and W's owner lives; its look at
//! `admit` after claiming its slot pairs with the writer's clearing and
//! scan as its look at W does with the writer's take. A writer that dies
//! holding W is taken over by the next writer, or by a reader, told
//! `OwnerDied`.

use std::io;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::backend::{Holder, Reader, RwLockBackend, Waiter, TAG_MAX};
use crate::error::{CreateError, OpenError};
use crate::local::dir::Dir;
use crate::local::segment::{Fixed, Place, Segment};
use crate::local::wait::{Sleepers, WaitCell, SLEEPER_SLOT};
use crate::local::watch::{SlotState, Slots};
use crate::object::ObjectKind;
use crate::sys::{self, Acquired, RobustLock};
use crate::wait::Wait;

const W_OFF: usize = 64;
const EXEC_WHO: usize = 80;
const SEQ: usize = 96;
const WAITERS: usize = 100;
const ADMIT: usize = 104;
/// The longest a writer keeps the door open for the readers that waited
/// behind the writer before it.
const ADMIT_FOR: Duration = Duration::from_millis(10);
const WRITER_PID: usize = 128;
const WRITER_SINCE: usize = 136;
const TAG_LEN: usize = 144;
const TAG_OFF: usize = 152;
const WWAIT_OFF: usize = 256;
const WWAIT_SLOTS: usize = 32;
const SLEEPERS_OFF: usize = 768;
const SLEEPER_SLOTS: usize = 32;
const READERS_OFF: usize = 1280;
/// Reader slots: at most this many processes (threads) read at once; more
/// readers wait for a slot.
pub(crate) const READER_SLOTS: usize = crate::backend::MAX_READERS;
/// Wait-cell sleeper ids: a reader waiting for the writer, a writer
/// waiting for readers to leave.
const READING: u32 = 0;
const DRAINING: u32 = 1;
const SEG_LEN: usize = READERS_OFF + Slots::len_for(READER_SLOTS);

const _: () = assert!(std::mem::size_of::<sys::RawRobustMutex>() <= EXEC_WHO - W_OFF);
const _: () = assert!(SLEEPERS_OFF + SLEEPER_SLOTS * SLEEPER_SLOT <= READERS_OFF);

fn expected_len(_params: &[u64; 4]) -> Result<usize, String> {
    Ok(SEG_LEN)
}

/// A readers-writer lock segment.
#[derive(Debug)]
pub(crate) struct LocalRwLock {
    seg: Fixed<SEG_LEN>,
}

/// What a read that could not go on found.
enum Blocked {
    /// W is held (by a live writer, or one waiting for readers).
    Writer,
    /// Every reader slot is taken.
    Full,
}

impl LocalRwLock {
    pub(crate) fn create(place: Place<'_>) -> Result<LocalRwLock, CreateError> {
        let seg = Fixed::create(place, ObjectKind::RwLock, SEG_LEN, [0; 4], |seg| {
            seg.robust_lock::<W_OFF>().init()?;
            Slots::new(seg.segment(), READERS_OFF, READER_SLOTS).init()
        })?;
        Ok(LocalRwLock::from_segment(seg))
    }

    pub(crate) fn open(dir: &Dir, name: &str) -> Result<LocalRwLock, OpenError> {
        Fixed::open(dir, name, ObjectKind::RwLock, expected_len).map(LocalRwLock::from_segment)
    }

    pub(crate) fn from_fd(fd: std::os::fd::OwnedFd) -> Result<LocalRwLock, OpenError> {
        Fixed::from_fd(fd, ObjectKind::RwLock, expected_len).map(LocalRwLock::from_segment)
    }

    fn from_segment(seg: Fixed<SEG_LEN>) -> LocalRwLock {
        LocalRwLock { seg }
    }

    /// W: the writers' robust lock.
    #[inline]
    fn w(&self) -> RobustLock<'_> {
        self.seg.view().robust_lock::<W_OFF>()
    }

    pub(crate) fn segment(&self) -> &Segment {
        &self.seg
    }

    pub(crate) fn name(&self) -> Option<&str> {
        self.seg.name()
    }

    fn readers_table(&self) -> Slots<'_> {
        Slots::new(&self.seg, READERS_OFF, READER_SLOTS)
    }

    /// The wait cell, as readers (`READING`) or a writer waiting for
    /// readers to leave (`DRAINING`) sleep on it: one word, the sleepers
    /// told apart in the registry.
    fn cell_as(&self, id: u32) -> WaitCell<'_> {
        WaitCell {
            seq: self.seg.view().at::<AtomicU32, SEQ>(),
            waiters: self.seg.view().at::<AtomicU32, WAITERS>(),
            sleepers: Some((Sleepers::new(&self.seg, SLEEPERS_OFF, SLEEPER_SLOTS), id)),
        }
    }

    /// The wait cell, to wake its sleepers.
    fn cell(&self) -> WaitCell<'_> {
        self.cell_as(READING)
    }

    fn admit(&self) -> &AtomicU32 {
        self.seg.view().at::<AtomicU32, ADMIT>()
    }

    /// Whether readers may come in although W is held (by a live writer
    /// that has not started to wait for readers).
    fn admitting(&self) -> bool {
        self.admit().load(Ordering::Acquire) == 1
    }

    fn exec_who(&self) -> &AtomicU64 {
        self.seg.view().at::<AtomicU64, EXEC_WHO>()
    }

    /// Whether W is held by a live thread, or by a process that kept it
    /// across exec.
    fn writer_present(&self) -> bool {
        (self.w().owner_tid() != 0 && !self.w().abandoned()) || self.exec_holder().is_some()
    }

    /// The live process that kept W across exec, as (pid, start time).
    fn exec_holder(&self) -> Option<(u32, u64)> {
        let e = self.exec_who().load(Ordering::Acquire);
        (e != 0 && sys::process_alive(e as u32, e >> 32)).then_some((e as u32, e >> 32))
    }

    // ---- W, with the exec holder ----

    /// Takes W (waiting no longer than `wait` allows), and
    /// waits out a holder that kept W across exec. `Ok(None)`: not taken.
    /// With `waiter`, a caller that has to wait is listed as a waiting
    /// writer (in the slot left there, for the caller to free).
    fn take_w(
        &self,
        wait: Wait,
        waiter: Option<&mut Option<usize>>,
    ) -> io::Result<Option<Acquired>> {
        let a = if wait.is_now() {
            self.w().try_lock()?
        } else if let Some(a) = self.w().lock_spin() {
            Some(a)
        } else {
            if let Some(slot) = waiter {
                if slot.is_none() {
                    *slot = self.register_waiter();
                }
            }
            self.w().lock_slow(wait.deadline())?
        };
        let Some(a) = a else { return Ok(None) };
        let exec = self.exec_who().load(Ordering::Acquire);
        if exec == 0 {
            return Ok(Some(a));
        }
        // A writer kept W across exec: its holding ends when that process
        // does (the kernel may have handed W on at its exec).
        let (pid, start) = (exec as u32, exec >> 32);
        let gone = if wait.is_now() {
            !sys::process_alive(pid, start)
        } else {
            sys::wait_process_gone(pid, start, wait.deadline())
        };
        if !gone {
            // SAFETY: this thread took W above.
            unsafe { self.w().unlock() };
            return Ok(None);
        }
        self.exec_who().store(0, Ordering::Release);
        crate::crash::crash_point!("rwlock.exec.cleared");
        // Its holding ended with its process, as a release does.
        Ok(Some(Acquired::Clean))
    }

    /// Frees a waiting-writer slot taken by `register_waiter`.
    fn leave_waiter(&self, slot: Option<usize>) {
        if let Some(i) = slot {
            self.waiter_pid(i).store(0, Ordering::Release);
            crate::crash::crash_point!("rwlock.waiter.left");
        }
    }

    fn waiter_pid(&self, i: usize) -> &AtomicU32 {
        self.seg.at::<AtomicU32>(WWAIT_OFF + i * 16)
    }

    fn waiter_start(&self, i: usize) -> &AtomicU32 {
        self.seg.at::<AtomicU32>(WWAIT_OFF + i * 16 + 4)
    }

    fn waiter_alive(&self, i: usize, pid: u32) -> bool {
        let start = self.waiter_start(i).load(Ordering::Acquire);
        sys::process_alive(pid, u64::from(start))
    }

    /// Records the caller as a waiting writer; `None` when every slot
    /// holds a live one.
    fn register_waiter(&self) -> Option<usize> {
        let me = sys::my_pid();
        for i in 0..WWAIT_SLOTS {
            let slot = self.waiter_pid(i);
            let cur = slot.load(Ordering::Relaxed);
            if (cur == 0 || (cur != me && !self.waiter_alive(i, cur)))
                && slot
                    .compare_exchange(cur, me, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                crate::crash::crash_point!("rwlock.waiter.claimed");
                self.waiter_start(i)
                    .store(sys::my_start() as u32, Ordering::Release);
                self.seg
                    .at::<AtomicU64>(WWAIT_OFF + i * 16 + 8)
                    .store(sys::now_realtime_ns(), Ordering::Relaxed);
                crate::crash::crash_point!("rwlock.waiter.registered");
                return Some(i);
            }
        }
        None
    }

    /// Releases W with its writer record cleared, and wakes the readers.
    ///
    /// # Safety
    /// The calling thread must hold W.
    unsafe fn release_w(&self) {
        self.seg
            .view()
            .at::<AtomicU32, WRITER_PID>()
            .store(0, Ordering::Release);
        crate::crash::crash_point!("rwlock.write.cleared");
        if self.admit().load(Ordering::Relaxed) == 0 && self.cell_as(READING).waiting() > 0 {
            // Readers waited: the next writer lets them in first.
            self.admit().store(1, Ordering::Release);
            crate::crash::crash_point!("rwlock.admit.opened");
        }
        // SAFETY: forwarded from this function's contract.
        unsafe { self.w().unlock() };
        self.cell().wake_all_after_unlock();
    }

    // ---- reading ----

    /// Takes a read share, waiting no longer than `wait` allows. Returns how (a dead writer taken over first is
    /// `OwnerDied`) and the reader slot, `Ok(None)` if not taken.
    pub(crate) fn read(&self, wait: Wait) -> io::Result<Option<(Acquired, usize)>> {
        if self.w().held_by_me() {
            return self.deadlock(wait, "this thread holds the write lock");
        }
        let mut how = Acquired::Clean;
        loop {
            let blocked = match self.try_read_once(&mut how, wait)? {
                Ok(slot) => return Ok(Some((how, slot))),
                Err(b) => b,
            };
            if wait.is_now() || wait.deadline().is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            let woke = match blocked {
                // A holding kept across exec ends with its process.
                Blocked::Writer if self.exec_holder().is_some() => {
                    let (pid, start) = self.exec_holder().unwrap_or_default();
                    sys::wait_process_gone(pid, start, wait.deadline())
                }
                Blocked::Writer => self.cell().wait_until_checked(
                    wait.deadline(),
                    crate::local::wait::Spin::SHORT,
                    &|| self.w().owner_tid() == 0 || self.admitting(),
                    &|| !self.writer_present() || self.admitting(),
                ),
                Blocked::Full => {
                    let t = self.readers_table();
                    let free = || (0..READER_SLOTS).any(|i| t.pid(i).load(Ordering::Relaxed) == 0);
                    self.cell().wait_until(wait.deadline(), free)
                }
            };
            if !woke {
                return Ok(None);
            }
        }
    }

    /// One attempt at a read share: `Ok(Ok(slot))`, or what blocked it.
    fn try_read_once(&self, how: &mut Acquired, wait: Wait) -> io::Result<Result<usize, Blocked>> {
        if self.exec_holder().is_some() {
            return Ok(Err(Blocked::Writer));
        }
        if self.w().owner_tid() != 0 && !self.w().abandoned() {
            if !self.admitting() {
                return Ok(Err(Blocked::Writer));
            }
        } else if self.w().owner_tid() != 0 {
            // A dead writer: take its lock over (so that exactly one
            // process is told), and give it back at once.
            let within = Instant::now() + crate::local::wait::WAKE_SLICE;
            let bounded = match wait {
                Wait::Now => Wait::Now,
                _ => Wait::Until(wait.deadline().map_or(within, |d| d.min(within))),
            };
            match self.take_w(bounded, None)? {
                Some(a) => {
                    if a == Acquired::OwnerDied {
                        *how = Acquired::OwnerDied;
                    }
                    // SAFETY: take_w just took W for this thread.
                    unsafe { self.release_w() };
                }
                None => return Ok(Err(Blocked::Writer)),
            }
        }
        let t = self.readers_table();
        let Some(i) = t.claim(1)? else {
            // Every slot taken: return those of dead readers, under W.
            if self.w().owner_tid() == 0 {
                if let Some(a) = self.take_w(Wait::Now, None)? {
                    if a == Acquired::OwnerDied {
                        *how = Acquired::OwnerDied;
                    }
                    let reaped = self.reap_dead_readers();
                    // SAFETY: take_w just took W for this thread.
                    unsafe { self.release_w() };
                    if reaped? {
                        return self.try_read_once(how, Wait::Now);
                    }
                }
            }
            return Ok(Err(Blocked::Full));
        };
        t.aux(i).store(sys::now_realtime_ns(), Ordering::Relaxed);
        crate::crash::crash_point!("rwlock.read.since");
        // Against the writer's take of W (or its clearing of `admit`) and
        // its scan of the slots.
        fence(Ordering::SeqCst);
        if self.w().owner_tid() == 0 || (self.admitting() && !self.w().abandoned()) {
            return Ok(Ok(i));
        }
        // A writer came (or a dead one is there): back off.
        // SAFETY: this thread claimed slot `i` just above.
        unsafe { t.leave(i) };
        self.cell().wake_all();
        Ok(Err(Blocked::Writer))
    }

    /// Returns the slots of dead readers (W held); whether any.
    fn reap_dead_readers(&self) -> io::Result<bool> {
        Ok(self.reap_and_look()?.0)
    }

    /// Returns the slots of dead readers (W held): (whether any was
    /// returned, whether a live reader remains).
    fn reap_and_look(&self) -> io::Result<(bool, bool)> {
        let t = self.readers_table();
        let (mut reaped, mut live) = (false, false);
        for i in 0..READER_SLOTS {
            match t.state(i) {
                SlotState::Free => {}
                // W is this table's state lock: readers only claim and
                // leave their own slots.
                SlotState::Dead(_) => reaped |= t.reap(i, |_| {})?,
                SlotState::Live(_) => live = true,
            }
        }
        Ok((reaped, live))
    }

    /// Gives a read share back.
    ///
    /// # Safety
    /// The calling thread must hold reader slot `slot` (from `read`).
    pub(crate) unsafe fn read_release(&self, slot: usize) {
        // SAFETY: forwarded from this function's contract.
        unsafe { self.readers_table().leave(slot) };
        self.cell().wake_all();
    }

    // ---- writing ----

    /// Takes the write lock, waiting no longer than `wait` allows.
    /// `Ok(None)`: not taken.
    pub(crate) fn write(&self, wait: Wait) -> io::Result<Option<Acquired>> {
        let t = self.readers_table();
        if (0..READER_SLOTS).any(|i| t.held_by_me(i)) {
            return self.deadlock(wait, "this thread holds a read share");
        }
        let mut slot = None;
        let r = self.write_inner(wait, &mut slot);
        self.leave_waiter(slot);
        r
    }

    fn write_inner(&self, wait: Wait, slot: &mut Option<usize>) -> io::Result<Option<Acquired>> {
        let Some(how) = self.take_w(wait, Some(slot))? else {
            return Ok(None);
        };
        if self.admitting() {
            self.let_readers_in(wait);
        }
        // Against the readers' claim of a slot and look at W (and `admit`).
        fence(Ordering::SeqCst);
        let drained = self.drain_readers(wait, slot);
        if !matches!(drained, Ok(true)) {
            // SAFETY: this thread took W above.
            unsafe { self.release_w() };
            return drained.map(|_| None);
        }
        self.seg
            .view()
            .at::<AtomicU64, WRITER_SINCE>()
            .store(sys::now_realtime_ns(), Ordering::Relaxed);
        self.seg
            .view()
            .at::<AtomicU32, TAG_LEN>()
            .store(0, Ordering::Relaxed);
        self.seg
            .view()
            .at::<AtomicU32, WRITER_PID>()
            .store(sys::my_pid(), Ordering::Release);
        crate::crash::crash_point!("rwlock.write.recorded");
        Ok(Some(how))
    }

    /// With W held and `admit` set: lets the readers that waited come in
    /// (until none is asleep, and for a few more yields, at most
    /// `ADMIT_FOR`), then clears `admit`.
    fn let_readers_in(&self, wait: Wait) {
        if !wait.is_now() {
            let until = Instant::now() + ADMIT_FOR;
            let until = wait.deadline().map_or(until, |d| d.min(until));
            let mut after = 0;
            while Instant::now() < until && after < 16 {
                if self.cell_as(READING).waiting() == 0 {
                    // Woken readers are on their way to their slots.
                    after += 1;
                }
                std::thread::yield_now();
            }
        }
        self.admit().store(0, Ordering::SeqCst);
        crate::crash::crash_point!("rwlock.admit.closed");
    }

    /// With W held: returns the slots of dead readers, and waits until no
    /// live reader holds one. False when `wait` stopped it.
    fn drain_readers(&self, wait: Wait, slot: &mut Option<usize>) -> io::Result<bool> {
        let t = self.readers_table();
        loop {
            if !self.reap_and_look()?.1 {
                return Ok(true);
            }
            if wait.is_now() {
                return Ok(false);
            }
            if slot.is_none() {
                *slot = self.register_waiter();
            }
            // Readers leaving wake the cell; a dead one is seen after a
            // slice.
            let none_live = || (0..READER_SLOTS).all(|i| !matches!(t.state(i), SlotState::Live(_)));
            let quick = || (0..READER_SLOTS).all(|i| t.pid(i).load(Ordering::Relaxed) == 0);
            if !self.cell_as(DRAINING).wait_until_checked(
                wait.deadline(),
                crate::local::wait::Spin::SHORT,
                &quick,
                &none_live,
            ) {
                return Ok(false);
            }
        }
    }

    /// Releases the write lock.
    ///
    /// # Safety
    /// The calling thread must hold it (from `write`).
    pub(crate) unsafe fn write_release(&self) {
        // SAFETY: forwarded from this function's contract.
        unsafe { self.release_w() };
    }

    /// Attaches a tag to the current write holding (shown by `writer()`).
    pub(crate) fn set_tag(&self, tag: &str) {
        let mut end = tag.len().min(TAG_MAX);
        while !tag.is_char_boundary(end) {
            end -= 1;
        }
        self.seg.write(TAG_OFF, &tag.as_bytes()[..end]);
        self.seg
            .view()
            .at::<AtomicU32, TAG_LEN>()
            .store(end as u32, Ordering::Release);
        crate::crash::crash_point!("rwlock.write.tagged");
    }

    /// Keeps this thread's write holding until this process ends, also
    /// across `exec`: the next holder waits for the process, and is told
    /// `Clean` once it has ended.
    ///
    /// # Safety
    /// The calling thread must hold the write lock.
    pub(crate) unsafe fn write_keep_until_exit(&self) {
        self.exec_who()
            .store(sys::my_process_word(), Ordering::Release);
        crate::crash::crash_point!("rwlock.exec.marked");
    }

    /// What a wait for what this thread itself holds gives: nothing at its
    /// deadline, or an error instead of waiting forever.
    fn deadlock<T>(&self, wait: Wait, what: &str) -> io::Result<Option<T>> {
        if wait.is_now() {
            return Ok(None);
        }
        match wait.deadline() {
            Some(d) => {
                std::thread::sleep(d.saturating_duration_since(Instant::now()));
                Ok(None)
            }
            None => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{what}: waiting would deadlock"),
            )),
        }
    }

    // ---- inspection ----

    /// The writer, when one holds the lock (not while it waits for readers).
    pub(crate) fn writer(&self) -> Option<Holder> {
        if !self.writer_present() {
            return None;
        }
        let pid = self
            .seg
            .view()
            .at::<AtomicU32, WRITER_PID>()
            .load(Ordering::Acquire);
        if pid == 0 {
            return self.exec_holder().map(|(pid, _)| Holder {
                pid,
                since: None,
                tag: None,
            });
        }
        let len = (self
            .seg
            .view()
            .at::<AtomicU32, TAG_LEN>()
            .load(Ordering::Acquire) as usize)
            .min(TAG_MAX);
        let tag = (len > 0).then(|| {
            let mut buf = vec![0u8; len];
            self.seg.read(TAG_OFF, &mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        });
        Some(Holder {
            pid,
            since: Some(ns_to_time(
                self.seg
                    .view()
                    .at::<AtomicU64, WRITER_SINCE>()
                    .load(Ordering::Relaxed),
            )),
            tag,
        })
    }

    /// The live readers.
    pub(crate) fn readers(&self) -> Vec<Reader> {
        let t = self.readers_table();
        (0..READER_SLOTS)
            .filter_map(|i| match t.state(i) {
                SlotState::Live(pid) if t.payload(i).load(Ordering::Relaxed) == 1 => Some(Reader {
                    pid,
                    since: ns_to_time(t.aux(i).load(Ordering::Relaxed)),
                }),
                _ => None,
            })
            .collect()
    }

    /// The writers waiting (for W, or holding it while readers leave).
    pub(crate) fn waiting_writers(&self) -> Vec<Waiter> {
        (0..WWAIT_SLOTS)
            .filter_map(|i| {
                let pid = self.waiter_pid(i).load(Ordering::Acquire);
                (pid != 0 && self.waiter_alive(i, pid)).then(|| Waiter {
                    pid,
                    since: ns_to_time(
                        self.seg
                            .at::<AtomicU64>(WWAIT_OFF + i * 16 + 8)
                            .load(Ordering::Relaxed),
                    ),
                })
            })
            .collect()
    }

    /// Processes asleep waiting to read.
    pub(crate) fn waiting_readers(&self) -> u32 {
        self.cell_as(READING).waiting()
    }

    /// Frees the write lock whatever its state, and forgets a holder kept
    /// across exec (the way out of damage; a live writer loses its
    /// exclusion). Live readers keep their shares; dead readers' shares
    /// are returned by the next writer anyway.
    pub(crate) fn force_release(&self) -> io::Result<()> {
        self.seg
            .view()
            .at::<AtomicU32, WRITER_PID>()
            .store(0, Ordering::Release);
        self.exec_who().store(0, Ordering::Release);
        self.w().force_free();
        self.cell().force_wake_all();
        Ok(())
    }
}

fn ns_to_time(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

// SAFETY: W, a robust futex lock, admits one writer at a time, and a writer
// goes on only once no live reader holds a slot, while a reader goes on
// only if W is free after claiming its slot (a full fence between).
unsafe impl RwLockBackend for LocalRwLock {
    fn name(&self) -> Option<&str> {
        LocalRwLock::name(self)
    }

    fn read(&self, wait: Wait) -> io::Result<Option<(Acquired, usize)>> {
        LocalRwLock::read(self, wait)
    }

    unsafe fn read_release(&self, slot: usize) {
        // SAFETY: forwarded from this function's contract.
        unsafe { LocalRwLock::read_release(self, slot) }
    }

    fn write(&self, wait: Wait) -> io::Result<Option<Acquired>> {
        LocalRwLock::write(self, wait)
    }

    unsafe fn write_release(&self) {
        // SAFETY: forwarded from this function's contract.
        unsafe { LocalRwLock::write_release(self) }
    }

    fn set_tag(&self, tag: &str) {
        LocalRwLock::set_tag(self, tag);
    }

    fn keeps_across_exec(&self) -> bool {
        true
    }

    unsafe fn write_keep_until_exit(&self) {
        // SAFETY: forwarded from this function's contract.
        unsafe { LocalRwLock::write_keep_until_exit(self) }
    }

    fn writer(&self) -> Option<Holder> {
        LocalRwLock::writer(self)
    }

    fn readers(&self) -> Vec<Reader> {
        LocalRwLock::readers(self)
    }

    fn waiting_writers(&self) -> Vec<Waiter> {
        LocalRwLock::waiting_writers(self)
    }

    fn waiting_readers(&self) -> u32 {
        LocalRwLock::waiting_readers(self)
    }

    fn force_release(&self) -> io::Result<()> {
        LocalRwLock::force_release(self)
    }
}
