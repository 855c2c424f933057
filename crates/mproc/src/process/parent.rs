//! The parent side: the [`Process`] handle — joining for the result (read
//! from the child's result pipe), polling and waiting for its exit status,
//! signals, and reaping on drop.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::marker::PhantomData;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::builder::ProcessBuilder;
use super::error::{ProcessError, SpawnError};
use super::outcome::Outcome;
use super::status::{wait_pid, ExitCode};
use crate::sys::{Interest, Signal};
use crate::util::to_deadline;

/// A function running in another OS process: Python's `multiprocessing.Process`.
///
/// ```
/// use mproc::{Process, Queue};
///
/// let q: Queue<String> = Queue::new(0).unwrap();
/// let mut p = Process::spawn((q.clone(), 21), |(q, n): (Queue<String>, u32)| {
///     q.put(format!("hello from {}", std::process::id())).unwrap();
///     n * 2
/// })
/// .unwrap();
/// assert!(q.get().unwrap().starts_with("hello from "));
/// assert_eq!(p.join().unwrap(), 42);
/// assert!(p.exit_code().unwrap().success());
/// ```
pub struct Process<R> {
    pid: u32,
    /// Whether the pid is ours to wait for (not yet reaped, not handed to a
    /// reaper thread).
    reap: bool,
    result: Option<File>,
    buf: Vec<u8>,
    status: Option<ExitCode>,
    outcome_taken: bool,
    daemon: bool,
    _marker: PhantomData<fn() -> R>,
}

impl<R> fmt::Debug for Process<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("pid", &self.pid)
            .field("status", &self.status)
            .finish()
    }
}

impl<R: Serialize + DeserializeOwned> Process<R> {
    /// Runs `f(args)` in a new process with default options.
    pub fn spawn<A: Serialize + DeserializeOwned>(
        args: A,
        f: fn(A) -> R,
    ) -> Result<Process<R>, SpawnError> {
        ProcessBuilder::new().spawn(args, f)
    }

    /// Waits for the process to end and returns what `f` returned.
    pub fn join(&mut self) -> Result<R, ProcessError> {
        self.join_inner(None)
    }

    /// Waits at most `timeout`; [`ProcessError::Timeout`] leaves it joinable.
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<R, ProcessError> {
        self.join_inner(to_deadline(timeout))
    }

    /// Waits until `deadline`; [`ProcessError::Timeout`] leaves it joinable.
    pub fn join_deadline(&mut self, deadline: Instant) -> Result<R, ProcessError> {
        self.join_inner(Some(deadline))
    }

    fn join_inner(&mut self, deadline: Option<Instant>) -> Result<R, ProcessError> {
        if self.outcome_taken {
            return Err(ProcessError::AlreadyJoined);
        }
        self.drain_result(deadline)?;
        let status = match self.status {
            Some(s) => s,
            None => {
                let s = wait_pid(self.pid, true)
                    .map_err(|e| ProcessError::Io(e.into()))?
                    .ok_or_else(|| {
                        ProcessError::Io(std::io::Error::other("the process was not reaped").into())
                    })?;
                self.reap = false;
                self.status = Some(s);
                s
            }
        };
        self.outcome_taken = true;
        let buf = std::mem::take(&mut self.buf);
        if buf.is_empty() {
            return Err(ProcessError::Died(status));
        }
        match postcard::from_bytes::<Outcome>(&buf) {
            Ok(Outcome::Done(bytes)) => postcard::from_bytes(&bytes)
                .map_err(|e| ProcessError::Failed(format!("cannot decode the result: {e}"))),
            Ok(Outcome::Panicked(message)) => Err(ProcessError::Panicked { message }),
            Ok(Outcome::Failed(m)) => Err(ProcessError::Failed(m)),
            Err(_) => Err(ProcessError::Died(status)),
        }
    }
}

impl<R> Process<R> {
    /// The handle of a just-started child `pid` (ours to wait for) whose
    /// outcome arrives on `result`.
    pub(super) fn started(pid: u32, result: File, daemon: bool) -> Process<R> {
        Process {
            pid,
            reap: true,
            result: Some(result),
            buf: Vec::new(),
            status: None,
            outcome_taken: false,
            daemon,
            _marker: PhantomData,
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Reads the result pipe until end of file or `deadline`.
    fn drain_result(&mut self, deadline: Option<Instant>) -> Result<(), ProcessError> {
        let Some(file) = self.result.as_mut() else {
            return Ok(());
        };
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match crate::sys::poll_one(file.as_fd(), Interest::Read, deadline) {
                Ok(true) => {}
                Ok(false) => return Err(ProcessError::Timeout),
                Err(e) => return Err(ProcessError::Io(e.into())),
            }
            match file.read(&mut chunk) {
                Ok(0) => {
                    self.result = None;
                    return Ok(());
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ProcessError::Io(e.into())),
            }
        }
    }

    /// Whether the process is still running (reaps it if it has ended).
    pub fn is_alive(&mut self) -> bool {
        self.poll_status().is_none()
    }

    fn poll_status(&mut self) -> Option<ExitCode> {
        if self.status.is_none() && self.reap {
            if let Ok(Some(s)) = wait_pid(self.pid, false) {
                self.reap = false;
                self.status = Some(s);
            }
        }
        self.status
    }

    /// How the process ended; `None` while it runs.
    pub fn exit_code(&mut self) -> Option<ExitCode> {
        self.poll_status()
    }

    fn signal(&mut self, sig: Signal) -> io::Result<()> {
        if self.poll_status().is_some() {
            return Ok(());
        }
        // The pid is our unreaped child (checked above), so it cannot have
        // been reused by another process.
        crate::sys::send_signal(self.pid, sig)
    }

    /// Sends `SIGTERM` (Python's `terminate`).
    pub fn terminate(&mut self) -> io::Result<()> {
        self.signal(Signal::Terminate)
    }

    /// Sends `SIGKILL` (Python's `kill`).
    pub fn kill(&mut self) -> io::Result<()> {
        self.signal(Signal::Kill)
    }
}

impl<R> crate::pipe::Waitable for Process<R> {
    /// Ready once the process has delivered its outcome or ended.
    fn wait_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        if self.status.is_some() {
            return None;
        }
        self.result.as_ref().map(std::os::fd::AsFd::as_fd)
    }
}

impl<R> Drop for Process<R> {
    fn drop(&mut self) {
        if self.poll_status().is_some() {
            return;
        }
        if self.daemon {
            let _ = self.kill();
        }
        if self.reap {
            self.reap = false;
            let pid = self.pid;
            if self.daemon {
                let _ = wait_pid(pid, true);
            } else {
                // Reap it when it ends so that no zombie stays behind.
                let _ = std::thread::Builder::new()
                    .name("mproc-reaper".into())
                    .spawn(move || wait_pid(pid, true));
            }
        }
    }
}
