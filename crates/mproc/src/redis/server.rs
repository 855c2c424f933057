//! Namespace-wide operations on the server: checking its configuration,
//! listing the objects under the prefix and removing one object's keys.

use std::io;

use super::keys::kind_of;
use super::Remote;
use crate::error::{NamespaceError, RemoveError};
use crate::name::validate_name;
use crate::object::ObjectInfo;

impl Remote {
    /// What in the server's configuration breaks the backend's guarantees,
    /// in words (every master of a cluster is asked). A server that
    /// refuses `CONFIG GET` (managed services may) or cannot be reached is
    /// not reported here: its failures show at the first operation.
    fn config_problems(&self) -> Vec<String> {
        let Ok(pool) = self.pool() else {
            return Vec::new();
        };
        pool.run(|c| {
            let mut out = Vec::new();
            for node in c.masters()? {
                let mut cmd = redis::cmd("CONFIG");
                cmd.arg("GET").arg("maxmemory-policy");
                let kv: Vec<String> = c.query_on(node.as_ref(), &cmd)?;
                if let Some(policy) = kv.get(1).filter(|p| p.as_str() != "noeviction") {
                    let at = node.map_or(String::new(), |n| format!(" ({}:{})", n.host, n.port));
                    out.push(format!(
                        "maxmemory-policy is {policy}{at}: a full server may evict queue items, \
                         leases and counters silently; set it to noeviction"
                    ));
                }
            }
            Ok(out)
        })
        .unwrap_or_default()
    }

    /// [`config_problems`](Self::config_problems), an error with `strict=1`.
    pub(crate) fn check_config(&self) -> Result<Vec<String>, NamespaceError> {
        let problems = self.config_problems();
        if self.strict && !problems.is_empty() {
            return Err(NamespaceError::Misconfigured {
                server: self.display(),
                problem: problems.join("; "),
            });
        }
        Ok(problems)
    }

    /// Every object under this prefix, sorted by name.
    pub(crate) fn list(&self) -> io::Result<Vec<ObjectInfo>> {
        let pool = self.pool()?;
        let pattern = format!("{{{}:*}}:meta", self.prefix);
        let keys: Vec<String> = pool.run(|c| {
            let mut out = Vec::new();
            for node in c.masters()? {
                out.extend(c.scan(node.as_ref(), &pattern)?);
            }
            Ok(out)
        })?;
        let head = format!("{{{}:", self.prefix);
        let mut out = Vec::new();
        for k in keys {
            let Some(name) = k.strip_prefix(&head).and_then(|r| r.strip_suffix("}:meta")) else {
                continue;
            };
            if validate_name(name).is_err() {
                continue;
            }
            let kind: Option<String> =
                pool.run(|c| redis::cmd("HGET").arg(&k).arg("kind").query(c))?;
            out.push(ObjectInfo {
                name: name.to_owned(),
                kind: kind.as_deref().and_then(kind_of),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes every key of object `name`.
    pub(crate) fn remove(&self, name: &str) -> Result<(), RemoveError> {
        validate_name(name)?;
        let io_err = |source: std::io::Error| RemoveError::Io {
            name: name.to_owned(),
            source: source.into(),
        };
        let pool = self.pool().map_err(io_err)?;
        let tag = self.tag(name);
        let meta = format!("{tag}:meta");
        let exists: bool = pool
            .run(|c| redis::cmd("EXISTS").arg(&meta).query(c))
            .map_err(io_err)?;
        if !exists {
            return Err(RemoveError::NotFound {
                name: name.to_owned(),
                dir: self.display(),
            });
        }
        // The meta key first: opens fail from now on. Every key of the
        // object is in one slot, so on one master: the others find none.
        let pattern = format!("{tag}:*");
        pool.run(|c| {
            redis::cmd("DEL").arg(&meta).exec(c)?;
            for node in c.masters()? {
                let keys = c.scan(node.as_ref(), &pattern)?;
                for batch in keys.chunks(500) {
                    redis::cmd("UNLINK").arg(batch).exec(c)?;
                }
            }
            Ok(())
        })
        .map_err(io_err)
    }
}
