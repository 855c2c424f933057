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
use std::process::Command;

use clap::Subcommand;

use crate::ctx::Ctx;
use crate::exit::{self, Failure};

pub(crate) mod pipeline;
pub(crate) mod tickets;

/// `mproc demo ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum DemoCmd {
    /// The ticket grab: buyer processes race for a few tickets in a JSON file.
    Tickets(tickets::TicketsArgs),
    /// Producer and consumer processes over a bounded queue.
    Pipeline(pipeline::PipelineArgs),
}

/// Runs `mproc demo ...`.
pub(crate) fn run(ctx: &Ctx, cmd: DemoCmd) -> anyhow::Result<u8> {
    match cmd {
        DemoCmd::Tickets(args) => tickets::run(ctx, &args),
        DemoCmd::Pipeline(args) => pipeline::run(ctx, &args),
    }
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
