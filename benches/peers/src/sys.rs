//! The harness's calls into libc, behind safe functions: the shared mapping,
//! the monotonic clock every process shares, and CPU time.

use std::fs::File;
use std::os::fd::AsRawFd;

/// Maps the first `len` bytes of `f` shared and writable; the mapping is
/// never unmapped (it lives until the process exits).
pub fn map_shared(f: &File, len: usize) -> *mut u8 {
    // SAFETY: a fresh shared mapping of an open file of `len` bytes; the
    // result is checked against MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    p as *mut u8
}

/// Nanoseconds of CLOCK_MONOTONIC (the same clock in every process).
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time (user + system) of this process, in ns.
pub fn cpu_ns_self() -> u64 {
    cpu_ns(libc::RUSAGE_SELF)
}

/// CPU time (user + system) of this process's waited-for children, in ns.
pub fn cpu_ns_children() -> u64 {
    cpu_ns(libc::RUSAGE_CHILDREN)
}

/// CPU time (user + system) of this process or of its waited-for children, in ns.
fn cpu_ns(who: i32) -> u64 {
    // SAFETY: an all-zero rusage is a valid value to be overwritten.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    unsafe { libc::getrusage(who, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}
