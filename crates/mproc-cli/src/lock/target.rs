//! The lock a name stands for ([`Target`]): opening (or making) it,
//! acquiring it as the flags say, and describing its holder when it stays
//! busy.

use std::time::Instant;

use mproc::{
    CreateError, Lock, LockError, LockGuard, Namespace, ObjectKind, OpenError, OpenOrCreateError,
    RwLock, RwLockReadGuard, RwLockWriteGuard,
};

use crate::args::fmt_secs;
use crate::ctx::{age, proc_cmdline, Ctx, Wait};
use crate::exit::{self, Failure};
use crate::retry::{io_transient, lock_transient, Outage};

/// The lock a name stands for.
pub(crate) enum Target {
    /// A [`Lock`]: made by a program, or on a server (exclusive only).
    Lock(Lock),
    /// A readers-writer lock (what `mproc lock` makes in a directory).
    Rw(RwLock),
}

/// A holding of a [`Target`].
pub(crate) enum Held<'a> {
    /// Of a [`Lock`].
    Lock(LockGuard<'a>),
    /// A shared holding.
    Read(RwLockReadGuard<'a>),
    /// An exclusive holding of a readers-writer lock.
    Write(RwLockWriteGuard<'a>),
}

impl Held<'_> {
    /// Attaches a tag (exclusive holdings only).
    pub(crate) fn set_tag(&self, tag: &str) {
        match self {
            Held::Lock(g) => g.set_tag(tag),
            Held::Write(g) => g.set_tag(tag),
            Held::Read(_) => {}
        }
    }

    /// Records the holding's start where the lock does not by itself (a
    /// `Lock` acquired without waiting reads no clock).
    pub(crate) fn record_since(&self) {
        if let Held::Lock(g) = self {
            g.record_since();
        }
    }
}

/// Opens (or makes) the lock `name` stands for in `ns`.
pub(crate) fn open_target(
    ns: &Namespace,
    name: &str,
    outage: &mut Outage,
) -> Result<Target, Failure> {
    if ns.is_remote() {
        return outage
            .run(
                || Lock::open_or_create_in(ns, name),
                |e| match e {
                    OpenOrCreateError::Open(OpenError::Io { source, .. })
                    | OpenOrCreateError::Create(CreateError::Io { source, .. }) => {
                        io_transient(source.get_ref())
                    }
                    _ => None,
                },
            )
            .map(Target::Lock)
            .map_err(|e| exit::from_open_or_create(&e));
    }
    loop {
        match RwLock::open_in(ns, name) {
            Ok(l) => return Ok(Target::Rw(l)),
            Err(OpenError::WrongKind {
                found: ObjectKind::Lock,
                ..
            }) => {
                return Lock::open_in(ns, name)
                    .map(Target::Lock)
                    .map_err(|e| exit::from_open(&e))
            }
            Err(OpenError::NotFound { .. }) => match RwLock::create_in(ns, name) {
                Ok(l) => return Ok(Target::Rw(l)),
                Err(CreateError::AlreadyExists { .. }) => continue,
                Err(e) => return Err(exit::from_create(&e)),
            },
            // A lock of either kind is what was expected.
            Err(OpenError::WrongKind { name, found, .. }) => {
                return Err(exit::from_open(&OpenError::WrongKind {
                    name,
                    expected: ObjectKind::Lock,
                    found,
                }))
            }
            Err(e) => return Err(exit::from_open(&e)),
        }
    }
}

/// Describes who holds `target`, for a conflict message.
pub(crate) fn holder_text(target: &Target) -> String {
    let (writer, readers) = match target {
        Target::Lock(l) => (l.holder(), Vec::new()),
        Target::Rw(l) => (l.writer(), l.readers()),
    };
    match writer {
        Some(h) if h.pid != 0 => {
            let cmd = proc_cmdline(h.pid).unwrap_or_else(|| "?".into());
            let tag = h.tag.map(|t| format!(" [{t}]")).unwrap_or_default();
            let held = h
                .since
                .map(|t| format!(" for {}", fmt_secs(age(t))))
                .unwrap_or_default();
            format!("is held by pid {} ({cmd}){tag}{held}", h.pid)
        }
        Some(_) => "is held (its holder is taking it right now)".into(),
        None if !readers.is_empty() => {
            let pids: Vec<String> = readers.iter().map(|r| r.pid.to_string()).collect();
            format!("is held shared by pid {}", pids.join(", "))
        }
        None if matches!(target, Target::Rw(l) if !l.waiting_writers().is_empty()) => {
            "has a writer waiting (writers go first)".into()
        }
        None => "was busy".into(),
    }
}

/// The outcome of one acquisition: the guard (`None` when it stayed busy),
/// with warnings about a previous holder that died.
fn settle<G>(r: Result<G, LockError<G>>, name: &str) -> Result<Option<G>, Failure> {
    match r {
        Ok(g) => Ok(Some(g)),
        Err(LockError::OwnerDied(o)) if o.previous_lease_expired() => {
            tracing::warn!(
                "lock '{name}': the previous holder's lease expired while it held it \
                 (it never released and may still be running); \
                 what it protects may be half-updated"
            );
            Ok(Some(o.into_inner()))
        }
        Err(LockError::OwnerDied(o)) => {
            tracing::warn!(
                "lock '{name}': its previous holder died while holding it; \
                 what it protects may be half-updated"
            );
            Ok(Some(o.into_inner()))
        }
        Err(LockError::WouldBlock) => Ok(None),
        Err(LockError::Io(e)) => Err(exit::from_io(
            e.get_ref(),
            (exit::SOFTWARE, "internal"),
            &format!("lock '{name}'"),
        )),
        Err(e) => Err(Failure::internal(format!("lock '{name}': {e}"))),
    }
}

/// Acquires `target` (shared or not) as `wait` says; `None` when it stayed
/// busy. While waiting, server outages are ridden out as `outage` allows.
pub(crate) fn acquire<'a>(
    target: &'a Target,
    name: &str,
    shared: bool,
    wait: Wait,
    outage: &mut Outage,
) -> Result<Option<Held<'a>>, Failure> {
    let deadline = match wait {
        Wait::For(d) => Instant::now().checked_add(d),
        _ => None,
    };
    let left = move || deadline.map(|end| end.saturating_duration_since(Instant::now()));
    let never = matches!(wait, Wait::Never);
    match target {
        Target::Lock(_) if shared => Err(Failure::new(
            exit::DATAERR,
            "wrong_kind",
            format!(
                "lock '{name}' is exclusive only (a Lock made by a program, or a lock on a \
                 server): -s needs a lock made by mproc lock in a directory namespace"
            ),
        )),
        Target::Lock(l) => {
            let r = match left() {
                _ if never => l.try_lock(),
                Some(_) => outage.run(
                    || l.lock_timeout(left().unwrap_or_default()),
                    lock_transient,
                ),
                None => outage.run(|| l.lock(), lock_transient),
            };
            Ok(settle(r, name)?.map(Held::Lock))
        }
        Target::Rw(l) if shared => {
            let r = match left() {
                _ if never => l.try_read(),
                Some(_) => outage.run(
                    || l.read_timeout(left().unwrap_or_default()),
                    lock_transient,
                ),
                None => outage.run(|| l.read(), lock_transient),
            };
            Ok(settle(r, name)?.map(Held::Read))
        }
        Target::Rw(l) => {
            let r = match left() {
                _ if never => l.try_write(),
                Some(_) => outage.run(
                    || l.write_timeout(left().unwrap_or_default()),
                    lock_transient,
                ),
                None => outage.run(|| l.write(), lock_transient),
            };
            Ok(settle(r, name)?.map(Held::Write))
        }
    }
}

/// The failure of a lock that stayed busy (`-E`'s code), or the code alone
/// with `-q`.
pub(crate) fn busy(
    ctx: &Ctx,
    target: &Target,
    name: &str,
    wait: Wait,
    code: u8,
) -> anyhow::Result<u8> {
    if ctx.verbosity < 0 {
        return Ok(code);
    }
    let kind = if matches!(wait, Wait::Never) {
        "busy"
    } else {
        "timeout"
    };
    let msg = format!("lock '{name}' {}{}", holder_text(target), wait.gave_up());
    Err(Failure::new(code, kind, msg).into())
}

/// Opens an existing lock of either kind (never creates one).
pub(crate) fn open_existing(ns: &Namespace, name: &str) -> Result<Target, Failure> {
    match RwLock::open_in(ns, name) {
        Ok(l) => Ok(Target::Rw(l)),
        Err(OpenError::WrongKind {
            found: ObjectKind::Lock,
            ..
        }) => Lock::open_in(ns, name)
            .map(Target::Lock)
            .map_err(|e| exit::from_open(&e)),
        Err(OpenError::WrongKind { name, found, .. }) => {
            Err(exit::from_open(&OpenError::WrongKind {
                name,
                expected: ObjectKind::Lock,
                found,
            }))
        }
        Err(e) => Err(exit::from_open(&e)),
    }
}
