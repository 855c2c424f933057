//! Names on the server: the hash tag every key of one object shares, the
//! object kind recorded in its meta hash, and random tokens (lock holders,
//! consumers).

use std::io;

use super::Remote;
use crate::error::{CreateError, OpenError};
use crate::object::ObjectKind;

impl Remote {
    /// The hash tag shared by every key of object `name`.
    pub(super) fn tag(&self, name: &str) -> String {
        format!("{{{}:{}}}", self.prefix, name)
    }
}

/// The object kind recorded in a meta hash.
pub(super) fn kind_of(s: &str) -> Option<ObjectKind> {
    match s {
        "lock" => Some(ObjectKind::Lock),
        "queue" => Some(ObjectKind::Queue),
        "rwlock" => Some(ObjectKind::RwLock),
        _ => None,
    }
}

/// Checks the kind recorded in the meta hash of object `name` (`None`: no
/// such object) against `expected`.
pub(super) fn check_kind(
    remote: &Remote,
    name: &str,
    recorded: Option<&str>,
    expected: ObjectKind,
) -> Result<(), OpenError> {
    let Some(recorded) = recorded else {
        return Err(OpenError::NotFound {
            kind: expected,
            name: name.to_owned(),
            dir: remote.display(),
        });
    };
    match kind_of(recorded) {
        Some(found) if found == expected => Ok(()),
        Some(found) => Err(OpenError::WrongKind {
            name: name.to_owned(),
            expected,
            found,
        }),
        None => Err(OpenError::Damaged {
            name: name.to_owned(),
            reason: format!("unknown kind {recorded:?}"),
        }),
    }
}

/// A server failure creating object `name`.
pub(super) fn create_io(name: &str) -> impl Fn(io::Error) -> CreateError + Copy + '_ {
    move |source| CreateError::Io {
        name: name.to_owned(),
        source: source.into(),
    }
}

/// A server failure opening object `name`.
pub(super) fn open_io(name: &str) -> impl Fn(io::Error) -> OpenError + Copy + '_ {
    move |source| OpenError::Io {
        name: name.to_owned(),
        source: source.into(),
    }
}

/// The error of an operation on a lock whose keys are gone from the server.
pub(super) fn lock_gone(name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("lock '{name}' no longer exists on the server (removed, or lost in a restart)"),
    )
}

/// A random hex token of 16 bytes, suffixed with the process id.
pub(super) fn token() -> String {
    let mut buf = [0u8; 16];
    let mut filled = 0;
    while filled < buf.len() {
        match crate::sys::random_bytes(&mut buf[filled..]) {
            Ok(n) if n > 0 => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            _ => {
                // No entropy source: fall back to the clock, which with
                // the pid that follows is still unique.
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                buf.copy_from_slice(&t.to_le_bytes());
                break;
            }
        }
    }
    let mut s = String::with_capacity(48);
    for b in buf {
        s.push_str(&format!("{b:02x}"));
    }
    s.push('-');
    s.push_str(&std::process::id().to_string());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ() {
        assert_ne!(token(), token());
    }
}
