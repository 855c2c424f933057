//! The small shared mapping (a file on /dev/shm) that a parent and its
//! children meet in: ready and go flags, a counter, room for a mutex.

use std::fs::OpenOptions;
use std::sync::atomic::AtomicU32;

use crate::sys;

// Shared-memory layout (file-backed MAP_SHARED mapping in /dev/shm).
pub const OFF_READY: usize = 0;
pub const OFF_GO: usize = 64;
pub const OFF_COUNTER: usize = 128;
pub const OFF_MUTEX: usize = 256;
pub const SHM_LEN: usize = 4096;

pub struct Shm(pub *mut u8);
impl Shm {
    pub fn map(path: &str, create: bool) -> Shm {
        let f = OpenOptions::new().read(true).write(true).create(create).open(path).unwrap();
        if create {
            f.set_len(SHM_LEN as u64).unwrap();
        }
        Shm(sys::map_shared(&f, SHM_LEN))
    }
    pub fn atomic(&self, off: usize) -> &AtomicU32 {
        // SAFETY: `off` is one of the 4-aligned OFF_* slots inside the
        // SHM_LEN-byte mapping, which is never unmapped.
        unsafe { &*(self.0.add(off) as *const AtomicU32) }
    }
    pub fn counter(&self) -> *mut u64 {
        // SAFETY: OFF_COUNTER is an 8-aligned slot inside the mapping.
        unsafe { self.0.add(OFF_COUNTER) as *mut u64 }
    }
}
