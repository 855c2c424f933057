//! `mproc event set|clear|wait|status NAME`: named events for shells.
//!
//! Every form creates the event (clear) if it does not exist yet, so a
//! `wait` may start before the `set`. `wait` exits 0 once the event is set
//! and 1 when `-t SECS` passes first; `status` exits 0 when set, 1 when
//! clear.

use clap::Subcommand;
use mproc::Event;
use serde_json::json;

use crate::args::{parse_secs, Secs};
use crate::ctx::{self, Ctx, Wait};
use crate::exit::{self, Failure};
use crate::signals;

/// `mproc event ...`.
#[derive(Debug, Subcommand)]
#[command(after_help = crate::exit::TABLE)]
pub(crate) enum EventCmd {
    /// Set the event: every waiter is released.
    Set {
        /// The event's name.
        name: String,
    },
    /// Clear the event.
    Clear {
        /// The event's name.
        name: String,
    },
    /// Wait until the event is set (exit 1 when -t passes first).
    Wait {
        /// The event's name.
        name: String,
        /// Wait at most SECS (0 = only look; "inf" = forever).
        #[arg(short = 't', long, value_name = "SECS", value_parser = parse_secs)]
        timeout: Option<Secs>,
    },
    /// Print "set" (exit 0) or "clear" (exit 1).
    Status {
        /// The event's name.
        name: String,
    },
}

/// Runs `mproc event ...`.
pub(crate) fn run(ctx: &Ctx, cmd: EventCmd) -> anyhow::Result<u8> {
    let ns = ctx.ns()?;
    let open =
        |name: &str| Event::open_or_create_in(&ns, name).map_err(|e| exit::from_open_or_create(&e));
    match cmd {
        EventCmd::Set { name } => {
            open(&name)?.set();
            Ok(exit::OK)
        }
        EventCmd::Clear { name } => {
            open(&name)?.clear();
            Ok(exit::OK)
        }
        EventCmd::Status { name } => {
            let set = open(&name)?.is_set();
            if ctx.json {
                ctx::out_json(&json!({"name": name, "kind": "event", "set": set}))?;
            } else {
                ctx::out_line(if set { "set" } else { "clear" })?;
            }
            Ok(if set { exit::OK } else { exit::BUSY })
        }
        EventCmd::Wait { name, timeout } => {
            let e = open(&name)?;
            let wait = Wait::from_flags(false, timeout);
            signals::watch()?;
            // Sliced, so that Ctrl-C is noticed within a slice and leaves the
            // waiter count exact.
            let r = signals::sliced(
                wait,
                |deadline| {
                    let set = match deadline {
                        None => e.is_set(),
                        Some(d) => e.wait_deadline(d),
                    };
                    if set {
                        Ok(())
                    } else {
                        Err(())
                    }
                },
                |_| true,
            );
            signals::checkpoint();
            match r {
                Ok(()) => Ok(exit::OK),
                Err(()) => {
                    if ctx.verbosity < 0 {
                        return Ok(exit::BUSY);
                    }
                    let kind = if matches!(wait, Wait::Never) {
                        "clear"
                    } else {
                        "timeout"
                    };
                    Err(Failure::new(
                        exit::BUSY,
                        kind,
                        format!("event '{name}' is not set{}", wait.gave_up()),
                    )
                    .into())
                }
            }
        }
    }
}
