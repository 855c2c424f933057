//! Functions named by their offset from the module's entry point, the same
//! in every execution of this binary: how a spawned child (and a pool's
//! worker) finds the function to run, through a trampoline that decodes
//! the arguments and encodes the result.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::entry_address;

/// Decodes the arguments, runs the function, encodes the result.
fn trampoline<A: DeserializeOwned, R: Serialize>(f: usize, args: &[u8]) -> Result<Vec<u8>, String> {
    // SAFETY: `f` was computed by `erase::<A, R>` in the same executable
    // (a spawned child checks the executable's identity before calling us)
    // from a `fn(A) -> R`, rebased onto this process's load address; so it
    // is a valid pointer to a function of exactly this type.
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
