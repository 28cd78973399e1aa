//! The network as the broker sees it: an [`Acceptor`] that listeners accept
//! through and a [`Connector`] that outbound connections dial through, each with
//! the real TCP implementation ([`TcpAcceptor`], [`TcpConnector`]) and an
//! in-memory one ([`MemNetwork`]) in which no socket is opened, for tests and
//! the deterministic simulation (docs/research/cluster-design.md, D15).
//!
//! A connection is anything that reads and writes bytes and splits into a read
//! half and a write half that move to their own tasks ([`Connection`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// One connection's byte stream, split so that its reader and its writer can run
/// on their own tasks.
pub trait Connection: Send + 'static {
    type Read: AsyncRead + Unpin + Send + 'static;
    type Write: AsyncWrite + Unpin + Send + 'static;
    fn into_split(self) -> (Self::Read, Self::Write);
}

/// Where a listener's connections come from.
pub trait Acceptor: Send + 'static {
    type Connection: Connection;
    /// The next connection and the address it comes from.
    fn accept(&mut self)
        -> impl Future<Output = io::Result<(Self::Connection, SocketAddr)>> + Send;
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// How a connection to another node is opened.
pub trait Connector: Send + Sync + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn connect(&self, address: SocketAddr)
        -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

// ---- TCP ----

impl Connection for TcpStream {
    type Read = OwnedReadHalf;
    type Write = OwnedWriteHalf;
    fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        // Responses are written whole and coalesced by the writer: no Nagle delay.
        let _ = self.set_nodelay(true);
        TcpStream::into_split(self)
    }
}

/// A TCP listener.
#[derive(Debug)]
pub struct TcpAcceptor(pub TcpListener);

impl Acceptor for TcpAcceptor {
    type Connection = TcpStream;
    async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
        self.0.accept().await
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// Dials over TCP.
#[derive(Debug, Default, Clone, Copy)]
pub struct TcpConnector;

impl Connector for TcpConnector {
    type Stream = TcpStream;
    async fn connect(&self, address: SocketAddr) -> io::Result<TcpStream> {
        let stream = TcpStream::connect(address).await?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}

// ---- In memory ----

/// The bytes one direction of an in-memory connection buffers before its writer
/// waits (as a socket's send buffer).
pub const MEM_BUFFER_BYTES: usize = 256 * 1024;
/// Connections waiting to be accepted per in-memory listener (its backlog).
pub const MEM_BACKLOG: usize = 128;

impl Connection for DuplexStream {
    type Read = ReadHalf<DuplexStream>;
    type Write = WriteHalf<DuplexStream>;
    fn into_split(self) -> (Self::Read, Self::Write) {
        tokio::io::split(self)
    }
}

type Pending = (DuplexStream, SocketAddr);

/// A network in memory: listeners bound to addresses, and connectors that reach
/// them. Connecting to an address nobody listens on is refused, as TCP is;
/// dropping either end of a connection is seen by the other as EOF.
#[derive(Debug, Clone, Default)]
pub struct MemNetwork {
    inner: Arc<Mutex<MemState>>,
}

#[derive(Debug, Default)]
struct MemState {
    listeners: BTreeMap<SocketAddr, mpsc::Sender<Pending>>,
    /// The next port handed to a dialling side, per host.
    next_port: BTreeMap<IpAddr, u16>,
}

impl MemNetwork {
    pub fn new() -> MemNetwork {
        MemNetwork::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, MemState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Listens on `address`; refused if something listens there already.
    pub fn bind(&self, address: SocketAddr) -> io::Result<MemAcceptor> {
        let mut state = self.state();
        if state
            .listeners
            .get(&address)
            .is_some_and(|tx| !tx.is_closed())
        {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{address} is in use"),
            ));
        }
        let (tx, rx) = mpsc::channel(MEM_BACKLOG);
        state.listeners.insert(address, tx);
        Ok(MemAcceptor {
            address,
            incoming: rx,
        })
    }

    /// A connector whose connections come from `host`.
    pub fn connector(&self, host: IpAddr) -> MemConnector {
        MemConnector {
            network: self.clone(),
            host,
        }
    }
}

/// An in-memory listener; dropping it stops the address accepting.
#[derive(Debug)]
pub struct MemAcceptor {
    address: SocketAddr,
    incoming: mpsc::Receiver<Pending>,
}

impl Acceptor for MemAcceptor {
    type Connection = DuplexStream;
    async fn accept(&mut self) -> io::Result<(DuplexStream, SocketAddr)> {
        self.incoming
            .recv()
            .await
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "the network was dropped"))
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.address)
    }
}

/// Dials listeners of a [`MemNetwork`] from one host.
#[derive(Debug, Clone)]
pub struct MemConnector {
    network: MemNetwork,
    host: IpAddr,
}

impl Connector for MemConnector {
    type Stream = DuplexStream;
    async fn connect(&self, address: SocketAddr) -> io::Result<DuplexStream> {
        let (listener, from) = {
            let mut state = self.network.state();
            let refused = || io::Error::new(io::ErrorKind::ConnectionRefused, address.to_string());
            let listener = state.listeners.get(&address).cloned().ok_or_else(refused)?;
            let port = state.next_port.entry(self.host).or_insert(40_000);
            let from = SocketAddr::new(self.host, *port);
            *port = port.checked_add(1).unwrap_or(40_000);
            (listener, from)
        };
        let (local, remote) = tokio::io::duplex(MEM_BUFFER_BYTES);
        listener
            .send((remote, from))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::ConnectionRefused, address.to_string()))?;
        Ok(local)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[tokio::test]
    async fn bytes_cross_an_in_memory_connection_both_ways() {
        let network = MemNetwork::new();
        let mut acceptor = network.bind(addr("10.0.0.1:9092")).unwrap();
        let connector = network.connector("10.0.0.2".parse().unwrap());
        let mut client = connector.connect(addr("10.0.0.1:9092")).await.unwrap();
        let (server, peer) = acceptor.accept().await.unwrap();
        assert_eq!(peer, addr("10.0.0.2:40000"));
        let (mut read, mut write) = server.into_split();
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        read.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        write.write_all(b"pong").await.unwrap();
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
        // The server closes: the client reads EOF.
        drop((read, write));
        assert_eq!(client.read(&mut buf).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn nobody_listening_is_refused_and_an_address_binds_once() {
        let network = MemNetwork::new();
        let connector = network.connector("10.0.0.2".parse().unwrap());
        let refused = connector.connect(addr("10.0.0.1:9092")).await.unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
        let acceptor = network.bind(addr("10.0.0.1:9092")).unwrap();
        let in_use = network.bind(addr("10.0.0.1:9092")).unwrap_err();
        assert_eq!(in_use.kind(), io::ErrorKind::AddrInUse);
        // Once the listener is gone, the address is free and dialling it is refused.
        drop(acceptor);
        let refused = connector.connect(addr("10.0.0.1:9092")).await.unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
        network.bind(addr("10.0.0.1:9092")).unwrap();
    }
}
