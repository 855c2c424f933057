//! [`ProcessBuilder`], the options a child starts with, and
//! [`StartMethod`], how it starts; `spawn` itself is in `mod.rs`, choosing
//! `exec.rs` or `fork.rs`.

use std::process::Stdio;

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

/// Options for spawning a [`Process`](super::Process).
#[derive(Debug, Default)]
pub struct ProcessBuilder {
    pub(super) daemon: bool,
    pub(super) start: StartMethod,
    pub(super) name: Option<String>,
    pub(super) stdin: Option<Stdio>,
    pub(super) stdout: Option<Stdio>,
    pub(super) stderr: Option<Stdio>,
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
}
