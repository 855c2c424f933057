//! `mproc demo tickets`: the tutorial's ticket grab with real processes.
//!
//! A JSON file `{"count": T}` holds the tickets. Each buyer process
//! (`alex0`, `alex1`, ...) first searches (reads the file, sleeps, prints
//! how many are left), then buys under the lock: reads the file, sleeps, if
//! a ticket is left takes it, sleeps, writes the file back. With the lock
//! the read-modify-write is serialised and nothing is oversold; with
//! `--no-lock` several buyers read the same count and oversell.
//!
//! Sales are counted from the buyers' exit statuses, not from the file.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use clap::Args;
use mproc::{Lock, LockError};
use serde_json::json;

use crate::cli::{parse_secs, Secs};
use crate::ctx::{self, fmt_secs, Ctx};
use crate::demo::{self_command, temp_dir, Children};
use crate::exit::{self, Failure};

/// A buyer's exit status when it bought a ticket.
const BOUGHT: i32 = 0;
/// A buyer's exit status when no ticket was left.
const SOLD_OUT: i32 = 10;
/// The lock's name in the demo's namespace.
const LOCK_NAME: &str = "ticket-lock";

/// `mproc demo tickets`.
#[derive(Debug, Args)]
pub(crate) struct TicketsArgs {
    /// Number of buyer processes.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    buyers: u32,
    /// Number of tickets on sale.
    #[arg(long, default_value_t = 3)]
    tickets: u32,
    /// Seconds each step sleeps (the tutorial's 0.1).
    #[arg(long, value_name = "SECS", default_value = "0.1", value_parser = parse_secs)]
    delay: Secs,
    /// Buy without the lock, to watch the overselling.
    #[arg(long)]
    no_lock: bool,
}

/// One buyer (hidden `__ticket-buyer` subcommand).
#[derive(Debug, Args)]
pub(crate) struct BuyerArgs {
    /// The buyer's name.
    #[arg(long)]
    name: String,
    /// The ticket file.
    #[arg(long)]
    file: PathBuf,
    /// Seconds each step sleeps.
    #[arg(long, value_parser = parse_secs)]
    delay: Secs,
    /// The lock to buy under; none with `--no-lock`.
    #[arg(long)]
    lock: Option<String>,
}

/// Reads the ticket count.
fn read_count(file: &Path) -> Result<i64, Failure> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        exit::from_io(
            &e,
            (exit::SOFTWARE, "internal"),
            &file.display().to_string(),
        )
    })?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Failure::new(exit::DATAERR, "damaged", format!("{}: {e}", file.display())))?;
    v.get("count")
        .and_then(serde_json::Value::as_i64)
        .ok_or_else(|| {
            Failure::new(
                exit::DATAERR,
                "damaged",
                format!("{}: no \"count\" number", file.display()),
            )
        })
}

/// Writes the ticket count (whole-file replace, so readers never see a torn file).
fn write_count(file: &Path, count: i64, writer: &str) -> Result<(), Failure> {
    let tmp = file.with_extension(format!("{writer}.tmp"));
    let io_err = |e: std::io::Error| {
        exit::from_io(
            &e,
            (exit::CANTCREAT, "cannot_create"),
            &file.display().to_string(),
        )
    };
    std::fs::write(&tmp, json!({"count": count}).to_string()).map_err(io_err)?;
    std::fs::rename(&tmp, file).map_err(io_err)
}

/// The delay as a duration (forever is refused).
fn delay_of(d: Secs) -> Result<Duration, Failure> {
    d.0.ok_or_else(|| Failure::usage("--delay must be a number of seconds"))
}

/// Runs the demo.
pub(crate) fn run(ctx: &Ctx, args: &TicketsArgs) -> anyhow::Result<u8> {
    let delay = delay_of(args.delay)?;
    let tmp = temp_dir("mproc-demo-tickets-")?;
    let ns_dir = tmp.path().join("ns");
    let ns = mproc::Namespace::dir(&ns_dir).map_err(|e| exit::from_namespace(&e))?;
    let file = tmp.path().join("ticket");
    write_count(&file, i64::from(args.tickets), "main")?;
    let _lock = if args.no_lock {
        None
    } else {
        Some(Lock::create_in(&ns, LOCK_NAME).map_err(|e| exit::from_create(&e))?)
    };
    if !ctx.json {
        ctx::out_line(&format!(
            "{}, {} buyers, {} per step, {}",
            tickets(i64::from(args.tickets)),
            args.buyers,
            fmt_secs(delay),
            if args.no_lock {
                "no lock"
            } else {
                "buying under the lock"
            }
        ))?;
    }

    let mut children = Children::default();
    let mut starts = Vec::new();
    for k in 0..args.buyers {
        let mut cmd = self_command(&ns_dir)?;
        cmd.arg("__ticket-buyer")
            .arg("--name")
            .arg(format!("alex{k}"))
            .arg("--file")
            .arg(&file)
            .arg("--delay")
            .arg(delay.as_secs_f64().to_string())
            .stdin(Stdio::piped())
            .stdout(if ctx.json {
                Stdio::null()
            } else {
                Stdio::inherit()
            });
        if !args.no_lock {
            cmd.arg("--lock").arg(LOCK_NAME);
        }
        let i = children.spawn(format!("buyer alex{k}"), &mut cmd)?;
        if let Some(stdin) = children.list[i].1.stdin.take() {
            starts.push(stdin);
        }
    }
    // Every buyer waits on its stdin, so they all start together.
    let started = Instant::now();
    for mut s in starts {
        let _ = s.write_all(b"go");
    }

    let mut sold: u64 = 0;
    let mut failures = Vec::new();
    for (label, child) in &mut children.list {
        match child.wait() {
            Ok(st) if st.code() == Some(BOUGHT) => sold += 1,
            Ok(st) if st.code() == Some(SOLD_OUT) => {}
            Ok(st) => failures.push(format!("{label} failed ({st})")),
            Err(e) => failures.push(format!("{label}: {e}")),
        }
    }
    let elapsed = started.elapsed();
    if !failures.is_empty() {
        return Err(Failure::internal(failures.join("; ")).into());
    }
    let left = read_count(&file)?;
    let oversold = sold.saturating_sub(u64::from(args.tickets));
    let rate = f64::from(args.buyers) / elapsed.as_secs_f64().max(1e-9);
    if ctx.json {
        ctx::out_json(&json!({
            "buyers": args.buyers,
            "tickets": args.tickets,
            "sold": sold,
            "oversold": oversold,
            "left": left,
            "elapsed_s": elapsed.as_secs_f64(),
            "attempts_per_s": rate,
            "lock": !args.no_lock,
        }))?;
    } else {
        ctx::out_line(&format!(
            "sold {sold} of {} to {} buyers: oversold {oversold}, {left} left in the file",
            tickets(i64::from(args.tickets)),
            args.buyers
        ))?;
        ctx::out_line(&format!(
            "elapsed {}, {rate:.1} attempts/s",
            fmt_secs(elapsed)
        ))?;
        if oversold > 0 {
            ctx::out_line(
                "several buyers read the same count before anyone wrote it back; \
                 run without --no-lock to serialise the purchase",
            )?;
        }
    }
    Ok(exit::OK)
}

/// "1 ticket", "3 tickets".
fn tickets(n: i64) -> String {
    if n == 1 {
        "1 ticket".into()
    } else {
        format!("{n} tickets")
    }
}

/// Sleeps for the buyer's step delay.
fn step(delay: Duration) {
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
}

/// One buyer process: search, then buy (under the lock unless `--no-lock`).
pub(crate) fn buyer(ctx: &Ctx, args: &BuyerArgs) -> anyhow::Result<u8> {
    let delay = delay_of(args.delay)?;
    let lock = match &args.lock {
        Some(name) => Some(Lock::open_in(&ctx.ns()?, name).map_err(|e| exit::from_open(&e))?),
        None => None,
    };
    // Wait for the start signal (or EOF).
    let mut go = [0u8; 1];
    let _ = std::io::stdin().read(&mut go);

    let name = &args.name;
    let seen = read_count(&args.file)?;
    step(delay);
    ctx::out_line(&format!("{name}: {} left", tickets(seen)))?;

    let bought = match &lock {
        Some(l) => {
            let _guard = match l.lock() {
                Ok(g) => g,
                Err(LockError::OwnerDied(o)) => o.into_inner(),
                Err(e) => return Err(Failure::internal(format!("lock: {e}")).into()),
            };
            buy(args, delay)?
        }
        None => buy(args, delay)?,
    };
    Ok(if bought { BOUGHT } else { SOLD_OUT } as u8)
}

/// The purchase: read, sleep, take a ticket if one is left, sleep, write back.
fn buy(args: &BuyerArgs, delay: Duration) -> anyhow::Result<bool> {
    let name = &args.name;
    let mut count = read_count(&args.file)?;
    step(delay);
    let bought = count > 0;
    if bought {
        ctx::out_line(&format!("{name} sees {}", tickets(count)))?;
        count -= 1;
        ctx::out_line(&format!("{name} bought a ticket"))?;
    }
    step(delay);
    write_count(&args.file, count, name)?;
    Ok(bought)
}
