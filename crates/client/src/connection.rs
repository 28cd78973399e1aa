//! One TCP connection to one broker.
//!
//! ```text
//! connect -> ApiVersions (v3, or v0 when the broker answers UNSUPPORTED_VERSION)
//!         -> requests pipelined: [i32 size][header: api_key, api_version,
//!            correlation_id, client_id][body]; responses come back in order
//! ```
//!
//! A writer task takes frames from a bounded queue, coalesces what is waiting into
//! one socket write, and registers each request that expects an answer; a reader
//! task matches each response frame to the oldest registered request. Kafka answers
//! a connection's requests in the order they were sent, so the queue's front is
//! always the request a response answers; a correlation id that does not match is a
//! protocol violation and closes the connection.
//!
//! Invariants: a request is registered before its bytes are written (so its answer
//! cannot arrive unregistered); once the connection is closed, every registered and
//! every later request fails at once with the reason it closed. A request that times
//! out closes the connection, as Kafka's clients do: its answer may still come and
//! would be taken for the next request's.
//!
//! The version of each API is the highest both sides speak: the broker's advertised
//! range intersected with what the codec knows, capped by [`client_max_version`]
//! where a newer version changes what the client must send (topic ids instead of
//! names).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use protocol::frame::{decode_response, encode_request};
use protocol::kafka::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader};
use protocol::kafka::protocol::{Request, StrBytes};
use protocol::ErrorCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

use crate::error::{ClientError, Result};

/// Requests queued for the writer per connection before `send` waits.
const OUTGOING_QUEUE: usize = 1024;
/// Coalesce at most this many bytes into one socket write.
const WRITE_BUFFER_BYTES: usize = 256 * 1024;

/// The highest version of an API this client sends, where lower than the codec's.
pub fn client_max_version(key: ApiKey) -> Option<i16> {
    match key {
        // v12 tells the broker to add partitions to transactions implicitly (KIP-890
        // part 2); we send AddPartitionsToTxn, so stay on v11. v13 uses topic ids.
        ApiKey::Produce => Some(11),
        // v13+ name topics by id.
        ApiKey::Fetch => Some(12),
        // v4+ is the brokers' batched verification form; clients send v3.
        ApiKey::AddPartitionsToTxn => Some(3),
        _ => None,
    }
}

/// Settings a connection needs.
#[derive(Debug, Clone)]
pub struct ConnectionOptions {
    pub client_id: String,
    pub request_timeout: Duration,
    pub connection_setup_timeout: Duration,
    pub max_response_bytes: usize,
}

type Reply = oneshot::Sender<Result<Bytes>>;

struct Pending {
    correlation_id: i32,
    api_key: ApiKey,
    reply: Reply,
}

struct Outgoing {
    frame: BytesMut,
    pending: Option<Pending>,
    /// For a request with no response: told once the frame is flushed to the
    /// socket, so a close right after cannot drop it unsent.
    written: Option<oneshot::Sender<()>>,
}

#[derive(Default)]
struct PendingQueue {
    /// Why the connection closed; set once, never cleared.
    closed: Option<ClientError>,
    queue: VecDeque<Pending>,
}

/// A connection's shared state; the tasks hold it too.
struct Shared {
    address: String,
    pending: Mutex<PendingQueue>,
}

impl Shared {
    /// Registers a request awaiting an answer, or fails it if the connection closed.
    fn register(&self, pending: Pending) {
        let mut state = self.pending.lock().expect("pending queue lock poisoned");
        match &state.closed {
            Some(reason) => {
                let _ = pending.reply.send(Err(reason.clone()));
            }
            None => state.queue.push_back(pending),
        }
    }

    fn close(&self, reason: ClientError) {
        let mut state = self.pending.lock().expect("pending queue lock poisoned");
        if state.closed.is_none() {
            tracing::debug!(address = %self.address, %reason, "connection closed");
            state.closed = Some(reason.clone());
        }
        for pending in state.queue.drain(..) {
            // Name the request that was waiting: it is usually the one the
            // broker closed the connection over.
            let error = match &reason {
                ClientError::Network { address, reason } => ClientError::Network {
                    address: address.clone(),
                    reason: format!("{reason} (awaiting {:?})", pending.api_key),
                },
                other => other.clone(),
            };
            let _ = pending.reply.send(Err(error));
        }
    }

    fn closed(&self) -> Option<ClientError> {
        self.pending
            .lock()
            .expect("pending queue lock poisoned")
            .closed
            .clone()
    }
}

/// A broker connection; cheap to clone, closed when the last clone is dropped.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    node_id: i32,
    options: ConnectionOptions,
    client_id: StrBytes,
    /// The broker's advertised versions: api key -> (min, max).
    versions: HashMap<i16, (i16, i16)>,
    outgoing: mpsc::Sender<Outgoing>,
    correlation: AtomicI32,
    tasks: [AbortHandle; 2],
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Connection({} node {})",
            self.inner.shared.address, self.inner.node_id
        )
    }
}

impl Connection {
    /// Connects to `address` and negotiates API versions.
    pub async fn connect(
        address: &str,
        node_id: i32,
        options: ConnectionOptions,
    ) -> Result<Connection> {
        let connect_error = |reason: String| ClientError::Connect {
            address: address.to_string(),
            reason,
        };
        let stream = tokio::time::timeout(
            options.connection_setup_timeout,
            TcpStream::connect(address),
        )
        .await
        .map_err(|_| {
            connect_error(format!(
                "no answer in {} ms",
                options.connection_setup_timeout.as_millis()
            ))
        })?
        .map_err(|e| connect_error(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        let shared = Arc::new(Shared {
            address: address.to_string(),
            pending: Mutex::new(PendingQueue::default()),
        });
        let (outgoing, outgoing_rx) = mpsc::channel(OUTGOING_QUEUE);
        let write_task = tokio::spawn(write_loop(writer, outgoing_rx, Arc::clone(&shared)));
        let read_task = tokio::spawn(read_loop(
            reader,
            Arc::clone(&shared),
            options.max_response_bytes,
        ));
        let mut connection = Connection {
            inner: Arc::new(Inner {
                shared,
                node_id,
                client_id: StrBytes::from_string(options.client_id.clone()),
                options,
                versions: HashMap::new(),
                outgoing,
                correlation: AtomicI32::new(0),
                tasks: [write_task.abort_handle(), read_task.abort_handle()],
            }),
        };
        let versions = connection.negotiate().await?;
        Arc::get_mut(&mut connection.inner)
            .expect("no other handle exists yet")
            .versions = versions;
        Ok(connection)
    }

    async fn negotiate(&self) -> Result<HashMap<i16, (i16, i16)>> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("rivulet-client"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut response: ApiVersionsResponse = self.send_version(&request, 3, None).await?;
        if response.error_code == ErrorCode::UnsupportedVersion.code() {
            // KIP-511: the broker answered v0 with its own ApiVersions range.
            response = self
                .send_version(&ApiVersionsRequest::default(), 0, None)
                .await?;
        }
        ClientError::check(
            response.error_code,
            || format!("ApiVersions from {}", self.address()),
            None,
        )?;
        Ok(response
            .api_keys
            .iter()
            .map(|v| (v.api_key, (v.min_version, v.max_version)))
            .collect())
    }

    pub fn address(&self) -> &str {
        &self.inner.shared.address
    }

    pub fn node_id(&self) -> i32 {
        self.inner.node_id
    }

    /// Whether the connection has closed (the pool then opens a new one).
    pub fn is_closed(&self) -> bool {
        self.inner.shared.closed().is_some() || self.inner.outgoing.is_closed()
    }

    /// The broker's advertised range for `key`, if it serves the API at all.
    pub fn broker_versions(&self, key: ApiKey) -> Option<(i16, i16)> {
        self.inner.versions.get(&(key as i16)).copied()
    }

    /// Whether the broker advertises `key`.
    pub fn supports(&self, key: ApiKey) -> bool {
        self.broker_versions(key).is_some()
    }

    /// The version to send `R` in: the highest both sides speak.
    pub fn version_of<R: Request>(&self) -> Result<i16> {
        let key = ApiKey::try_from(R::KEY)
            .map_err(|_| ClientError::Protocol(format!("unknown api key {}", R::KEY)))?;
        let ours = (
            R::VERSIONS.min,
            client_max_version(key)
                .unwrap_or(R::VERSIONS.max)
                .min(R::VERSIONS.max),
        );
        let theirs = self.broker_versions(key);
        match theirs {
            Some((min, max)) if max.min(ours.1) >= min.max(ours.0) => Ok(max.min(ours.1)),
            _ => Err(ClientError::UnsupportedApi {
                api: key,
                address: self.address().to_string(),
                broker_versions: theirs,
            }),
        }
    }

    /// Sends `request` in the negotiated version and waits for the answer.
    pub async fn send<R: Request>(&self, request: &R) -> Result<R::Response> {
        let version = self.version_of::<R>()?;
        self.send_version(request, version, None).await
    }

    /// Like [`Connection::send`], allowing `extra` time beyond `request.timeout.ms`
    /// (for requests the broker holds: Fetch's max wait, JoinGroup's rebalance).
    pub async fn send_with_extra_time<R: Request>(
        &self,
        request: &R,
        extra: Duration,
    ) -> Result<R::Response> {
        let version = self.version_of::<R>()?;
        self.send_version(request, version, Some(extra)).await
    }

    /// Sends `request` in `version`.
    pub async fn send_version<R: Request>(
        &self,
        request: &R,
        version: i16,
        extra: Option<Duration>,
    ) -> Result<R::Response> {
        self.enqueue_version(request, version, extra).await?.await
    }

    /// Queues `request` on the connection and returns a future of its answer.
    /// Requests are written in the order their `enqueue` calls complete, so a
    /// caller that awaits this in order (the producer's sender, for sequence
    /// numbers) keeps that order on the wire.
    pub async fn enqueue_request<R: Request>(
        &self,
        request: &R,
    ) -> Result<impl std::future::Future<Output = Result<R::Response>> + Send + 'static> {
        let version = self.version_of::<R>()?;
        self.enqueue_version(request, version, None).await
    }

    async fn enqueue_version<R: Request>(
        &self,
        request: &R,
        version: i16,
        extra: Option<Duration>,
    ) -> Result<impl std::future::Future<Output = Result<R::Response>> + Send + 'static> {
        let api_key = ApiKey::try_from(R::KEY)
            .map_err(|_| ClientError::Protocol(format!("unknown api key {}", R::KEY)))?;
        let (frame, correlation_id) = self.encode(request, version)?;
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            correlation_id,
            api_key,
            reply,
        };
        self.enqueue(Outgoing {
            frame,
            pending: Some(pending),
            written: None,
        })
        .await?;
        let timeout = self.inner.options.request_timeout + extra.unwrap_or_default();
        let connection = self.clone();
        Ok(async move {
            let bytes = match tokio::time::timeout(timeout, answer).await {
                Ok(Ok(result)) => result?,
                Ok(Err(_)) => return Err(connection.closed_error()),
                Err(_) => {
                    let error = ClientError::Timeout {
                        what: format!("{api_key:?} to {}", connection.address()),
                        timeout_ms: timeout.as_millis() as u64,
                    };
                    connection.inner.shared.close(error.clone());
                    return Err(error);
                }
            };
            let (got, response) =
                decode_response::<R::Response>(api_key, version, bytes).map_err(|e| {
                    ClientError::Protocol(format!(
                        "{api_key:?} v{version} response from {}: {e}",
                        connection.address()
                    ))
                })?;
            debug_assert_eq!(
                got, correlation_id,
                "the reader matched the response by correlation id"
            );
            Ok(response)
        })
    }

    /// Sends a request that gets no answer (Produce with acks=0).
    pub async fn send_oneway<R: Request>(&self, request: &R) -> Result<()> {
        let version = self.version_of::<R>()?;
        let (frame, _) = self.encode(request, version)?;
        let (written, flushed) = oneshot::channel();
        self.enqueue(Outgoing {
            frame,
            pending: None,
            written: Some(written),
        })
        .await?;
        flushed.await.map_err(|_| self.closed_error())
    }

    fn encode<R: Request>(&self, request: &R, version: i16) -> Result<(BytesMut, i32)> {
        let correlation_id = self.inner.correlation.fetch_add(1, Ordering::Relaxed) & i32::MAX;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.inner.client_id.clone()));
        let frame =
            encode_request(&header, request).map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok((frame, correlation_id))
    }

    async fn enqueue(&self, outgoing: Outgoing) -> Result<()> {
        if let Some(reason) = self.inner.shared.closed() {
            return Err(reason);
        }
        self.inner
            .outgoing
            .send(outgoing)
            .await
            .map_err(|_| self.closed_error())
    }

    fn closed_error(&self) -> ClientError {
        self.inner
            .shared
            .closed()
            .unwrap_or_else(|| ClientError::Network {
                address: self.address().to_string(),
                reason: "connection closed".into(),
            })
    }

    /// Closes the connection; requests waiting fail with `reason`.
    pub fn close(&self, reason: &str) {
        self.inner.shared.close(ClientError::Network {
            address: self.address().to_string(),
            reason: reason.to_string(),
        });
        for task in &self.inner.tasks {
            task.abort();
        }
    }
}

async fn write_loop(
    writer: tokio::net::tcp::OwnedWriteHalf,
    mut outgoing: mpsc::Receiver<Outgoing>,
    shared: Arc<Shared>,
) {
    let mut writer = BufWriter::with_capacity(WRITE_BUFFER_BYTES, writer);
    let network_error = |e: std::io::Error| ClientError::Network {
        address: shared.address.clone(),
        reason: e.to_string(),
    };
    while let Some(first) = outgoing.recv().await {
        let mut next = Some(first);
        let mut written = 0usize;
        let mut flushed = Vec::new();
        // Write everything already queued, then flush once.
        while let Some(item) = next.take() {
            written += item.frame.len();
            if let Some(pending) = item.pending {
                shared.register(pending);
            }
            flushed.extend(item.written);
            if let Err(e) = writer.write_all(&item.frame).await {
                shared.close(network_error(e));
                return;
            }
            if written < WRITE_BUFFER_BYTES {
                next = outgoing.try_recv().ok();
            }
        }
        if let Err(e) = writer.flush().await {
            shared.close(network_error(e));
            return;
        }
        for done in flushed {
            let _ = done.send(());
        }
    }
}

async fn read_loop(
    mut reader: tokio::net::tcp::OwnedReadHalf,
    shared: Arc<Shared>,
    max_response_bytes: usize,
) {
    let error = loop {
        let size = match reader.read_i32().await {
            Ok(size) => size,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break "closed by the broker".to_string()
            }
            Err(e) => break e.to_string(),
        };
        if size < 4 || size as usize > max_response_bytes {
            break format!(
                "response frame of {size} bytes (limit {max_response_bytes}, max.response.size)"
            );
        }
        // Read into uninitialised capacity (zeroing it first was 8% of a consumer's CPU).
        let size = size as usize;
        let mut frame = BytesMut::with_capacity(size);
        let mut failed = None;
        while frame.len() < size {
            let want = (size - frame.len()) as u64;
            match (&mut reader).take(want).read_buf(&mut frame).await {
                Ok(0) => {
                    failed = Some("closed by the broker mid-response".to_string());
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            }
        }
        if let Some(error) = failed {
            break error;
        }
        let correlation_id = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        let pending = shared
            .pending
            .lock()
            .expect("pending queue lock poisoned")
            .queue
            .pop_front();
        match pending {
            Some(p) if p.correlation_id == correlation_id => {
                let _ = p.reply.send(Ok(frame.freeze()));
            }
            Some(p) => {
                let reason = format!(
                    "response correlation id {correlation_id} does not match the oldest request ({:?}, {})",
                    p.api_key, p.correlation_id
                );
                let _ = p.reply.send(Err(ClientError::Protocol(reason.clone())));
                break reason;
            }
            None => break format!("unsolicited response (correlation id {correlation_id})"),
        }
    };
    shared.close(ClientError::Network {
        address: shared.address.clone(),
        reason: error,
    });
}
