//! `mproc queue ...`: named bounded FIFO queues of byte messages.
//!
//! Messages are opaque bytes: what one process puts is exactly what another
//! gets, so any language can take part through this command.

use std::ffi::OsString;
use std::io::{self, BufRead, Read};
use std::os::unix::ffi::OsStrExt;

use clap::Subcommand;
use mproc::{ByteQueue, GetError, Namespace, ObjectKind, OpenError, QueueOptions, QueueStats};
use serde_json::json;

use crate::args::{parse_secs, parse_size, Secs};
use crate::ctx::{self, Ctx, Wait};
use crate::exit::{self, Failure};
use crate::signals;

mod consume;

use consume::ConsumeArgs;

/// `mproc queue ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum QueueCmd {
    /// Create a queue.
    Create {
        /// The queue's name.
        name: String,
        /// At most N messages at once (0 = no count limit).
        #[arg(long, value_name = "N", default_value_t = 0)]
        maxsize: usize,
        /// Byte budget of the messages in the queue (K, M, G suffixes): the
        /// largest message, and the memory (RAM, on tmpfs) the queue takes,
        /// give or take 1 MiB (default 1M).
        #[arg(long, value_name = "B", value_parser = parse_size)]
        max_bytes: Option<usize>,
        /// Succeed if the queue already exists.
        #[arg(long)]
        exist_ok: bool,
    },
    /// Put messages: each DATA is one message; without DATA, stdin is one message
    /// (or one per line with --lines, NUL-separated with -0).
    Put {
        /// The queue's name.
        name: String,
        /// The messages.
        #[arg(value_name = "DATA")]
        data: Vec<OsString>,
        /// Fail at once (exit 1) when the queue is full.
        #[arg(short = 'n', long = "nonblock", conflicts_with = "timeout")]
        nonblock: bool,
        /// Wait at most SECS for room for each message (500ms, 2s, 1m; 0 = -n, "inf" = forever).
        #[arg(short = 't', long, value_name = "SECS", value_parser = parse_secs)]
        timeout: Option<Secs>,
        /// Read stdin as one message per line (the newline is not part of it).
        #[arg(long, conflicts_with = "null")]
        lines: bool,
        /// Read stdin as NUL-separated messages.
        #[arg(short = '0', long = "null")]
        null: bool,
        /// Create the queue (with default options) if it does not exist.
        #[arg(long)]
        create: bool,
    },
    /// Take messages and write their bytes to stdout exactly.
    Get {
        /// The queue's name.
        name: String,
        /// Fail at once (exit 1) when the queue is empty.
        #[arg(short = 'n', long = "nonblock", conflicts_with = "timeout")]
        nonblock: bool,
        /// Wait at most SECS for each message (500ms, 2s, 1m; 0 = -n, "inf" = forever).
        #[arg(short = 't', long, value_name = "SECS", value_parser = parse_secs)]
        timeout: Option<Secs>,
        /// Take K messages.
        #[arg(short = 'c', long, value_name = "K", default_value_t = 1,
              value_parser = clap::value_parser!(u64).range(1..))]
        count: u64,
        /// Write a newline after each message.
        #[arg(long, conflicts_with = "null")]
        lines: bool,
        /// Write a NUL after each message.
        #[arg(short = '0', long = "null")]
        null: bool,
        /// At-least-once: take each message under a lease and acknowledge it
        /// only once it is written; if this process dies first or the write
        /// fails, the message goes back to the queue.
        #[arg(long)]
        leased: bool,
    },
    /// Show the next message without taking it (exit 1 when empty).
    Peek {
        /// The queue's name.
        name: String,
        /// Write a newline after the message.
        #[arg(long)]
        lines: bool,
    },
    /// Print the number of messages in the queue.
    Len {
        /// The queue's name.
        name: String,
    },
    /// Print the queue's counters as eval-able key=value pairs.
    Stat {
        /// The queue's name.
        name: String,
    },
    /// Close the queue: puts fail, gets drain what is left and then exit 3.
    Close {
        /// The queue's name.
        name: String,
    },
    /// Discard every message in the queue.
    Purge {
        /// The queue's name.
        name: String,
    },
    /// Remove the queue from the namespace.
    Rm {
        /// The queues' names.
        #[arg(required = true)]
        names: Vec<String>,
        /// No error when a queue does not exist.
        #[arg(short, long)]
        force: bool,
    },
    /// List every queue.
    Ls,
    /// Run CMD once per message, with the message on its stdin, until the queue
    /// is closed and drained.
    Consume(ConsumeArgs),
}

/// Runs `mproc queue ...`.
pub(crate) fn run(ctx: &Ctx, cmd: QueueCmd) -> anyhow::Result<u8> {
    match cmd {
        QueueCmd::Create {
            name,
            maxsize,
            max_bytes,
            exist_ok,
        } => create(ctx, &name, maxsize, max_bytes, exist_ok),
        QueueCmd::Put {
            name,
            data,
            nonblock,
            timeout,
            lines,
            null,
            create,
        } => {
            let split = if lines {
                Some(b'\n')
            } else if null {
                Some(0)
            } else {
                None
            };
            put(
                ctx,
                &name,
                &data,
                Wait::from_flags(nonblock, timeout),
                split,
                create,
            )
        }
        QueueCmd::Get {
            name,
            nonblock,
            timeout,
            count,
            lines,
            null,
            leased,
        } => {
            let end = if lines {
                Some(b'\n')
            } else if null {
                Some(0)
            } else {
                None
            };
            let how = GetHow {
                wait: Wait::from_flags(nonblock, timeout),
                count,
                end,
                leased,
            };
            get(ctx, &name, how)
        }
        QueueCmd::Peek { name, lines } => peek(ctx, &name, lines),
        QueueCmd::Len { name } => len(ctx, &name),
        QueueCmd::Stat { name } => stat(ctx, &name),
        QueueCmd::Close { name } => close(ctx, &name),
        QueueCmd::Purge { name } => purge(ctx, &name),
        QueueCmd::Rm { names, force } => rm(ctx, &names, force),
        QueueCmd::Ls => ls(ctx),
        QueueCmd::Consume(args) => consume::run(ctx, &args),
    }
}

/// Opens the existing queue `name`.
pub(crate) fn open(ns: &Namespace, name: &str) -> Result<ByteQueue, Failure> {
    ByteQueue::open_in(ns, name).map_err(|e| exit::from_open(&e))
}

/// `mproc queue create`.
fn create(
    ctx: &Ctx,
    name: &str,
    maxsize: usize,
    max_bytes: Option<usize>,
    exist_ok: bool,
) -> anyhow::Result<u8> {
    let ns = ctx.ns()?;
    let mut opts = QueueOptions::new().maxsize(maxsize);
    if let Some(b) = max_bytes {
        opts = opts.max_bytes(b);
    }
    let created = match ByteQueue::create_in(&ns, name, opts) {
        Ok(_) => true,
        Err(mproc::CreateError::AlreadyExists { .. }) if exist_ok => {
            // It must at least be a queue.
            open(&ns, name)?;
            false
        }
        Err(e @ mproc::CreateError::AlreadyExists { .. }) => {
            let f = exit::from_create(&e);
            return Err(Failure {
                message: format!(
                    "queue '{name}' already exists (dir {}); --exist-ok accepts it",
                    ns.location()
                ),
                ..f
            }
            .into());
        }
        Err(e) => return Err(exit::from_create(&e).into()),
    };
    tracing::info!(created, "queue '{name}' ready");
    if ctx.json {
        ctx::out_json(&json!({"queue": name, "created": created}))?;
    }
    Ok(exit::OK)
}

/// `mproc queue put`: `split` is the stdin separator (`--lines`, `-0`).
fn put(
    ctx: &Ctx,
    name: &str,
    data: &[OsString],
    wait: Wait,
    split: Option<u8>,
    create: bool,
) -> anyhow::Result<u8> {
    let ns = ctx.ns()?;
    let q = if create {
        ByteQueue::open_or_create_in(&ns, name, QueueOptions::new())
            .map_err(|e| exit::from_open_or_create(&e))?
    } else {
        open(&ns, name)?
    };
    let mut count: u64 = 0;
    signals::watch()?;
    let mut put_one = |msg: &[u8]| -> Result<(), Failure> {
        let r = signals::sliced(
            wait,
            |deadline| match deadline {
                None => q.try_put(msg),
                Some(d) => q.put_deadline(msg, d),
            },
            |e| e.is_full(),
        );
        match r {
            Ok(()) => {
                count += 1;
                signals::checkpoint();
                Ok(())
            }
            Err(e) => {
                signals::checkpoint();
                let f = exit::from_put(e.kind(), name, &wait.gave_up());
                Err(if count > 0 {
                    let n = count;
                    Failure {
                        message: format!("{} ({n} message(s) were put before)", f.message),
                        ..f
                    }
                } else {
                    f
                })
            }
        }
    };
    if !data.is_empty() {
        for d in data {
            put_one(d.as_bytes())?;
        }
    } else {
        let stdin = io::stdin();
        let mut input = stdin.lock();
        match split {
            None => {
                let mut msg = Vec::new();
                input
                    .read_to_end(&mut msg)
                    .map_err(|e| exit::from_io(&e, (exit::SOFTWARE, "internal"), "stdin"))?;
                put_one(&msg)?;
            }
            Some(sep) => {
                let mut msg = Vec::new();
                loop {
                    msg.clear();
                    let n = input
                        .read_until(sep, &mut msg)
                        .map_err(|e| exit::from_io(&e, (exit::SOFTWARE, "internal"), "stdin"))?;
                    if n == 0 {
                        break;
                    }
                    if msg.last() == Some(&sep) {
                        msg.pop();
                    }
                    put_one(&msg)?;
                }
            }
        }
    }
    if ctx.json {
        ctx::out_json(&json!({"queue": name, "put": count}))?;
    }
    Ok(exit::OK)
}

/// Encodes bytes as standard base64 (with padding).
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A message as JSON: `data` when it is UTF-8, else `data_b64`.
fn message_json(name: &str, msg: &[u8]) -> serde_json::Value {
    match std::str::from_utf8(msg) {
        Ok(s) => json!({"queue": name, "data": s}),
        Err(_) => json!({"queue": name, "data_b64": base64(msg)}),
    }
}

/// Writes one taken message to stdout.
fn emit(ctx: &Ctx, name: &str, msg: &[u8], end: Option<u8>) -> io::Result<()> {
    if ctx.json {
        return ctx::out_json(&message_json(name, msg));
    }
    match end {
        Some(e) => {
            let mut v = Vec::with_capacity(msg.len() + 1);
            v.extend_from_slice(msg);
            v.push(e);
            ctx::out_bytes(&v)
        }
        None => ctx::out_bytes(msg),
    }
}

/// How `get` takes its messages.
#[derive(Debug, Clone, Copy)]
struct GetHow {
    /// Wait for each message.
    wait: Wait,
    /// At most this many messages.
    count: u64,
    /// Written after each message (`--lines`, `-0`).
    end: Option<u8>,
    /// Under a lease, acknowledged once written (`--leased`).
    leased: bool,
}

/// `mproc queue get`.
fn get(ctx: &Ctx, name: &str, how: GetHow) -> anyhow::Result<u8> {
    let GetHow {
        wait,
        count,
        end,
        leased,
    } = how;
    let ns = ctx.ns()?;
    let q = open(&ns, name)?;
    signals::watch()?;
    let mut buf = Vec::new();
    // Like the library's `get_many`, a batch is "up to K": once a message
    // has been taken, the end of the stream or of the wait ends the batch
    // with success, so that the last, partial batch is processed too.
    for taken in 0..count {
        let r = signals::sliced(
            wait,
            |deadline| {
                if leased {
                    let got = match deadline {
                        None => q.try_get_leased(),
                        Some(d) => q.get_leased_deadline(d),
                    };
                    return got.map(|(msg, receipt)| {
                        buf = msg;
                        Some(receipt)
                    });
                }
                match deadline {
                    None => q.try_get_into(&mut buf),
                    Some(d) => q.get_into_deadline(&mut buf, d),
                }
                .map(|()| None)
            },
            GetError::is_empty,
        );
        if r.is_err() {
            signals::checkpoint();
        }
        let receipt = match r {
            Ok(receipt) => receipt,
            // The end of the stream is not an error: exit 3 quietly, so that
            // `while msg=$(mproc queue get q); do ..; done` ends cleanly.
            Err(GetError::Closed) if taken == 0 => {
                tracing::info!("queue '{name}' is closed and drained");
                return Ok(exit::CLOSED);
            }
            Err(GetError::Closed | GetError::Empty) if taken > 0 => {
                tracing::info!("queue '{name}': {taken} of {count} message(s) taken");
                return Ok(exit::OK);
            }
            Err(e) => return Err(exit::from_get(&e, name, &wait.gave_up()).into()),
        };
        let written = emit(ctx, name, &buf, end);
        if let Some(receipt) = receipt {
            // At-least-once: acknowledged only once written; a message
            // that could not be written goes back to the queue.
            let settled = if written.is_ok() {
                q.ack(&receipt)
            } else {
                q.nack(&receipt)
            };
            if let Err(e) = settled {
                tracing::warn!("queue '{name}': settling a leased message: {e}");
            }
        }
        written?;
        signals::checkpoint();
    }
    Ok(exit::OK)
}

/// `mproc queue peek`.
fn peek(ctx: &Ctx, name: &str, lines: bool) -> anyhow::Result<u8> {
    let ns = ctx.ns()?;
    let q = open(&ns, name)?;
    match q.peek() {
        Ok(Some(msg)) => {
            emit(ctx, name, &msg, lines.then_some(b'\n'))?;
            Ok(exit::OK)
        }
        Ok(None) => {
            let e = if q.is_closed() {
                GetError::Closed
            } else {
                GetError::Empty
            };
            Err(exit::from_get(&e, name, "").into())
        }
        Err(e) => Err(exit::from_get(&e, name, "").into()),
    }
}

/// `mproc queue len`.
fn len(ctx: &Ctx, name: &str) -> anyhow::Result<u8> {
    let ns = ctx.ns()?;
    let q = open(&ns, name)?;
    let n = q.len();
    if ctx.json {
        ctx::out_json(&json!({"queue": name, "len": n}))?;
    } else {
        ctx::out_line(&n.to_string())?;
    }
    Ok(exit::OK)
}

/// The counters of a queue as JSON.
pub(crate) fn stats_json(name: &str, s: &QueueStats) -> serde_json::Value {
    let mut v = json!({ "queue": name });
    for (k, n) in stats_pairs(s) {
        v[k] = if k == "closed" {
            json!(n != 0)
        } else {
            json!(n)
        };
    }
    v
}

/// The counters a queue's backend keeps, in display order: a server
/// queue enforces no byte budget (its `max_bytes` is 0), so `bytes` and
/// `max_bytes` are left out for it.
fn stats_pairs(s: &QueueStats) -> Vec<(&'static str, u64)> {
    let mut v = vec![
        ("size", s.len),
        ("maxsize", s.maxsize.unwrap_or(0)),
        ("closed", u64::from(s.closed)),
        ("total_put", s.total_put),
        ("total_got", s.total_got),
        ("waiting_get", u64::from(s.waiting_get)),
        ("waiting_put", u64::from(s.waiting_put)),
        ("in_flight", s.leased),
    ];
    if s.max_bytes > 0 {
        v.push(("bytes", s.bytes_used));
        v.push(("max_bytes", s.max_bytes));
    }
    v.push(("max_message", s.max_message));
    v
}

/// The counters of a queue as eval-able `key=value` pairs.
pub(crate) fn stats_line(s: &QueueStats) -> String {
    stats_pairs(s)
        .iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `mproc queue stat`.
fn stat(ctx: &Ctx, name: &str) -> anyhow::Result<u8> {
    let ns = ctx.ns()?;
    let q = open(&ns, name)?;
    let s = q.stats();
    if ctx.json {
        ctx::out_json(&stats_json(name, &s))?;
    } else {
        ctx::out_line(&stats_line(&s))?;
    }
    Ok(exit::OK)
}

/// `mproc queue close`.
fn close(ctx: &Ctx, name: &str) -> anyhow::Result<u8> {
    let ns = ctx.ns()?;
    let q = open(&ns, name)?;
    q.close();
    tracing::info!("queue '{name}' closed with {} message(s) left", q.len());
    if ctx.json {
        ctx::out_json(&json!({"queue": name, "closed": true, "size": q.len()}))?;
    }
    Ok(exit::OK)
}

/// `mproc queue purge`.
fn purge(ctx: &Ctx, name: &str) -> anyhow::Result<u8> {
    let ns = ctx.ns()?;
    let q = open(&ns, name)?;
    let n = q.purge().map_err(|e| exit::from_get(&e, name, ""))?;
    if ctx.json {
        ctx::out_json(&json!({"queue": name, "purged": n}))?;
    } else if ctx.tty {
        ctx::out_line(&format!("purged {n} message(s) from '{name}'"))?;
    } else {
        ctx::out_line(&n.to_string())?;
    }
    Ok(exit::OK)
}

/// `mproc queue rm`.
fn rm(ctx: &Ctx, names: &[String], force: bool) -> anyhow::Result<u8> {
    let ns = ctx.ns()?;
    let mut removed = Vec::new();
    for name in names {
        // Refuse to remove a lock (or anything that is not a queue) by mistake.
        match ByteQueue::open_in(&ns, name) {
            Ok(_) => {}
            Err(OpenError::NotFound { .. }) if force => continue,
            Err(e) => return Err(exit::from_open(&e).into()),
        }
        match ns.remove(name) {
            Ok(()) => removed.push(name.clone()),
            Err(mproc::RemoveError::NotFound { .. }) if force => {}
            Err(e) => return Err(exit::from_remove(&e).into()),
        }
    }
    if ctx.json {
        ctx::out_json(&json!({"removed": removed}))?;
    }
    Ok(exit::OK)
}

/// `mproc queue ls`.
fn ls(ctx: &Ctx) -> anyhow::Result<u8> {
    let ns = ctx.ns()?;
    let list = ns
        .list()
        .map_err(|e| exit::from_io(&e, (exit::SOFTWARE, "internal"), &ns.location()))?;
    let mut queues = Vec::new();
    for info in list {
        if info.kind != Some(ObjectKind::Queue) {
            continue;
        }
        if let Ok(q) = ByteQueue::open_in(&ns, &info.name) {
            queues.push((info.name, q.stats()));
        }
    }
    if ctx.json {
        let v: Vec<_> = queues.iter().map(|(n, s)| stats_json(n, s)).collect();
        ctx::out_json(&json!({"dir": ns.location(), "queues": v}))?;
        return Ok(exit::OK);
    }
    let rows: Vec<Vec<String>> = queues
        .iter()
        .map(|(n, s)| {
            vec![
                n.clone(),
                s.len.to_string(),
                s.maxsize.map_or("-".into(), |m| m.to_string()),
                s.bytes_used.to_string(),
                s.total_put.to_string(),
                s.total_got.to_string(),
                if s.closed { "closed" } else { "open" }.into(),
                format!("{}/{}", s.waiting_get, s.waiting_put),
            ]
        })
        .collect();
    ctx::out_table(
        ctx,
        &[
            "NAME",
            "SIZE",
            "MAXSIZE",
            "BYTES",
            "PUT",
            "GOT",
            "STATE",
            "WAIT(GET/PUT)",
        ],
        &rows,
    )?;
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xff, 0xfe]), "//4=");
    }
}
