//! `mproc demo tickets --url URL`: the ticket grab on a server, so the
//! buyers may run on several machines.
//!
//! The count is a *fenced cell* of the lock on the server: a buyer reads
//! it, sleeps, and takes a ticket with a write that the server accepts only
//! while the buyer's lease on the lock is still valid
//! ([`mproc::LockGuard::fenced_add`]). A buyer that stalls past its lease
//! (the lock then passes to another) has its write refused instead of
//! overselling. Each buyer reports its sales on a queue of the same server.

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Instant;

use mproc::{FenceError, Lock, LockError, Queue, QueueOptions};
use serde_json::json;

use super::{delay_of, step, tickets, BuyerArgs, Store, TicketsArgs, BOUGHT, LOCK_NAME, SOLD_OUT};
use crate::args::fmt_secs;
use crate::child::{self_command, temp_dir, Children};
use crate::ctx::{self, Ctx};
use crate::demo::{demo_namespace, pass_url, Cleanup};
use crate::exit::{self, Failure};
use crate::retry::{lock_transient, put_transient};

/// The words of a transient fenced-cell failure.
fn fence_transient(e: &FenceError) -> Option<String> {
    match e {
        FenceError::Io(err) if exit::is_transient(err.kind()) => Some(err.to_string()),
        _ => None,
    }
}

/// The fenced cell holding the count.
const CELL: &str = "tickets";
/// The queue where buyers report `(bought, refused)`.
const SALES: &str = "sales";

/// Runs the demo on the server of `--url`.
pub(super) fn run(ctx: &Ctx, args: &TicketsArgs) -> anyhow::Result<u8> {
    if args.no_lock {
        return Err(Failure::usage(
            "--no-lock needs a directory namespace: on a server tickets are sold by fenced writes under the lock",
        )
        .into());
    }
    if args.store != Store::File {
        return Err(Failure::usage("--store applies to directory namespaces, not to --url").into());
    }
    let delay = delay_of(args.delay)?;
    let tmp = temp_dir("mproc-demo-tickets-")?;
    let ns_dir = tmp.path().join("ns");
    let (ns, url) = demo_namespace(ctx, &ns_dir, "tickets")?;
    let _cleanup = Cleanup::new(&ns, &[LOCK_NAME, SALES]);
    let lock = Lock::create_in(&ns, LOCK_NAME).map_err(|e| exit::from_create(&e))?;
    let sales: Queue<(u64, u64)> =
        Queue::create_in(&ns, SALES, QueueOptions::new()).map_err(|e| exit::from_create(&e))?;
    {
        let g = lock
            .lock()
            .map_err(|e| Failure::internal(format!("lock: {e}")))?;
        g.fenced_set(CELL, i64::from(args.tickets))
            .map_err(|e| Failure::internal(format!("setting the count: {e}")))?;
    }
    if !ctx.json {
        ctx::out_line(&format!(
            "{}, {} buyers, {} per step, count in a fenced cell on {}",
            tickets(i64::from(args.tickets)),
            args.buyers,
            fmt_secs(delay),
            ns.location()
        ))?;
    }

    let mut children = Children::default();
    let mut starts = Vec::new();
    for k in 0..args.buyers {
        let mut cmd = self_command(&ns_dir)?;
        pass_url(&mut cmd, &url);
        cmd.arg("__ticket-buyer")
            .args([
                "--name",
                &format!("alex{k}"),
                "--cell",
                CELL,
                "--lock",
                LOCK_NAME,
            ])
            .args(["--attempts", &args.attempts.to_string()])
            .args(["--delay", &delay.as_secs_f64().to_string()])
            .stdin(Stdio::piped())
            .stdout(if ctx.json {
                Stdio::null()
            } else {
                Stdio::inherit()
            });
        let i = children.spawn(format!("buyer alex{k}"), &mut cmd)?;
        if let Some(stdin) = children.list[i].1.stdin.take() {
            starts.push(stdin);
        }
    }
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
    let (mut sold, mut refused) = (0u64, 0u64);
    while let Ok((b, r)) = sales.try_get() {
        sold += b;
        refused += r;
    }
    let left = lock
        .fenced_get(CELL)
        .map_err(|e| Failure::internal(format!("reading the count: {e}")))?;
    let oversold = sold.saturating_sub(u64::from(args.tickets));
    let attempts = u64::from(args.buyers) * u64::from(args.attempts);
    let rate = attempts as f64 / elapsed.as_secs_f64().max(1e-9);
    let sales_rate = sold as f64 / elapsed.as_secs_f64().max(1e-9);
    if ctx.json {
        ctx::out_json(&json!({
            "buyers": args.buyers,
            "tickets": args.tickets,
            "sold": sold,
            "oversold": oversold,
            "refused": refused,
            "left": left,
            "elapsed_s": elapsed.as_secs_f64(),
            "attempts": attempts,
            "attempts_per_s": rate,
            "sales_per_s": sales_rate,
            "lock": true,
            "store": "server",
        }))?;
    } else {
        ctx::out_line(&format!(
            "sold {sold} of {} to {} buyers: oversold {oversold}, {left} left on the server, {refused} stale writes refused",
            tickets(i64::from(args.tickets)),
            args.buyers,
        ))?;
        ctx::out_line(&format!(
            "elapsed {}, {attempts} attempts, {rate:.1} attempts/s, {sales_rate:.1} sales/s",
            fmt_secs(elapsed)
        ))?;
    }
    if oversold > 0 || i64::try_from(sold).unwrap_or(i64::MAX) + left != i64::from(args.tickets) {
        return Err(Failure::internal("the check failed: tickets were oversold or lost").into());
    }
    Ok(exit::OK)
}

/// One buyer selling from the fenced cell `--cell` of `--lock`.
pub(super) fn buyer(ctx: &Ctx, args: &BuyerArgs) -> anyhow::Result<u8> {
    let delay = delay_of(args.delay)?;
    let (Some(cell), Some(lock_name)) = (&args.cell, &args.lock) else {
        return Err(Failure::usage("--cell needs --lock").into());
    };
    let ns = ctx.ns()?;
    let lock = Lock::open_in(&ns, lock_name).map_err(|e| exit::from_open(&e))?;
    let sales: Queue<(u64, u64)> = Queue::open_in(&ns, SALES).map_err(|e| exit::from_open(&e))?;
    let chatty = args.attempts <= 1;
    let mut go = [0u8; 1];
    let _ = std::io::stdin().read(&mut go);
    let name = &args.name;
    let fence_err = |e: FenceError| match e {
        FenceError::Io(err) if exit::is_transient(err.kind()) => {
            Failure::new(exit::TEMPFAIL, "unavailable", format!("{name}: {err}"))
        }
        e => Failure::internal(format!("{name}: {e}")),
    };
    let mut outage = ctx.outage();
    let seen = outage
        .run(|| lock.fenced_get(cell), fence_transient)
        .map_err(fence_err)?;
    step(delay);
    if chatty {
        ctx::out_line(&format!("{name}: {} left", tickets(seen)))?;
    }
    let (mut bought, mut refused) = (0u64, 0u64);
    for _ in 0..args.attempts.max(1) {
        let guard = match outage.run(|| lock.lock(), lock_transient) {
            Ok(g) => g,
            Err(LockError::OwnerDied(o)) => o.into_inner(),
            Err(LockError::Io(e)) => {
                return Err(exit::from_io(e.get_ref(), (exit::SOFTWARE, "internal"), "lock").into())
            }
            Err(e) => return Err(Failure::internal(format!("lock: {e}")).into()),
        };
        let count = outage
            .run(|| lock.fenced_get(cell), fence_transient)
            .map_err(fence_err)?;
        step(delay);
        if count > 0 {
            // Only a refused connection is retried: a write that timed out
            // may have been applied, and must not be made twice.
            let unsent = |e: &FenceError| match e {
                FenceError::Io(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                    Some(err.to_string())
                }
                _ => None,
            };
            match outage.run(|| guard.fenced_add(cell, -1, 0), unsent) {
                Ok(Some(_)) => {
                    bought += 1;
                    if chatty {
                        ctx::out_line(&format!("{name} sees {}", tickets(count)))?;
                        ctx::out_line(&format!("{name} bought a ticket"))?;
                    }
                }
                Ok(None) => {}
                Err(FenceError::LeaseLost) => {
                    refused += 1;
                    ctx::out_line(&format!(
                        "{name} stalled past its lease: the sale was refused"
                    ))?;
                }
                Err(e) => return Err(fence_err(e).into()),
            }
        }
        step(delay);
        drop(guard);
    }
    outage
        .run(|| sales.put((bought, refused)), put_transient)
        .map_err(|e| exit::from_put(e.kind(), SALES, ""))?;
    Ok(if bought > 0 { BOUGHT } else { SOLD_OUT } as u8)
}
