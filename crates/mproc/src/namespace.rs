//! Namespaces: where named objects live.
//!
//! A [`Namespace`] is a private directory (on tmpfs by default). Opening and
//! creating named objects goes through it, so code names an object and the
//! configuration (`MPROC_DIR`) says where it lives.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{NamespaceError, ObjectKind, RemoveError};
use crate::local::segment;
use crate::name::validate_name;

/// Where named objects live.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let ns = mproc::Namespace::dir(dir.path()).unwrap();
/// let lock = mproc::Lock::create_in(&ns, "printer").unwrap();
/// assert_eq!(ns.list().unwrap()[0].name, "printer");
/// # drop(lock);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    dir: PathBuf,
}

/// One entry of [`Namespace::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectInfo {
    /// The object's name.
    pub name: String,
    /// Its kind, or `None` when the file is not a readable mproc object.
    pub kind: Option<ObjectKind>,
}

impl Namespace {
    /// The namespace chosen by the environment: `MPROC_DIR` if set, else the
    /// per-user default directory ([`Namespace::default_dir`]).
    pub fn from_env() -> Result<Namespace, NamespaceError> {
        match std::env::var_os("MPROC_DIR") {
            Some(d) if !d.is_empty() => Namespace::dir(PathBuf::from(d)),
            _ => Namespace::dir(Namespace::default_dir()),
        }
    }

    /// The per-user default: `/dev/shm/mproc-<uid>` (tmpfs), or
    /// `$TMPDIR/mproc-<uid>` where `/dev/shm` does not exist.
    pub fn default_dir() -> PathBuf {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        base.join(format!("mproc-{uid}"))
    }

    /// A namespace in `dir`, created with mode 0700 if missing.
    ///
    /// A directory owned by another user, writable by group or others, or
    /// reached through a symbolic link is refused.
    pub fn dir(dir: impl Into<PathBuf>) -> Result<Namespace, NamespaceError> {
        let dir = dir.into();
        let io_err = |source| NamespaceError::Io {
            dir: dir.clone(),
            source,
        };
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err(e)),
        }
        let meta = fs::symlink_metadata(&dir).map_err(io_err)?;
        if !meta.is_dir() {
            return Err(NamespaceError::NotADirectory(dir));
        }
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return Err(NamespaceError::NotOwner {
                dir,
                owner: meta.uid(),
                me,
            });
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(NamespaceError::Insecure { dir, mode });
        }
        Ok(Namespace { dir })
    }

    /// The directory of this namespace.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Every object in the namespace, sorted by name.
    pub fn list(&self) -> io::Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if validate_name(&name).is_err() || !entry.file_type()?.is_file() {
                continue;
            }
            let kind = segment::peek_kind(&entry.path());
            out.push(ObjectInfo { name, kind });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes a named object. Processes that have it open keep using it;
    /// later opens of the name fail (or find a new object of that name).
    pub fn remove(&self, name: &str) -> Result<(), RemoveError> {
        validate_name(name)?;
        match fs::remove_file(self.dir.join(name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(RemoveError::NotFound {
                name: name.to_owned(),
                dir: self.dir.display().to_string(),
            }),
            Err(source) => Err(RemoveError::Io {
                name: name.to_owned(),
                source,
            }),
        }
    }

    /// The directory, for messages.
    pub(crate) fn display(&self) -> String {
        self.dir.display().to_string()
    }
}
