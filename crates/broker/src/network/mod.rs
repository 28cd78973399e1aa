//! Listeners and connections.
//!
//! Accepting ([`accept_loop`]) follows Kafka's `Acceptor` with its
//! `ConnectionQuotas` ([`quotas`]): the creation rate delays, `max.connections`
//! makes the acceptor wait, an address over `max.connections.per.ip` is closed.
//!
//! Each connection is three tasks ([`connection`]): reader (frames off the socket)
//! -> processor (one request at a time, in order) -> writer (responses back,
//! coalesced into few writes). Requests are answered in the order they arrive, as
//! Kafka does, while the reader reads the next pipelined ones. A Produce waiting
//! for its fsync or its ISR does not hold up the next Produce's append
//! ([`answers`]), so a producer's pipelined requests share group commits.
//!
//! Memory: the 4-byte size prefix is checked against `socket.request.max.bytes`;
//! then the frame's size is reserved from the broker-wide pool
//! (`queued.max.request.bytes`, [`pool`]) before the rest is read and allocated;
//! responses are charged to the same pool until written. A connection is muted
//! (nothing read from it) while its in-flight requests and responses are over
//! [`inflight::MAX_INFLIGHT_REQUESTS`] or [`inflight::MAX_INFLIGHT_BYTES`], and at
//! most `queued.max.requests` requests are read ahead broker-wide. A request's
//! bytes must arrive within `rivulet.socket.request.read.timeout.ms` of its size
//! prefix; a connection idle for `connections.max.idle.ms` (nothing read, or a
//! response not accepted by the socket) is closed. A malformed frame closes its
//! connection and nothing else.

pub mod answers;
pub mod connection;
pub mod inflight;
pub mod pool;
pub mod quotas;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use crate::broker::Broker;
use crate::config::BrokerConfig;

pub use pool::RequestPool;
pub use quotas::ConnectionQuotas;
pub use transport::{Acceptor, Connection, Connector, MemNetwork, TcpAcceptor, TcpConnector};

/// The limits every listener of one broker shares.
#[derive(Debug)]
pub struct Limits {
    pub quotas: Arc<ConnectionQuotas>,
    pub pool: Arc<RequestPool>,
}

impl Limits {
    pub fn new(config: &BrokerConfig) -> Arc<Limits> {
        Arc::new(Limits {
            quotas: ConnectionQuotas::new(config),
            pool: RequestPool::new(config.queued_max_request_bytes, config.queued_max_requests),
        })
    }
}

/// Accepts connections until shutdown: from TCP ([`TcpAcceptor`]) in a running
/// broker, from memory ([`MemNetwork`]) in tests and simulations.
pub async fn accept_loop<A: Acceptor>(broker: Arc<Broker>, mut listener: A, limits: Arc<Limits>) {
    let mut shutdown = broker.shutdown_signal();
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Kafka's acceptor blocks here, the connection accepted, while the rate
        // throttles or every slot is taken; closing connections free slots.
        let admitted = tokio::select! {
            _ = shutdown.changed() => break,
            admitted = limits.quotas.admit(peer.ip(), broker.clock.as_ref()) => admitted,
        };
        let slot = match admitted {
            Ok(slot) => slot,
            Err(refused) => {
                tracing::info!(%peer, max = refused.max, "rejected connection: address already has max.connections.per.ip");
                continue;
            }
        };
        let broker = Arc::clone(&broker);
        let pool = Arc::clone(&limits.pool);
        connections.spawn(async move {
            connection::serve(broker, pool, stream, peer).await;
            drop(slot);
        });
        while connections.try_join_next().is_some() {}
    }
    // Let open connections finish their current request, then close them.
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(5), drain)
        .await
        .is_err()
    {
        connections.abort_all();
    }
}
