//! An in-memory transport between controllers in one process, for tests: each
//! directed link passes, delays or drops requests, and a controller that is not
//! registered (stopped, "killed") is unreachable.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use super::{BoxFuture, QuorumServer, QuorumTransport, TransportError};
use crate::types::{NodeId, Voter};

/// What a directed link does to what crosses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Pass,
    /// Requests (or answers) arrive after this long.
    Delay(Duration),
    /// Requests (or answers) are lost: the caller waits out its deadline.
    Drop,
}

/// The controllers of one process and the links between them.
#[derive(Default)]
pub struct MemNet {
    servers: Mutex<BTreeMap<NodeId, QuorumServer>>,
    links: Mutex<BTreeMap<(NodeId, NodeId), Link>>,
}

impl MemNet {
    pub fn new() -> Arc<MemNet> {
        Arc::new(MemNet::default())
    }

    /// Makes controller `id` reachable, answering with `server`.
    pub fn register(&self, id: NodeId, server: QuorumServer) {
        self.servers
            .lock()
            .expect("mem net lock")
            .insert(id, server);
    }

    /// Makes controller `id` unreachable (it was stopped).
    pub fn unregister(&self, id: NodeId) {
        self.servers.lock().expect("mem net lock").remove(&id);
    }

    /// Sets what the link from `from` to `to` does.
    pub fn set_link(&self, from: NodeId, to: NodeId, link: Link) {
        self.links
            .lock()
            .expect("mem net lock")
            .insert((from, to), link);
    }

    fn link(&self, from: NodeId, to: NodeId) -> Link {
        self.links
            .lock()
            .expect("mem net lock")
            .get(&(from, to))
            .copied()
            .unwrap_or(Link::Pass)
    }

    fn server(&self, id: NodeId) -> Option<QuorumServer> {
        self.servers.lock().expect("mem net lock").get(&id).cloned()
    }

    /// The transport controller `from` sends with.
    pub fn transport(self: &Arc<Self>, from: NodeId) -> Arc<dyn QuorumTransport> {
        Arc::new(MemTransport {
            net: Arc::clone(self),
            from,
        })
    }
}

struct MemTransport {
    net: Arc<MemNet>,
    from: NodeId,
}

/// Crosses `link`: `Ok` once across, `Err(Timeout)` at the deadline when lost.
async fn cross(
    link: Link,
    to: NodeId,
    deadline: tokio::time::Instant,
) -> Result<(), TransportError> {
    match link {
        Link::Pass => Ok(()),
        Link::Delay(d) => {
            let at = tokio::time::Instant::now() + d;
            if at >= deadline {
                tokio::time::sleep_until(deadline).await;
                return Err(TransportError::Timeout(to));
            }
            tokio::time::sleep_until(at).await;
            Ok(())
        }
        Link::Drop => {
            tokio::time::sleep_until(deadline).await;
            Err(TransportError::Timeout(to))
        }
    }
}

impl QuorumTransport for MemTransport {
    fn call(
        &self,
        to: NodeId,
        _addr: &Voter,
        api_key: i16,
        body: Bytes,
        timeout: Duration,
    ) -> BoxFuture<Result<Bytes, TransportError>> {
        let net = Arc::clone(&self.net);
        let from = self.from;
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            cross(net.link(from, to), to, deadline).await?;
            let server = net.server(to).ok_or(TransportError::Unreachable(to))?;
            let answer = tokio::time::timeout_at(deadline, server.handle(api_key, &body))
                .await
                .map_err(|_| TransportError::Timeout(to))?
                .map_err(|_| TransportError::Closed(to))?;
            cross(net.link(to, from), to, deadline).await?;
            Ok(answer)
        })
    }
}
