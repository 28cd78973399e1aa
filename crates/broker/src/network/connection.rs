//! One client connection: reader -> processor -> writer, joined by bounded queues,
//! with the memory each holds counted in the broker's pool and against the
//! connection ([`super::inflight`]).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use protocol::frame::{self, FrameError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::answers::Answers;
use super::inflight::{Held, Inflight, RequestSlot, Side, MAX_INFLIGHT_REQUESTS};
use super::pool::{Memory, ReadAheadSlot, RequestPool};
use super::transport::Connection;
use crate::broker::Broker;
use crate::handlers::{self, Reply};

/// A request read off the socket, with what it holds.
struct Incoming {
    frame: Bytes,
    slot: RequestSlot,
    memory: Held,
    /// Given back when the processor takes the request.
    read_ahead: Option<ReadAheadSlot>,
}

/// A response on its way to the socket, with what it holds until written.
struct Outgoing {
    payload: Payload,
    _memory: Held,
    _slot: RequestSlot,
}

enum Payload {
    Frame(Bytes),
    /// Chunks larger than the writer's buffer go to the socket from their own
    /// memory (BufWriter passes them through).
    Chunks(Vec<Bytes>),
}

/// The socket limits a connection reads under.
#[derive(Debug, Clone, Copy)]
struct ReadLimits {
    idle: Duration,
    max_request: usize,
    read_timeout: Duration,
}

/// Serves one client connection until it closes, misbehaves or idles out.
pub async fn serve<C: Connection>(
    broker: Arc<Broker>,
    pool: Arc<RequestPool>,
    stream: C,
    peer: SocketAddr,
) {
    let (read_half, write_half) = stream.into_split();
    let inflight = Inflight::new();
    let (request_tx, mut request_rx) = mpsc::channel::<Incoming>(MAX_INFLIGHT_REQUESTS);
    let (response_tx, response_rx) = mpsc::channel::<Outgoing>(MAX_INFLIGHT_REQUESTS);
    let idle = Duration::from_millis(broker.config.connections_max_idle_ms.max(1));
    let limits = ReadLimits {
        idle,
        max_request: broker.config.socket_request_max_bytes,
        read_timeout: Duration::from_millis(broker.config.request_read_timeout_ms.max(1)),
    };
    let reader = tokio::spawn(read_frames(
        read_half,
        request_tx,
        Arc::clone(&inflight),
        Arc::clone(&pool),
        limits,
        peer,
    ));
    let writer = tokio::spawn(write_responses(write_half, response_rx, idle, peer));
    let mut shutdown = broker.shutdown_signal();
    // Answers owed, in request order, each holding its request's slot.
    let mut answers: Answers<RequestSlot> = Answers::default();
    // A request read that must wait for the answers ahead of it.
    let mut next: Option<Incoming> = None;
    // A Close is owed: nothing more is handled.
    let mut closing = false;
    loop {
        if closing && next.is_none() && answers.is_empty() {
            break;
        }
        if let Some(incoming) = next.take_if(|i| answers.may_handle(&i.frame)) {
            let Incoming {
                frame,
                slot,
                memory,
                read_ahead,
            } = incoming;
            drop(read_ahead);
            let reply = process(&broker, frame, peer)
                .await
                .unwrap_or_else(|| Reply::Close("bad request header".into()));
            // Kafka releases a request's buffer once it is handled (a Produce's
            // waits keep none of it).
            drop(memory);
            closing |= matches!(reply, Reply::Close(_));
            answers.push(reply, slot);
            continue;
        }
        tokio::select! {
            // In this order: an answer ready goes out before the next request is
            // taken.
            biased;
            // Shutting down: what is owed is answered (as a request being handled
            // is finished), nothing more is read.
            _ = shutdown.changed(), if !closing => {
                closing = true;
                next = None;
            }
            // The writer gave up (the client closed, or reads no responses).
            () = response_tx.closed() => break,
            (reply, slot) = answers.next(), if !answers.is_empty() => {
                let payload = match reply {
                    Reply::Frame(bytes) => Payload::Frame(bytes.freeze()),
                    Reply::Chunks(chunks) => Payload::Chunks(chunks),
                    Reply::Nothing => continue,
                    Reply::Later(_) => {
                        tracing::error!(%peer, "a waiting answer gave no reply; closing connection");
                        break;
                    }
                    Reply::Close(reason) => {
                        tracing::debug!(%peer, %reason, "closing connection");
                        break;
                    }
                };
                let size = payload.len();
                let outgoing = Outgoing {
                    payload,
                    _memory: inflight.hold(pool.charge(size), Side::Response),
                    _slot: slot,
                };
                if response_tx.send(outgoing).await.is_err() {
                    break;
                }
            }
            // A client that reads no responses stops its own processing here.
            incoming = next_request(&inflight, &mut request_rx), if next.is_none() && !closing => {
                match incoming {
                    Some(incoming) => next = Some(incoming),
                    // The reader stopped: answer what is owed, then close.
                    None => closing = true,
                }
            }
        }
    }
    drop(answers);
    reader.abort();
    drop(response_tx);
    // The writer finishes what is queued, then closes the socket.
    let _ = writer.await;
}

/// The next request read, once the connection's unwritten responses allow one to be
/// handled; `None` when the reader has stopped. Cancel-safe.
async fn next_request(
    inflight: &Inflight,
    requests: &mut mpsc::Receiver<Incoming>,
) -> Option<Incoming> {
    inflight.wait_until(|c| c.may_process()).await;
    requests.recv().await
}

/// Parses and handles one frame; `None` closes the connection.
async fn process(broker: &Arc<Broker>, frame: Bytes, peer: SocketAddr) -> Option<Reply> {
    let request = match frame::parse_request(frame) {
        Ok(request) => request,
        Err(FrameError::UnknownApiKey {
            api_key,
            correlation_id,
        }) => {
            tracing::debug!(%peer, api_key, correlation_id, "closing connection: unknown api key");
            return None;
        }
        Err(e) => {
            tracing::debug!(%peer, error = %e, "closing connection: bad request header");
            return None;
        }
    };
    Some(handlers::dispatch(broker, request, peer).await)
}

async fn read_frames<R: AsyncRead + Unpin>(
    mut socket: R,
    requests: mpsc::Sender<Incoming>,
    inflight: Arc<Inflight>,
    pool: Arc<RequestPool>,
    limits: ReadLimits,
    peer: SocketAddr,
) {
    loop {
        // Muted while the connection has enough in flight.
        inflight.wait_until(|c| c.may_read()).await;
        let mut size = [0u8; 4];
        match tokio::time::timeout(limits.idle, socket.read_exact(&mut size)).await {
            Err(_) => {
                tracing::debug!(%peer, "closing idle connection");
                return;
            }
            Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
        }
        let size = i32::from_be_bytes(size);
        if size < 0 || size as usize > limits.max_request {
            tracing::warn!(%peer, size, max = limits.max_request, "closing connection: request size exceeds socket.request.max.bytes");
            return;
        }
        let size = size as usize;
        let (memory, read_ahead) = reserve(&inflight, &pool, size).await;
        let slot = inflight.request();
        let memory = inflight.hold(memory, Side::Request);
        let deadline = Instant::now() + limits.read_timeout;
        let frame = match read_body(&mut socket, size, limits.idle, deadline).await {
            Ok(frame) => frame,
            Err(e) => {
                if e.kind() == io::ErrorKind::TimedOut {
                    tracing::info!(%peer, size, error = %e, "closing connection: request not received in time");
                }
                return;
            }
        };
        let incoming = Incoming {
            frame,
            slot,
            memory,
            read_ahead,
        };
        if requests.send(incoming).await.is_err() {
            return;
        }
    }
}

/// Memory for a frame of `size` bytes: the connection's first request in flight
/// waits its turn in the pool; a request read ahead takes memory and a read-ahead
/// slot only when both are free, or waits to become the first.
async fn reserve(
    inflight: &Inflight,
    pool: &Arc<RequestPool>,
    size: usize,
) -> (Memory, Option<ReadAheadSlot>) {
    loop {
        let released = pool.released();
        let changed = inflight.changed();
        tokio::pin!(released, changed);
        released.as_mut().enable();
        changed.as_mut().enable();
        if inflight.counts().requests == 0 {
            return (pool.reserve(size).await, None);
        }
        if let Some((memory, slot)) = pool.try_reserve_read_ahead(size) {
            return (memory, Some(slot));
        }
        tokio::select! {
            () = released => {}
            () = changed => {}
        }
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_string())
}

/// Reads a frame body of `size` bytes into memory allocated for exactly that; each
/// read must come within `idle`, and the whole body before `deadline`.
async fn read_body<R: AsyncRead + Unpin>(
    socket: &mut R,
    size: usize,
    idle: Duration,
    deadline: Instant,
) -> io::Result<Bytes> {
    let mut frame = BytesMut::with_capacity(size);
    while frame.len() < size {
        let want = (size - frame.len()) as u64;
        let until = deadline.min(Instant::now() + idle);
        let mut limited = (&mut *socket).take(want);
        match tokio::time::timeout_at(until, limited.read_buf(&mut frame)).await {
            Err(_) if until == deadline => return Err(timed_out("request read timeout")),
            Err(_) => return Err(timed_out("idle while reading a request")),
            Ok(Ok(0)) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(result) => {
                result?;
            }
        }
    }
    Ok(frame.freeze())
}

impl Payload {
    fn len(&self) -> usize {
        match self {
            Payload::Frame(bytes) => bytes.len(),
            Payload::Chunks(chunks) => chunks.iter().map(Bytes::len).sum(),
        }
    }

    async fn write_to<W: AsyncWrite + Unpin>(
        &self,
        socket: &mut W,
        idle: Duration,
    ) -> io::Result<()> {
        match self {
            Payload::Frame(bytes) => write_within(socket, bytes, idle).await,
            Payload::Chunks(chunks) => {
                for chunk in chunks {
                    write_within(socket, chunk, idle).await?;
                }
                Ok(())
            }
        }
    }
}

/// Writes all of `buf`; fails if the socket takes nothing for `idle` (a client
/// that reads no responses is idle, as Kafka's selector sees it).
async fn write_within<W: AsyncWrite + Unpin>(
    socket: &mut W,
    mut buf: &[u8],
    idle: Duration,
) -> io::Result<()> {
    while !buf.is_empty() {
        let written = tokio::time::timeout(idle, socket.write(buf))
            .await
            .map_err(|_| timed_out("idle: the client reads no responses"))??;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        buf = &buf[written..];
    }
    Ok(())
}

async fn write_responses<W: AsyncWrite + Unpin>(
    socket: W,
    mut responses: mpsc::Receiver<Outgoing>,
    idle: Duration,
    peer: SocketAddr,
) {
    let mut socket = BufWriter::with_capacity(64 * 1024, socket);
    let result: io::Result<()> = async {
        while let Some(response) = responses.recv().await {
            response.payload.write_to(&mut socket, idle).await?;
            drop(response);
            // Coalesce: flush only when nothing else is ready to go.
            while let Ok(next) = responses.try_recv() {
                next.payload.write_to(&mut socket, idle).await?;
            }
            tokio::time::timeout(idle, socket.flush())
                .await
                .map_err(|_| timed_out("idle: the client reads no responses"))??;
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            let _ = tokio::time::timeout(idle, socket.shutdown()).await;
        }
        Err(e) if e.kind() == io::ErrorKind::TimedOut => {
            tracing::info!(%peer, error = %e, "closing connection");
        }
        Err(_) => {}
    }
}
