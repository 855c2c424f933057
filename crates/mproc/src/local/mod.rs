//! The shared-memory backend: objects are segments (mapped files) in the
//! namespace directory, or anonymous memory files handed to children.
//!
//! * `segment` — the mapped file: header, create-then-publish, bounds-checked views.
//! * `wait`    — futex-based waiting on sequence words, with a bounded spin.
//! * `lock`    — the robust lock and its holder/waiter records.
//! * `rwlock`  — the readers-writer lock: a writer's robust lock and reader slots.
//! * `ring`    — the bounded MPMC byte ring behind `Queue`.
//! * `sem`     — the counting semaphore and its holder slots.
//! * `watch`   — participant slots whose death wakes the others.

pub(crate) mod dir;
pub(crate) mod lock;
pub(crate) mod ring;
pub(crate) mod rwlock;
pub(crate) mod segment;
pub(crate) mod sem;
pub(crate) mod wait;
pub(crate) mod watch;
