//! Segments: the mapped files that hold every shared-memory object.
//!
//! Layout: a 64-byte [`Header`] at offset 0, then the object's own state at
//! offsets fixed by its kind. A named segment is built in a hidden temporary
//! file, initialised, its magic written last, and only then linked under its
//! name (`link(2)` fails if the name is taken), so `open` never sees a
//! half-made object. Opening checks magic, layout version, kind, the file's
//! owner and its exact size before anything else is read.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::error::{CreateError, OpenError};
use crate::handle::wire::{inode, note_fd, Repr};
use crate::local::dir::Dir;
use crate::name::validate_name;
use crate::object::ObjectKind;
use crate::sys::{self, Mapping};

/// The magic number at offset 0 of every segment.
pub(crate) const MAGIC: [u8; 8] = *b"MPROCseg";
/// The layout version this build reads and writes.
pub(crate) const LAYOUT_VERSION: u32 = 4;
/// Size of the header; object state starts at or after this offset.
pub(crate) const HEADER_LEN: usize = 64;

/// The immutable header at the start of every segment.
#[repr(C)]
#[derive(Clone, Copy)]
struct Header {
    magic: [u8; 8],
    version: u32,
    kind: u32,
    len: u64,
    params: [u64; 4],
    _reserved: [u8; 8],
}

const _: () = assert!(std::mem::size_of::<Header>() == HEADER_LEN);

fn kind_code(kind: ObjectKind) -> u32 {
    match kind {
        ObjectKind::Lock => 1,
        ObjectKind::Queue => 2,
        ObjectKind::RLock => 3,
        ObjectKind::Semaphore => 4,
        ObjectKind::Event => 5,
        ObjectKind::Condition => 6,
        ObjectKind::Barrier => 7,
        ObjectKind::Value => 8,
        ObjectKind::Array => 9,
        ObjectKind::RwLock => 10,
    }
}

fn kind_from_code(code: u32) -> Option<ObjectKind> {
    match code {
        1 => Some(ObjectKind::Lock),
        2 => Some(ObjectKind::Queue),
        3 => Some(ObjectKind::RLock),
        4 => Some(ObjectKind::Semaphore),
        5 => Some(ObjectKind::Event),
        6 => Some(ObjectKind::Condition),
        7 => Some(ObjectKind::Barrier),
        8 => Some(ObjectKind::Value),
        9 => Some(ObjectKind::Array),
        10 => Some(ObjectKind::RwLock),
        _ => None,
    }
}

/// Types that may be viewed in place inside a segment.
///
/// # Safety
/// Every bit pattern must be a valid value, and all mutation through a shared
/// reference must be interior (atomics, or FFI objects designed for shared
/// memory).
pub(crate) unsafe trait Shared {}
// SAFETY: atomics accept any bit pattern and mutate only through &self.
unsafe impl Shared for AtomicU32 {}
// SAFETY: as above.
unsafe impl Shared for AtomicU64 {}
// SAFETY: a robust lock's state is three atomics (`repr(C)`), for which
// every bit pattern is valid; its methods treat every value as possible.
unsafe impl Shared for crate::sys::RawRobustMutex {}

/// A mapped segment.
#[derive(Debug)]
pub(crate) struct Segment {
    map: Mapping,
    fd: OwnedFd,
    /// Namespace directory and name; `None` for an anonymous segment.
    named: Option<(PathBuf, String)>,
    params: [u64; 4],
}

/// Where a new segment is made.
pub(crate) enum Place<'a> {
    Named(&'a Dir, &'a str),
    Anonymous,
}

impl Segment {
    /// Creates, initialises and publishes a segment of `len` bytes.
    ///
    /// `init` runs before anyone else can see the segment.
    pub(crate) fn create(
        place: Place<'_>,
        kind: ObjectKind,
        len: usize,
        params: [u64; 4],
        init: impl FnOnce(&Segment) -> io::Result<()>,
    ) -> Result<Segment, CreateError> {
        let label = match &place {
            Place::Named(_, n) => (*n).to_owned(),
            Place::Anonymous => format!("(anonymous {kind})"),
        };
        if let Place::Named(_, n) = &place {
            validate_name(n)?;
        }
        // The kinds std gives ENOSPC, ENOMEM and EFBIG; EACCES and EPERM.
        let io_err = |source: io::Error| match source.kind() {
            io::ErrorKind::StorageFull
            | io::ErrorKind::OutOfMemory
            | io::ErrorKind::FileTooLarge => CreateError::NoSpace {
                name: label.clone(),
                bytes: len as u64,
            },
            io::ErrorKind::PermissionDenied => CreateError::PermissionDenied {
                name: label.clone(),
            },
            _ => CreateError::Io {
                name: label.clone(),
                source: source.into(),
            },
        };
        let (fd, tmp): (OwnedFd, Option<PathBuf>) = match &place {
            Place::Named(ns, _) => {
                remove_dead_temps(&ns.path);
                let tmp = temp_path(&ns.path);
                let f = sys::no_follow(
                    OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create_new(true)
                        .mode(if ns.group.is_some() { 0o660 } else { 0o600 }),
                    false,
                )
                .open(&tmp)
                .map_err(io_err)?;
                if let Some(gid) = ns.group {
                    // A group namespace: 0660 with its group, whatever the umask.
                    let shared = (|| {
                        std::os::unix::fs::fchown(&f, None, Some(gid))?;
                        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o660))
                    })();
                    if let Err(e) = shared {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(io_err(e));
                    }
                }
                (f.into(), Some(tmp))
            }
            Place::Anonymous => {
                let cname = CString::new(format!("mproc-{kind}")).expect("no NUL in kind name");
                (sys::memfd(&cname).map_err(io_err)?, None)
            }
        };
        // From here on, remove the temporary file on every exit path.
        let cleanup = TempGuard(tmp.clone());
        crate::crash::crash_point!("segment.create.temp");
        allocate(&fd, len).map_err(io_err)?;
        let map = Mapping::map(fd.as_fd(), len).map_err(io_err)?;
        let seg = Segment {
            map,
            fd,
            named: match &place {
                Place::Named(ns, n) => Some((ns.path.clone(), (*n).to_owned())),
                Place::Anonymous => None,
            },
            params,
        };
        let header = Header {
            magic: [0; 8],
            version: LAYOUT_VERSION,
            kind: kind_code(kind),
            len: len as u64,
            params,
            _reserved: [0; 8],
        };
        // SAFETY: the mapping is at least HEADER_LEN bytes (len >= HEADER_LEN
        // is checked by `allocate`), page-aligned, and not yet visible to anyone.
        unsafe { std::ptr::write_volatile(seg.map.as_ptr().cast::<Header>(), header) };
        init(&seg).map_err(io_err)?;
        // Publish last: the magic marks a fully initialised segment.
        std::sync::atomic::fence(Ordering::Release);
        // SAFETY: offset 0 holds the 8-byte magic field of the header written above.
        unsafe { std::ptr::write_volatile(seg.map.as_ptr().cast::<[u8; 8]>(), MAGIC) };
        crate::crash::crash_point!("segment.create.published");
        if let (Place::Named(ns, name), Some(tmp)) = (&place, &tmp) {
            let dest = ns.path.join(name);
            match std::fs::hard_link(tmp, &dest) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(CreateError::AlreadyExists {
                        name: (*name).to_owned(),
                        dir: ns.display(),
                    })
                }
                Err(e) => return Err(io_err(e)),
            }
            crate::crash::crash_point!("segment.create.linked");
        }
        drop(cleanup);
        Ok(seg)
    }

    /// Opens the named segment and checks that it is a `kind` of this layout.
    ///
    /// `expected_len` computes the exact length the parameters imply, or says
    /// why the parameters are invalid.
    pub(crate) fn open(
        ns: &Dir,
        name: &str,
        kind: ObjectKind,
        expected_len: impl Fn(&[u64; 4]) -> Result<usize, String>,
    ) -> Result<Segment, OpenError> {
        validate_name(name)?;
        let path = ns.path.join(name);
        let file = sys::no_follow(OpenOptions::new().read(true).write(true), true)
            .open(&path)
            .map_err(|source| match source.kind() {
                // ENOENT; EACCES and EPERM.
                io::ErrorKind::NotFound => OpenError::NotFound {
                    kind,
                    name: name.to_owned(),
                    dir: ns.display(),
                },
                io::ErrorKind::PermissionDenied => OpenError::PermissionDenied {
                    name: name.to_owned(),
                },
                _ if sys::is_symlink_loop(&source) => OpenError::Damaged {
                    name: name.to_owned(),
                    reason: "it is a symbolic link".into(),
                },
                _ => OpenError::Io {
                    name: name.to_owned(),
                    source: source.into(),
                },
            })?;
        let mut seg = Segment::from_file(file, Some(name), ns.group, kind, expected_len)?;
        seg.named = Some((ns.path.clone(), name.to_owned()));
        Ok(seg)
    }

    /// Adopts an inherited descriptor (an anonymous object handed to a child).
    pub(crate) fn from_fd(
        fd: OwnedFd,
        kind: ObjectKind,
        expected_len: impl Fn(&[u64; 4]) -> Result<usize, String>,
    ) -> Result<Segment, OpenError> {
        Segment::from_file(File::from(fd), None, None, kind, expected_len)
    }

    /// `group`: the group of a group namespace, whose members' objects are
    /// accepted when they belong to it and others cannot write them.
    fn from_file(
        file: File,
        name: Option<&str>,
        group: Option<u32>,
        kind: ObjectKind,
        expected_len: impl Fn(&[u64; 4]) -> Result<usize, String>,
    ) -> Result<Segment, OpenError> {
        let label = name.unwrap_or("(anonymous)").to_owned();
        let damaged = |reason: String| OpenError::Damaged {
            name: label.clone(),
            reason,
        };
        let meta = file.metadata().map_err(|source| OpenError::Io {
            name: label.clone(),
            source: source.into(),
        })?;
        if !meta.file_type().is_file() {
            return Err(damaged("not a regular file".into()));
        }
        let shared = group.is_some_and(|g| meta.gid() == g && meta.mode() & 0o002 == 0);
        if name.is_some() && !shared && meta.uid() != sys::my_uid() {
            return Err(OpenError::PermissionDenied { name: label });
        }
        let size = meta.len();
        if size < HEADER_LEN as u64 {
            return Err(damaged(format!(
                "file is {size} bytes, shorter than a header"
            )));
        }
        let header = read_header(&file).map_err(|source| OpenError::Io {
            name: label.clone(),
            source: source.into(),
        })?;
        if header.magic != MAGIC {
            return Err(damaged(
                "bad magic number (not an mproc segment, or never finished)".into(),
            ));
        }
        if header.version != LAYOUT_VERSION {
            return Err(OpenError::VersionMismatch {
                name: label,
                found: header.version,
                supported: LAYOUT_VERSION,
            });
        }
        let found = kind_from_code(header.kind)
            .ok_or_else(|| damaged(format!("unknown object kind code {}", header.kind)))?;
        if found != kind {
            return Err(OpenError::WrongKind {
                name: label,
                expected: kind,
                found,
            });
        }
        let want = expected_len(&header.params).map_err(&damaged)?;
        if header.len != size || size != want as u64 {
            return Err(damaged(format!(
                "size mismatch: file {size} bytes, header {}, parameters imply {want}",
                header.len
            )));
        }
        let fd: OwnedFd = file.into();
        let map = Mapping::map(fd.as_fd(), want).map_err(|source| OpenError::Io {
            name: label.clone(),
            source: source.into(),
        })?;
        Ok(Segment {
            map,
            fd,
            named: None,
            params: header.params,
        })
    }

    /// The descriptor of an anonymous segment (`None` for a named one): what
    /// a child process inherits.
    pub(crate) fn anonymous_fd(&self) -> Option<BorrowedFd<'_>> {
        self.name().is_none().then(|| self.fd.as_fd())
    }

    /// The segment's wire form: its directory and name, or (anonymous) the
    /// descriptor the receiver inherits, noted for the spawner to hand
    /// down, with its inode.
    pub(crate) fn repr(&self) -> Repr {
        match (self.dir(), self.name()) {
            (Some(dir), Some(name)) => Repr::Named {
                dir: dir.to_owned(),
                name: name.to_owned(),
            },
            _ => {
                let fd = self.fd.as_raw_fd();
                note_fd(fd);
                Repr::Fd(fd, inode(self.fd.as_fd()).unwrap_or(0))
            }
        }
    }

    /// The kind-specific parameters recorded at creation.
    pub(crate) fn params(&self) -> [u64; 4] {
        self.params
    }

    /// The object's name, `None` for an anonymous object.
    pub(crate) fn name(&self) -> Option<&str> {
        self.named.as_ref().map(|(_, n)| n.as_str())
    }

    /// The namespace directory of a named segment.
    pub(crate) fn dir(&self) -> Option<&Path> {
        self.named.as_ref().map(|(d, _)| d.as_path())
    }

    /// A reference to the `T` at byte `offset`.
    ///
    /// Offsets are compile-time layout constants validated against the
    /// segment length at open; a violation is a bug in this crate.
    pub(crate) fn at<T: Shared>(&self, offset: usize) -> &T {
        let end = offset.checked_add(std::mem::size_of::<T>());
        assert!(
            end.is_some_and(|e| e <= self.map.len())
                && offset % std::mem::align_of::<T>() == 0
                && offset >= HEADER_LEN,
            "segment layout bug: offset {offset} out of bounds or misaligned"
        );
        // SAFETY: in bounds and aligned (checked above; the mapping is
        // page-aligned). `T: Shared` makes every bit pattern valid and all
        // mutation interior, so a shared reference into memory other
        // processes write is sound. The reference lives as long as `self`.
        unsafe { &*self.map.as_ptr().add(offset).cast::<T>() }
    }

    /// The robust lock at byte `offset` (a layout constant), borrowed from
    /// the mapping.
    #[inline]
    pub(crate) fn robust_lock(&self, offset: usize) -> crate::sys::RobustLock<'_> {
        crate::sys::RobustLock::new(self.at(offset))
    }

    /// A raw pointer to byte `offset` for FFI objects.
    pub(crate) fn raw_at(&self, offset: usize, size: usize) -> *mut u8 {
        assert!(
            offset >= HEADER_LEN
                && offset
                    .checked_add(size)
                    .is_some_and(|e| e <= self.map.len()),
            "segment layout bug: offset {offset} out of bounds"
        );
        // SAFETY: `offset` is within the mapping (checked above).
        unsafe { self.map.as_ptr().add(offset) }
    }

    /// Copies `src` into the segment at `offset`; false if out of bounds.
    pub(crate) fn write(&self, offset: usize, src: &[u8]) -> bool {
        if offset < HEADER_LEN
            || offset
                .checked_add(src.len())
                .is_none_or(|e| e > self.map.len())
        {
            return false;
        }
        // SAFETY: the destination range is inside the mapping (checked above)
        // and cannot overlap `src`, which is ordinary process memory. Other
        // processes do not touch this range while we own it (the ring's
        // protocol: bytes between head and tail belong to the publisher).
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.map.as_ptr().add(offset), src.len())
        };
        true
    }

    /// Copies from the segment at `offset` into `dst`; false if out of bounds.
    pub(crate) fn read(&self, offset: usize, dst: &mut [u8]) -> bool {
        if offset < HEADER_LEN
            || offset
                .checked_add(dst.len())
                .is_none_or(|e| e > self.map.len())
        {
            return false;
        }
        // SAFETY: the source range is inside the mapping (checked above) and
        // `dst` is a distinct, writable buffer of the same length.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.map.as_ptr().add(offset),
                dst.as_mut_ptr(),
                dst.len(),
            )
        };
        true
    }
}

/// A segment whose length was checked once, when it was made or opened, to
/// be at least `LEN` bytes: the core every shared-memory object is built on.
///
/// Its [`View`] borrows the fields at the layout's constant offsets with no
/// check per access (the offsets are checked at compile time against
/// `LEN`), which is what a lock's fast path needs; and most objects keep the
/// robust lock guarding their state at such an offset
/// ([`lock_state`](Fixed::lock_state)).
#[derive(Debug)]
pub(crate) struct Fixed<const LEN: usize> {
    /// Invariant: `seg.map.len() >= LEN`.
    seg: Segment,
}

impl<const LEN: usize> Fixed<LEN> {
    /// [`Segment::create`] of `len` bytes (at least `LEN`), `init` given the
    /// view.
    pub(crate) fn create(
        place: Place<'_>,
        kind: ObjectKind,
        len: usize,
        params: [u64; 4],
        init: impl FnOnce(View<'_, LEN>) -> io::Result<()>,
    ) -> Result<Fixed<LEN>, CreateError> {
        assert!(len >= LEN, "segment layout bug: {len} < {LEN} bytes");
        let seg = Segment::create(place, kind, len, params, |seg| init(View::new(seg)?))?;
        Ok(Fixed { seg })
    }

    /// [`Segment::open`], then the length check.
    pub(crate) fn open(
        dir: &Dir,
        name: &str,
        kind: ObjectKind,
        expected_len: impl Fn(&[u64; 4]) -> Result<usize, String>,
    ) -> Result<Fixed<LEN>, OpenError> {
        Fixed::checked(Segment::open(dir, name, kind, expected_len)?)
    }

    /// [`Segment::from_fd`], then the length check.
    pub(crate) fn from_fd(
        fd: OwnedFd,
        kind: ObjectKind,
        expected_len: impl Fn(&[u64; 4]) -> Result<usize, String>,
    ) -> Result<Fixed<LEN>, OpenError> {
        Fixed::checked(Segment::from_fd(fd, kind, expected_len)?)
    }

    fn checked(seg: Segment) -> Result<Fixed<LEN>, OpenError> {
        if seg.map.len() < LEN {
            return Err(OpenError::Damaged {
                name: seg.name().unwrap_or("(anonymous)").to_owned(),
                reason: format!("{} bytes, shorter than its layout ({LEN})", seg.map.len()),
            });
        }
        Ok(Fixed { seg })
    }

    /// The fields, borrowed with no check per access.
    #[inline(always)]
    pub(crate) fn view(&self) -> View<'_, LEN> {
        // Keeps the view's invariant: `self.seg.map.len() >= LEN`.
        View { seg: &self.seg }
    }

    /// Takes the robust lock at `OFF` that guards the object's state,
    /// waiting until `deadline`: `None` when the deadline passed, and the
    /// held lock with whether its previous holder died inside otherwise.
    pub(crate) fn lock_state<const OFF: usize>(
        &self,
        deadline: Option<std::time::Instant>,
    ) -> io::Result<Option<(StateHeld<'_>, sys::Acquired)>> {
        let m = self.view().robust_lock::<OFF>();
        Ok(m.lock(deadline)?.map(|a| (StateHeld(m), a)))
    }
}

impl<const LEN: usize> std::ops::Deref for Fixed<LEN> {
    type Target = Segment;

    /// The segment, for what varies in length (slots, data) and everything
    /// not at a constant offset.
    fn deref(&self) -> &Segment {
        &self.seg
    }
}

/// A state lock taken by [`Fixed::lock_state`]; released on drop.
#[derive(Debug)]
pub(crate) struct StateHeld<'a>(sys::RobustLock<'a>);

impl Drop for StateHeld<'_> {
    fn drop(&mut self) {
        // SAFETY: a StateHeld exists only while this thread holds the lock
        // (made by `lock_state` after a successful acquisition).
        unsafe { self.0.unlock() };
    }
}

/// The fields of a [`Fixed`] segment, borrowed from it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View<'a, const LEN: usize> {
    /// Invariant: a live mapping of at least `LEN` bytes (page-aligned).
    seg: &'a Segment,
}

impl<'a, const LEN: usize> View<'a, LEN> {
    /// The view of `seg`, checking its length (for a segment being made).
    fn new(seg: &'a Segment) -> io::Result<View<'a, LEN>> {
        if seg.map.len() < LEN {
            return Err(io::Error::other("segment shorter than its layout"));
        }
        Ok(View { seg })
    }

    /// The segment viewed (for what is not at a constant offset).
    pub(crate) fn segment(self) -> &'a Segment {
        self.seg
    }

    /// The `T` at byte `OFF` of the layout.
    #[inline(always)]
    pub(crate) fn at<T: Shared, const OFF: usize>(self) -> &'a T {
        const {
            assert!(
                OFF >= HEADER_LEN
                    && OFF + std::mem::size_of::<T>() <= LEN
                    && OFF % std::mem::align_of::<T>() == 0,
                "segment layout bug: field out of bounds or misaligned"
            )
        };
        // SAFETY: `seg` is a live, page-aligned mapping of at least `LEN`
        // bytes borrowed for `'a` (the view's invariant), and the
        // assertion above proves `OFF..OFF + size_of::<T>()` inside it and
        // aligned. `T: Shared` makes every bit pattern valid and all
        // mutation interior, so a shared reference into memory other
        // processes write is sound.
        unsafe { &*self.seg.map.as_ptr().add(OFF).cast::<T>() }
    }

    /// The robust lock at byte `OFF` of the layout.
    #[inline(always)]
    pub(crate) fn robust_lock<const OFF: usize>(self) -> sys::RobustLock<'a> {
        sys::RobustLock::new(self.at::<sys::RawRobustMutex, OFF>())
    }
}

/// Reads the header with ordinary file I/O, before anything is mapped.
///
/// Positional: the descriptor's offset may be shared with other processes.
fn read_header(file: &File) -> io::Result<Header> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; HEADER_LEN];
    file.read_exact_at(&mut buf, 0)?;
    // SAFETY: Header is repr(C), HEADER_LEN bytes, made of integers and byte
    // arrays only, so any 64 bytes form a valid value; read_unaligned has no
    // alignment requirement.
    Ok(unsafe { std::ptr::read_unaligned(buf.as_ptr().cast::<Header>()) })
}

/// The kind recorded in the file at `path`, if it is a finished mproc segment.
pub(crate) fn peek_kind(path: &Path) -> Option<ObjectKind> {
    let file = sys::no_follow(OpenOptions::new().read(true), true)
        .open(path)
        .ok()?;
    let h = read_header(&file).ok()?;
    (h.magic == MAGIC && h.version == LAYOUT_VERSION)
        .then(|| kind_from_code(h.kind))
        .flatten()
}

/// Reserves `len` bytes so that a full tmpfs is an error now, not a SIGBUS later.
fn allocate(fd: &OwnedFd, len: usize) -> io::Result<()> {
    if len < HEADER_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "segment too small",
        ));
    }
    sys::allocate(fd.as_fd(), len)
}

/// A hidden file name for a segment being built: `.tmp-PID-START-N-R`,
/// naming its creator (pid and start time) so that the file of a creator
/// that died before finishing can be recognised and removed.
fn temp_path(dir: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(
        ".tmp-{}-{}-{}-{}",
        sys::my_pid(),
        sys::my_start(),
        n,
        sys::now_realtime_ns() % 1_000_000_007
    ))
}

/// Removes the hidden files of creators that died mid-way (see
/// [`temp_path`]); files of live creators, and names of any other form,
/// are left alone.
pub(crate) fn remove_dead_temps(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(".tmp-")) else {
            continue;
        };
        let mut parts = rest.split('-').map(str::parse::<u64>);
        let (Some(Ok(pid)), Some(Ok(start))) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(pid) = u32::try_from(pid) else {
            continue;
        };
        // Only regular files we own (symlink_metadata: never follow).
        let ours = e
            .metadata()
            .is_ok_and(|m| m.is_file() && std::os::unix::fs::MetadataExt::uid(&m) == sys::my_uid());
        if ours && !sys::process_alive(pid, start) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Removes a temporary file when dropped.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}
