//! What the upgrader needs of a socket: a byte stream with a peer address.
//!
//! Production runs over tokio's [`TcpStream`]; anything else that carries bytes
//! between two addresses can be upgraded the same way, e.g. a simulated network's
//! stream (devmux-network's `sim` feature runs the real upgrade over turmoil's).

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A connected byte stream between two addresses: what [`crate::Upgrader`] turns into
/// a [`crate::Connection`].
pub trait Socket: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// The remote end's address.
    fn peer_addr(&self) -> std::io::Result<SocketAddr>;
    /// The local end's address.
    fn local_addr(&self) -> std::io::Result<SocketAddr>;
    /// Applies the socket options every devmux connection wants (see
    /// [`crate::configure_socket`]); nothing for sockets that have no options.
    fn configure(&self) {}
}

impl Socket for TcpStream {
    fn peer_addr(&self) -> std::io::Result<SocketAddr> {
        TcpStream::peer_addr(self)
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        TcpStream::local_addr(self)
    }

    fn configure(&self) {
        crate::configure_socket(self);
    }
}
