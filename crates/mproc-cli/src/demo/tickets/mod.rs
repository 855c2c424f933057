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
//!
//! `--store shm` keeps the count in a shared [`mproc::Value`] instead, and
//! buys under the value's own robust lock (Python's
//! `multiprocessing.Value('i', 3)` with `get_lock()`); `--store both` runs
//! the file store and then the shared-memory store and compares their
//! attempts per second (use `--delay 0` to see the store's own cost).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use mproc::{Lock, LockError, Value};
use serde_json::json;

use crate::args::{fmt_secs, parse_secs, Secs};
use crate::child::{self_command, temp_dir, Children};
use crate::ctx::{self, Ctx};
use crate::exit::{self, Failure};

/// A buyer's exit status when it bought a ticket.
const BOUGHT: i32 = 0;
/// A buyer's exit status when no ticket was left.
const SOLD_OUT: i32 = 10;
/// The lock's name in the demo's namespace.
const LOCK_NAME: &str = "ticket-lock";

mod remote;
/// The shared value's name in the demo's namespace (`--store shm`).
const VALUE_NAME: &str = "tickets";
/// The shared array where each buyer records how many tickets it bought.
const SALES_NAME: &str = "sales";

/// Where the ticket count lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Store {
    /// A JSON file, bought under a named Lock.
    File,
    /// A shared `Value<i64>`, bought under its built-in lock.
    Shm,
    /// The file store, then the shared-memory store, compared.
    Both,
}

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
    /// Where the count lives: a JSON file, a shared Value, or both in turn.
    #[arg(long, value_enum, default_value_t = Store::File)]
    store: Store,
    /// Purchase attempts per buyer (above 1, only totals are printed).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    attempts: u32,
}

/// One buyer (hidden `__ticket-buyer` subcommand).
#[derive(Debug, Args)]
pub(crate) struct BuyerArgs {
    /// The buyer's name.
    #[arg(long)]
    name: String,
    /// The ticket file.
    #[arg(long, required_unless_present_any = ["value", "cell"])]
    file: Option<PathBuf>,
    /// Sell from this fenced cell of `--lock` on a server (`--url`).
    #[arg(long, conflicts_with_all = ["file", "value"], requires = "lock")]
    cell: Option<String>,
    /// The shared value holding the count (instead of a file).
    #[arg(long, conflicts_with = "file")]
    value: Option<String>,
    /// Seconds each step sleeps.
    #[arg(long, value_parser = parse_secs)]
    delay: Secs,
    /// The lock to buy under; none with `--no-lock`.
    #[arg(long)]
    lock: Option<String>,
    /// With `--value`: read and write the count without the value's lock.
    #[arg(long, requires = "value")]
    no_value_lock: bool,
    /// Purchase attempts.
    #[arg(long, default_value_t = 1)]
    attempts: u32,
    /// This buyer's slot in the shared sales array.
    #[arg(long)]
    index: Option<usize>,
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
    if ctx.url.is_some() {
        return remote::run(ctx, args);
    }
    match args.store {
        Store::Both => {
            let file = run_store(ctx, args, Store::File)?;
            let shm = run_store(ctx, args, Store::Shm)?;
            if ctx.json {
                ctx::out_json(&json!({
                    "compare": {"file_attempts_per_s": file, "shm_attempts_per_s": shm,
                                "shm_over_file": shm / file.max(1e-9)}
                }))?;
            } else {
                ctx::out_line(&format!(
                    "attempts/s: file {file:.1}, shm {shm:.1} (shm {:.2}x the file store)",
                    shm / file.max(1e-9)
                ))?;
            }
        }
        store => {
            run_store(ctx, args, store)?;
        }
    }
    Ok(exit::OK)
}

/// Runs the demo once with the count in `store`; returns the attempts per second.
fn run_store(ctx: &Ctx, args: &TicketsArgs, store: Store) -> anyhow::Result<f64> {
    let delay = delay_of(args.delay)?;
    let tmp = temp_dir("mproc-demo-tickets-")?;
    let ns_dir = tmp.path().join("ns");
    let ns = mproc::Namespace::dir(&ns_dir).map_err(|e| exit::from_namespace(&e))?;
    let file = tmp.path().join("ticket");
    let shm = store == Store::Shm;
    let value = if shm {
        Some(
            Value::<i64>::create_in(&ns, VALUE_NAME, i64::from(args.tickets), true)
                .map_err(|e| exit::from_create(&e))?,
        )
    } else {
        write_count(&file, i64::from(args.tickets), "main")?;
        None
    };
    let sales =
        mproc::Array::<u64>::create_in(&ns, SALES_NAME, &vec![0; args.buyers as usize], true)
            .map_err(|e| exit::from_create(&e))?;
    let _lock = if args.no_lock || shm {
        None
    } else {
        Some(Lock::create_in(&ns, LOCK_NAME).map_err(|e| exit::from_create(&e))?)
    };
    if !ctx.json {
        ctx::out_line(&format!(
            "{}, {} buyers, {} per step, {}, {}",
            tickets(i64::from(args.tickets)),
            args.buyers,
            fmt_secs(delay),
            if shm {
                "count in a shared Value"
            } else {
                "count in a JSON file"
            },
            match (args.no_lock, shm) {
                (true, _) => "no lock",
                (false, false) => "buying under the lock",
                (false, true) => "buying under the value's lock",
            }
        ))?;
    }

    let mut children = Children::default();
    let mut starts = Vec::new();
    for k in 0..args.buyers {
        let mut cmd = self_command(&ns_dir)?;
        cmd.arg("__ticket-buyer")
            .arg("--name")
            .arg(format!("alex{k}"));
        if shm {
            cmd.arg("--value").arg(VALUE_NAME);
        } else {
            cmd.arg("--file").arg(&file);
        }
        cmd.arg("--index")
            .arg(k.to_string())
            .arg("--attempts")
            .arg(args.attempts.to_string());
        cmd.arg("--delay")
            .arg(delay.as_secs_f64().to_string())
            .stdin(Stdio::piped())
            .stdout(if ctx.json {
                Stdio::null()
            } else {
                Stdio::inherit()
            });
        if !args.no_lock && !shm {
            cmd.arg("--lock").arg(LOCK_NAME);
        }
        if args.no_lock && shm {
            cmd.arg("--no-value-lock");
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

    let mut failures = Vec::new();
    for (label, child) in &mut children.list {
        match child.wait() {
            Ok(st) if st.code() == Some(BOUGHT) || st.code() == Some(SOLD_OUT) => {}
            Ok(st) => failures.push(format!("{label} failed ({st})")),
            Err(e) => failures.push(format!("{label}: {e}")),
        }
    }
    let elapsed = started.elapsed();
    if !failures.is_empty() {
        return Err(Failure::internal(failures.join("; ")).into());
    }
    let sold: u64 = sales.to_vec().iter().sum();
    let attempts = u64::from(args.buyers) * u64::from(args.attempts);
    let left = match &value {
        Some(v) => v.get(),
        None => read_count(&file)?,
    };
    let oversold = sold.saturating_sub(u64::from(args.tickets));
    let rate = attempts as f64 / elapsed.as_secs_f64().max(1e-9);
    if ctx.json {
        ctx::out_json(&json!({
            "buyers": args.buyers,
            "tickets": args.tickets,
            "sold": sold,
            "oversold": oversold,
            "left": left,
            "elapsed_s": elapsed.as_secs_f64(),
            "attempts": attempts,
            "attempts_per_s": rate,
            "lock": !args.no_lock,
            "store": if shm { "shm" } else { "file" },
        }))?;
    } else {
        ctx::out_line(&format!(
            "sold {sold} of {} to {} buyers: oversold {oversold}, {left} left in the {}",
            tickets(i64::from(args.tickets)),
            args.buyers,
            if shm { "shared value" } else { "file" }
        ))?;
        ctx::out_line(&format!(
            "elapsed {}, {attempts} attempts, {rate:.1} attempts/s",
            fmt_secs(elapsed)
        ))?;
        if oversold > 0 {
            ctx::out_line(
                "several buyers read the same count before anyone wrote it back; \
                 run without --no-lock to serialise the purchase",
            )?;
        }
    }
    Ok(rate)
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
    if args.cell.is_some() {
        return remote::buyer(ctx, args);
    }
    let delay = delay_of(args.delay)?;
    let lock = match &args.lock {
        Some(name) => Some(Lock::open_in(&ctx.ns()?, name).map_err(|e| exit::from_open(&e))?),
        None => None,
    };
    let value = match &args.value {
        Some(name) => {
            Some(Value::<i64>::open_in(&ctx.ns()?, name).map_err(|e| exit::from_open(&e))?)
        }
        None => None,
    };
    let sales = match args.index {
        Some(_) => Some(
            mproc::Array::<u64>::open_in(&ctx.ns()?, SALES_NAME)
                .map_err(|e| exit::from_open(&e))?,
        ),
        None => None,
    };
    let chatty = args.attempts <= 1;
    // Wait for the start signal (or EOF).
    let mut go = [0u8; 1];
    let _ = std::io::stdin().read(&mut go);

    let name = &args.name;
    let seen = match (&value, &args.file) {
        (Some(v), _) => v.get(),
        (None, Some(f)) => read_count(f)?,
        (None, None) => return Err(Failure::usage("--file or --value is required").into()),
    };
    step(delay);
    if chatty {
        ctx::out_line(&format!("{name}: {} left", tickets(seen)))?;
    }
    let mut bought_n: u64 = 0;
    for _ in 0..args.attempts.max(1) {
        if purchase(args, value.as_ref(), lock.as_ref(), chatty)? {
            bought_n += 1;
        }
    }
    if let (Some(i), Some(sales)) = (args.index, &sales) {
        sales.set(i, bought_n);
    }
    Ok(if bought_n > 0 { BOUGHT } else { SOLD_OUT } as u8)
}

/// One purchase attempt; whether it bought a ticket.
fn purchase(
    args: &BuyerArgs,
    value: Option<&Value<i64>>,
    lock: Option<&Lock>,
    chatty: bool,
) -> anyhow::Result<bool> {
    let name = &args.name;
    let delay = delay_of(args.delay)?;
    let bought = match (value, &args.file, lock) {
        (Some(v), _, _) if args.no_value_lock => {
            let mut count = v.get();
            let bought = take(name, &mut count, delay, chatty)?;
            v.set(count);
            bought
        }
        (Some(v), _, _) => {
            let mut guard = match v.get_lock() {
                Ok(g) => g,
                Err(LockError::OwnerDied(o)) => o.into_inner(),
                Err(e) => return Err(Failure::internal(format!("value lock: {e}")).into()),
            };
            take(name, &mut guard, delay, chatty)?
        }
        (None, Some(file), Some(l)) => {
            let _guard = match l.lock() {
                Ok(g) => g,
                Err(LockError::OwnerDied(o)) => o.into_inner(),
                Err(e) => return Err(Failure::internal(format!("lock: {e}")).into()),
            };
            buy(file, name, delay, chatty)?
        }
        (None, Some(file), None) => buy(file, name, delay, chatty)?,
        (None, None, _) => return Err(Failure::usage("--file or --value is required").into()),
    };
    Ok(bought)
}

/// The purchase on a count already read: sleep, take a ticket if one is
/// left, sleep (the caller writes the count back).
fn take(name: &str, count: &mut i64, delay: Duration, chatty: bool) -> anyhow::Result<bool> {
    step(delay);
    let bought = *count > 0;
    // Like the tutorial, every buyer says what it saw and what it did.
    if chatty {
        ctx::out_line(&format!("{name} sees {}", tickets(*count)))?;
    }
    if bought {
        *count -= 1;
    }
    if chatty {
        ctx::out_line(&if bought {
            format!("{name} bought a ticket")
        } else {
            format!("{name} bought nothing: sold out")
        })?;
    }
    step(delay);
    Ok(bought)
}

/// The purchase from the file: read, take, write back.
fn buy(file: &Path, name: &str, delay: Duration, chatty: bool) -> anyhow::Result<bool> {
    let mut count = read_count(file)?;
    let bought = take(name, &mut count, delay, chatty)?;
    write_count(file, count, name)?;
    Ok(bought)
}
