//! Who held the lock before: a holder's token names its machine and
//! process, so that the next holder can tell a holder that died from one
//! whose lease ran out while it still ran.

use std::sync::OnceLock;

use crate::redis::keys::token;

/// How the previous holding of a lock ended, as the next grant sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Previous {
    /// Released (or never held).
    Released,
    /// Never released, and its process is gone.
    Died,
    /// Never released, and its process still runs (or runs on another
    /// machine, where this one cannot look): its lease ran out.
    Expired,
}

/// This machine's boot id (distinguishes machines and boots).
fn boot_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    })
}

/// A holder's token: random, then who holds (`|BOOT|PID|START`), so that
/// the next holder can tell a dead holder from one whose lease ran out.
pub(super) fn holder_token() -> String {
    let me = crate::ident::ProcessId::current();
    format!("{}|{}|{}|{}", token(), boot_id(), me.pid, me.start)
}

/// Classifies the previous holder's token left in `held` (`""`: released).
pub(super) fn previous_holder(prev: &str) -> Previous {
    if prev.is_empty() {
        return Previous::Released;
    }
    let mut it = prev.split('|').skip(1);
    let (Some(boot), Some(pid), Some(start)) = (it.next(), it.next(), it.next()) else {
        return Previous::Died;
    };
    if boot.is_empty() || boot != boot_id() {
        return Previous::Expired;
    }
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return Previous::Died;
    };
    if crate::sys::process_alive(pid, start) {
        Previous::Expired
    } else {
        Previous::Died
    }
}
