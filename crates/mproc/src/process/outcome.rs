//! What a child sends back through its result pipe: the encoded result,
//! the panic message, or why it could not run the function.

use serde::{Deserialize, Serialize};

/// The record a child writes to its result pipe before it exits.
#[derive(Serialize, Deserialize)]
pub(super) enum Outcome {
    Done(Vec<u8>),
    Panicked(String),
    Failed(String),
}

impl Outcome {
    /// The exit status a child ends with after sending this outcome.
    pub(super) fn exit_status(&self) -> i32 {
        match self {
            Outcome::Done(_) => 0,
            Outcome::Panicked(_) => 101,
            Outcome::Failed(_) => 70,
        }
    }
}

/// The message of a caught panic's payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_owned()
    }
}
