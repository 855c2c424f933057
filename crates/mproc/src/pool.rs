//! [`Pool`]: a fixed set of worker processes running one function over many
//! items (Python's `multiprocessing.Pool.map`).
//!
//! Each worker is a daemon process connected to the pool by its own
//! [`Connection`]. Items go out in chunks, one chunk per worker at a time
//! (so neither side can block the other on a full socket buffer), and the
//! results come back tagged with their position, so [`Pool::map`] returns
//! them in input order.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::pipe::{wait, Connection, Pipe, PipeError, Waitable};
use crate::process::{call_erased, erase, panic_message, Process, ProcessBuilder, SpawnError};

/// Why a [`Pool`] operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// A pool needs at least one worker.
    #[error("a pool needs at least one worker")]
    NoWorkers,
    /// A worker could not be started.
    #[error("cannot start a pool worker: {0}")]
    Spawn(#[from] SpawnError),
    /// The function failed (panicked, or its argument or result could not be
    /// transferred) on the item at `index`. The other items of the call were
    /// finished first; the pool stays usable.
    #[error("item {index} failed: {message}")]
    Task {
        /// The item's position in the input.
        index: usize,
        /// The panic message or transfer error.
        message: String,
    },
    /// An item could not be encoded; nothing was sent.
    #[error("cannot encode item {index}: {message}")]
    Encode {
        /// The item's position in the input.
        index: usize,
        /// The encoder's message.
        message: String,
    },
    /// A worker process died or its connection failed. The pool is broken:
    /// every later call fails with this too.
    #[error("a pool worker is gone: {0}")]
    WorkerLost(String),
}

#[derive(Serialize, Deserialize)]
struct Chunk {
    tramp: usize,
    f: usize,
    first: usize,
    items: Vec<Vec<u8>>,
}

#[derive(Serialize, Deserialize)]
enum Reply {
    Done(Vec<u8>),
    Failed(String),
}

fn worker_main(c: Connection) {
    while let Ok(chunk) = c.recv::<Chunk>() {
        let replies: Vec<Reply> = chunk
            .items
            .iter()
            .map(|item| {
                // SAFETY: chunks come only from `Pool::map` in the process
                // that spawned this one from the same executable; their
                // `(tramp, f)` were made by `erase`.
                let r =
                    std::panic::catch_unwind(|| unsafe { call_erased(chunk.tramp, chunk.f, item) });
                match r {
                    Ok(Ok(bytes)) => Reply::Done(bytes),
                    Ok(Err(m)) => Reply::Failed(m),
                    Err(p) => Reply::Failed(format!("panicked: {}", panic_message(&*p))),
                }
            })
            .collect();
        if c.send(&(chunk.first, replies)).is_err() {
            return;
        }
    }
}

struct Worker {
    process: Process<()>,
    conn: Connection,
    busy: bool,
}

/// Worker processes that run a function over many items.
///
/// The workers are daemons of the thread that creates the pool: they are
/// killed when that thread ends (see [`ProcessBuilder::daemon`]), so create
/// the pool on a thread that outlives it.
///
/// Dropping the pool ends its workers (Python's `with Pool() as p:`
/// terminates them): their connections close, and any still running after
/// a second is killed.
///
/// ```
/// let mut pool = mproc::Pool::new(2).unwrap();
/// let squares = pool.map(|x: u64| x * x, (1..=10).collect::<Vec<_>>()).unwrap();
/// assert_eq!(squares, vec![1, 4, 9, 16, 25, 36, 49, 64, 81, 100]);
/// ```
pub struct Pool {
    workers: Vec<Worker>,
    broken: Option<String>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("workers", &self.workers.len())
            .field("broken", &self.broken)
            .finish()
    }
}

impl Pool {
    /// Starts `workers` worker processes (daemons).
    pub fn new(workers: usize) -> Result<Pool, PoolError> {
        if workers == 0 {
            return Err(PoolError::NoWorkers);
        }
        let mut pool = Pool {
            workers: Vec::with_capacity(workers),
            broken: None,
        };
        for i in 0..workers {
            let (mine, theirs) =
                Pipe::duplex().map_err(|e| SpawnError::Io(std::io::Error::other(e).into()))?;
            let process = ProcessBuilder::new()
                .daemon(true)
                .name(&format!("mproc-pool-{i}"))
                .spawn(theirs, worker_main)?;
            pool.workers.push(Worker {
                process,
                conn: mine,
                busy: false,
            });
        }
        Ok(pool)
    }

    /// How many worker processes the pool has.
    pub fn size(&self) -> usize {
        self.workers.len()
    }

    /// Applies `f` to every item in the workers and returns the results in
    /// input order. `f` must capture nothing. Items and results travel
    /// encoded, so they should be plain data (named mproc handles work;
    /// anonymous ones need [`Process::spawn`]).
    pub fn map<T, R>(
        &mut self,
        f: fn(T) -> R,
        items: impl IntoIterator<Item = T>,
    ) -> Result<Vec<R>, PoolError>
    where
        T: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        if let Some(b) = &self.broken {
            return Err(PoolError::WorkerLost(b.clone()));
        }
        let encoded = items
            .into_iter()
            .enumerate()
            .map(|(index, item)| {
                postcard::to_allocvec(&item).map_err(|e| PoolError::Encode {
                    index,
                    message: e.to_string(),
                })
            })
            .collect::<Result<Vec<Vec<u8>>, PoolError>>()?;
        let total = encoded.len();
        if total == 0 {
            return Ok(Vec::new());
        }
        let (tramp, fo) = erase(f);
        // Python's default: about four chunks per worker.
        let chunk = total.div_ceil(self.workers.len() * 4).max(1);
        let mut pending = encoded.into_iter().enumerate().peekable();
        let mut results: Vec<Option<R>> = (0..total).map(|_| None).collect();
        let mut first_error: Option<PoolError> = None;
        let mut received = 0;
        loop {
            // Hand a chunk to every idle worker while there are items and
            // no failure.
            for wi in 0..self.workers.len() {
                if first_error.is_some() || pending.peek().is_none() {
                    break;
                }
                let w = &mut self.workers[wi];
                if w.busy {
                    continue;
                }
                let first = pending.peek().map_or(0, |(i, _)| *i);
                let items: Vec<Vec<u8>> = pending.by_ref().take(chunk).map(|(_, b)| b).collect();
                let msg = Chunk {
                    tramp,
                    f: fo,
                    first,
                    items,
                };
                if let Err(e) = w.conn.send(&msg) {
                    let why = format!("sending to pid {}: {e}", w.process.pid());
                    return Err(self.lose(why));
                }
                w.busy = true;
            }
            if !self.workers.iter().any(|w| w.busy) {
                break;
            }
            let ready = {
                let objs: Vec<&dyn Waitable> = self
                    .workers
                    .iter()
                    .filter(|w| w.busy)
                    .map(|w| &w.conn as &dyn Waitable)
                    .collect();
                wait(&objs, None)
            };
            let ready = match ready {
                Ok(r) => r,
                Err(e) => return Err(self.lose(e.to_string())),
            };
            let busy: Vec<usize> = (0..self.workers.len())
                .filter(|&i| self.workers[i].busy)
                .collect();
            for r in ready {
                let w = &mut self.workers[busy[r]];
                w.busy = false;
                let (first, replies) = match w.conn.recv::<(usize, Vec<Reply>)>() {
                    Ok(x) => x,
                    Err(e) => {
                        let pid = w.process.pid();
                        let why = match e {
                            PipeError::Disconnected => {
                                let _ = w.process.join_timeout(Duration::from_secs(5));
                                match w.process.exit_code() {
                                    Some(c) => format!("pid {pid} ended ({c})"),
                                    None => format!("pid {pid} closed its connection"),
                                }
                            }
                            e => format!("receiving from pid {pid}: {e}"),
                        };
                        return Err(self.lose(why));
                    }
                };
                for (k, reply) in replies.into_iter().enumerate() {
                    let index = first.saturating_add(k);
                    let Some(slot) = results.get_mut(index) else {
                        return Err(self.lose(format!("reply for unknown item {index}")));
                    };
                    received += 1;
                    match reply {
                        Reply::Done(bytes) => match postcard::from_bytes::<R>(&bytes) {
                            Ok(v) => *slot = Some(v),
                            Err(e) => {
                                first_error.get_or_insert(PoolError::Task {
                                    index,
                                    message: format!("cannot decode the result: {e}"),
                                });
                            }
                        },
                        Reply::Failed(message) => {
                            first_error.get_or_insert(PoolError::Task { index, message });
                        }
                    }
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        if received != total {
            return Err(self.lose(format!("{received} of {total} results came back")));
        }
        Ok(results.into_iter().flatten().collect())
    }

    /// Marks the pool broken, stops its workers, and builds the error.
    fn lose(&mut self, why: String) -> PoolError {
        self.broken = Some(why.clone());
        for w in &mut self.workers {
            let _ = w.process.kill();
        }
        PoolError::WorkerLost(why)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let workers = std::mem::take(&mut self.workers);
        let mut procs = Vec::with_capacity(workers.len());
        for w in workers {
            drop(w.conn);
            procs.push(w.process);
        }
        for mut p in procs {
            if p.join_timeout(Duration::from_secs(1)).is_err() && p.is_alive() {
                let _ = p.kill();
                let _ = p.join();
            }
        }
    }
}
