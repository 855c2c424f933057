//! `Serialize`/`Deserialize` for the synchronisation handles, so they can be
//! passed to child processes: a named object travels as its directory and
//! name, an anonymous one as an inherited descriptor (see `handle`).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::handle::{adopt_fd, Repr, SharedFd};
use crate::local::sem::LocalSem;
use crate::namespace::Namespace;
use crate::sync::barrier::Barrier;
use crate::sync::condition::Condition;
use crate::sync::event::Event;
use crate::sync::rlock::RLock;
use crate::sync::semaphore::{BoundedSemaphore, Semaphore};
use crate::sync::value::{Array, Pod, Value};

macro_rules! handle {
    ($t:ty, $seg:expr, $open:expr, $from_fd:expr $(, $g:ident)?) => {
        impl$(<$g: Pod>)? Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let seg: fn(&$t) -> &crate::local::segment::Segment = $seg;
                seg(self).repr().serialize(s)
            }
        }

        impl$(<$g: Pod>)? SharedFd for $t {
            fn shared_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
                let seg: fn(&$t) -> &crate::local::segment::Segment = $seg;
                seg(self).anonymous_fd()
            }

            fn from_shared_fd(fd: std::os::fd::OwnedFd) -> Result<$t, crate::OpenError> {
                let from_fd: fn(std::os::fd::OwnedFd) -> Result<$t, crate::OpenError> = $from_fd;
                from_fd(fd)
            }
        }

        impl<'de $(, $g: Pod)?> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
                #[allow(unreachable_patterns)]
                match Repr::deserialize(d)? {
                    Repr::Named { dir, name } => {
                        let ns = Namespace::dir(dir).map_err(D::Error::custom)?;
                        let open: fn(&Namespace, &str) -> Result<$t, crate::OpenError> = $open;
                        open(&ns, &name).map_err(D::Error::custom)
                    }
                    Repr::Fd(fd, ino) => {
                        let from_fd: fn(std::os::fd::OwnedFd) -> Result<$t, crate::OpenError> =
                            $from_fd;
                        from_fd(adopt_fd(fd, ino)?).map_err(D::Error::custom)
                    }
                    _ => Err(D::Error::custom("not a shared-memory object")),
                }
            }
        }
    };
}

handle!(RLock, RLock::segment, RLock::open_in, RLock::from_fd);
handle!(Event, Event::segment, Event::open_in, Event::from_fd);
handle!(
    Condition,
    Condition::segment,
    Condition::open_in,
    Condition::from_fd
);
handle!(
    Barrier,
    Barrier::segment,
    Barrier::open_in,
    Barrier::from_fd
);
handle!(
    Semaphore,
    |s| s.local().segment(),
    Semaphore::open_in,
    |fd| LocalSem::from_fd(fd).map(Semaphore::from_local)
);
handle!(
    BoundedSemaphore,
    |s| s.as_semaphore().local().segment(),
    BoundedSemaphore::open_in,
    |fd| {
        let sem = Semaphore::from_local(LocalSem::from_fd(fd)?);
        BoundedSemaphore::from_semaphore(sem)
    }
);
handle!(Value<T>, Value::segment, Value::open_in, Value::from_fd, T);
handle!(Array<T>, Array::segment, Array::open_in, Array::from_fd, T);
