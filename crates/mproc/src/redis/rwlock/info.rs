//! Who holds the readers-writer lock and who waits for it (from the info
//! the scripts record beside each lease), and forced release.

use std::io;
use std::time::{Duration, UNIX_EPOCH};

use super::RedisRwLock;
use crate::backend::{Holder, Reader, Waiter};
use crate::redis::time::now_ms;

impl RedisRwLock {
    pub(crate) fn writer(&self) -> Option<Holder> {
        let (pid, since, held): (Option<u32>, Option<u64>, Option<String>) = self
            .pool
            .run(|c| {
                redis::pipe()
                    .cmd("HGET")
                    .arg(&self.keys.winfo)
                    .arg("pid")
                    .cmd("HGET")
                    .arg(&self.keys.winfo)
                    .arg("since")
                    .cmd("GET")
                    .arg(&self.keys.writer)
                    .query(c)
            })
            .ok()?;
        held?;
        Some(Holder {
            pid: pid?,
            since: since.map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
            tag: None,
        })
    }

    pub(crate) fn readers(&self) -> Vec<Reader> {
        let r: io::Result<Vec<Reader>> = self.pool.run(|c| {
            let tokens: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                .arg(&self.keys.readers)
                .arg(now_ms())
                .arg("+inf")
                .query(c)?;
            if tokens.is_empty() {
                return Ok(Vec::new());
            }
            let infos: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(&self.keys.rinfo)
                .arg(&tokens)
                .query(c)?;
            Ok(infos
                .into_iter()
                .flatten()
                .filter_map(|i| {
                    let (pid, since) = i.split_once(':')?;
                    Some(Reader {
                        pid: pid.parse().ok()?,
                        since: UNIX_EPOCH + Duration::from_millis(since.parse().ok()?),
                    })
                })
                .collect())
        });
        r.unwrap_or_default()
    }

    fn waiting(&self, key: &str) -> Vec<Waiter> {
        let members: Vec<String> = self
            .pool
            .run(|c| {
                redis::cmd("ZRANGEBYSCORE")
                    .arg(key)
                    .arg(now_ms())
                    .arg("+inf")
                    .query(c)
            })
            .unwrap_or_default();
        members
            .iter()
            .filter_map(|m| {
                let mut it = m.splitn(3, ':');
                let pid = it.next()?.parse().ok()?;
                let since: u64 = it.next()?.parse().ok()?;
                Some(Waiter {
                    pid,
                    since: UNIX_EPOCH + Duration::from_millis(since),
                })
            })
            .collect()
    }

    pub(crate) fn waiting_writers(&self) -> Vec<Waiter> {
        self.waiting(&self.keys.wwait)
    }

    pub(crate) fn waiting_readers(&self) -> u32 {
        self.waiting(&self.keys.rwait).len() as u32
    }

    pub(crate) fn force_release(&self) -> io::Result<()> {
        self.pool.run(|c| {
            redis::cmd("DEL")
                .arg(&self.keys.writer)
                .arg(&self.keys.wheld)
                .arg(&self.keys.winfo)
                .query::<()>(c)
        })
    }
}
