//! How a constructor finds its object (anonymous, by inherited descriptor, or
//! by name in a namespace) and how a handle is used in a forked child.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;

use mproc::{Namespace, SharedFd};
use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::errors::os_err;
use crate::sys::my_pid;

/// The namespace at `location`: a directory, a `redis://` (or `file://`)
/// URL, or the environment's (`MPROC_URL`, `MPROC_DIR`, the default) when
/// `None`.
fn namespace(location: Option<&str>) -> PyResult<Namespace> {
    match location {
        None => Namespace::from_env(),
        Some(l) if l.contains("://") => Namespace::from_url(l),
        Some(l) => Namespace::dir(l),
    }
    .map_err(os_err)
}

/// How a constructor finds its object.
pub(crate) enum Source<'a> {
    Anonymous,
    Fd(i32),
    Named {
        ns: Box<Namespace>,
        name: &'a str,
        mode: &'a str,
    },
}

pub(crate) fn source<'a>(
    name: Option<&'a str>,
    namespace_: Option<&str>,
    mode: &'a str,
    fd: Option<i32>,
) -> PyResult<Source<'a>> {
    match (name, fd) {
        (Some(_), Some(_)) => Err(PyTypeError::new_err("give a name or an fd, not both")),
        (None, Some(fd)) => Ok(Source::Fd(fd)),
        (None, None) => Ok(Source::Anonymous),
        (Some(name), None) => {
            if !matches!(mode, "open" | "create" | "open_or_create") {
                return Err(PyValueError::new_err(
                    "mode must be 'open', 'create' or 'open_or_create'",
                ));
            }
            Ok(Source::Named {
                ns: Box::new(namespace(namespace_)?),
                name,
                mode,
            })
        }
    }
}

/// A duplicate of descriptor `fd` of this process, for a handle to keep.
pub(crate) fn dup_fd(fd: i32) -> PyResult<OwnedFd> {
    if fd < 0 {
        return Err(PyValueError::new_err("negative file descriptor"));
    }
    // SAFETY: the descriptor is only borrowed for the duplicating `fcntl`;
    // if it is not open, that call fails with EBADF, which is reported.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    borrowed.try_clone_to_owned().map_err(os_err)
}

/// Builds a handle from a [`Source`], with the kind's constructors.
macro_rules! make {
    ($src:expr, anon: $anon:expr, fd: $from_fd:expr, open: $open:expr, create: $create:expr, ooc: $ooc:expr) => {
        match $src {
            $crate::handle::Source::Anonymous => $anon.map_err($crate::errors::create_err),
            $crate::handle::Source::Fd(fd) => {
                $from_fd($crate::handle::dup_fd(fd)?).map_err($crate::errors::open_err)
            }
            $crate::handle::Source::Named { ns, name, mode } => match mode {
                "open" => $open(&ns, name).map_err($crate::errors::open_err),
                "create" => $create(&ns, name).map_err($crate::errors::create_err),
                _ => $ooc(&ns, name).map_err($crate::errors::open_or_create_err),
            },
        }
    };
}
pub(crate) use make;

/// Where a named object lives, as given (a server URL keeps its
/// credentials), so that a pickled handle opens the same object.
pub(crate) fn location_of(
    name: Option<&str>,
    namespace_: Option<&str>,
) -> PyResult<Option<String>> {
    if name.is_none() {
        return Ok(None);
    }
    if let Some(l) = namespace_ {
        return Ok(Some(l.to_owned()));
    }
    match std::env::var("MPROC_URL") {
        Ok(url) if !url.is_empty() => Ok(Some(url)),
        _ => Ok(Some(namespace(None)?.location())),
    }
}

pub(crate) fn fd_of<T: SharedFd>(h: &T) -> Option<i32> {
    h.shared_fd().map(|fd| fd.as_raw_fd())
}

/// Reopens a server object in this process.
pub(crate) type Reopen<T> = Box<dyn Fn() -> Result<T, String> + Send + Sync>;

/// A handle, and for an object on a server, the handle's copy in a forked
/// child: a child must not share its parent's server connections, so it
/// opens the object again (by namespace and name) on first use.
/// Shared-memory handles need no such thing and are used as they are.
pub(crate) struct PerProcess<T> {
    pub(crate) own: T,
    pid: u32,
    reopen: Option<Reopen<T>>,
    child: Mutex<Option<(u32, T)>>,
}

impl<T: Clone> PerProcess<T> {
    pub(crate) fn new(own: T, reopen: Option<Reopen<T>>) -> Self {
        PerProcess {
            own,
            pid: my_pid(),
            reopen,
            child: Mutex::new(None),
        }
    }

    /// The handle to use in this process.
    pub(crate) fn get(&self) -> PyResult<std::borrow::Cow<'_, T>> {
        use std::borrow::Cow;
        let Some(reopen) = &self.reopen else {
            return Ok(Cow::Borrowed(&self.own));
        };
        let me = my_pid();
        if me == self.pid {
            return Ok(Cow::Borrowed(&self.own));
        }
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((pid, h)) = &*child {
            if *pid == me {
                return Ok(Cow::Owned(h.clone()));
            }
        }
        let h = reopen().map_err(PyOSError::new_err)?;
        *child = Some((me, h.clone()));
        Ok(Cow::Owned(h))
    }
}

/// How to reopen a named object of a server namespace in a forked child;
/// `None` for shared-memory objects.
pub(crate) fn reopener<T: 'static>(
    name: Option<&str>,
    location: Option<&str>,
    open: fn(&Namespace, &str) -> Result<T, mproc::OpenError>,
) -> PyResult<Option<Reopen<T>>> {
    let (Some(name), Some(location)) = (name, location) else {
        return Ok(None);
    };
    if !namespace(Some(location))?.is_remote() {
        return Ok(None);
    }
    let (name, location) = (name.to_owned(), location.to_owned());
    Ok(Some(Box::new(move || {
        let ns = Namespace::from_url(&location).map_err(|e| e.to_string())?;
        open(&ns, &name).map_err(|e| e.to_string())
    })))
}
