//! Worker processes that re-execute this binary: the private temporary
//! directory a run works in, the command that starts a worker (killed if
//! its starter dies), and the set of children reaped on every path. Used by
//! `demo`, `bench` and `torture`.
//!
//! A leaf: it names no command module.

use std::path::Path;
use std::process::{Child, Command};

use crate::exit::{self, Failure};

/// A temporary directory for a run (a demo, `bench`, `torture`), holding
/// its namespace and files: on tmpfs (`/dev/shm`) where there is one, like
/// the default namespace.
///
/// Every run's directory lives in one private parent, `mproc-runs-UID`
/// (mode 0700), and is named after its creator's pid and start time
/// (`PREFIX-PID-START-XXXXXX`, mode 0700): a run killed before it could
/// remove its directory leaves it there, and the next run removes the
/// directories of creators that are gone.
pub(crate) fn temp_dir(prefix: &str) -> Result<tempfile::TempDir, Failure> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let cant = |e: std::io::Error| {
        exit::from_io(
            &e,
            (exit::CANTCREAT, "cannot_create"),
            "temporary directory",
        )
    };
    let me = mproc::ProcessId::current();
    // The effective uid: the owner of /proc/self.
    let uid = std::fs::metadata("/proc/self").map_err(cant)?.uid();
    let runs = base.join(format!("mproc-runs-{uid}"));
    match std::fs::DirBuilder::new().mode(0o700).create(&runs) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(cant(e)),
    }
    let meta = std::fs::symlink_metadata(&runs).map_err(cant)?;
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
        return Err(Failure::new(
            exit::NOPERM,
            "permission_denied",
            format!(
                "{} is not a private directory of this user; remove it, or set TMPDIR",
                runs.display()
            ),
        ));
    }
    remove_dead_runs(&runs);
    tempfile::Builder::new()
        .prefix(&format!("{prefix}{}-{}-", me.pid, me.start))
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(&runs)
        .map_err(cant)
}

/// Removes the run directories (see [`temp_dir`]) whose creators are gone.
fn remove_dead_runs(runs: &Path) {
    let Ok(entries) = std::fs::read_dir(runs) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        // PREFIX-PID-START-RANDOM: the pid and start are the two numbers
        // before the random suffix.
        let mut parts = name.rsplit('-').skip(1);
        let (Some(start), Some(pid)) = (parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(start), Ok(pid)) = (start.parse(), pid.parse()) else {
            continue;
        };
        if !(mproc::ProcessId { pid, start }).is_alive() && e.file_type().is_ok_and(|t| t.is_dir())
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A command re-executing this binary in namespace `ns_dir`; the child is
/// killed if the run that starts it dies.
pub(crate) fn self_command(ns_dir: &Path) -> Result<Command, Failure> {
    let exe = std::env::current_exe().map_err(|e| {
        Failure::new(
            exit::UNAVAILABLE,
            "unavailable",
            format!("cannot find the mproc executable: {e}"),
        )
    })?;
    let mut cmd = Command::new(exe);
    cmd.arg("--dir").arg(ns_dir);
    crate::signals::die_with_parent(&mut cmd, false);
    Ok(cmd)
}

/// Child processes that are killed and reaped if still running when this
/// is dropped (on an error path, for instance).
#[derive(Debug, Default)]
pub(crate) struct Children {
    /// The children, with a label for messages.
    pub(crate) list: Vec<(String, Child)>,
}

impl Children {
    /// Spawns `cmd` as child `label`.
    pub(crate) fn spawn(&mut self, label: String, cmd: &mut Command) -> Result<usize, Failure> {
        let child = cmd.spawn().map_err(|e| {
            Failure::new(
                exit::UNAVAILABLE,
                "unavailable",
                format!("cannot start {label}: {e}"),
            )
        })?;
        self.list.push((label, child));
        Ok(self.list.len() - 1)
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, c) in &mut self.list {
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}
