//! [`JoinableQueue`]: a [`Queue`] whose consumers report finished tasks.

use std::ops::Deref;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{CreateError, JoinError, OpenError, TaskDoneError};
use crate::namespace::Namespace;
use crate::queue::{Queue, QueueOptions};
use crate::util::to_deadline;

/// Python's `multiprocessing.JoinableQueue`: every item put is a task;
/// consumers call [`task_done`](Self::task_done) when they finish one, and
/// [`join`](Self::join) waits until all tasks put so far are done.
///
/// It dereferences to [`Queue`] for `put`, `get` and the rest.
///
/// ```
/// let q: mproc::JoinableQueue<u32> = mproc::JoinableQueue::new(0).unwrap();
/// q.put(1).unwrap();
/// q.put(2).unwrap();
/// assert!(q.join_timeout(std::time::Duration::from_millis(10)).is_err());
/// while let Ok(_task) = q.try_get() {
///     q.task_done().unwrap();
/// }
/// q.join().unwrap(); // returns at once: both tasks are done
/// assert!(q.task_done().is_err()); // one call too many
/// ```
pub struct JoinableQueue<T> {
    queue: Queue<T>,
}

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        JoinableQueue {
            queue: self.queue.clone(),
        }
    }
}

impl<T> std::fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("JoinableQueue").field(&self.queue).finish()
    }
}

impl<T> JoinableQueue<T> {
    /// The plain queue, whatever `T` is.
    pub(crate) fn inner_queue(&self) -> &Queue<T> {
        &self.queue
    }
}

impl<T> Deref for JoinableQueue<T> {
    type Target = Queue<T>;

    fn deref(&self) -> &Queue<T> {
        &self.queue
    }
}

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    /// Creates an anonymous joinable queue (0: no count limit).
    pub fn new(maxsize: usize) -> Result<Self, CreateError> {
        Queue::new(maxsize).map(Self::from_queue)
    }

    /// Creates an anonymous joinable queue with the given options.
    pub fn with_options(opts: QueueOptions) -> Result<Self, CreateError> {
        Queue::with_options(opts).map(Self::from_queue)
    }

    crate::util::named_constructors!("joinable queue (created with `opts`)", opts: QueueOptions);

    /// Creates the named queue in `ns`.
    pub fn create_in(ns: &Namespace, name: &str, opts: QueueOptions) -> Result<Self, CreateError> {
        Queue::create_in(ns, name, opts).map(Self::from_queue)
    }

    /// Opens the named queue in `ns`.
    pub fn open_in(ns: &Namespace, name: &str) -> Result<Self, OpenError> {
        Queue::open_in(ns, name).map(Self::from_queue)
    }

    /// Treats a queue's items as tasks.
    pub fn from_queue(queue: Queue<T>) -> Self {
        JoinableQueue { queue }
    }

    /// The plain queue.
    pub fn queue(&self) -> &Queue<T> {
        &self.queue
    }

    /// Marks one task done. Fails when every task put is already done.
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
        self.queue
            .as_bytes()
            .backend()
            .task_done()
            .map_err(|_| TaskDoneError::TooManyCalls)
    }

    /// Acknowledges a leased task and marks it done in one step.
    pub fn ack_done(&self, receipt: &crate::Receipt) -> Result<(), crate::AckError> {
        self.queue.ack(receipt)?;
        let _ = self.task_done();
        Ok(())
    }

    /// Tasks put but not yet marked done.
    pub fn unfinished(&self) -> u64 {
        self.queue.as_bytes().backend().unfinished()
    }

    fn join_inner(&self, deadline: Option<Instant>) -> Result<(), JoinError> {
        match self.queue.as_bytes().backend().join(deadline) {
            Ok(true) => Ok(()),
            Ok(false) => Err(JoinError::Timeout {
                unfinished: self.unfinished(),
            }),
            Err(e) => Err(JoinError::Io(e.into_io().into())),
        }
    }

    /// Waits until every task put so far has been marked done.
    pub fn join(&self) -> Result<(), JoinError> {
        self.join_inner(None)
    }

    /// Waits at most `timeout` for every task to be done.
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), JoinError> {
        self.join_inner(to_deadline(timeout))
    }

    /// Waits until `deadline` for every task to be done.
    pub fn join_deadline(&self, deadline: Instant) -> Result<(), JoinError> {
        self.join_inner(Some(deadline))
    }
}
