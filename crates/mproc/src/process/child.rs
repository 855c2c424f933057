//! The child side of a spawn: the constructor registered in `.init_array`
//! (see `mod.rs`) runs before `main`; if the `MPROC_CHILD` marker is set it
//! checks it was made for this executable, takes over the handed-down
//! descriptors, runs the function and sends the [`Outcome`] back, and the
//! process exits without ever reaching `main`.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, RawFd};

use super::erased::call_erased;
use super::exec::exe_identity;
use super::outcome::{panic_message, Outcome};
use super::ENV_CHILD;
use crate::handle::set_inherited;

/// Runs before `main`: if this process is a spawned child, do its work and exit.
pub(super) extern "C" fn child_entry() {
    let Some(marker) = std::env::var_os(ENV_CHILD) else {
        return;
    };
    std::env::remove_var(ENV_CHILD);
    let code = run_child(&marker.to_string_lossy());
    let _ = io::stdout().flush();
    std::process::exit(code);
}

fn run_child(marker: &str) -> i32 {
    let parts: Vec<&str> = marker.split(':').collect();
    let [version, id, tramp, f, args_fd, result_fd, handles] = parts[..] else {
        eprintln!("mproc: malformed {ENV_CHILD} marker");
        return 70;
    };
    let parse = |s: &str| s.parse::<usize>().ok();
    let (Some(tramp), Some(f), Some(args_fd), Some(result_fd)) = (
        parse(tramp),
        parse(f),
        args_fd.parse::<RawFd>().ok(),
        result_fd.parse::<RawFd>().ok(),
    ) else {
        eprintln!("mproc: malformed {ENV_CHILD} marker");
        return 70;
    };
    let same_exe = std::env::current_exe()
        .and_then(|e| exe_identity(&e))
        .is_ok_and(|me| me == id);
    if version != "1" || !same_exe || args_fd < 3 || result_fd < 3 {
        eprintln!("mproc: {ENV_CHILD} was set for another executable; refusing to run");
        return 70;
    }
    let handles: Option<Vec<RawFd>> = if handles.is_empty() {
        Some(Vec::new())
    } else {
        handles.split(',').map(|s| s.parse().ok()).collect()
    };
    let Some(handles) = handles else {
        eprintln!("mproc: malformed {ENV_CHILD} marker");
        return 70;
    };
    // The handles' descriptors lost close-on-exec for us; they must not leak
    // further into processes this one starts.
    for &fd in &handles {
        // An unknown number fails with EBADF and is ignored.
        let _ = crate::sys::set_cloexec(fd, true);
    }
    set_inherited(handles);
    // Like the Rust runtime does before `main` (which a child never reaches):
    // writing to a closed pipe is an error, not a fatal signal.
    crate::sys::ignore_sigpipe();
    // SAFETY: the spawner passed these two descriptors, inherited, for this
    // child alone; nothing else in this process owns them.
    let (args_file, result_file) =
        unsafe { (File::from_raw_fd(args_fd), File::from_raw_fd(result_fd)) };
    // Grandchildren must not inherit the result pipe, or the parent would
    // not see end-of-file when we exit.
    let _ = crate::sys::set_cloexec(result_fd, true);
    let mut args = Vec::new();
    let outcome = match (&args_file).read_to_end(&mut args) {
        Err(e) => Outcome::Failed(format!("cannot read the arguments: {e}")),
        Ok(_) => {
            drop(args_file);
            // SAFETY: the marker was produced by `spawn` in this same
            // executable (identity checked above) from `erase::<A, R>`.
            match std::panic::catch_unwind(|| unsafe { call_erased(tramp, f, &args) }) {
                Ok(Ok(bytes)) => Outcome::Done(bytes),
                Ok(Err(m)) => Outcome::Failed(m),
                Err(payload) => Outcome::Panicked(panic_message(&*payload)),
            }
        }
    };
    let code = outcome.exit_status();
    if let Ok(bytes) = postcard::to_allocvec(&outcome) {
        let _ = (&result_file).write_all(&bytes);
    }
    code
}
