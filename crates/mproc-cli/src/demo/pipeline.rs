//! `mproc demo pipeline`: the tutorial's producer-consumer model with real
//! processes.
//!
//! Producers put items tagged `(producer, seq)` on a bounded queue; the
//! consumers take them until the queue is closed and drained (no sentinel
//! values). Every process reports what it did on a second queue, which this
//! process reads to draw the progress bars and, at the end, to check that
//! every item was consumed exactly once and in per-producer order.

use std::io::IsTerminal;
use std::process::Stdio;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use mproc::{GetError, Queue, QueueOptions};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::args::{fmt_secs, parse_secs, Secs};
use crate::child::{self_command, temp_dir, Children};
use crate::ctx::{self, Ctx};
use crate::exit::{self, Failure};
use crate::retry::{get_transient, put_transient};
use crate::rng::Rng;

/// The work queue's name.
const ITEMS: &str = "items";
/// The report queue's name.
const REPORT: &str = "report";

/// `mproc demo pipeline`.
#[derive(Debug, Args)]
pub(crate) struct PipelineArgs {
    /// Number of producer processes.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=256))]
    producers: u32,
    /// Number of consumer processes.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=256))]
    consumers: u32,
    /// Items each producer makes.
    #[arg(long, default_value_t = 200)]
    items: u64,
    /// Capacity of the queue (the tutorial's Queue(5)).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    maxsize: u64,
    /// Each producer and consumer sleeps a random time up to SECS per item.
    #[arg(long, value_name = "SECS", default_value = "0.005", value_parser = parse_secs)]
    delay: Secs,
}

/// One producer (hidden `__pipeline-producer` subcommand).
#[derive(Debug, Args)]
pub(crate) struct ProducerArgs {
    /// The producer's number.
    #[arg(long)]
    id: u32,
    /// Items to make.
    #[arg(long)]
    items: u64,
    /// Longest random sleep per item, in seconds.
    #[arg(long, value_parser = parse_secs)]
    delay: Secs,
}

/// One consumer (hidden `__pipeline-consumer` subcommand).
#[derive(Debug, Args)]
pub(crate) struct ConsumerArgs {
    /// The consumer's number.
    #[arg(long)]
    id: u32,
    /// Longest random sleep per item, in seconds.
    #[arg(long, value_parser = parse_secs)]
    delay: Secs,
}

/// An item on the work queue.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Item {
    /// Who made it.
    producer: u32,
    /// Its number within that producer's items, from 0.
    seq: u64,
}

/// What a worker reports.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum Event {
    /// A producer put an item.
    Produced(Item),
    /// A consumer took an item.
    Consumed {
        /// The consumer's number.
        consumer: u32,
        /// The item.
        item: Item,
    },
}

/// The delay as a duration (forever is refused).
fn delay_of(d: Secs) -> Result<Duration, Failure> {
    d.0.ok_or_else(|| Failure::usage("--delay must be a number of seconds"))
}

/// Sleeps a random time up to `max`.
fn nap(rng: &mut Rng, max: Duration) {
    if !max.is_zero() {
        std::thread::sleep(max.mul_f64(rng.unit()));
    }
}

/// Opens queue `name` of the demo's namespace.
fn open<T: Serialize + serde::de::DeserializeOwned>(
    ctx: &Ctx,
    name: &str,
) -> Result<Queue<T>, Failure> {
    Queue::open_in(&ctx.ns()?, name).map_err(|e| exit::from_open(&e))
}

/// One producer process.
pub(crate) fn producer(ctx: &Ctx, args: &ProducerArgs) -> anyhow::Result<u8> {
    let delay = delay_of(args.delay)?;
    let items: Queue<Item> = open(ctx, ITEMS)?;
    let report: Queue<Event> = open(ctx, REPORT)?;
    let mut rng = Rng::new();
    let mut outage = ctx.outage();
    for seq in 0..args.items {
        nap(&mut rng, delay);
        let item = Item {
            producer: args.id,
            seq,
        };
        outage
            .run(|| items.put(item), put_transient)
            .map_err(|e| exit::from_put(e.kind(), ITEMS, ""))?;
        outage
            .run(|| report.put(Event::Produced(item)), put_transient)
            .map_err(|e| exit::from_put(e.kind(), REPORT, ""))?;
    }
    Ok(exit::OK)
}

/// One consumer process.
pub(crate) fn consumer(ctx: &Ctx, args: &ConsumerArgs) -> anyhow::Result<u8> {
    let delay = delay_of(args.delay)?;
    let items: Queue<Item> = open(ctx, ITEMS)?;
    let report: Queue<Event> = open(ctx, REPORT)?;
    let mut rng = Rng::new();
    let mut outage = ctx.outage();
    loop {
        let item = match outage.run(|| items.get(), get_transient) {
            Ok(i) => i,
            Err(GetError::Closed) => return Ok(exit::OK),
            Err(e) => return Err(exit::from_get(&e, ITEMS, "").into()),
        };
        let consumed = || {
            report.put(Event::Consumed {
                consumer: args.id,
                item,
            })
        };
        outage
            .run(consumed, put_transient)
            .map_err(|e| exit::from_put(e.kind(), REPORT, ""))?;
        nap(&mut rng, delay);
    }
}

/// A bar style, falling back to the default if the template is refused.
fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// The tally kept while events arrive.
struct Tally {
    /// Items produced per producer.
    produced: Vec<u64>,
    /// How often each item was consumed, `[producer][seq]`.
    seen: Vec<Vec<u32>>,
    /// The last seq each consumer got from each producer, `[consumer][producer]`.
    last: Vec<Vec<Option<u64>>>,
    /// Items consumed in all.
    consumed: u64,
    /// Items that arrived out of per-producer order, or were never made.
    disorder: u64,
}

impl Tally {
    /// Counts one event.
    fn add(&mut self, ev: Event) {
        match ev {
            Event::Produced(item) => {
                if let Some(p) = self.produced.get_mut(item.producer as usize) {
                    *p += 1;
                }
            }
            Event::Consumed { consumer, item } => {
                self.consumed += 1;
                let (p, s) = (item.producer as usize, item.seq);
                match self
                    .seen
                    .get_mut(p)
                    .and_then(|v| v.get_mut(usize::try_from(s).unwrap_or(usize::MAX)))
                {
                    Some(n) => *n += 1,
                    None => self.disorder += 1,
                }
                if let Some(last) = self
                    .last
                    .get_mut(consumer as usize)
                    .and_then(|v| v.get_mut(p))
                {
                    if last.is_some_and(|l| l >= s) {
                        self.disorder += 1;
                    }
                    *last = Some(s);
                }
            }
        }
    }
}

/// Runs the demo.
pub(crate) fn run(ctx: &Ctx, args: &PipelineArgs) -> anyhow::Result<u8> {
    let delay = delay_of(args.delay)?;
    let per = args.items;
    let per_len = usize::try_from(per)
        .ok()
        .filter(|&n| n.saturating_mul(args.producers as usize) <= 100_000_000)
        .ok_or_else(|| Failure::usage("--items is too large"))?;
    let tmp = temp_dir("mproc-demo-pipeline-")?;
    let ns_dir = tmp.path().join("ns");
    let (ns, url) = crate::demo::demo_namespace(ctx, &ns_dir, "pipeline")?;
    let _cleanup = crate::demo::Cleanup::new(&ns, &[ITEMS, REPORT]);
    let maxsize = usize::try_from(args.maxsize).unwrap_or(usize::MAX);
    let items: Queue<Item> = Queue::create_in(&ns, ITEMS, QueueOptions::new().maxsize(maxsize))
        .map_err(|e| exit::from_create(&e))?;
    let report: Queue<Event> =
        Queue::create_in(&ns, REPORT, QueueOptions::new().max_bytes(16 << 20))
            .map_err(|e| exit::from_create(&e))?;

    let draw = if ctx.json || !std::io::stderr().is_terminal() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let multi = MultiProgress::with_draw_target(draw);
    let bar_style = style("{prefix:>12} [{bar:30}] {pos}/{len}");
    let count_style = style("{prefix:>12} {pos} eaten");
    let depth = multi.add(
        ProgressBar::new(args.maxsize)
            .with_style(style("{prefix:>12} [{bar:30}] {pos}/{len} in the queue"))
            .with_prefix("queue"),
    );
    let pbars: Vec<ProgressBar> = (0..args.producers)
        .map(|p| {
            multi.add(
                ProgressBar::new(per)
                    .with_style(bar_style.clone())
                    .with_prefix(format!("producer {p}")),
            )
        })
        .collect();
    let cbars: Vec<ProgressBar> = (0..args.consumers)
        .map(|c| {
            multi.add(
                ProgressBar::no_length()
                    .with_style(count_style.clone())
                    .with_prefix(format!("consumer {c}")),
            )
        })
        .collect();

    let started = Instant::now();
    let mut children = Children::default();
    let delay_arg = delay.as_secs_f64().to_string();
    for c in 0..args.consumers {
        let mut cmd = self_command(&ns_dir)?;
        crate::demo::pass_url(&mut cmd, &url);
        cmd.arg("__pipeline-consumer")
            .args(["--id", &c.to_string(), "--delay", &delay_arg])
            .stdin(Stdio::null());
        children.spawn(format!("consumer {c}"), &mut cmd)?;
    }
    for p in 0..args.producers {
        let mut cmd = self_command(&ns_dir)?;
        crate::demo::pass_url(&mut cmd, &url);
        cmd.arg("__pipeline-producer")
            .args(["--id", &p.to_string(), "--items", &per.to_string()])
            .args(["--delay", &delay_arg])
            .stdin(Stdio::null());
        children.spawn(format!("producer {p}"), &mut cmd)?;
    }
    let n_consumers = args.consumers as usize;

    let mut tally = Tally {
        produced: vec![0; args.producers as usize],
        seen: vec![vec![0; per_len]; args.producers as usize],
        last: vec![vec![None; args.producers as usize]; n_consumers],
        consumed: 0,
        disorder: 0,
    };
    let mut exited = vec![false; children.list.len()];
    let mut failures = Vec::new();
    let mut items_closed = false;
    let mut outage = ctx.outage();
    let mut report_closed = false;
    loop {
        match report.get_many_timeout(4096, Duration::from_millis(50)) {
            Ok(evs) => {
                for ev in evs {
                    match ev {
                        Event::Produced(i) => {
                            if let Some(b) = pbars.get(i.producer as usize) {
                                b.inc(1);
                            }
                        }
                        Event::Consumed { consumer, .. } => {
                            if let Some(b) = cbars.get(consumer as usize) {
                                b.inc(1);
                            }
                        }
                    }
                    tally.add(ev);
                }
            }
            Err(GetError::Empty) => outage.ok(),
            Err(GetError::Closed) => break,
            Err(e) => match get_transient(&e) {
                Some(msg) if outage.retry(&msg) => {}
                _ => return Err(exit::from_get(&e, REPORT, "").into()),
            },
        }
        depth.set_position(items.len() as u64);
        for (i, (label, child)) in children.list.iter_mut().enumerate() {
            if exited[i] {
                continue;
            }
            match child.try_wait() {
                Ok(Some(st)) => {
                    exited[i] = true;
                    if !st.success() {
                        failures.push(format!("{label} failed ({st})"));
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    exited[i] = true;
                    failures.push(format!("{label}: {e}"));
                }
            }
        }
        // Producers are after the consumers in the list.
        if !items_closed && exited[n_consumers..].iter().all(|&e| e) {
            items.close();
            items_closed = true;
        }
        if !report_closed && exited.iter().all(|&e| e) {
            report.close();
            report_closed = true;
        }
    }
    let elapsed = started.elapsed();
    multi.clear().ok();
    if !failures.is_empty() {
        return Err(Failure::internal(failures.join("; ")).into());
    }

    let produced: u64 = tally.produced.iter().sum();
    let mut lost = 0u64;
    let mut duplicated = 0u64;
    for per_producer in &tally.seen {
        for &n in per_producer {
            match n {
                0 => lost += 1,
                1 => {}
                n => duplicated += u64::from(n - 1),
            }
        }
    }
    let order_ok = tally.disorder == 0;
    let ok =
        lost == 0 && duplicated == 0 && order_ok && produced == per * u64::from(args.producers);
    if ctx.json {
        ctx::out_json(&json!({
            "producers": args.producers,
            "consumers": args.consumers,
            "produced": produced,
            "consumed": tally.consumed,
            "lost": lost,
            "duplicated": duplicated,
            "order_ok": order_ok,
            "elapsed_s": elapsed.as_secs_f64(),
        }))?;
    } else {
        ctx::out_line(&format!(
            "{} producers made {produced} items; {} consumers ate {}",
            args.producers, args.consumers, tally.consumed
        ))?;
        ctx::out_line(&format!(
            "lost {lost}, duplicated {duplicated}, per-producer order {}",
            if order_ok { "kept" } else { "BROKEN" }
        ))?;
        let rate = tally.consumed as f64 / elapsed.as_secs_f64().max(1e-9);
        ctx::out_line(&format!(
            "elapsed {}, {rate:.0} items/s through a Queue({})",
            fmt_secs(elapsed),
            args.maxsize
        ))?;
    }
    if ok {
        Ok(exit::OK)
    } else {
        Err(Failure::internal("the check failed: items were lost, duplicated or reordered").into())
    }
}
