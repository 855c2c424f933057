//! Small helpers shared by the public types.

use std::time::{Duration, Instant};

use crate::error::{CreateError, OpenError, OpenOrCreateError};

/// Turns a timeout into a deadline; an overflowing one means "wait forever".
pub(crate) fn to_deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Opens, or creates when missing, tolerating a concurrent creator.
pub(crate) fn open_or_create_loop<T>(
    mut open: impl FnMut() -> Result<T, OpenError>,
    mut create: impl FnMut() -> Result<T, CreateError>,
) -> Result<T, OpenOrCreateError> {
    loop {
        match open() {
            Err(OpenError::NotFound { .. }) => {}
            other => return other.map_err(Into::into),
        }
        match create() {
            Err(CreateError::AlreadyExists { .. }) => continue,
            other => return other.map_err(Into::into),
        }
    }
}

/// The constructor family every named object has, built on its `create_in`
/// and `open_in`: `create`, `open` and `open_or_create` in the
/// environment's namespace ([`Namespace::from_env`](crate::Namespace::from_env)),
/// and `open_or_create_in`. `$what` names the object in the docs; the
/// extra arguments (`parties: u32`, …) are what creating takes (each
/// `Copy`: a create may be retried).
macro_rules! named_constructors {
    ($what:literal $(, $arg:ident : $ty:ty)*) => {
        #[doc = concat!("Creates the named ", $what, " in the environment's namespace \
            ([`Namespace::from_env`](crate::Namespace::from_env)); fails if it exists.")]
        pub fn create(name: &str $(, $arg: $ty)*) -> Result<Self, crate::error::CreateError> {
            Self::create_in(&crate::namespace::Namespace::from_env()?, name $(, $arg)*)
        }

        #[doc = concat!("Opens the existing named ", $what, " in the environment's namespace.")]
        pub fn open(name: &str) -> Result<Self, crate::error::OpenError> {
            Self::open_in(&crate::namespace::Namespace::from_env()?, name)
        }

        #[doc = concat!("Opens the named ", $what, " in the environment's namespace, creating \
            it if it does not exist.")]
        pub fn open_or_create(
            name: &str $(, $arg: $ty)*
        ) -> Result<Self, crate::error::OpenOrCreateError> {
            let ns = crate::namespace::Namespace::from_env()
                .map_err(crate::error::OpenError::from)?;
            Self::open_or_create_in(&ns, name $(, $arg)*)
        }

        #[doc = concat!("Opens the named ", $what, " in `ns`, creating it if it does not \
            exist (whichever process comes first creates it; the others open it).")]
        pub fn open_or_create_in(
            ns: &crate::namespace::Namespace,
            name: &str $(, $arg: $ty)*
        ) -> Result<Self, crate::error::OpenOrCreateError> {
            crate::util::open_or_create_loop(
                || Self::open_in(ns, name),
                || Self::create_in(ns, name $(, $arg)*),
            )
        }
    };
}
pub(crate) use named_constructors;
