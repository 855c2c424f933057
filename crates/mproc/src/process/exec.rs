//! Starting a child by re-executing the current binary
//! ([`StartMethod::Spawn`](super::StartMethod::Spawn)): the arguments go
//! encoded into a memfd, the function is named by its offset, and the
//! `MPROC_CHILD` marker in the environment tells the child (`child.rs`)
//! which descriptors it inherits — exactly those, nothing else.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Seek, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::builder::ProcessBuilder;
use super::erased::erase;
use super::error::SpawnError;
use super::parent::Process;
use super::ENV_CHILD;
use crate::handle::collect_fds;

/// Runs `f(args)` in a re-execution of the current binary.
pub(super) fn spawn<A, R>(
    opts: ProcessBuilder,
    args: A,
    f: fn(A) -> R,
) -> Result<Process<R>, SpawnError>
where
    A: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    let (encoded, fds) = collect_fds(|| postcard::to_allocvec(&args));
    let encoded = encoded.map_err(|e| SpawnError::Encode(e.to_string()))?;
    let (tramp, f) = erase(f);
    let args_fd = crate::sys::memfd(c"mproc-args")?;
    {
        // The duplicate shares the file offset: rewind it for the child.
        let mut f = File::from(args_fd.try_clone()?);
        f.write_all(&encoded)?;
        f.seek(std::io::SeekFrom::Start(0))?;
    }
    let (result_r, result_w) = crate::sys::pipe()?;
    let exe = std::env::current_exe()?;
    let id = exe_identity(&exe)?;
    let handles: Vec<String> = fds.iter().map(|fd| fd.to_string()).collect();
    let marker = format!(
        "1:{id}:{}:{}:{}:{}:{}",
        tramp,
        f,
        args_fd.as_raw_fd(),
        result_w.as_raw_fd(),
        handles.join(",")
    );
    let mut cmd = Command::new(&exe);
    cmd.arg0(OsString::from(
        opts.name.as_deref().unwrap_or("mproc-child"),
    ))
    .env(ENV_CHILD, marker);
    if let Some(n) = &opts.name {
        cmd.env("MPROC_PROCESS_NAME", n);
    }
    if let Some(s) = opts.stdin {
        cmd.stdin(s);
    }
    if let Some(s) = opts.stdout {
        cmd.stdout(s);
    }
    if let Some(s) = opts.stderr {
        cmd.stderr(s);
    }
    let mut inherit: Vec<RawFd> = fds;
    inherit.push(args_fd.as_raw_fd());
    inherit.push(result_w.as_raw_fd());
    let daemon = opts.daemon;
    let parent = crate::sys::my_pid();
    // SAFETY: the closure runs in the forked child before exec and calls
    // only async-signal-safe functions (`set_cloexec` is one fcntl,
    // `die_with_parent` a prctl and a getppid) on plain integers
    // captured by value; it allocates nothing until it fails.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &inherit {
                crate::sys::set_cloexec(fd, false)?;
            }
            if daemon && !crate::sys::die_with_parent(parent) {
                return Err(io::Error::other("parent exited"));
            }
            Ok(())
        })
    };
    let child = cmd.spawn()?;
    // Only now: the handles' descriptors had to stay open until the
    // child inherited them (a pipe end passed by value is closed here,
    // so that the child holds the only copy).
    drop(args);
    drop(result_w);
    drop(args_fd);
    // The pid is waited for directly from now on (dropping a `Child`
    // neither waits nor kills).
    let pid = child.id();
    drop(child);
    Ok(Process::started(pid, File::from(result_r), daemon))
}

/// The identity of an executable file (device, inode, modification time):
/// a child refuses a marker made for another executable.
pub(super) fn exe_identity(exe: &std::path::Path) -> io::Result<String> {
    let m = std::fs::metadata(exe)?;
    Ok(format!("{}.{}.{}", m.dev(), m.ino(), m.mtime()))
}
