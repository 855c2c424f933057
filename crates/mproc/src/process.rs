//! [`Process`]: run a function in a new OS process.
//!
//! Spawning re-executes the current binary (safe in a multi-threaded parent:
//! the child runs `exec` right after `fork`). A constructor in this module,
//! registered in `.init_array`, runs before `main` in every binary that
//! links mproc: when the environment marks the process as a spawned child, it
//! decodes the arguments, calls the requested function, sends the result
//! (or the panic message) back through a pipe and exits, so `main` never runs
//! in the child. Functions are named by their offset from this module's entry
//! point, which is the same in every execution of the same binary.
//!
//! Arguments may contain mproc handles ([`Lock`](crate::Lock),
//! [`Queue`](crate::Queue), …): named ones are reopened by name, anonymous
//! ones are inherited as descriptors — exactly those, nothing else.

use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::handle::{collect_fds, set_inherited};
use crate::sys::{Forked, Interest, Signal};
use crate::util::to_deadline;

const ENV_CHILD: &str = "MPROC_CHILD";

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitCode {
    /// It exited with this status code.
    Exited(i32),
    /// It was killed by this signal.
    Signaled(i32),
}

impl ExitCode {
    /// Python's `Process.exitcode`: the code, or minus the signal number.
    pub fn python(self) -> i32 {
        match self {
            ExitCode::Exited(c) => c,
            ExitCode::Signaled(s) => -s,
        }
    }

    /// Whether the process exited with status 0.
    pub fn success(self) -> bool {
        self == ExitCode::Exited(0)
    }

    fn from_wait_status(s: std::process::ExitStatus) -> ExitCode {
        match (s.code(), s.signal()) {
            (Some(c), _) => ExitCode::Exited(c),
            (None, Some(sig)) => ExitCode::Signaled(sig),
            (None, None) => ExitCode::Exited(-1),
        }
    }
}

impl fmt::Display for ExitCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitCode::Exited(c) => write!(f, "exit status {c}"),
            ExitCode::Signaled(s) => write!(f, "killed by signal {s}"),
        }
    }
}

/// Why a spawn failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// The arguments could not be encoded.
    #[error("cannot encode the process arguments: {0}")]
    Encode(String),
    /// The process could not be started.
    #[error("cannot start the process: {0}")]
    Io(#[from] io::Error),
    /// [`StartMethod::Fork`] was asked for where it is not sound (or not
    /// supported): the reason is inside.
    #[error("cannot fork here: {0}")]
    ForkUnsound(String),
}

/// How a child process starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StartMethod {
    /// Re-execute the current binary and run the function there (the
    /// default; sound in any process, like Python's `spawn`). Arguments
    /// travel encoded; handles in them are reopened or inherited.
    #[default]
    Spawn,
    /// `fork(2)` and run the function in the copy (Python's `fork`): much
    /// faster to start, and arguments need not be encoded. Only sound in a
    /// single-threaded process, so it is refused anywhere else. The child
    /// inherits *every* descriptor of the parent (so a pipe end the parent
    /// keeps elsewhere stays open in the child too), and custom standard
    /// streams are not supported.
    Fork,
}

/// Why a process produced no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// The function panicked; the panic message is inside.
    #[error("the process panicked: {message}")]
    Panicked {
        /// The panic message.
        message: String,
    },
    /// The process ended (killed, or exited early) without a result.
    #[error("the process ended without a result ({0})")]
    Died(ExitCode),
    /// The child could not run the function (bad arguments or result).
    #[error("the process failed: {0}")]
    Failed(String),
    /// The deadline passed; the process is still running.
    #[error("timed out waiting for the process")]
    Timeout,
    /// The result was already taken by an earlier `join`.
    #[error("the process was already joined")]
    AlreadyJoined,
    /// Waiting for the process failed.
    #[error("waiting for the process failed: {0}")]
    Io(String),
}

impl ProcessError {
    /// Whether this is a timeout (the process can be joined again).
    pub fn is_timeout(&self) -> bool {
        *self == ProcessError::Timeout
    }
}

#[derive(Serialize, Deserialize)]
enum Outcome {
    Done(Vec<u8>),
    Panicked(String),
    Failed(String),
}

/// Options for spawning a [`Process`].
#[derive(Debug, Default)]
pub struct ProcessBuilder {
    daemon: bool,
    start: StartMethod,
    name: Option<String>,
    stdin: Option<Stdio>,
    stdout: Option<Stdio>,
    stderr: Option<Stdio>,
}

impl ProcessBuilder {
    /// Default options: not a daemon, standard streams inherited.
    pub fn new() -> Self {
        Self::default()
    }

    /// A daemon child is killed (SIGKILL) when the spawning thread's process
    /// ends, however it ends, and is killed when its handle is dropped
    /// (Python's `daemon=True`).
    ///
    /// # Platform specific behavior
    /// Uses `PR_SET_PDEATHSIG`, which fires when the *thread* that spawned
    /// the child exits; spawn daemons from a long-lived thread.
    pub fn daemon(mut self, daemon: bool) -> Self {
        self.daemon = daemon;
        self
    }

    /// How the child starts (default: [`StartMethod::Spawn`]).
    pub fn start_method(mut self, start: StartMethod) -> Self {
        self.start = start;
        self
    }

    /// A name for the child, visible as `MPROC_PROCESS_NAME` in it and as
    /// its `argv[0]` in `ps`.
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// The child's standard input (inherited by default).
    pub fn stdin(mut self, s: Stdio) -> Self {
        self.stdin = Some(s);
        self
    }

    /// The child's standard output (inherited by default).
    pub fn stdout(mut self, s: Stdio) -> Self {
        self.stdout = Some(s);
        self
    }

    /// The child's standard error (inherited by default).
    pub fn stderr(mut self, s: Stdio) -> Self {
        self.stderr = Some(s);
        self
    }

    /// Runs `f(args)` in a new process.
    ///
    /// `f` must be a plain function or a closure that captures nothing;
    /// everything it needs travels in `args`.
    pub fn spawn<A, R>(self, args: A, f: fn(A) -> R) -> Result<Process<R>, SpawnError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        if self.start == StartMethod::Fork {
            return self.fork(args, f);
        }
        let (encoded, fds) = collect_fds(|| postcard::to_allocvec(&args));
        let encoded = encoded.map_err(|e| SpawnError::Encode(e.to_string()))?;
        let base = entry_address();
        let tramp = trampoline::<A, R> as fn(usize, &[u8]) -> Result<Vec<u8>, String> as usize;
        let args_fd = crate::sys::memfd(c"mproc-args")?;
        {
            // The duplicate shares the file offset: rewind it for the child.
            let mut f = File::from(args_fd.try_clone()?);
            f.write_all(&encoded)?;
            f.seek(std::io::SeekFrom::Start(0))?;
        }
        let (result_r, result_w) = crate::sys::pipe()?;
        let exe = std::env::current_exe()?;
        let id = exe_identity(&exe)?;
        let handles: Vec<String> = fds.iter().map(|fd| fd.to_string()).collect();
        let marker = format!(
            "1:{id}:{}:{}:{}:{}:{}",
            tramp.wrapping_sub(base),
            (f as usize).wrapping_sub(base),
            args_fd.as_raw_fd(),
            result_w.as_raw_fd(),
            handles.join(",")
        );
        let mut cmd = Command::new(&exe);
        cmd.arg0(OsString::from(
            self.name.as_deref().unwrap_or("mproc-child"),
        ))
        .env(ENV_CHILD, marker);
        if let Some(n) = &self.name {
            cmd.env("MPROC_PROCESS_NAME", n);
        }
        if let Some(s) = self.stdin {
            cmd.stdin(s);
        }
        if let Some(s) = self.stdout {
            cmd.stdout(s);
        }
        if let Some(s) = self.stderr {
            cmd.stderr(s);
        }
        let mut inherit: Vec<RawFd> = fds;
        inherit.push(args_fd.as_raw_fd());
        inherit.push(result_w.as_raw_fd());
        let daemon = self.daemon;
        let parent = crate::sys::my_pid();
        // SAFETY: the closure runs in the forked child before exec and calls
        // only async-signal-safe functions (`set_cloexec` is one fcntl,
        // `die_with_parent` a prctl and a getppid) on plain integers
        // captured by value; it allocates nothing until it fails.
        unsafe {
            cmd.pre_exec(move || {
                for &fd in &inherit {
                    crate::sys::set_cloexec(fd, false)?;
                }
                if daemon && !crate::sys::die_with_parent(parent) {
                    return Err(io::Error::other("parent exited"));
                }
                Ok(())
            })
        };
        let child = cmd.spawn()?;
        // Only now: the handles' descriptors had to stay open until the
        // child inherited them (a pipe end passed by value is closed here,
        // so that the child holds the only copy).
        drop(args);
        drop(result_w);
        drop(args_fd);
        // The pid is waited for directly from now on (dropping a `Child`
        // neither waits nor kills).
        let pid = child.id();
        drop(child);
        Ok(Process {
            pid,
            reap: true,
            result: Some(File::from(result_r)),
            buf: Vec::new(),
            status: None,
            outcome_taken: false,
            daemon,
            _marker: PhantomData,
        })
    }
}

impl ProcessBuilder {
    fn fork<A, R>(self, args: A, f: fn(A) -> R) -> Result<Process<R>, SpawnError>
    where
        R: Serialize,
    {
        if self.stdin.is_some() || self.stdout.is_some() || self.stderr.is_some() {
            return Err(SpawnError::ForkUnsound(
                "custom standard streams need StartMethod::Spawn".into(),
            ));
        }
        let threads = crate::sys::thread_count()
            .map_err(|e| SpawnError::ForkUnsound(format!("cannot count threads: {e}")))?;
        if threads != 1 {
            return Err(SpawnError::ForkUnsound(format!(
                "this process has {threads} threads; fork is only sound with one"
            )));
        }
        let (result_r, result_w) = crate::sys::pipe()?;
        // Buffered output must not be written twice.
        let _ = io::stdout().flush();
        let parent = crate::sys::my_pid();
        // SAFETY: the process is single-threaded (checked just above; only
        // this thread could have started another since).
        let pid = match unsafe { crate::sys::fork() }? {
            Forked::Parent(pid) => pid,
            Forked::Child => {
                drop(result_r);
                if let Some(n) = &self.name {
                    std::env::set_var("MPROC_PROCESS_NAME", n);
                }
                if self.daemon && !crate::sys::die_with_parent(parent) {
                    crate::sys::exit_now(70);
                }
                let outcome =
                    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(args))) {
                        Ok(r) => match postcard::to_allocvec(&r) {
                            Ok(bytes) => Outcome::Done(bytes),
                            Err(e) => Outcome::Failed(format!("cannot encode the result: {e}")),
                        },
                        Err(payload) => Outcome::Panicked(panic_message(&*payload)),
                    };
                let code = match &outcome {
                    Outcome::Done(_) => 0,
                    Outcome::Panicked(_) => 101,
                    Outcome::Failed(_) => 70,
                };
                if let Ok(bytes) = postcard::to_allocvec(&outcome) {
                    let _ = File::from(result_w).write_all(&bytes);
                }
                let _ = io::stdout().flush();
                // Without the parent's exit handlers or destructors a second time.
                crate::sys::exit_now(code)
            }
        };
        drop(result_w);
        drop(args);
        Ok(Process {
            pid,
            reap: true,
            result: Some(File::from(result_r)),
            buf: Vec::new(),
            status: None,
            outcome_taken: false,
            daemon: self.daemon,
            _marker: PhantomData,
        })
    }
}

/// Waits for our child `pid`; `Ok(None)` if `block` is false and it runs.
fn wait_pid(pid: u32, block: bool) -> io::Result<Option<ExitCode>> {
    Ok(crate::sys::wait_pid(pid, block)?.map(ExitCode::from_wait_status))
}

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
                    .map_err(|e| ProcessError::Io(e.to_string()))?
                    .ok_or_else(|| ProcessError::Io("the process was not reaped".into()))?;
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
                Err(e) => return Err(ProcessError::Io(e.to_string())),
            }
            match file.read(&mut chunk) {
                Ok(0) => {
                    self.result = None;
                    return Ok(());
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ProcessError::Io(e.to_string())),
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

fn exe_identity(exe: &std::path::Path) -> io::Result<String> {
    let m = std::fs::metadata(exe)?;
    Ok(format!("{}.{}.{}", m.dev(), m.ino(), m.mtime()))
}

/// Decodes the arguments, runs the function, encodes the result.
fn trampoline<A: DeserializeOwned, R: Serialize>(f: usize, args: &[u8]) -> Result<Vec<u8>, String> {
    // SAFETY: `f` was computed by `spawn::<A, R>` in the same executable (the
    // child checks the executable's identity before calling us) from a
    // `fn(A) -> R`, rebased onto this process's load address; so it is a
    // valid pointer to a function of exactly this type.
    let f: fn(A) -> R = unsafe { std::mem::transmute::<usize, fn(A) -> R>(f) };
    let a: A =
        postcard::from_bytes(args).map_err(|e| format!("cannot decode the arguments: {e}"))?;
    let r = f(a);
    postcard::to_allocvec(&r).map_err(|e| format!("cannot encode the result: {e}"))
}

/// A function erased for a child: the offsets of its trampoline and of the
/// function itself, valid in every execution of this binary.
pub(crate) fn erase<A: DeserializeOwned, R: Serialize>(f: fn(A) -> R) -> (usize, usize) {
    let base = entry_address();
    let tramp = trampoline::<A, R> as fn(usize, &[u8]) -> Result<Vec<u8>, String> as usize;
    (tramp.wrapping_sub(base), (f as usize).wrapping_sub(base))
}

/// Calls a function erased by [`erase`]: decodes `args`, runs it, encodes
/// the result.
///
/// # Safety
/// `(tramp, f)` must come from [`erase`] in this same executable (in this
/// process or in the process that spawned it).
pub(crate) unsafe fn call_erased(tramp: usize, f: usize, args: &[u8]) -> Result<Vec<u8>, String> {
    let base = entry_address();
    // SAFETY: per the contract, `tramp` is the offset of a
    // `trampoline::<A, R>` instantiation in this executable.
    let tramp: fn(usize, &[u8]) -> Result<Vec<u8>, String> = unsafe {
        std::mem::transmute::<usize, fn(usize, &[u8]) -> Result<Vec<u8>, String>>(
            base.wrapping_add(tramp),
        )
    };
    tramp(base.wrapping_add(f), args)
}

/// The offset of a function's address in this executable, the same in every
/// execution of it (see [`fn_address`]).
pub(crate) fn fn_offset(addr: usize) -> usize {
    addr.wrapping_sub(entry_address())
}

/// The address, in this process, of the function at `offset` (from
/// [`fn_offset`] in this executable).
pub(crate) fn fn_address(offset: usize) -> usize {
    entry_address().wrapping_add(offset)
}

fn entry_address() -> usize {
    // Reading the registration keeps it (and this object) in every binary
    // that can spawn.
    std::hint::black_box(CHILD_ENTRY) as usize
}

#[used]
#[link_section = ".init_array"]
static CHILD_ENTRY: extern "C" fn() = child_entry;

/// Runs before `main`: if this process is a spawned child, do its work and exit.
extern "C" fn child_entry() {
    let Some(marker) = std::env::var_os(ENV_CHILD) else {
        return;
    };
    std::env::remove_var(ENV_CHILD);
    let code = run_child(&marker.to_string_lossy());
    let _ = io::stdout().flush();
    std::process::exit(code);
}

fn run_child(marker: &str) -> i32 {
    let parts: Vec<&str> = marker.split(':').collect();
    let [version, id, tramp, f, args_fd, result_fd, handles] = parts[..] else {
        eprintln!("mproc: malformed {ENV_CHILD} marker");
        return 70;
    };
    let parse = |s: &str| s.parse::<usize>().ok();
    let (Some(tramp), Some(f), Some(args_fd), Some(result_fd)) = (
        parse(tramp),
        parse(f),
        args_fd.parse::<RawFd>().ok(),
        result_fd.parse::<RawFd>().ok(),
    ) else {
        eprintln!("mproc: malformed {ENV_CHILD} marker");
        return 70;
    };
    let same_exe = std::env::current_exe()
        .and_then(|e| exe_identity(&e))
        .is_ok_and(|me| me == id);
    if version != "1" || !same_exe || args_fd < 3 || result_fd < 3 {
        eprintln!("mproc: {ENV_CHILD} was set for another executable; refusing to run");
        return 70;
    }
    let handles: Option<Vec<RawFd>> = if handles.is_empty() {
        Some(Vec::new())
    } else {
        handles.split(',').map(|s| s.parse().ok()).collect()
    };
    let Some(handles) = handles else {
        eprintln!("mproc: malformed {ENV_CHILD} marker");
        return 70;
    };
    // The handles' descriptors lost close-on-exec for us; they must not leak
    // further into processes this one starts.
    for &fd in &handles {
        // An unknown number fails with EBADF and is ignored.
        let _ = crate::sys::set_cloexec(fd, true);
    }
    set_inherited(handles);
    // Like the Rust runtime does before `main` (which a child never reaches):
    // writing to a closed pipe is an error, not a fatal signal.
    crate::sys::ignore_sigpipe();
    // SAFETY: the spawner passed these two descriptors, inherited, for this
    // child alone; nothing else in this process owns them.
    let (args_file, result_file) =
        unsafe { (File::from_raw_fd(args_fd), File::from_raw_fd(result_fd)) };
    // Grandchildren must not inherit the result pipe, or the parent would
    // not see end-of-file when we exit.
    let _ = crate::sys::set_cloexec(result_fd, true);
    let mut args = Vec::new();
    let outcome = match (&args_file).read_to_end(&mut args) {
        Err(e) => Outcome::Failed(format!("cannot read the arguments: {e}")),
        Ok(_) => {
            drop(args_file);
            let base = entry_address();
            // SAFETY: the marker was produced by `spawn` in this same
            // executable (identity checked above) from
            // `trampoline::<A, R> as fn(usize, &[u8]) -> ..`, rebased here.
            let tramp: fn(usize, &[u8]) -> Result<Vec<u8>, String> = unsafe {
                std::mem::transmute::<usize, fn(usize, &[u8]) -> Result<Vec<u8>, String>>(
                    base.wrapping_add(tramp),
                )
            };
            let f = base.wrapping_add(f);
            match std::panic::catch_unwind(|| tramp(f, &args)) {
                Ok(Ok(bytes)) => Outcome::Done(bytes),
                Ok(Err(m)) => Outcome::Failed(m),
                Err(payload) => Outcome::Panicked(panic_message(&*payload)),
            }
        }
    };
    let code = match &outcome {
        Outcome::Done(_) => 0,
        Outcome::Panicked(_) => 101,
        Outcome::Failed(_) => 70,
    };
    if let Ok(bytes) = postcard::to_allocvec(&outcome) {
        let _ = (&result_file).write_all(&bytes);
    }
    code
}

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_owned()
    }
}
