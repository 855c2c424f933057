//! `mproc demo`: the tutorial's scenarios with real processes.
//!
//! * [`tickets`]: buyer processes race for a few tickets in a JSON file,
//!   with and without the lock.
//! * [`pipeline`]: producer and consumer processes over a bounded queue,
//!   ending with a check that every item arrived exactly once, in order.
//!
//! Each demo works in a temporary namespace and re-executes this binary
//! (hidden subcommands) for every worker process.

use std::path::Path;
use std::process::{Child, Command};

use crate::cli::DemoCmd;
use crate::ctx::Ctx;
use crate::exit::{self, Failure};

pub(crate) mod pipeline;
pub(crate) mod tickets;

/// Runs `mproc demo ...`.
pub(crate) fn run(ctx: &Ctx, cmd: DemoCmd) -> anyhow::Result<u8> {
    match cmd {
        DemoCmd::Tickets(args) => tickets::run(ctx, &args),
        DemoCmd::Pipeline(args) => pipeline::run(ctx, &args),
    }
}

/// A temporary directory for a demo, holding its namespace and files: on
/// tmpfs (`/dev/shm`) where there is one, like the default namespace.
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
/// killed if the demo dies.
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

/// The demo's namespace: the directory `ns_dir`, or with `--url` the
/// server under a fresh key prefix (`mproc-demo-NAME-PID-N`), so that runs
/// never meet. Returns it with the URL the workers must use.
pub(crate) fn demo_namespace(
    ctx: &Ctx,
    ns_dir: &Path,
    name: &str,
) -> Result<(mproc::Namespace, Option<String>), Failure> {
    let Some(url) = &ctx.url else {
        let ns = mproc::Namespace::dir(ns_dir).map_err(|e| exit::from_namespace(&e))?;
        return Ok((ns, None));
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let prefix = format!("mproc-demo-{name}-{}-{nanos}", std::process::id());
    let (base, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, format!("#{f}")),
        None => (url.as_str(), String::new()),
    };
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}prefix={prefix}{fragment}");
    let ns = mproc::Namespace::from_url(&url).map_err(|e| exit::from_namespace(&e))?;
    Ok((ns, Some(url)))
}

/// Points a worker at the demo's server (through the environment, so that
/// a password in the URL does not show in `ps`).
pub(crate) fn pass_url(cmd: &mut Command, url: &Option<String>) {
    if let Some(u) = url {
        cmd.env("MPROC_URL", u);
        cmd.env(crate::ctx::SERVER_CHECKED, "1");
    }
}

/// Removes the demo's objects from a server namespace when dropped.
pub(crate) struct Cleanup {
    ns: mproc::Namespace,
    names: Vec<&'static str>,
}

impl Cleanup {
    /// Removes `names` from `ns` at the end (only for a server namespace:
    /// a directory namespace goes with its temporary directory).
    pub(crate) fn new(ns: &mproc::Namespace, names: &[&'static str]) -> Cleanup {
        Cleanup {
            ns: ns.clone(),
            names: if ns.is_remote() {
                names.to_vec()
            } else {
                Vec::new()
            },
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = self.ns.remove(n);
        }
    }
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

/// A small xorshift generator for the demos' random sleeps.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// Seeded from the process id and the clock.
    pub(crate) fn new() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Rng((t ^ (u64::from(std::process::id()) << 32)) | 1)
    }

    /// A uniform number in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}
