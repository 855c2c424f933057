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
//!
//! The rooms: `builder.rs` (the options and [`StartMethod`]), `exec.rs`
//! (starting by re-executing the binary), `fork.rs` (starting by a bare
//! `fork`), `child.rs` (the child side: the constructor that runs before
//! `main`), `parent.rs` (the [`Process`] handle: joining, signals, reaping),
//! `erased.rs` (functions named by offsets from the entry point),
//! `outcome.rs` (what the child sends back), `status.rs` ([`ExitCode`] and
//! waiting for a pid), `error.rs` ([`SpawnError`], [`ProcessError`]).

mod builder;
mod child;
mod erased;
mod error;
mod exec;
mod fork;
mod outcome;
mod parent;
mod status;

pub use builder::{ProcessBuilder, StartMethod};
pub use error::{ProcessError, SpawnError};
pub use parent::Process;
pub use status::ExitCode;

pub(crate) use erased::{call_erased, erase, fn_address, fn_offset};
pub(crate) use outcome::panic_message;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The environment variable that marks a process as a spawned child; its
/// value says what to run (see `exec.rs` and `child.rs`).
const ENV_CHILD: &str = "MPROC_CHILD";

impl ProcessBuilder {
    /// Runs `f(args)` in a new process.
    ///
    /// `f` must be a plain function or a closure that captures nothing;
    /// everything it needs travels in `args`.
    pub fn spawn<A, R>(self, args: A, f: fn(A) -> R) -> Result<Process<R>, SpawnError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        match self.start {
            StartMethod::Fork => fork::fork(self, args, f),
            StartMethod::Spawn => exec::spawn(self, args, f),
        }
    }
}

/// The address of this module's entry point, from which functions are
/// named by offset.
fn entry_address() -> usize {
    // Reading the registration keeps it (and this object) in every binary
    // that can spawn.
    std::hint::black_box(CHILD_ENTRY) as usize
}

#[used]
#[link_section = ".init_array"]
static CHILD_ENTRY: extern "C" fn() = child::child_entry;
