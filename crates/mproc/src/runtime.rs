//! [`Runtime`]: the producer-consumer model as a reusable piece.
//!
//! `P` producer processes and `C` consumer processes share one bounded
//! [`Queue`]: producers block when it is full (backpressure), consumers block
//! when it is empty. When the last producer has returned, the queue is
//! [closed](Queue::close): consumers drain what is left and stop — no
//! sentinels to count. If any worker fails (returns an error, panics or is
//! killed), the run stops every other worker and fails with that worker's
//! error. Workers are daemons: they never outlive the process running them.

use std::cell::Cell;
use std::fmt;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::IoError;
use crate::error::{CreateError, GetError};
use crate::pipe::{wait, Waitable};
use crate::process::{fn_address, fn_offset, Process, ProcessBuilder, SpawnError};
use crate::queue::Queue;

/// A worker's failure, as a message (it crosses a process boundary).
///
/// Any `std::error::Error` converts into it, so `?` works in workers;
/// [`WorkerError::msg`] makes one from text.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerError(String);

impl WorkerError {
    /// A failure with this message.
    pub fn msg(message: impl fmt::Display) -> WorkerError {
        WorkerError(message.to_string())
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl<E: std::error::Error> From<E> for WorkerError {
    fn from(e: E) -> WorkerError {
        WorkerError(e.to_string())
    }
}

impl fmt::Debug for WorkerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for WorkerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which side a worker is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WorkerRole {
    /// Puts items.
    Producer,
    /// Takes items.
    Consumer,
}

impl fmt::Display for WorkerRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WorkerRole::Producer => "producer",
            WorkerRole::Consumer => "consumer",
        })
    }
}

/// Why a [`Runtime::run`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The configuration cannot run (no producer or no consumer, capacity 0).
    #[error("invalid runtime configuration: {0}")]
    InvalidConfig(String),
    /// The queue could not be created.
    #[error("cannot create the queue: {0}")]
    Queue(#[from] CreateError),
    /// A worker could not be started.
    #[error("cannot start a worker: {0}")]
    Spawn(#[from] SpawnError),
    /// A worker failed; every other worker was stopped.
    #[error("{role} {index} (pid {pid}) failed: {error}")]
    Worker {
        /// Its side.
        role: WorkerRole,
        /// Its index among its side's workers.
        index: usize,
        /// Its process id.
        pid: u32,
        /// What it reported: its error, its panic message, or how it died.
        error: String,
    },
    /// Waiting for the workers failed.
    #[error("waiting for the workers failed: {0}")]
    Io(IoError),
}

/// The producing side's handle, given to each producer function.
pub struct Producer<T> {
    index: usize,
    queue: Queue<T>,
    produced: Cell<u64>,
}

impl<T: Serialize + DeserializeOwned> Producer<T> {
    /// This producer's index, `0..producers`.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Puts one item, waiting while the queue is full (backpressure). Fails
    /// only when the run is being stopped or the item cannot be sent.
    pub fn put(&self, item: T) -> Result<(), WorkerError> {
        self.queue.put(item).map_err(WorkerError::msg)?;
        self.produced.set(self.produced.get() + 1);
        Ok(())
    }

    /// How many items this producer has put so far.
    pub fn produced(&self) -> u64 {
        self.produced.get()
    }
}

/// What one worker did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSummary {
    /// Its side.
    pub role: WorkerRole,
    /// Its index among its side's workers.
    pub index: usize,
    /// Its process id.
    pub pid: u32,
    /// Items it produced or consumed.
    pub items: u64,
}

/// What a successful run did.
#[derive(Debug, Clone)]
pub struct Summary {
    /// One entry per producer, by index.
    pub producers: Vec<WorkerSummary>,
    /// One entry per consumer, by index.
    pub consumers: Vec<WorkerSummary>,
    /// From the first spawn to the last worker's end.
    pub elapsed: Duration,
}

impl Summary {
    /// Items produced, all producers together.
    pub fn produced(&self) -> u64 {
        self.producers.iter().map(|w| w.items).sum()
    }

    /// Items consumed, all consumers together.
    pub fn consumed(&self) -> u64 {
        self.consumers.iter().map(|w| w.items).sum()
    }

    /// Items consumed per second.
    pub fn throughput(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.consumed() as f64 / s
        } else {
            0.0
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for w in self.producers.iter().chain(&self.consumers) {
            writeln!(
                f,
                "{} {} (pid {}): {} items",
                w.role, w.index, w.pid, w.items
            )?;
        }
        write!(
            f,
            "produced {}, consumed {} in {:.3} s ({:.0} items/s)",
            self.produced(),
            self.consumed(),
            self.elapsed.as_secs_f64(),
            self.throughput()
        )
    }
}

/// Runs `P` producers and `C` consumers over one bounded queue.
///
/// ```
/// use mproc::{Producer, Runtime, WorkerError};
///
/// fn produce(p: &Producer<u32>, per: &u32) -> Result<(), WorkerError> {
///     for i in 0..*per {
///         p.put(p.index() as u32 * 1000 + i)?;
///     }
///     Ok(())
/// }
/// fn consume(_consumer: usize, item: u32, _per: &u32) -> Result<(), WorkerError> {
///     if item == u32::MAX {
///         return Err(WorkerError::msg("unexpected item"));
///     }
///     Ok(())
/// }
///
/// let summary = Runtime::new(3, 2).capacity(4).run(10u32, produce, consume).unwrap();
/// assert_eq!(summary.produced(), 30);
/// assert_eq!(summary.consumed(), 30);
/// ```
#[derive(Debug, Clone)]
pub struct Runtime {
    producers: usize,
    consumers: usize,
    capacity: usize,
}

/// A producer function: puts items through the [`Producer`].
pub type ProduceFn<T, A> = fn(&Producer<T>, &A) -> Result<(), WorkerError>;
/// A consumer function: handles one item; gets its consumer index.
pub type ConsumeFn<T, A> = fn(usize, T, &A) -> Result<(), WorkerError>;

#[derive(Serialize, Deserialize)]
#[serde(bound(
    serialize = "A: Serialize",
    deserialize = "T: Serialize + DeserializeOwned, A: DeserializeOwned"
))]
struct WorkerArgs<T, A> {
    index: usize,
    queue: Queue<T>,
    /// The user's function, as an offset in this executable.
    user: usize,
    args: A,
}

fn producer_main<T, A>(w: WorkerArgs<T, A>) -> Result<u64, WorkerError>
where
    T: Serialize + DeserializeOwned,
{
    // SAFETY: `w.user` was made by `Runtime::run::<T, A>` with `fn_offset`
    // from a `ProduceFn<T, A>` in this same executable (the spawner checked
    // the executable's identity), and this function is that run's
    // `producer_main::<T, A>`, so the types match.
    let f = unsafe { std::mem::transmute::<usize, ProduceFn<T, A>>(fn_address(w.user)) };
    let p = Producer {
        index: w.index,
        queue: w.queue,
        produced: Cell::new(0),
    };
    f(&p, &w.args)?;
    Ok(p.produced.get())
}

fn consumer_main<T, A>(w: WorkerArgs<T, A>) -> Result<u64, WorkerError>
where
    T: Serialize + DeserializeOwned,
{
    // SAFETY: as in `producer_main`, for a `ConsumeFn<T, A>`.
    let f = unsafe { std::mem::transmute::<usize, ConsumeFn<T, A>>(fn_address(w.user)) };
    let mut n = 0;
    loop {
        match w.queue.get() {
            Ok(item) => {
                f(w.index, item, &w.args)?;
                n += 1;
            }
            Err(GetError::Closed) => return Ok(n),
            Err(e) => return Err(e.into()),
        }
    }
}

struct Live {
    role: WorkerRole,
    index: usize,
    process: Process<Result<u64, WorkerError>>,
}

impl Runtime {
    /// `producers` producer processes and `consumers` consumer processes
    /// over a queue of capacity `2 × consumers` (see [`capacity`](Self::capacity)).
    pub fn new(producers: usize, consumers: usize) -> Runtime {
        Runtime {
            producers,
            consumers,
            capacity: consumers.saturating_mul(2).max(1),
        }
    }

    /// The queue's capacity in items: producers wait while it is full.
    pub fn capacity(mut self, items: usize) -> Runtime {
        self.capacity = items;
        self
    }

    /// Runs the workers to the end: `produce` in each producer, `consume` on
    /// every item in the consumers. `args` is given to every worker (it may
    /// hold mproc handles). Returns when every worker has ended; fails as
    /// soon as one fails, after stopping the others.
    pub fn run<T, A>(
        &self,
        args: A,
        produce: ProduceFn<T, A>,
        consume: ConsumeFn<T, A>,
    ) -> Result<Summary, RuntimeError>
    where
        T: Serialize + DeserializeOwned,
        A: Serialize + DeserializeOwned + Clone,
    {
        if self.producers == 0 || self.consumers == 0 || self.capacity == 0 {
            return Err(RuntimeError::InvalidConfig(format!(
                "{} producers, {} consumers, capacity {}: each must be at least 1",
                self.producers, self.consumers, self.capacity
            )));
        }
        let queue: Queue<T> = Queue::new(self.capacity)?;
        let start = Instant::now();
        let mut live: Vec<Live> = Vec::new();
        let spawned = self.spawn_all(&queue, &args, produce, consume, &mut live);
        if let Err(e) = spawned {
            stop(&queue, &mut live);
            return Err(e);
        }
        let mut producers_left = self.producers;
        let mut done: Vec<WorkerSummary> = Vec::new();
        while !live.is_empty() {
            let ready = {
                let objs: Vec<&dyn Waitable> =
                    live.iter().map(|w| &w.process as &dyn Waitable).collect();
                wait(&objs, None)
            };
            let ready = match ready {
                Ok(r) => r,
                Err(e) => {
                    stop(&queue, &mut live);
                    return Err(e.into());
                }
            };
            for i in ready.into_iter().rev() {
                let mut w = live.swap_remove(i);
                let pid = w.process.pid();
                let error = match w.process.join() {
                    Ok(Ok(items)) => {
                        done.push(WorkerSummary {
                            role: w.role,
                            index: w.index,
                            pid,
                            items,
                        });
                        if w.role == WorkerRole::Producer {
                            producers_left -= 1;
                            if producers_left == 0 {
                                queue.close();
                            }
                        }
                        continue;
                    }
                    Ok(Err(e)) => e.0,
                    Err(e) => e.to_string(),
                };
                stop(&queue, &mut live);
                return Err(RuntimeError::Worker {
                    role: w.role,
                    index: w.index,
                    pid,
                    error,
                });
            }
        }
        let elapsed = start.elapsed();
        done.sort_by_key(|w| (w.role == WorkerRole::Consumer, w.index));
        let consumers = done.split_off(self.producers);
        Ok(Summary {
            producers: done,
            consumers,
            elapsed,
        })
    }

    fn spawn_all<T, A>(
        &self,
        queue: &Queue<T>,
        args: &A,
        produce: ProduceFn<T, A>,
        consume: ConsumeFn<T, A>,
        live: &mut Vec<Live>,
    ) -> Result<(), RuntimeError>
    where
        T: Serialize + DeserializeOwned,
        A: Serialize + DeserializeOwned + Clone,
    {
        let sides = [
            (
                WorkerRole::Consumer,
                self.consumers,
                fn_offset(consume as usize),
            ),
            (
                WorkerRole::Producer,
                self.producers,
                fn_offset(produce as usize),
            ),
        ];
        for (role, n, user) in sides {
            for index in 0..n {
                let w = WorkerArgs {
                    index,
                    queue: queue.clone(),
                    user,
                    args: args.clone(),
                };
                let b = ProcessBuilder::new()
                    .daemon(true)
                    .name(&format!("mproc-{role}-{index}"));
                let process = match role {
                    WorkerRole::Producer => b.spawn(w, producer_main::<T, A>)?,
                    WorkerRole::Consumer => b.spawn(w, consumer_main::<T, A>)?,
                };
                live.push(Live {
                    role,
                    index,
                    process,
                });
            }
        }
        Ok(())
    }
}

/// Stops every live worker: closes the queue (ending blocked calls), kills
/// the processes and reaps them.
fn stop<T: Serialize + DeserializeOwned>(queue: &Queue<T>, live: &mut Vec<Live>) {
    queue.close();
    for w in live.iter_mut() {
        let _ = w.process.kill();
    }
    for mut w in live.drain(..) {
        let _ = w.process.join();
    }
}

crate::error::from_io!(RuntimeError);
