//! What a named object is: its kind, and a namespace listing's entry. A
//! leaf that the backends and the namespace share.

use std::fmt;

/// The kind of a named object, as recorded in its segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ObjectKind {
    /// A [`Lock`](crate::Lock).
    Lock,
    /// A [`Queue`](crate::Queue) or [`JoinableQueue`](crate::JoinableQueue).
    Queue,
    /// An [`RLock`](crate::RLock).
    RLock,
    /// A [`Semaphore`](crate::Semaphore) or [`BoundedSemaphore`](crate::BoundedSemaphore).
    Semaphore,
    /// An [`Event`](crate::Event).
    Event,
    /// A [`Condition`](crate::Condition).
    Condition,
    /// A [`Barrier`](crate::Barrier).
    Barrier,
    /// A [`Value`](crate::Value).
    Value,
    /// An [`Array`](crate::Array).
    Array,
    /// An [`RwLock`](crate::RwLock).
    RwLock,
}

impl ObjectKind {
    /// The lower-case name used in messages and listings.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Lock => "lock",
            ObjectKind::Queue => "queue",
            ObjectKind::RLock => "rlock",
            ObjectKind::Semaphore => "semaphore",
            ObjectKind::Event => "event",
            ObjectKind::Condition => "condition",
            ObjectKind::Barrier => "barrier",
            ObjectKind::Value => "value",
            ObjectKind::Array => "array",
            ObjectKind::RwLock => "rwlock",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of [`Namespace::list`](crate::Namespace::list).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectInfo {
    /// The object's name.
    pub name: String,
    /// Its kind, or `None` when the file is not a readable mproc object.
    pub kind: Option<ObjectKind>,
}
