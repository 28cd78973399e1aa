//! Listeners and connections.
//!
//! Each connection is three tasks joined by bounded queues:
//! reader (frames off the socket) -> processor (one request at a time, in order)
//! -> writer (responses back, coalesced into few writes). Requests are handled in
//! the order they arrive and answered in that order, as Kafka does, while the reader
//! already reads the next pipelined requests.
//!
//! Limits: the 4-byte size prefix is checked against `socket.request.max.bytes`
//! before any buffer is allocated; at most `queued.max.requests` requests wait per
//! connection; a connection idle for `connections.max.idle.ms` is closed; at most
//! `max.connections` connections are open. A malformed frame closes its connection
//! and nothing else.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use protocol::frame::{self, FrameError};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use crate::broker::Broker;
use crate::handlers::{self, Reply};

/// Accepts connections until shutdown.
pub async fn accept_loop(broker: Arc<Broker>, listener: TcpListener) {
    let mut shutdown = broker.shutdown_signal();
    let slots = Arc::new(Semaphore::new(broker.config.max_connections.max(1)));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                    tracing::warn!(%peer, "closing connection: max.connections reached");
                    continue;
                };
                let broker = Arc::clone(&broker);
                connections.spawn(async move {
                    serve_connection(broker, stream, peer).await;
                    drop(permit);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
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

/// Serves one client connection until it closes, misbehaves or idles out.
pub async fn serve_connection(broker: Arc<Broker>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let (read_half, write_half) = stream.into_split();
    let queue = broker.config.queued_max_requests.clamp(1, 1024);
    let (request_tx, mut request_rx) = mpsc::channel::<Bytes>(queue);
    let (response_tx, response_rx) = mpsc::channel::<Outgoing>(queue);
    let idle = Duration::from_millis(broker.config.connections_max_idle_ms.max(1));
    let max_request = broker.config.socket_request_max_bytes;
    let reader = tokio::spawn(read_frames(read_half, request_tx, idle, max_request, peer));
    let writer = tokio::spawn(write_responses(write_half, response_rx));
    let mut shutdown = broker.shutdown_signal();
    loop {
        let frame = tokio::select! {
            _ = shutdown.changed() => break,
            frame = request_rx.recv() => match frame {
                Some(frame) => frame,
                None => break,
            },
        };
        let request = match frame::parse_request(frame) {
            Ok(request) => request,
            Err(FrameError::UnknownApiKey {
                api_key,
                correlation_id,
            }) => {
                tracing::debug!(%peer, api_key, correlation_id, "closing connection: unknown api key");
                break;
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "closing connection: bad request header");
                break;
            }
        };
        match handlers::dispatch(&broker, request, peer).await {
            Reply::Frame(bytes) => {
                if response_tx
                    .send(Outgoing::Frame(bytes.freeze()))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            Reply::Chunks(chunks) => {
                if response_tx.send(Outgoing::Chunks(chunks)).await.is_err() {
                    break;
                }
            }
            Reply::Nothing => {}
            Reply::Close(reason) => {
                tracing::debug!(%peer, %reason, "closing connection");
                break;
            }
        }
    }
    reader.abort();
    drop(response_tx);
    // The writer finishes what is queued, then closes the socket.
    let _ = writer.await;
}

async fn read_frames(
    mut socket: OwnedReadHalf,
    requests: mpsc::Sender<Bytes>,
    idle: Duration,
    max_request: usize,
    peer: SocketAddr,
) {
    loop {
        let mut size = [0u8; 4];
        match tokio::time::timeout(idle, socket.read_exact(&mut size)).await {
            Err(_) => {
                tracing::debug!(%peer, "closing idle connection");
                return;
            }
            Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
        }
        let size = i32::from_be_bytes(size);
        if size < 0 || size as usize > max_request {
            tracing::warn!(%peer, size, max = max_request, "closing connection: request size exceeds socket.request.max.bytes");
            return;
        }
        // Grow the buffer as bytes arrive: a size prefix alone allocates little.
        let size = size as usize;
        let mut frame = BytesMut::with_capacity(size.min(64 * 1024));
        while frame.len() < size {
            if frame.capacity() == frame.len() {
                frame.reserve((size - frame.len()).min(frame.len().max(64 * 1024)));
            }
            let want = size - frame.len();
            let read = {
                let mut limited = (&mut socket).take(want as u64);
                // A frame that starts must keep arriving within the idle timeout.
                tokio::time::timeout(idle, limited.read_buf(&mut frame)).await
            };
            match read {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
                Ok(Ok(_)) => {}
            }
        }
        if requests.send(frame.freeze()).await.is_err() {
            return;
        }
    }
}

/// A response on its way to the socket.
enum Outgoing {
    Frame(Bytes),
    Chunks(Vec<Bytes>),
}

impl Outgoing {
    /// Writes the response; chunks larger than the buffer go to the socket
    /// directly from their own memory (BufWriter passes them through).
    async fn write_to(&self, socket: &mut BufWriter<OwnedWriteHalf>) -> std::io::Result<()> {
        match self {
            Outgoing::Frame(bytes) => socket.write_all(bytes).await,
            Outgoing::Chunks(chunks) => {
                for chunk in chunks {
                    socket.write_all(chunk).await?;
                }
                Ok(())
            }
        }
    }
}

async fn write_responses(socket: OwnedWriteHalf, mut responses: mpsc::Receiver<Outgoing>) {
    let mut socket = BufWriter::with_capacity(64 * 1024, socket);
    while let Some(response) = responses.recv().await {
        if response.write_to(&mut socket).await.is_err() {
            return;
        }
        // Coalesce: flush only when nothing else is ready to go.
        while let Ok(next) = responses.try_recv() {
            if next.write_to(&mut socket).await.is_err() {
                return;
            }
        }
        if socket.flush().await.is_err() {
            return;
        }
    }
    let _ = socket.shutdown().await;
}
