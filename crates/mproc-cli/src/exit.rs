//! The one exit-code table of `mproc`, and the mapping from the library's
//! typed errors to it.
//!
//! Every failure the binary reports is a [`Failure`]: an exit code, a short
//! machine-readable kind (used in `--json` errors) and a one-line message.

use std::fmt;
use std::io;

use mproc::{
    CreateError, GetError, NamespaceError, OpenError, OpenOrCreateError, PutErrorKind, RemoveError,
};

/// Success.
pub(crate) const OK: u8 = 0;
/// Would block, timed out, lock busy, queue full or empty.
pub(crate) const BUSY: u8 = 1;
/// The queue is closed (and, for `get`, drained): end of stream.
pub(crate) const CLOSED: u8 = 3;
/// Bad usage (clap's own 2 is remapped to this).
pub(crate) const USAGE: u8 = 64;
/// Damaged or undecodable data, wrong object kind, version mismatch.
pub(crate) const DATAERR: u8 = 65;
/// The object does not exist.
pub(crate) const NOINPUT: u8 = 66;
/// The command could not be run.
pub(crate) const UNAVAILABLE: u8 = 69;
/// Internal error.
pub(crate) const SOFTWARE: u8 = 70;
/// Cannot create the object or the namespace.
pub(crate) const CANTCREAT: u8 = 73;
/// Temporary failure: the server could not be reached or answered that it
/// is not ready (try again later); a lock's lease was lost.
pub(crate) const TEMPFAIL: u8 = 75;
/// Permission denied.
pub(crate) const NOPERM: u8 = 77;
/// The server's configuration breaks a guarantee (with `?strict=1`).
pub(crate) const CONFIG: u8 = 78;

/// The exit-code table, as printed at the end of `mproc --help`.
pub(crate) const TABLE: &str = "\
Exit status:
  0      success
  1      would block, timed out, lock busy, queue full or empty
         (`mproc lock -E N` chooses another code for a busy lock)
  3      queue closed (get: closed and drained, the end of the stream)
  CMD    `lock` and `consume`: the command's own status, or 128+N when
         it was killed by signal N
  64     usage error
  65     damaged or undecodable data, wrong kind of object, version mismatch
  66     the lock or queue does not exist
  69     the command could not be run
  70     internal error
  73     cannot create the object or the namespace
  75     temporary failure: the server is unreachable, timed out or not
         ready (LOADING, TRYAGAIN, CLUSTERDOWN); `lock`: the lease was lost
         and the command was terminated
  77     permission denied
  78     the server's configuration breaks a guarantee (URL option strict=1)";

/// A failure with its exit code, kind and one-line message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// The process exit code.
    pub(crate) code: u8,
    /// A short identifier for `--json` errors (`not_found`, `timeout`, ...).
    pub(crate) kind: &'static str,
    /// The message, without the `mproc: ` prefix.
    pub(crate) message: String,
}

impl Failure {
    /// A failure with the given code, kind and message.
    pub(crate) fn new(code: u8, kind: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            code,
            kind,
            message: message.into(),
        }
    }

    /// A usage error (exit 64).
    pub(crate) fn usage(message: impl Into<String>) -> Failure {
        Failure::new(USAGE, "usage", message)
    }

    /// An internal error (exit 70).
    pub(crate) fn internal(message: impl Into<String>) -> Failure {
        Failure::new(SOFTWARE, "internal", message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Whether an error of this kind is transient server trouble (refused,
/// reset or timed-out connections, a server not ready): worth retrying.
pub(crate) fn is_transient(kind: io::ErrorKind) -> bool {
    use io::ErrorKind as K;
    matches!(
        kind,
        K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::NotConnected
            | K::BrokenPipe
            | K::TimedOut
            | K::UnexpectedEof
            | K::ResourceBusy
    )
}

/// The exit code and kind for an I/O error that is not otherwise classified.
fn io_code(e: &io::Error, fallback: (u8, &'static str)) -> (u8, &'static str) {
    if is_transient(e.kind()) {
        return (TEMPFAIL, "unavailable");
    }
    match e.kind() {
        io::ErrorKind::PermissionDenied => (NOPERM, "permission_denied"),
        io::ErrorKind::NotFound => (NOINPUT, "not_found"),
        // A damaged lock word (the library's only use of this kind).
        io::ErrorKind::InvalidData => (DATAERR, "damaged"),
        _ => fallback,
    }
}

/// Maps an I/O error to a failure; `fallback` applies to unclassified kinds.
pub(crate) fn from_io(e: &io::Error, fallback: (u8, &'static str), what: &str) -> Failure {
    let (code, kind) = io_code(e, fallback);
    Failure::new(code, kind, format!("{what}: {e}"))
}

/// Maps a namespace error.
pub(crate) fn from_namespace(e: &NamespaceError) -> Failure {
    let (code, kind) = match e {
        NamespaceError::NotOwner { .. } | NamespaceError::Insecure { .. } => {
            (NOPERM, "permission_denied")
        }
        NamespaceError::NotADirectory(_) => (CANTCREAT, "cannot_create"),
        NamespaceError::UnsupportedUrl(_) => (USAGE, "usage"),
        NamespaceError::Misconfigured { .. } => (CONFIG, "misconfigured"),
        NamespaceError::Io { source, .. } => {
            io_code(source.get_ref(), (CANTCREAT, "cannot_create"))
        }
        _ => (SOFTWARE, "internal"),
    };
    Failure::new(code, kind, e.to_string())
}

/// Maps an error opening an existing object.
pub(crate) fn from_open(e: &OpenError) -> Failure {
    let (code, kind) = match e {
        OpenError::InvalidName(_) => (USAGE, "usage"),
        OpenError::Namespace(n) => return from_namespace(n),
        OpenError::NotFound { .. } => (NOINPUT, "not_found"),
        OpenError::WrongKind { .. } => (DATAERR, "wrong_kind"),
        OpenError::VersionMismatch { .. } => (DATAERR, "version_mismatch"),
        OpenError::Damaged { .. } => (DATAERR, "damaged"),
        OpenError::PermissionDenied { .. } => (NOPERM, "permission_denied"),
        OpenError::Io { source, .. } => io_code(source.get_ref(), (SOFTWARE, "internal")),
        _ => (SOFTWARE, "internal"),
    };
    Failure::new(code, kind, e.to_string())
}

/// Maps an error creating a new object.
pub(crate) fn from_create(e: &CreateError) -> Failure {
    let (code, kind) = match e {
        CreateError::InvalidName(_) | CreateError::InvalidOptions(_) => (USAGE, "usage"),
        CreateError::Namespace(n) => return from_namespace(n),
        CreateError::AlreadyExists { .. } => (CANTCREAT, "already_exists"),
        CreateError::NoSpace { .. } => (CANTCREAT, "cannot_create"),
        CreateError::PermissionDenied { .. } => (NOPERM, "permission_denied"),
        CreateError::Io { source, .. } => io_code(source.get_ref(), (CANTCREAT, "cannot_create")),
        _ => (CANTCREAT, "cannot_create"),
    };
    Failure::new(code, kind, e.to_string())
}

/// Maps an error of `open_or_create`.
pub(crate) fn from_open_or_create(e: &OpenOrCreateError) -> Failure {
    match e {
        OpenOrCreateError::Open(o) => from_open(o),
        OpenOrCreateError::Create(c) => from_create(c),
        _ => Failure::internal(e.to_string()),
    }
}

/// Maps an error removing an object.
pub(crate) fn from_remove(e: &RemoveError) -> Failure {
    let (code, kind) = match e {
        RemoveError::InvalidName(_) => (USAGE, "usage"),
        RemoveError::NotFound { .. } => (NOINPUT, "not_found"),
        RemoveError::Io { source, .. } => io_code(source.get_ref(), (SOFTWARE, "internal")),
        _ => (SOFTWARE, "internal"),
    };
    Failure::new(code, kind, e.to_string())
}

/// Maps a failed `get` (or `peek`) on queue `name`. `waited` describes how
/// long the call waited, for the timeout message.
pub(crate) fn from_get(e: &GetError, name: &str, waited: &str) -> Failure {
    match e {
        GetError::Empty => Failure::new(
            BUSY,
            if waited.is_empty() {
                "empty"
            } else {
                "timeout"
            },
            format!("queue '{name}' is empty{waited}"),
        ),
        GetError::Closed => Failure::new(
            CLOSED,
            "closed",
            format!("queue '{name}' is closed and drained"),
        ),
        GetError::Decode { .. } => {
            Failure::new(DATAERR, "undecodable", format!("queue '{name}': {e}"))
        }
        GetError::Damaged(_) => Failure::new(DATAERR, "damaged", format!("queue '{name}': {e}")),
        GetError::Io(err) if is_transient(err.kind()) => {
            Failure::new(TEMPFAIL, "unavailable", format!("queue '{name}': {err}"))
        }
        _ => Failure::internal(format!("queue '{name}': {e}")),
    }
}

/// Maps a failed `put` on queue `name`. `waited` as for [`from_get`].
pub(crate) fn from_put(e: &PutErrorKind, name: &str, waited: &str) -> Failure {
    match e {
        PutErrorKind::Full => Failure::new(
            BUSY,
            if waited.is_empty() { "full" } else { "timeout" },
            format!("queue '{name}' is full{waited}"),
        ),
        PutErrorKind::Closed => Failure::new(CLOSED, "closed", format!("queue '{name}' is closed")),
        PutErrorKind::TooLarge { size, limit } => Failure::new(
            DATAERR,
            "too_large",
            format!(
                "queue '{name}': a message of {size} bytes exceeds its limit of {limit} bytes \
                 (create the queue with a larger --max-bytes)"
            ),
        ),
        PutErrorKind::Encode(_) => {
            Failure::new(DATAERR, "too_large", format!("queue '{name}': {e}"))
        }
        PutErrorKind::Damaged(_) => {
            Failure::new(DATAERR, "damaged", format!("queue '{name}': {e}"))
        }
        PutErrorKind::Io(err) if is_transient(err.kind()) => {
            Failure::new(TEMPFAIL, "unavailable", format!("queue '{name}': {err}"))
        }
        _ => Failure::internal(format!("queue '{name}': {e}")),
    }
}

/// The exit code for a child that ended with `status`: its own code, or
/// 128 + the signal that killed it.
pub(crate) fn child_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    if let Some(c) = status.code() {
        return (c & 0xff) as u8;
    }
    match status.signal() {
        Some(s) => (128 + s).clamp(0, 255) as u8,
        None => SOFTWARE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_is_66_with_the_library_message() {
        let e = OpenError::NotFound {
            kind: mproc::ObjectKind::Queue,
            name: "jobs".into(),
            dir: "/dev/shm/mproc-0".into(),
        };
        let f = from_open(&e);
        assert_eq!(f.code, NOINPUT);
        assert_eq!(
            f.message,
            "queue 'jobs' does not exist (dir /dev/shm/mproc-0)"
        );
    }

    #[test]
    fn queue_errors_map_to_the_table() {
        assert_eq!(from_get(&GetError::Empty, "q", "").code, BUSY);
        assert_eq!(from_get(&GetError::Closed, "q", "").code, CLOSED);
        assert_eq!(
            from_get(
                &GetError::Decode {
                    message: "x".into(),
                    bytes: vec![]
                },
                "q",
                ""
            )
            .code,
            DATAERR
        );
        assert_eq!(from_put(&PutErrorKind::Full, "q", "").code, BUSY);
        assert_eq!(from_put(&PutErrorKind::Closed, "q", "").code, CLOSED);
        let big = PutErrorKind::TooLarge { size: 9, limit: 8 };
        let f = from_put(&big, "q", "");
        assert_eq!(f.code, DATAERR);
        assert!(f.message.contains("--max-bytes"), "{}", f.message);
        let down =
            GetError::Io(io::Error::new(io::ErrorKind::TimedOut, "timed out after 10 s").into());
        let f = from_get(&down, "q", "");
        assert_eq!(
            (f.code, f.message.as_str()),
            (TEMPFAIL, "queue 'q': timed out after 10 s")
        );
        let busy =
            PutErrorKind::Io(io::Error::new(io::ErrorKind::ResourceBusy, "CLUSTERDOWN").into());
        assert_eq!(from_put(&busy, "q", "").code, TEMPFAIL);
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(
            from_io(&refused, (SOFTWARE, "internal"), "x").code,
            TEMPFAIL
        );
        let other = GetError::Io(io::Error::other("ERR").into());
        assert_eq!(from_get(&other, "q", "").code, SOFTWARE);
    }

    #[test]
    fn create_errors() {
        let e = CreateError::AlreadyExists {
            name: "q".into(),
            dir: "/d".into(),
        };
        assert_eq!(from_create(&e).code, CANTCREAT);
        let e = CreateError::PermissionDenied { name: "q".into() };
        assert_eq!(from_create(&e).code, NOPERM);
    }
}
