//! One connection: to a single server (or the master a Sentinel names), or
//! to every node of a cluster; and the commands run on one cluster master
//! (listing the masters, `SCAN`).

use std::sync::Mutex;
use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterConnection};
use redis::{Client, Cmd, Connection, ConnectionLike, RedisResult, Value};

/// The client of a server, of a cluster, or of the master Sentinel names.
pub(super) enum ServerClient {
    Single(Client),
    Cluster(ClusterClient),
    /// Every new connection asks the sentinels for the current master.
    Sentinel(Mutex<redis::sentinel::SentinelClient>),
}

impl ServerClient {
    pub(super) fn connect(&self, timeout: Duration) -> RedisResult<Conn> {
        Ok(match self {
            ServerClient::Single(c) => Conn::Single(c.get_connection_with_timeout(timeout)?),
            ServerClient::Cluster(c) => Conn::Cluster(Box::new(c.get_connection()?)),
            ServerClient::Sentinel(s) => {
                let client = s.lock().unwrap_or_else(|p| p.into_inner()).get_client()?;
                Conn::Single(client.get_connection_with_timeout(timeout)?)
            }
        })
    }
}

/// A master of a cluster, by address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Node {
    pub(super) host: String,
    pub(super) port: u16,
}

/// A connection to one server, or to every node of a cluster (commands go
/// to the master of their keys' slot, following MOVED and ASK).
pub(super) enum Conn {
    /// One server.
    Single(Connection),
    /// A cluster.
    Cluster(Box<ClusterConnection>),
}

impl Conn {
    pub(super) fn set_read_timeout(&self, d: Option<Duration>) -> RedisResult<()> {
        match self {
            Conn::Single(c) => c.set_read_timeout(d),
            Conn::Cluster(c) => c.set_read_timeout(d),
        }
    }

    pub(super) fn set_write_timeout(&self, d: Option<Duration>) -> RedisResult<()> {
        match self {
            Conn::Single(c) => c.set_write_timeout(d),
            Conn::Cluster(c) => c.set_write_timeout(d),
        }
    }

    /// The masters to scan: `[None]` (this server) for one server, every
    /// master's address for a cluster.
    pub(super) fn masters(&mut self) -> RedisResult<Vec<Option<Node>>> {
        let Conn::Cluster(c) = self else {
            return Ok(vec![None]);
        };
        // [[start, end, [host, port, id…], replicas…], …]
        let slots: Vec<Vec<Value>> = redis::cmd("CLUSTER").arg("SLOTS").query(&mut **c)?;
        let mut out: Vec<Option<Node>> = Vec::new();
        for range in slots {
            let Some(Value::Array(master)) = range.get(2) else {
                continue;
            };
            let (Some(host), Some(port)) = (master.first(), master.get(1)) else {
                continue;
            };
            let host: String = redis::from_redis_value_ref(host)?;
            let port: u16 = redis::from_redis_value_ref(port)?;
            let node = Some(Node { host, port });
            if !out.contains(&node) {
                out.push(node);
            }
        }
        Ok(out)
    }

    /// Runs `cmd` on `node` (this server when `None`).
    pub(super) fn query_on<T: redis::FromRedisValue>(
        &mut self,
        node: Option<&Node>,
        cmd: &Cmd,
    ) -> RedisResult<T> {
        match (node, &mut *self) {
            (Some(n), Conn::Cluster(c)) => {
                use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
                let v = c.route_command(
                    cmd,
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                        host: n.host.clone(),
                        port: n.port,
                    }),
                )?;
                Ok(redis::from_redis_value(v)?)
            }
            _ => cmd.query(self),
        }
    }

    /// Every key matching `pattern` on `node` (this server when `None`).
    pub(super) fn scan(&mut self, node: Option<&Node>, pattern: &str) -> RedisResult<Vec<String>> {
        let mut out = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000);
            let (next, batch): (u64, Vec<String>) = self.query_on(node, &cmd)?;
            out.extend(batch);
            if next == 0 {
                return Ok(out);
            }
            cursor = next;
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn req_command(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            Conn::Single(c) => c.req_command(cmd),
            Conn::Cluster(c) => c.req_command(cmd),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }

    /// Pipelines are used only for commands on one object's keys (one
    /// slot), which the cluster connection sends to that slot's master.
    fn supports_pipelining(&self) -> bool {
        true
    }

    fn check_connection(&mut self) -> bool {
        match self {
            Conn::Single(c) => c.check_connection(),
            Conn::Cluster(c) => c.check_connection(),
        }
    }

    fn is_open(&self) -> bool {
        match self {
            Conn::Single(c) => c.is_open(),
            Conn::Cluster(c) => c.is_open(),
        }
    }
}
