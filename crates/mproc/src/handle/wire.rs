//! The wire form of handles, and the descriptors they travel with: what a
//! handle becomes when it crosses to another process, and how the receiver
//! adopts an inherited descriptor. A leaf that the backends' flavours, the
//! pipe and the process spawner share.

use std::cell::RefCell;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The wire form of a handle.
#[derive(Serialize, Deserialize)]
pub(crate) enum Repr {
    Named {
        dir: PathBuf,
        name: String,
    },
    /// An anonymous object: the descriptor number the receiver inherits,
    /// and the inode of the memory file behind it, so that a number that
    /// names some other file in the receiver is refused.
    Fd(RawFd, u64),
    /// An object on a server: the namespace URL and the name.
    #[cfg(feature = "redis")]
    Remote {
        url: String,
        name: String,
    },
}

thread_local! {
    static COLLECTOR: RefCell<Option<Vec<RawFd>>> = const { RefCell::new(None) };
}

/// Runs `f`, returning with its result every descriptor that handles
/// serialised during `f` need the receiving process to inherit.
pub(crate) fn collect_fds<R>(f: impl FnOnce() -> R) -> (R, Vec<RawFd>) {
    let outer = COLLECTOR.with(|c| c.borrow_mut().replace(Vec::new()));
    let r = f();
    let fds = COLLECTOR.with(|c| std::mem::replace(&mut *c.borrow_mut(), outer));
    (r, fds.unwrap_or_default())
}

/// Descriptors inherited for the handles in this child's arguments and not
/// yet adopted.
static INHERITED: std::sync::Mutex<Vec<RawFd>> = std::sync::Mutex::new(Vec::new());

/// Records the descriptors this process (a spawned child) inherited for the
/// handles in its arguments: [`adopt_fd`] takes ownership of each once.
pub(crate) fn set_inherited(fds: Vec<RawFd>) {
    *INHERITED.lock().unwrap_or_else(|p| p.into_inner()) = fds;
}

/// Whether `fd` was inherited for a handle in this process's arguments and
/// not yet claimed; a `true` hands its ownership to the caller (once).
fn take_inherited_fd(fd: RawFd) -> bool {
    let mut v = INHERITED.lock().unwrap_or_else(|p| p.into_inner());
    match v.iter().position(|&x| x == fd) {
        Some(i) => {
            v.swap_remove(i);
            true
        }
        None => false,
    }
}

/// Records a descriptor that must be inherited (no-op outside `collect_fds`).
pub(crate) fn note_fd(fd: RawFd) {
    COLLECTOR.with(|c| {
        if let Some(v) = c.borrow_mut().as_mut() {
            if !v.contains(&fd) {
                v.push(fd);
            }
        }
    });
}

/// The inode of the file (or socket) behind `fd`.
pub(crate) fn inode(fd: BorrowedFd<'_>) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let file = std::fs::File::from(fd.try_clone_to_owned()?);
    Ok(file.metadata()?.ino())
}

/// Takes ownership of an inherited descriptor (or, if this process already
/// claimed it for another handle, a duplicate), after checking that it is
/// the file (or socket) that was sent: the one with inode `ino`.
pub(crate) fn adopt_fd<E: serde::de::Error>(fd: RawFd, ino: u64) -> Result<OwnedFd, E> {
    if fd < 0 {
        return Err(E::custom("negative descriptor"));
    }
    // SAFETY: the descriptor is only borrowed for the duration of the fstat
    // and dup calls; if it is not open, they fail with EBADF and we report it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    match inode(borrowed) {
        Ok(found) if found == ino => {}
        Ok(_) => {
            return Err(E::custom(format!(
                "descriptor {fd} is not the object that was sent (not inherited here)"
            )))
        }
        Err(e) => return Err(E::custom(format!("descriptor {fd} was not inherited: {e}"))),
    }
    if take_inherited_fd(fd) {
        // SAFETY: the spawner passed this descriptor to this process for its
        // handles, and `take_inherited_fd` hands its ownership out once.
        return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    borrowed
        .try_clone_to_owned()
        .map_err(|e| E::custom(format!("descriptor {fd}: {e}")))
}
