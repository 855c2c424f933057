//! Ticket grabbing: the tutorial's first program.
//!
//! A JSON file holds `{"count": N}`. Buyer processes `alex0..alexK` each
//! search (read the file, print the count; no lock: reading is safe), then,
//! under the Lock, buy (read, decrement if > 0, print, write back). With the
//! lock, never more tickets are sold than exist; with `--no-lock` several
//! buyers read the same count and sell tickets that never existed.
//!
//! ```text
//! cargo run --release --example tickets                      # 10 buyers, 1 ticket, 0.1 s delays
//! cargo run --release --example tickets -- --no-lock         # oversells
//! cargo run --release --example tickets -- --buyers 50 --tickets 5 --no-delay
//! ```

use std::error::Error;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use mproc::{Lock, ProcessBuilder};

/// How to run the simulation.
#[derive(Debug, Clone)]
pub struct Options {
    /// Buyer processes: alex0..alex{buyers-1}.
    pub buyers: usize,
    /// Tickets in the file at the start.
    pub tickets: u32,
    /// The tutorial's 0.1 s pauses around reading and writing the file.
    pub delays: bool,
    /// Buy under the Lock (the tutorial's fix) or not (the bug).
    pub lock: bool,
    /// The ticket file.
    pub file: PathBuf,
    /// Where buyers print; `None`: this process's standard output.
    pub log: Option<PathBuf>,
}

/// How the sale went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Buyers who were told they bought a ticket.
    pub sold: u32,
    /// Tickets sold that never existed.
    pub oversold: u32,
    /// The count left in the file.
    pub left: u32,
    /// Reads that found the file half-written by another buyer (and retried).
    pub torn_reads: u32,
}

/// Reads `{"count": N}`; `None` if the file is half-written.
fn parse_count(text: &str) -> Option<u32> {
    let rest = text.trim().strip_prefix('{')?.trim_start();
    let rest = rest.strip_prefix("\"count\"")?.trim_start();
    let rest = rest.strip_prefix(':')?.trim_start();
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    let n = rest[..end].parse().ok()?;
    (rest[end..].trim() == "}").then_some(n)
}

/// Writes the count by renaming a finished file into place, so that a
/// buyer who searches (reads without the lock) never sees half a file.
fn write_count(file: &Path, n: u32) -> std::io::Result<()> {
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, format!("{{\"count\": {n}}}"))?;
    std::fs::rename(&tmp, file)
}

/// Reads the count, retrying while another buyer is half-way through
/// rewriting the file (that only happens without the lock).
fn read_count(file: &Path, torn: &mut u32) -> Result<u32, String> {
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < give_up {
        let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
        match parse_count(&text) {
            Some(n) => return Ok(n),
            None => {
                *torn += 1;
                std::thread::sleep(std::time::Duration::from_micros(50));
            }
        }
    }
    Err(format!("{} stays unreadable", file.display()))
}

/// What a buyer returns: whether it bought, and how many torn reads it saw.
type BuyerResult = Result<(bool, u32), String>;

/// `use_system(name, lock)`: search, then buy (under the lock if there is one).
fn use_system((name, file, lock, delays): (String, PathBuf, Option<Lock>, bool)) -> BuyerResult {
    let pause = || {
        if delays {
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let mut torn = 0;
    // search_ticket
    let n = read_count(&file, &mut torn)?;
    pause();
    println!("{name}: {n} tickets left");
    // with lock: buy_ticket
    let _guard = match &lock {
        Some(l) => Some(match l.lock() {
            Ok(g) => g,
            // A buyer killed while holding the lock: the file is whole (it
            // was written in one call), carry on.
            Err(e) => e.into_guard().ok_or("cannot take the lock")?,
        }),
        None => None,
    };
    let mut n = read_count(&file, &mut torn)?;
    pause();
    let bought = n > 0;
    if bought {
        println!("{name} saw {n} tickets");
        n -= 1;
        println!("{name} bought a ticket");
    }
    pause();
    write_count(&file, n).map_err(|e| e.to_string())?;
    Ok((bought, torn))
}

/// Runs one sale with real buyer processes and reports it.
pub fn run(opts: &Options) -> Result<Report, Box<dyn Error>> {
    write_count(&opts.file, opts.tickets)?;
    let lock = if opts.lock { Some(Lock::new()?) } else { None };
    let mut buyers = Vec::with_capacity(opts.buyers);
    for i in 0..opts.buyers {
        let name = format!("alex{i}");
        let mut b = ProcessBuilder::new().name(&name);
        if let Some(log) = &opts.log {
            let f = OpenOptions::new().create(true).append(true).open(log)?;
            b = b.stdout(Stdio::from(f));
        }
        let args = (name, opts.file.clone(), lock.clone(), opts.delays);
        buyers.push(b.spawn(args, use_system)?);
    }
    let mut report = Report {
        sold: 0,
        oversold: 0,
        left: 0,
        torn_reads: 0,
    };
    let mut first_error = None;
    for b in &mut buyers {
        match b.join() {
            Ok(Ok((bought, torn))) => {
                report.sold += u32::from(bought);
                report.torn_reads += torn;
            }
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    if let Some(e) = first_error {
        return Err(format!("a buyer failed: {e}").into());
    }
    report.oversold = report.sold.saturating_sub(opts.tickets);
    report.left = read_count(&opts.file, &mut report.torn_reads)?;
    Ok(report)
}

const USAGE: &str =
    "usage: tickets [--buyers N] [--tickets N] [--no-delay] [--no-lock] [--file PATH]

  --buyers N    buyer processes alex0..alex{N-1} (default 10)
  --tickets N   tickets in the file at the start (default 1)
  --no-delay    drop the tutorial's 0.1 s pauses
  --no-lock     buy without the lock: oversells
  --file PATH   the ticket file (default: a fresh temporary directory)";

fn parse_args() -> Result<(Options, Option<tempfile::TempDir>), String> {
    let mut buyers = 10;
    let mut tickets = 1;
    let mut delays = true;
    let mut lock = true;
    let mut file = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |what: &str| args.next().ok_or(format!("{a} needs {what}"));
        match a.as_str() {
            "--buyers" => {
                buyers = value("a number")?
                    .parse()
                    .map_err(|e| format!("--buyers: {e}"))?
            }
            "--tickets" => {
                tickets = value("a number")?
                    .parse()
                    .map_err(|e| format!("--tickets: {e}"))?
            }
            "--no-delay" => delays = false,
            "--delay" => delays = true,
            "--no-lock" => lock = false,
            "--file" => file = Some(PathBuf::from(value("a path")?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    let (file, dir) = match file {
        Some(f) => (f, None),
        None => {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            (dir.path().join("ticket"), Some(dir))
        }
    };
    let opts = Options {
        buyers,
        tickets,
        delays,
        lock,
        file,
        log: None,
    };
    Ok((opts, dir))
}

#[allow(dead_code)]
fn main() {
    let (opts, _dir) = match parse_args() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    println!(
        "{} buyers, {} ticket(s), {}, delays {}; ticket file {}",
        opts.buyers,
        opts.tickets,
        if opts.lock {
            "with the lock"
        } else {
            "WITHOUT the lock"
        },
        if opts.delays { "on" } else { "off" },
        opts.file.display()
    );
    match run(&opts) {
        Ok(r) => {
            println!(
                "sold {}, oversold {} (tickets that never existed), left in the file {}",
                r.sold, r.oversold, r.left
            );
            if r.torn_reads > 0 {
                println!("({} reads found the file half-written)", r.torn_reads);
            }
        }
        Err(e) => {
            eprintln!("tickets: {e}");
            std::process::exit(1);
        }
    }
}
