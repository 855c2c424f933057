//! Error types, one per operation family.
//!
//! Every error that can carry back what the caller handed in does so
//! ([`PutError::into_inner`]); none of them needs `T: Debug` to be printed.
//!
//! Every failure of the operating system or of a server has one shape: an
//! [`IoError`] in a variant named `Io` (beside the object's name or
//! directory in the error types whose every variant names one).

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// A failure of the operating system or of a server, as every error type of
/// this crate carries it (in its variant `Io`): the [`io::Error`] itself,
/// shared, so that the errors holding it can be cloned and compared.
///
/// Two `IoError`s are equal when their kinds and messages are.
///
/// ```
/// let e = mproc::IoError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
/// assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
/// assert_eq!(e.clone(), e);
/// ```
#[derive(Clone)]
pub struct IoError(Arc<io::Error>);

impl IoError {
    /// The error's kind.
    pub fn kind(&self) -> io::ErrorKind {
        self.0.kind()
    }

    /// The operating system's error number, when it is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.0.raw_os_error()
    }

    /// The [`io::Error`] itself.
    pub fn get_ref(&self) -> &io::Error {
        &self.0
    }
}

impl From<io::Error> for IoError {
    fn from(e: io::Error) -> IoError {
        IoError(Arc::new(e))
    }
}

impl From<IoError> for io::Error {
    /// The original error when this is its only holder, else one of the same
    /// kind and message.
    fn from(e: IoError) -> io::Error {
        Arc::try_unwrap(e.0)
            .unwrap_or_else(|shared| io::Error::new(shared.kind(), shared.to_string()))
    }
}

impl fmt::Debug for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for IoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for IoError {
    fn eq(&self, other: &IoError) -> bool {
        self.kind() == other.kind() && self.to_string() == other.to_string()
    }
}

impl Eq for IoError {}

/// `From<io::Error>` for error types whose `Io` variant holds an
/// [`IoError`], so that `?` works on the operating system's errors.
macro_rules! from_io {
    ($($t:ident $(<$g:ident>)?),* $(,)?) => {
        $(
            impl$(<$g>)? From<std::io::Error> for $t$(<$g>)? {
                fn from(e: std::io::Error) -> Self {
                    $t::Io(e.into())
                }
            }
        )*
    };
}
pub(crate) use from_io;

from_io!(LockError<G>, GetError, AckError);

use crate::object::ObjectKind;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    #[error("invalid name: the name is empty")]
    Empty,
    /// The name is longer than 128 bytes.
    #[error("invalid name {0:?}: longer than 128 bytes")]
    TooLong(String),
    /// The name starts with a dot.
    #[error("invalid name {0:?}: names may not start with '.'")]
    LeadingDot(String),
    /// The name holds a character outside `[A-Za-z0-9_.-]`.
    #[error("invalid name {name:?}: character {ch:?} is not allowed (use A-Z a-z 0-9 _ . -)")]
    BadChar {
        /// The name as given.
        name: String,
        /// The first offending character.
        ch: char,
    },
}

/// Why a namespace could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NamespaceError {
    /// The directory is owned by another user.
    #[error(
        "namespace directory {dir} is owned by uid {owner}, not by us (uid {me}); \
         choose a directory of your own with MPROC_DIR or `mproc --dir` (or have {dir} removed)"
    )]
    NotOwner {
        /// The directory.
        dir: PathBuf,
        /// Its owner.
        owner: u32,
        /// The effective uid of this process.
        me: u32,
    },
    /// Group or others may write the directory.
    #[error(
        "namespace directory {dir} is writable by group or others (mode {mode:o}); refusing it: \
         choose a directory of your own with MPROC_DIR or `mproc --dir` (or chmod go-w {dir})"
    )]
    Insecure {
        /// The directory.
        dir: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The path exists but is not a directory (or is a symbolic link).
    #[error("namespace path {0} is not a directory")]
    NotADirectory(PathBuf),
    /// The URL's scheme is not supported by this build, or the URL is
    /// malformed (an unknown option, a bad value).
    #[error(
        "unsupported namespace URL {0} (supported: a directory path, file://, redis://, \
         rediss://, redis+cluster://, rediss+cluster://)"
    )]
    UnsupportedUrl(String),
    /// The server's configuration breaks a guarantee of the backend (an
    /// error only with the URL option `strict=1`; see
    /// [`Namespace::check_server`](crate::Namespace::check_server)).
    #[error("server {server}: {problem}")]
    Misconfigured {
        /// The server's URL, password hidden.
        server: String,
        /// What is wrong, in words.
        problem: String,
    },
    /// The directory could not be created or inspected.
    #[error("namespace directory {dir}: {source}")]
    Io {
        /// The directory.
        dir: PathBuf,
        /// The underlying error.
        source: IoError,
    },
}

/// Why an existing object could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The name is invalid.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// The namespace is unusable.
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    /// No object has this name.
    #[error("{kind} '{name}' does not exist ({})", place(.dir))]
    NotFound {
        /// The kind that was asked for.
        kind: ObjectKind,
        /// The name.
        name: String,
        /// The namespace it was looked up in.
        dir: String,
    },
    /// The object exists but is of another kind.
    #[error("'{name}' is a {found}, not a {expected}")]
    WrongKind {
        /// The name.
        name: String,
        /// The kind asked for.
        expected: ObjectKind,
        /// The kind found.
        found: ObjectKind,
    },
    /// The object was made by an incompatible version of mproc.
    #[error("'{name}' has layout version {found}, this mproc understands version {supported}")]
    VersionMismatch {
        /// The name.
        name: String,
        /// The version in the segment.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// The file is not an mproc object, or it is damaged.
    #[error("'{name}' is damaged or not an mproc object: {reason}")]
    Damaged {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The object belongs to someone else.
    #[error("permission denied opening '{name}'")]
    PermissionDenied {
        /// The name.
        name: String,
    },
    /// Another I/O error.
    #[error("cannot open '{name}': {source}")]
    Io {
        /// The name.
        name: String,
        /// The underlying error.
        source: IoError,
    },
}

/// Why a new object could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// The name is invalid.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// The namespace is unusable.
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    /// An object with this name already exists.
    #[error("'{name}' already exists ({})", place(.dir))]
    AlreadyExists {
        /// The name.
        name: String,
        /// The namespace.
        dir: String,
    },
    /// The options are out of range.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// There is not enough space (a full tmpfs, for instance).
    #[error("no space left to create '{name}' ({bytes} bytes)")]
    NoSpace {
        /// The name.
        name: String,
        /// The size that was asked for.
        bytes: u64,
    },
    /// Permission denied.
    #[error("permission denied creating '{name}'")]
    PermissionDenied {
        /// The name.
        name: String,
    },
    /// Another I/O error.
    #[error("cannot create '{name}': {source}")]
    Io {
        /// The name.
        name: String,
        /// The underlying error.
        source: IoError,
    },
}

/// Why `open_or_create` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenOrCreateError {
    /// Opening the existing object failed.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Creating the object failed.
    #[error(transparent)]
    Create(#[from] CreateError),
}

/// Why removing a named object failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoveError {
    /// The name is invalid.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// No object has this name.
    #[error("'{name}' does not exist ({})", place(.dir))]
    NotFound {
        /// The name.
        name: String,
        /// The namespace.
        dir: String,
    },
    /// Another I/O error.
    #[error("cannot remove '{name}': {source}")]
    Io {
        /// The name.
        name: String,
        /// The underlying error.
        source: IoError,
    },
}

/// Why a lock operation did not return a clean guard.
///
/// `lock()` only ever fails with [`LockError::OwnerDied`] (which still hands
/// over the guard) or [`LockError::Io`]; `try_lock`, `lock_timeout` and
/// `lock_deadline` may also report [`LockError::WouldBlock`].
#[non_exhaustive]
pub enum LockError<G> {
    /// The lock is held and the call would have to wait (or its deadline passed).
    WouldBlock,
    /// The lock was acquired, but its previous holder died while holding it:
    /// the data it protects may be half-updated. The guard is inside.
    OwnerDied(OwnerDied<G>),
    /// The backend failed.
    Io(IoError),
}

impl<G> LockError<G> {
    /// Whether the lock was busy / the deadline passed.
    pub fn is_would_block(&self) -> bool {
        matches!(self, LockError::WouldBlock)
    }

    /// The guard, when the lock was in fact acquired (owner died).
    pub fn into_guard(self) -> Option<G> {
        match self {
            LockError::OwnerDied(o) => Some(o.into_inner()),
            _ => None,
        }
    }
}

impl<G> fmt::Debug for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::WouldBlock => f.write_str("WouldBlock"),
            LockError::OwnerDied(o) => f.debug_tuple("OwnerDied").field(o).finish(),
            LockError::Io(e) => f.debug_tuple("Io").field(e).finish(),
        }
    }
}

impl<G> fmt::Display for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::WouldBlock => f.write_str("the lock is held by another owner"),
            LockError::OwnerDied(o) => fmt::Display::fmt(o, f),
            LockError::Io(e) => write!(f, "lock failed: {e}"),
        }
    }
}

impl<G> std::error::Error for LockError<G> {}

/// The lock was acquired, but its previous owner died holding it.
///
/// Like [`std::sync::PoisonError`]: the guard is inside; repair the data the
/// lock protects, then use the guard as usual.
pub struct OwnerDied<G> {
    guard: G,
    lease_expired: bool,
}

impl<G> OwnerDied<G> {
    pub(crate) fn new(guard: G) -> Self {
        OwnerDied {
            guard,
            lease_expired: false,
        }
    }

    /// The previous holder did not die: its lease (a lock on a server) ran
    /// out while its process still ran, or ran on another machine where
    /// its death cannot be seen. It may still be inside its critical
    /// section: writes it makes through fenced cells are refused.
    pub(crate) fn lease_expired(guard: G) -> Self {
        OwnerDied {
            guard,
            lease_expired: true,
        }
    }

    /// Whether the previous holder's lease expired (true) rather than its
    /// process being seen dead (false). Always false for locks in a
    /// directory namespace, which are released only by a holder's death.
    pub fn previous_lease_expired(&self) -> bool {
        self.lease_expired
    }

    /// The guard of the now-held lock.
    pub fn into_inner(self) -> G {
        self.guard
    }

    /// A reference to the guard.
    pub fn get_ref(&self) -> &G {
        &self.guard
    }
}

impl<G> fmt::Debug for OwnerDied<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OwnerDied { .. }")
    }
}

impl<G> fmt::Display for OwnerDied<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lease_expired {
            f.write_str(
                "acquired the lock, but the previous holder's lease expired while it held it \
                 (it never released; it may still be running)",
            )
        } else {
            f.write_str("acquired the lock, but its previous owner died while holding it")
        }
    }
}

impl<G> std::error::Error for OwnerDied<G> {}

/// What went wrong with a `put` (see [`PutError`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PutErrorKind {
    /// The queue is full and the call could not wait (longer).
    Full,
    /// The queue was closed; nothing more may be put.
    Closed,
    /// The message is larger than the queue accepts.
    TooLarge {
        /// The encoded message size in bytes.
        size: usize,
        /// The largest message this queue accepts.
        limit: usize,
    },
    /// The item could not be encoded.
    Encode(String),
    /// The queue's shared state is damaged.
    Damaged(String),
    /// The backend failed.
    Io(IoError),
}

impl fmt::Display for PutErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutErrorKind::Full => f.write_str("the queue is full"),
            PutErrorKind::Closed => f.write_str("the queue is closed"),
            PutErrorKind::TooLarge { size, limit } => write!(
                f,
                "message of {size} bytes exceeds the queue's limit of {limit} bytes (raise max_bytes)"
            ),
            PutErrorKind::Encode(e) => write!(f, "cannot encode the item: {e}"),
            PutErrorKind::Damaged(e) => write!(f, "the queue is damaged: {e}"),
            PutErrorKind::Io(e) => write!(f, "queue backend error: {e}"),
        }
    }
}

/// A `put` failed; the item is handed back.
pub struct PutError<T> {
    item: T,
    kind: PutErrorKind,
}

impl<T> PutError<T> {
    pub(crate) fn new(item: T, kind: PutErrorKind) -> Self {
        PutError { item, kind }
    }

    /// The item that was not put.
    pub fn into_inner(self) -> T {
        self.item
    }

    /// What went wrong.
    pub fn kind(&self) -> &PutErrorKind {
        &self.kind
    }

    /// Whether the queue was full (a non-blocking or timed put).
    pub fn is_full(&self) -> bool {
        self.kind == PutErrorKind::Full
    }

    /// Whether the queue was closed.
    pub fn is_closed(&self) -> bool {
        self.kind == PutErrorKind::Closed
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PutError")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.kind, f)
    }
}

impl<T> std::error::Error for PutError<T> {}

/// A `put_many` stopped before every message was put: how many were (the
/// first ones, in order), and why the rest were not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} ({put} of the messages were put)")]
pub struct PutManyError {
    put: usize,
    kind: PutErrorKind,
}

impl PutManyError {
    pub(crate) fn new(put: usize, kind: PutErrorKind) -> Self {
        PutManyError { put, kind }
    }

    /// How many messages were put: the first `put()` of the call, in order.
    pub fn put(&self) -> usize {
        self.put
    }

    /// Why the rest were not.
    pub fn kind(&self) -> &PutErrorKind {
        &self.kind
    }

    /// Why the rest were not, by value.
    pub fn into_kind(self) -> PutErrorKind {
        self.kind
    }

    /// Whether the queue was full (a non-blocking or timed put).
    pub fn is_full(&self) -> bool {
        self.kind == PutErrorKind::Full
    }

    /// Whether the queue was closed.
    pub fn is_closed(&self) -> bool {
        self.kind == PutErrorKind::Closed
    }
}

/// Why a `get` returned no item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GetError {
    /// The queue is empty and the call could not wait (longer).
    #[error("the queue is empty")]
    Empty,
    /// The queue is closed and every item has been taken: end of stream.
    #[error("the queue is closed and drained")]
    Closed,
    /// An item could not be decoded into the requested type. Nothing is
    /// lost: `bytes` is the message exactly as it was in the queue (a
    /// `get` has taken it; a leased get has also moved it to the
    /// dead-letter queue; `peek` has left it in place).
    #[error("cannot decode the item: {message}")]
    Decode {
        /// Why it could not be decoded.
        message: String,
        /// The message's bytes.
        bytes: Vec<u8>,
    },
    /// The queue's shared state is damaged.
    #[error("the queue is damaged: {0}")]
    Damaged(String),
    /// The backend failed.
    #[error("queue backend error: {0}")]
    Io(IoError),
}

impl GetError {
    /// Whether the queue was empty (a non-blocking or timed get).
    pub fn is_empty(&self) -> bool {
        *self == GetError::Empty
    }

    /// Whether the queue is closed and drained.
    pub fn is_closed(&self) -> bool {
        *self == GetError::Closed
    }
}

/// Why `task_done` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskDoneError {
    /// More `task_done` calls than items put.
    #[error("task_done() called too many times")]
    TooManyCalls,
}

/// Why `join` returned before every task was done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The deadline passed with tasks still unfinished.
    #[error("timed out with {unfinished} unfinished task(s)")]
    Timeout {
        /// Tasks not yet marked done when the deadline passed.
        unfinished: u64,
    },
    /// The backend failed.
    #[error("join failed: {0}")]
    Io(IoError),
}

/// Why an `ack` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    /// The lease is not held (any more): already acknowledged, taken by
    /// another process, or given back after its holder was considered dead.
    #[error("the lease is not held: already acknowledged, or not taken by this process")]
    NotHeld,
    /// The queue's shared state is damaged.
    #[error("the queue is damaged: {0}")]
    Damaged(String),
    /// The backend failed.
    #[error("queue backend error: {0}")]
    Io(IoError),
}

/// Where an object lives, for messages: `dir PATH` for a directory
/// namespace, `on URL` for a server.
fn place(dir: &str) -> String {
    if dir.contains("://") {
        format!("on {dir}")
    } else {
        format!("dir {dir}")
    }
}
