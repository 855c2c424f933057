//! Shared [`Value`] and [`Array`] of plain-old-data, with a robust lock.
//!
//! ```text
//! offset  size  field
//!     64    16  robust lock (see `sys`)
//!    128  n·s   the elements (n of them, s bytes each)
//! ```
//!
//! Parameters: `[element size, element count, type tag, flags]`, flag bit 0
//! = `get`/`set` take the lock. Opening checks the type tag and size, so a
//! `Value<u64>` cannot be opened as a `Value<f64>`.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{CreateError, LockError, OpenError, OwnerDied};
use crate::local::segment::{Fixed, Place, Segment};
use crate::namespace::Namespace;
use crate::object::ObjectKind;
use crate::sys::{Acquired, RobustLock};
use crate::wait::Wait;

const MUTEX: usize = 64;
const DATA: usize = 128;
const FLAG_LOCKED: u64 = 1;
/// Largest total size of the elements.
const MAX_BYTES: u64 = 1 << 34;

/// Plain-old-data that may live in shared memory and be read and written by
/// several processes: integers, floats and arrays of them.
///
/// # Safety
/// Every bit pattern of `size_of::<Self>()` bytes must be a valid value
/// (no `bool`, `char`, references or enums), the type must have no padding
/// and no drop glue, its alignment must be at most 64, and `TAG` must
/// identify the type's layout uniquely among `Pod` types.
pub unsafe trait Pod: Copy + Send + Sync + 'static {
    /// A number naming the type, recorded in the segment and checked at open.
    const TAG: u32;
    /// The type's name, for listings.
    const NAME: &'static str;
}

macro_rules! pod {
    ($($t:ty = $tag:expr),* $(,)?) => {$(
        // SAFETY: a primitive number: no padding, every bit pattern valid.
        unsafe impl Pod for $t {
            const TAG: u32 = $tag;
            const NAME: &'static str = stringify!($t);
        }
    )*};
}

pod!(
    u8 = 1,
    u16 = 2,
    u32 = 3,
    u64 = 4,
    u128 = 5,
    usize = 6,
    i8 = 7,
    i16 = 8,
    i32 = 9,
    i64 = 10,
    i128 = 11,
    isize = 12,
    f32 = 13,
    f64 = 14
);

// SAFETY: an array of Pod has no padding between elements and every bit
// pattern of each element is valid; its tag mixes the element's tag and N
// (with the size check at open, a collision could only confuse two Pod
// layouts of the same size, never break memory safety).
unsafe impl<T: Pod, const N: usize> Pod for [T; N] {
    const TAG: u32 = 0x8000_0000
        | ((T::TAG.wrapping_mul(0x9e37_79b1) ^ (N as u32).wrapping_mul(0x85eb_ca6b)) >> 1);
    const NAME: &'static str = "array";
}

/// The name of a scalar type tag, for listings.
pub(crate) fn tag_name(tag: u32) -> &'static str {
    match tag {
        1 => "u8",
        2 => "u16",
        3 => "u32",
        4 => "u64",
        5 => "u128",
        6 => "usize",
        7 => "i8",
        8 => "i16",
        9 => "i32",
        10 => "i64",
        11 => "i128",
        12 => "isize",
        13 => "f32",
        14 => "f64",
        _ => "?",
    }
}

fn expected_len(p: &[u64; 4]) -> Result<usize, String> {
    let bytes = p[0]
        .checked_mul(p[1])
        .filter(|b| *b <= MAX_BYTES)
        .ok_or("element size × count out of range")?;
    Ok(DATA + bytes as usize)
}

/// The untyped segment behind both [`Value`] and [`Array`].
#[derive(Debug)]
struct Cells {
    seg: Fixed<DATA>,
    len: usize,
    locked: bool,
}

impl Cells {
    /// The robust lock guarding the object's state.
    #[inline]
    fn mutex(&self) -> RobustLock<'_> {
        self.seg.view().robust_lock::<MUTEX>()
    }
}

impl Cells {
    fn create<T: Pod>(
        place: Place<'_>,
        kind: ObjectKind,
        init: &[T],
        locked: bool,
    ) -> Result<Cells, CreateError> {
        let size = std::mem::size_of::<T>();
        let bytes = size
            .checked_mul(init.len())
            .filter(|b| *b as u64 <= MAX_BYTES)
            .ok_or_else(|| CreateError::InvalidOptions("array too large".into()))?;
        if std::mem::align_of::<T>() > 64 {
            return Err(CreateError::InvalidOptions("alignment above 64".into()));
        }
        let params = [
            size as u64,
            init.len() as u64,
            u64::from(T::TAG),
            if locked { FLAG_LOCKED } else { 0 },
        ];
        let seg = Fixed::create(place, kind, DATA + bytes, params, |seg| {
            seg.robust_lock::<MUTEX>().init()?;
            if bytes > 0 {
                let dst = seg.segment().raw_at(DATA, bytes);
                // SAFETY: `dst` has room for `init.len()` elements (checked
                // by raw_at), is aligned for T (64-aligned offset in a
                // page-aligned mapping), and does not overlap `init`.
                unsafe {
                    std::ptr::copy_nonoverlapping(init.as_ptr(), dst.cast::<T>(), init.len())
                };
            }
            Ok(())
        })?;
        Ok(Cells::from_segment(seg))
    }

    fn check_one<T: Pod>(p: &[u64; 4]) -> Result<usize, String> {
        if p[1] != 1 {
            return Err(format!("a value holds one element, this has {}", p[1]));
        }
        Cells::check::<T>(p)
    }

    fn check<T: Pod>(p: &[u64; 4]) -> Result<usize, String> {
        if p[2] != u64::from(T::TAG) || p[0] != std::mem::size_of::<T>() as u64 {
            return Err(format!(
                "it holds elements of type {} ({} bytes), not {}",
                tag_name(p[2] as u32),
                p[0],
                T::NAME
            ));
        }
        expected_len(p)
    }

    fn from_segment(seg: Fixed<DATA>) -> Cells {
        let p = seg.params();
        Cells {
            len: p[1] as usize,
            locked: p[3] & FLAG_LOCKED != 0,
            seg,
        }
    }

    fn ptr<T: Pod>(&self) -> *mut T {
        self.seg
            .raw_at(DATA, self.len * std::mem::size_of::<T>())
            .cast::<T>()
    }

    fn read<T: Pod>(&self, i: usize) -> Option<T> {
        if i >= self.len {
            return None;
        }
        // SAFETY: `i < len`, so the element is inside the mapping (checked at
        // open against the file size), aligned, and any bit pattern is a
        // valid T (Pod). Volatile: other processes write this memory.
        Some(unsafe { std::ptr::read_volatile(self.ptr::<T>().add(i)) })
    }

    fn write<T: Pod>(&self, i: usize, v: T) -> bool {
        if i >= self.len {
            return false;
        }
        // SAFETY: as in `read`; T has no drop glue.
        unsafe { std::ptr::write_volatile(self.ptr::<T>().add(i), v) };
        crate::crash::crash_point!("value.write.element");
        true
    }

    /// Takes the lock. `Ok(true)`: taken after its owner died.
    fn lock(&self, wait: Wait) -> Result<bool, LockError<()>> {
        let r = self.mutex().acquire(wait);
        match r {
            Ok(Some(Acquired::Clean)) => Ok(false),
            Ok(Some(Acquired::OwnerDied)) => Ok(true),
            Ok(None) => Err(LockError::WouldBlock),
            Err(e) => Err(LockError::Io(e.into())),
        }
    }

    /// Runs `f` under the lock when the object is locked (or `force`). A
    /// thread that already holds the lock (through a guard) runs `f` as it
    /// is, as Python's RLock-backed values do, instead of deadlocking.
    fn with<R>(&self, force: bool, f: impl FnOnce() -> R) -> R {
        if !(self.locked || force) || self.mutex().held_by_me() {
            return f();
        }
        match self.lock(Wait::Forever) {
            Ok(_) => {
                let r = f();
                // SAFETY: taken just above by this thread.
                unsafe { self.mutex().unlock() };
                r
            }
            // The mutex is unusable (a damaged segment): go on without it.
            Err(_) => f(),
        }
    }
}

/// A guard over the elements of a [`Value`] or [`Array`]: the built-in lock
/// is held and the data can be read and changed in place. Not `Send`.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ValueGuard<'a, T: ?Sized> {
    cells: &'a Cells,
    data: *mut T,
    _not_send: PhantomData<(&'a mut T, *const ())>,
}

impl<T: ?Sized> Deref for ValueGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the lock is held, so no cooperating process touches the
        // data; `data` points to initialised Pod elements in a mapping that
        // `cells` keeps alive for 'a.
        unsafe { &*self.data }
    }
}

impl<T: ?Sized> DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference
        // handed out in this process.
        unsafe { &mut *self.data }
    }
}

impl<T: ?Sized> Drop for ValueGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: a guard exists only while this thread holds the mutex.
        unsafe { self.cells.mutex().unlock() };
    }
}

impl<T: ?Sized> fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ValueGuard { .. }")
    }
}

/// The result of the `get_lock` family.
pub type ValueLockResult<'a, T> = Result<ValueGuard<'a, T>, LockError<ValueGuard<'a, T>>>;

fn guarded<'a, T: ?Sized>(
    cells: &'a Cells,
    data: *mut T,
    r: Result<bool, LockError<()>>,
) -> ValueLockResult<'a, T> {
    let g = || ValueGuard {
        cells,
        data,
        _not_send: PhantomData,
    };
    match r {
        Ok(false) => Ok(g()),
        Ok(true) => Err(LockError::OwnerDied(OwnerDied::new(g()))),
        Err(LockError::WouldBlock) => Err(LockError::WouldBlock),
        Err(LockError::Io(e)) => Err(LockError::Io(e)),
        Err(LockError::OwnerDied(_)) => Err(LockError::OwnerDied(OwnerDied::new(g()))),
    }
}

/// One plain-old-data value in shared memory: Python's
/// `multiprocessing.Value`.
///
/// [`Value::with_lock`] makes `get`/`set` take the built-in robust lock
/// (Python's `lock=True`); [`Value::new`] does not (Python's `RawValue`:
/// plain reads and writes, which may tear for values wider than the
/// machine word). Either way [`get_lock`](Value::get_lock) takes the lock
/// and returns a guard through which the value is read and changed in
/// place — the way to do a read-modify-write such as `count -= 1`. If a
/// process dies holding the lock, the next one gets
/// [`LockError::OwnerDied`] (with the guard). `get`, `set` and `update`
/// called by the thread that holds a guard use the data directly (do not
/// keep a reference from the guard alive across such a call).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let ns = mproc::Namespace::dir(dir.path()).unwrap();
/// let tickets = mproc::Value::<i64>::create_in(&ns, "tickets", 3, true).unwrap();
/// {
///     let mut n = tickets.get_lock().unwrap();
///     if *n > 0 {
///         *n -= 1;
///     }
/// }
/// assert_eq!(tickets.get(), 2);
/// ```
pub struct Value<T: Pod> {
    cells: Arc<Cells>,
    _t: PhantomData<fn() -> T>,
}

impl<T: Pod> Clone for Value<T> {
    fn clone(&self) -> Self {
        Value {
            cells: self.cells.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Value")
            .field("name", &self.name())
            .field("value", &self.get())
            .finish()
    }
}

impl<T: Pod> Value<T> {
    /// Creates an anonymous value without automatic locking (`RawValue`).
    pub fn new(init: T) -> Result<Value<T>, CreateError> {
        Value::make(Place::Anonymous, init, false)
    }

    /// Creates an anonymous value whose `get`/`set` take its lock.
    pub fn with_lock(init: T) -> Result<Value<T>, CreateError> {
        Value::make(Place::Anonymous, init, true)
    }

    crate::util::named_constructors!(
        "value (created from `init`; `lock`: `get`/`set` take its lock)",
        init: T,
        lock: bool
    );

    /// Creates the named value in `ns`; `lock`: `get`/`set` take the lock.
    pub fn create_in(
        ns: &Namespace,
        name: &str,
        init: T,
        lock: bool,
    ) -> Result<Value<T>, CreateError> {
        Value::make(ns.create_place(ObjectKind::Value, name)?, init, lock)
    }

    /// Opens the existing named value in `ns`; it must hold a `T`.
    pub fn open_in(ns: &Namespace, name: &str) -> Result<Value<T>, OpenError> {
        Fixed::open(
            ns.open_dir(ObjectKind::Value, name)?,
            name,
            ObjectKind::Value,
            Cells::check_one::<T>,
        )
        .map(Value::wrap)
    }

    fn make(place: Place<'_>, init: T, lock: bool) -> Result<Value<T>, CreateError> {
        Cells::create(place, ObjectKind::Value, &[init], lock).map(|c| Value {
            cells: Arc::new(c),
            _t: PhantomData,
        })
    }

    pub(crate) fn from_fd(fd: std::os::fd::OwnedFd) -> Result<Value<T>, OpenError> {
        Fixed::from_fd(fd, ObjectKind::Value, Cells::check_one::<T>).map(Value::wrap)
    }

    fn wrap(seg: Fixed<DATA>) -> Value<T> {
        Value {
            cells: Arc::new(Cells::from_segment(seg)),
            _t: PhantomData,
        }
    }

    pub(crate) fn segment(&self) -> &Segment {
        &self.cells.seg
    }

    /// The name; `None` when anonymous.
    pub fn name(&self) -> Option<&str> {
        self.cells.seg.name()
    }

    /// Whether `get`/`set` take the lock.
    pub fn is_locking(&self) -> bool {
        self.cells.locked
    }

    /// Reads the value (under the lock for a locking value).
    pub fn get(&self) -> T {
        self.cells
            .with(false, || self.cells.read::<T>(0))
            .unwrap_or_else(|| unreachable!("a value holds one element (checked at open)"))
    }

    /// Writes the value (under the lock for a locking value).
    pub fn set(&self, v: T) {
        self.cells.with(false, || self.cells.write(0, v));
    }

    /// Replaces the value with `f(old)` under the lock; returns the new value.
    pub fn update(&self, f: impl FnOnce(T) -> T) -> T {
        self.cells.with(true, || {
            let old = self.cells.read::<T>(0);
            let new = f(old.unwrap_or_else(|| unreachable!("one element, checked at open")));
            self.cells.write(0, new);
            new
        })
    }

    fn guard(&self, r: Result<bool, LockError<()>>) -> ValueLockResult<'_, T> {
        guarded(&self.cells, self.cells.ptr::<T>(), r)
    }

    /// Takes the lock, waiting as long as it takes; the guard gives `&mut T`.
    pub fn get_lock(&self) -> ValueLockResult<'_, T> {
        self.guard(self.cells.lock(Wait::Forever))
    }

    /// Takes the lock if it is free.
    pub fn try_get_lock(&self) -> ValueLockResult<'_, T> {
        self.guard(self.cells.lock(Wait::Now))
    }

    /// Waits at most `timeout` for the lock.
    pub fn get_lock_timeout(&self, timeout: Duration) -> ValueLockResult<'_, T> {
        self.guard(self.cells.lock(Wait::timeout(timeout)))
    }

    /// Waits until `deadline` for the lock.
    pub fn get_lock_deadline(&self, deadline: Instant) -> ValueLockResult<'_, T> {
        self.guard(self.cells.lock(Wait::Until(deadline)))
    }
}

/// A fixed-length array of plain-old-data in shared memory: Python's
/// `multiprocessing.Array`.
///
/// Like [`Value`]: locking or not for single-element `get`/`set`, and
/// [`get_lock`](Array::get_lock) for a guard that derefs to `[T]`.
///
/// ```
/// let a = mproc::Array::<f64>::with_lock(&[0.0; 4]).unwrap();
/// a.set(2, 1.5);
/// {
///     let mut g = a.get_lock().unwrap();
///     g[3] = g[2] * 2.0;
/// }
/// assert_eq!(a.to_vec(), vec![0.0, 0.0, 1.5, 3.0]);
/// ```
pub struct Array<T: Pod> {
    cells: Arc<Cells>,
    _t: PhantomData<fn() -> T>,
}

impl<T: Pod> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array {
            cells: self.cells.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: Pod> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Array")
            .field("name", &self.name())
            .field("len", &self.len())
            .finish()
    }
}

impl<T: Pod> Array<T> {
    /// Creates an anonymous array from `init`, without automatic locking.
    pub fn new(init: &[T]) -> Result<Array<T>, CreateError> {
        Array::make(Place::Anonymous, init, false)
    }

    /// Creates an anonymous array from `init` whose `get`/`set` take its lock.
    pub fn with_lock(init: &[T]) -> Result<Array<T>, CreateError> {
        Array::make(Place::Anonymous, init, true)
    }

    crate::util::named_constructors!(
        "array (created from `init`; `lock`: `get`/`set` take its lock)",
        init: &[T],
        lock: bool
    );

    /// Creates the named array in `ns` from `init`; fails if it exists.
    pub fn create_in(
        ns: &Namespace,
        name: &str,
        init: &[T],
        lock: bool,
    ) -> Result<Array<T>, CreateError> {
        Array::make(ns.create_place(ObjectKind::Array, name)?, init, lock)
    }

    /// Opens the existing named array in `ns`; it must hold `T`s.
    pub fn open_in(ns: &Namespace, name: &str) -> Result<Array<T>, OpenError> {
        Fixed::open(
            ns.open_dir(ObjectKind::Array, name)?,
            name,
            ObjectKind::Array,
            Cells::check::<T>,
        )
        .map(Array::wrap)
    }

    fn make(place: Place<'_>, init: &[T], lock: bool) -> Result<Array<T>, CreateError> {
        Cells::create(place, ObjectKind::Array, init, lock).map(|c| Array {
            cells: Arc::new(c),
            _t: PhantomData,
        })
    }

    pub(crate) fn from_fd(fd: std::os::fd::OwnedFd) -> Result<Array<T>, OpenError> {
        Fixed::from_fd(fd, ObjectKind::Array, Cells::check::<T>).map(Array::wrap)
    }

    fn wrap(seg: Fixed<DATA>) -> Array<T> {
        Array {
            cells: Arc::new(Cells::from_segment(seg)),
            _t: PhantomData,
        }
    }

    pub(crate) fn segment(&self) -> &Segment {
        &self.cells.seg
    }

    /// The name; `None` when anonymous.
    pub fn name(&self) -> Option<&str> {
        self.cells.seg.name()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.cells.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.cells.len == 0
    }

    /// Element `i`, `None` out of range (under the lock for a locking array).
    pub fn get(&self, i: usize) -> Option<T> {
        self.cells.with(false, || self.cells.read::<T>(i))
    }

    /// Writes element `i`; false out of range.
    pub fn set(&self, i: usize, v: T) -> bool {
        self.cells.with(false, || self.cells.write(i, v))
    }

    /// A copy of every element, taken under the lock.
    pub fn to_vec(&self) -> Vec<T> {
        self.cells.with(true, || {
            (0..self.cells.len)
                .filter_map(|i| self.cells.read::<T>(i))
                .collect()
        })
    }

    fn guard(&self, r: Result<bool, LockError<()>>) -> ValueLockResult<'_, [T]> {
        let data = std::ptr::slice_from_raw_parts_mut(self.cells.ptr::<T>(), self.cells.len);
        guarded(&self.cells, data, r)
    }

    /// Takes the lock, waiting as long as it takes; the guard gives `&mut [T]`.
    pub fn get_lock(&self) -> ValueLockResult<'_, [T]> {
        self.guard(self.cells.lock(Wait::Forever))
    }

    /// Takes the lock if it is free.
    pub fn try_get_lock(&self) -> ValueLockResult<'_, [T]> {
        self.guard(self.cells.lock(Wait::Now))
    }

    /// Waits at most `timeout` for the lock.
    pub fn get_lock_timeout(&self, timeout: Duration) -> ValueLockResult<'_, [T]> {
        self.guard(self.cells.lock(Wait::timeout(timeout)))
    }

    /// Waits until `deadline` for the lock.
    pub fn get_lock_deadline(&self, deadline: Instant) -> ValueLockResult<'_, [T]> {
        self.guard(self.cells.lock(Wait::Until(deadline)))
    }
}

/// What `mproc ls` shows of a value or array it cannot type statically.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ValueInfo {
    /// The element type's name (`"?"` for arrays-of-arrays and unknown tags).
    pub type_name: &'static str,
    /// Number of elements.
    pub len: usize,
    /// Whether `get`/`set` take the lock.
    pub locking: bool,
    /// Whether some process holds the lock.
    pub locked: bool,
    /// The first elements, formatted (up to 8).
    pub preview: Vec<String>,
}

impl ValueInfo {
    /// Describes the named value or array in `ns` without knowing its type.
    pub fn inspect(ns: &Namespace, name: &str) -> Result<ValueInfo, OpenError> {
        let any = |p: &[u64; 4]| expected_len(p);
        let seg = match Fixed::open(
            ns.open_dir(ObjectKind::Value, name)?,
            name,
            ObjectKind::Value,
            any,
        ) {
            Err(OpenError::WrongKind { .. }) => Fixed::open(
                ns.open_dir(ObjectKind::Array, name)?,
                name,
                ObjectKind::Array,
                any,
            )?,
            other => other?,
        };
        let p = seg.params();
        let cells = Cells::from_segment(seg);
        let tag = p[2] as u32;
        let n = cells.len.min(8);
        macro_rules! fmt_as {
            ($($t:ty),*) => {
                match tag {
                    $(t if t == <$t as Pod>::TAG && p[0] == std::mem::size_of::<$t>() as u64 =>
                        (0..n).filter_map(|i| cells.read::<$t>(i)).map(|v| v.to_string()).collect(),)*
                    _ => Vec::new(),
                }
            };
        }
        let preview: Vec<String> =
            fmt_as!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64);
        Ok(ValueInfo {
            type_name: tag_name(tag),
            len: cells.len,
            locking: cells.locked,
            locked: cells.mutex().is_held(),
            preview,
        })
    }
}
