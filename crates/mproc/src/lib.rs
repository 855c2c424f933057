//! # mproc — cross-process Lock and Queue
//!
//! The synchronisation and communication primitives of Python's
//! `multiprocessing`, for Rust programs split across OS processes, built on
//! shared memory and futexes:
//!
//! * [`Lock`] — robust: a holder killed with `SIGKILL` never wedges anyone;
//!   the next acquirer is told ([`LockError::OwnerDied`]).
//! * [`RwLock`] — readers-writer, as robust: a killed reader's share comes
//!   back, a killed writer's lock is taken over (`OwnerDied`); writers are
//!   preferred and readers let in in batches, so neither starves.
//! * [`Queue`] / [`ByteQueue`] — bounded MPMC FIFO, blocking with timeouts,
//!   exact `len`, and a [`close`](Queue::close) that ends every consumer.
//! * [`JoinableQueue`] — `task_done` / `join`.
//! * At-least-once consumption: [`Queue::get_leased`] + [`Queue::ack`]; the
//!   item of a consumer that dies before acknowledging is delivered again.
//! * [`Process`] — run a function in a new process (re-executing the
//!   binary, so it is safe in multi-threaded parents), [`Pipe`] /
//!   [`Connection`] with [`wait`], [`Pool::map`], and the producer–consumer
//!   [`Runtime`].
//! * [`RLock`], [`Semaphore`] / [`BoundedSemaphore`], [`Event`],
//!   [`Condition`], [`Barrier`], and shared [`Value`] / [`Array`] of
//!   [`Pod`] data with a robust lock. A semaphore unit held through a guard
//!   comes back, and a barrier breaks, when a participant is killed.
//!
//! Objects are named (in a [`Namespace`], a private directory on tmpfs by
//! default, `MPROC_DIR` to override, or a Redis server with the `redis`
//! feature and `MPROC_URL`) or anonymous (`Lock::new`, `Queue::new`), and
//! handles can be passed to child processes as [`Process`] arguments. Every blocking method comes as a family:
//! `x` (wait forever), `try_x` (never wait), `x_timeout(Duration)` and
//! `x_deadline(Instant)`.
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! # std::env::set_var("MPROC_DIR", dir.path());
//! use mproc::{Lock, Queue, QueueOptions};
//!
//! let lock = Lock::open_or_create("ticket-lock").unwrap();
//! let q: Queue<String> = Queue::open_or_create("orders", QueueOptions::new().maxsize(5)).unwrap();
//! {
//!     let _g = lock.lock().unwrap();
//!     q.put("alex0 bought a ticket".to_string()).unwrap();
//! }
//! assert_eq!(q.get().unwrap(), "alex0 bought a ticket");
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

mod backend;
mod codec;
mod crash;
mod error;
mod fence;
mod flavor;
mod handle;
mod ident;
mod joinable;
mod local;
mod lock;
mod name;
mod namespace;
mod object;
mod pipe;
mod pool;
mod process;
mod queue;
#[cfg(feature = "redis")]
mod redis;
mod runtime;
mod rwlock;
mod sync;
mod sys;
#[cfg(feature = "testing")]
pub mod testing;
mod util;
mod wait;

pub use crate::{
    backend::Receipt,
    error::{
        AckError, CreateError, GetError, IoError, JoinError, LockError, NameError, NamespaceError,
        OpenError, OpenOrCreateError, OwnerDied, PutError, PutErrorKind, PutManyError, RemoveError,
        TaskDoneError,
    },
    fence::FenceError,
    handle::SharedFd,
    ident::ProcessId,
    joinable::JoinableQueue,
    lock::{Holder, Lock, LockGuard, LockResult, Waiter},
    name::validate_name,
    namespace::Namespace,
    object::{ObjectInfo, ObjectKind},
    pipe::{
        pipe, wait, wait_deadline, Connection, Pipe, PipeError, RecvIntoError, Waitable,
        DEFAULT_MAX_MESSAGE,
    },
    pool::{Pool, PoolError},
    process::{ExitCode, Process, ProcessBuilder, ProcessError, SpawnError, StartMethod},
    queue::{ByteQueue, Leased, Queue, QueueOptions, QueueStats, DEFAULT_MAX_BYTES},
    runtime::{
        ConsumeFn, ProduceFn, Producer, Runtime, RuntimeError, Summary, WorkerError, WorkerRole,
        WorkerSummary,
    },
    rwlock::{
        Reader, RwLock, RwLockReadGuard, RwLockReadResult, RwLockWriteGuard, RwLockWriteResult,
    },
    sync::{
        barrier::Barrier,
        condition::{Condition, ConditionGuard, ConditionLockResult},
        event::Event,
        rlock::{RLock, RLockGuard, RLockResult},
        semaphore::{BoundedSemaphore, Semaphore, SemaphoreGuard},
        value::{Array, Pod, Value, ValueGuard, ValueInfo, ValueLockResult},
        BarrierError, ConditionError, NotOwner, SemaphoreError,
    },
};

/// Every named crash point (name, the operations that reach it): with the
/// cargo feature `crash-points`, `MPROC_CRASH_AT=NAME:K` makes a process
/// SIGKILL itself the K-th time it reaches `NAME`, right after the store
/// the point names. See RELIABILITY.md for what a kill at each one leaves.
#[cfg(feature = "crash-points")]
pub fn crash_points() -> &'static [(&'static str, &'static str)] {
    crash::POINTS
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

/// The Rust snippets of CLI.md, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../mproc-cli/CLI.md")]
pub struct CliDoctests;

/// The Rust snippets of REDIS.md, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../REDIS.md")]
pub struct RedisDoctests;

/// The Rust snippets of RELIABILITY.md, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../RELIABILITY.md")]
pub struct ReliabilityDoctests;
