//! Fencing: the token of the current holding, and integer cells written
//! only while this handle still holds the lease.

use std::io;
use std::sync::OnceLock;

use redis::Script;

use super::lease::run_all;
use super::RedisLock;
use crate::backend::FenceFail;

// KEYS owner cell   ARGV token delta floor set(0/1)
// → {-1} lease lost, {0, current} would go below floor, {1, new}
script!(
    fenced_script,
    r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {-1} end
local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
local new = cur + tonumber(ARGV[2])
if ARGV[4] == '1' then new = tonumber(ARGV[2]) end
if ARGV[4] ~= '1' and new < tonumber(ARGV[3]) then return {0, cur} end
redis.call('SET', KEYS[2], new)
return {1, new}
"
);

impl RedisLock {
    /// The fencing token of the current holding.
    pub(crate) fn fence(&self) -> Option<u64> {
        self.shared.lock().holding.as_ref().map(|h| h.fence)
    }

    /// Adds `delta` to cell `cell` if this handle still holds the lease and
    /// the result is at least `floor` (`set`: stores `delta` instead).
    /// `Ok(Ok(new))`, or `Ok(Err(current))` when the floor refused it.
    pub(crate) fn fenced(
        &self,
        cell: &str,
        delta: i64,
        floor: i64,
        set: bool,
    ) -> Result<Result<i64, i64>, FenceFail> {
        let Some(token) = self.current_token() else {
            return Err(FenceFail::Lost);
        };
        let r: Vec<i64> = self
            .pool
            .run(|c| {
                fenced_script()
                    .key(&self.keys.owner)
                    .key(self.keys.cell(cell))
                    .arg(&token)
                    .arg(delta)
                    .arg(floor)
                    .arg(u8::from(set))
                    .invoke(c)
            })
            .map_err(FenceFail::Io)?;
        match r.as_slice() {
            [1, v] => Ok(Ok(*v)),
            [0, v] => Ok(Err(*v)),
            _ => {
                let cbs = self.shared.lock().lose();
                run_all(cbs);
                Err(FenceFail::Lost)
            }
        }
    }

    /// The value of cell `cell` (0 when never written).
    pub(crate) fn cell(&self, cell: &str) -> io::Result<i64> {
        let v: Option<i64> = self
            .pool
            .run(|c| redis::cmd("GET").arg(self.keys.cell(cell)).query(c))?;
        Ok(v.unwrap_or(0))
    }
}
