//! Namespaces: where named objects live.
//!
//! A [`Namespace`] is a private directory (on tmpfs by default). Opening and
//! creating named objects goes through it, so code names an object and the
//! configuration (`MPROC_DIR`) says where it lives.
//!
//! A group namespace is the explicit way to share objects between users: a
//! directory that belongs to a group this process is in, has the setgid bit
//! and is not writable by others (mode `2770`, for instance). Its objects are
//! created `0660` with that group, and objects of other members are opened.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{CreateError, NamespaceError, OpenError, RemoveError};
use crate::local::dir::Dir;
use crate::local::segment;
use crate::local::segment::Place;
use crate::name::validate_name;
use crate::object::ObjectInfo;
use crate::object::ObjectKind;

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
    place: Where,
}

/// Where a namespace's objects live.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Where {
    /// In a directory (shared memory).
    Dir(Dir),
    /// On a server (a `redis://` URL).
    #[cfg(feature = "redis")]
    Redis(Box<crate::redis::Remote>),
}

impl Namespace {
    /// The namespace chosen by the environment: `MPROC_URL` if set (see
    /// [`Namespace::from_url`]), else `MPROC_DIR` if set, else the per-user
    /// default directory ([`Namespace::default_dir`]).
    pub fn from_env() -> Result<Namespace, NamespaceError> {
        if let Some(url) = std::env::var_os("MPROC_URL").filter(|u| !u.is_empty()) {
            let url = url
                .into_string()
                .map_err(|u| NamespaceError::UnsupportedUrl(u.to_string_lossy().into_owned()))?;
            return Namespace::from_url(&url);
        }
        match std::env::var_os("MPROC_DIR") {
            Some(d) if !d.is_empty() => Namespace::dir(PathBuf::from(d)),
            _ => Namespace::dir(Namespace::default_dir()),
        }
    }

    /// A namespace from a URL: `redis://[user:password@]host[:port][/db]`
    /// or `rediss://…` (TLS) for objects on a Redis or Valkey server (with
    /// the `redis` feature), `redis+cluster://host:port[,host:port…]` (or
    /// `rediss+cluster://`) for a Redis Cluster given by seed nodes,
    /// `redis+sentinel://host:port[,host:port…]/MASTER_NAME[/db]` for the
    /// primary that Redis Sentinel names (followed across failovers),
    /// `file:///path` or a plain path for a directory.
    ///
    /// Redis URLs take options after `?`: `prefix=NAME` (key prefix, default
    /// `mproc`; every key of object N is under the hash tag `{NAME:N}`),
    /// `timeout=SECS` (one server round trip, default 10), `lease=SECS`
    /// (lock lease, renewed while held, default 10), `consumer_lease=SECS`
    /// (a silent consumer's items are redelivered after this, default 2),
    /// `strict=1` (an evicting `maxmemory-policy` is an error, not a
    /// warning). Any other option is refused.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let url = format!("file://{}", dir.path().display());
    /// let ns = mproc::Namespace::from_url(&url).unwrap();
    /// assert_eq!(ns.path(), dir.path());
    /// assert!(!ns.is_remote());
    /// ```
    pub fn from_url(url: &str) -> Result<Namespace, NamespaceError> {
        let lower = url.to_ascii_lowercase();
        if let Some(path) = url.strip_prefix("file://") {
            return Namespace::dir(PathBuf::from(path));
        }
        if [
            "redis://",
            "rediss://",
            "redis+cluster://",
            "rediss+cluster://",
            "redis+sentinel://",
        ]
        .iter()
        .any(|s| lower.starts_with(s))
        {
            #[cfg(feature = "redis")]
            {
                let remote = crate::redis::Remote::parse(url)?;
                return Ok(Namespace {
                    place: Where::Redis(Box::new(remote)),
                });
            }
            #[cfg(not(feature = "redis"))]
            return Err(NamespaceError::UnsupportedUrl(format!(
                "{url}: this build of mproc has no Redis support (feature \"redis\")"
            )));
        }
        if url.contains("://") {
            return Err(NamespaceError::UnsupportedUrl(url.to_owned()));
        }
        Namespace::dir(PathBuf::from(url))
    }

    /// Checks the server's configuration against what the backend needs
    /// (`maxmemory-policy noeviction`, on every master of a cluster) and
    /// returns the problems found, in words, for the caller to show as
    /// warnings. With the URL option `strict=1`, a problem is an error
    /// ([`NamespaceError::Misconfigured`]) instead. Always empty for a
    /// directory namespace, and for a server that cannot be reached or
    /// refuses `CONFIG GET` (its failures show at the first operation).
    pub fn check_server(&self) -> Result<Vec<String>, NamespaceError> {
        match &self.place {
            Where::Dir(_) => Ok(Vec::new()),
            #[cfg(feature = "redis")]
            Where::Redis(r) => r.check_config(),
        }
    }

    /// Whether objects of this namespace live on a server (a `redis://` URL).
    pub fn is_remote(&self) -> bool {
        !matches!(self.place, Where::Dir(_))
    }

    /// Where the objects live, for people: the directory, or the server's
    /// URL with any password hidden.
    pub fn location(&self) -> String {
        self.display()
    }

    /// The server of a namespace opened from a `redis://` URL.
    #[cfg(feature = "redis")]
    pub(crate) fn remote(&self) -> Option<&crate::redis::Remote> {
        match &self.place {
            Where::Redis(r) => Some(r),
            Where::Dir(_) => None,
        }
    }

    /// The directory of a directory namespace, for an object of `kind`:
    /// on a server, only Lock, Queue, JoinableQueue and RwLock live.
    #[cfg_attr(not(feature = "redis"), allow(unused_variables))]
    fn local(&self, kind: ObjectKind) -> Result<&Dir, NamespaceError> {
        match &self.place {
            Where::Dir(d) => Ok(d),
            #[cfg(feature = "redis")]
            Where::Redis(r) => Err(NamespaceError::UnsupportedUrl(format!(
                "{}: a {kind} cannot live on a server (Lock, RwLock, Queue and JoinableQueue can)",
                r.display()
            ))),
        }
    }

    /// Where to create the shared-memory object `name` of `kind` (checked).
    pub(crate) fn create_place<'a>(
        &'a self,
        kind: ObjectKind,
        name: &'a str,
    ) -> Result<Place<'a>, CreateError> {
        validate_name(name)?;
        Ok(Place::Named(self.local(kind)?, name))
    }

    /// The directory to open the shared-memory object `name` of `kind`
    /// from (the name checked).
    pub(crate) fn open_dir(&self, kind: ObjectKind, name: &str) -> Result<&Dir, OpenError> {
        validate_name(name)?;
        Ok(self.local(kind)?)
    }

    /// The per-user default: `$XDG_RUNTIME_DIR/mproc` when that variable
    /// names an existing directory (per user, 0700, made by the system, so
    /// no other user can take the name first), else `/dev/shm/mproc-<uid>`
    /// (tmpfs), or `$TMPDIR/mproc-<uid>` where `/dev/shm` does not exist.
    pub fn default_dir() -> PathBuf {
        if let Some(run) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            let run = PathBuf::from(run);
            if run.is_dir() {
                return run.join("mproc");
            }
        }
        let uid = crate::sys::my_uid();
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
    /// reached through a symbolic link is refused, except a group namespace:
    /// a setgid directory of one of this process's groups, not writable by
    /// others, whatever member owns it (see the module documentation).
    pub fn dir(dir: impl Into<PathBuf>) -> Result<Namespace, NamespaceError> {
        let dir = dir.into();
        let io_err = |source: std::io::Error| NamespaceError::Io {
            dir: dir.clone(),
            source: source.into(),
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
        let mode = meta.mode() & 0o7777;
        if mode & 0o2000 != 0 && mode & 0o002 == 0 && crate::sys::in_group(meta.gid()) {
            return Ok(Namespace {
                place: Where::Dir(Dir {
                    path: dir,
                    group: Some(meta.gid()),
                }),
            });
        }
        let me = crate::sys::my_uid();
        if meta.uid() != me {
            return Err(NamespaceError::NotOwner {
                dir,
                owner: meta.uid(),
                me,
            });
        }
        if mode & 0o022 != 0 {
            return Err(NamespaceError::Insecure { dir, mode });
        }
        Ok(Namespace {
            place: Where::Dir(Dir {
                path: dir,
                group: None,
            }),
        })
    }

    /// The group whose members share this namespace, `None` for a private
    /// one.
    pub fn group(&self) -> Option<u32> {
        match &self.place {
            Where::Dir(d) => d.group,
            #[cfg(feature = "redis")]
            Where::Redis(_) => None,
        }
    }

    /// The directory of this namespace (empty for a server namespace).
    pub fn path(&self) -> &Path {
        match &self.place {
            Where::Dir(d) => &d.path,
            #[cfg(feature = "redis")]
            Where::Redis(_) => Path::new(""),
        }
    }

    /// Every object in the namespace, sorted by name.
    pub fn list(&self) -> io::Result<Vec<ObjectInfo>> {
        let dir = match &self.place {
            Where::Dir(d) => &d.path,
            #[cfg(feature = "redis")]
            Where::Redis(r) => return r.list(),
        };
        // Half-made objects of creators that died mid-way are never
        // listed; remove them while here.
        segment::remove_dead_temps(dir);
        let mut out = Vec::new();
        for entry in fs::read_dir(dir)? {
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
        let dir = match &self.place {
            Where::Dir(d) => &d.path,
            #[cfg(feature = "redis")]
            Where::Redis(r) => return r.remove(name),
        };
        validate_name(name)?;
        match fs::remove_file(dir.join(name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(RemoveError::NotFound {
                name: name.to_owned(),
                dir: dir.display().to_string(),
            }),
            Err(source) => Err(RemoveError::Io {
                name: name.to_owned(),
                source: source.into(),
            }),
        }
    }

    /// The directory, for messages.
    pub(crate) fn display(&self) -> String {
        match &self.place {
            Where::Dir(d) => d.display(),
            #[cfg(feature = "redis")]
            Where::Redis(r) => r.display(),
        }
    }
}
