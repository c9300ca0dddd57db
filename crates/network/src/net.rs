//! The sockets the stream stack accepts and dials: TCP, or, with the `sim` feature,
//! turmoil's simulated network ([`crate::Network::start_simulated`]).
//!
//! The choice is made once per network, at start; everything above the socket
//! (admission, the upgrade, the supervisor, the dialer, the pool) is the same code
//! on both. A plain enum rather than a type parameter: the [`crate::Network`] type
//! stays what it is, and without the feature the enum has one variant, which the
//! compiler sees through.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Accepts sockets for a carrier ([`crate::supervisor::Supervisor::listen`]).
pub(crate) trait Accept: Send + Sync + 'static {
    /// What it accepts.
    type Socket: Send + 'static;
    /// The next socket and its peer's address.
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Socket, SocketAddr)>> + Send;
}

impl Accept for TcpListener {
    type Socket = TcpStream;

    fn accept(&self) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send {
        TcpListener::accept(self)
    }
}

/// Which network a stream-stack server runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Net {
    /// The operating system's TCP.
    Tcp,
    /// turmoil's simulated network: only inside a turmoil host.
    #[cfg(feature = "sim")]
    Sim,
}

impl Net {
    /// Binds `addr`.
    pub(crate) async fn bind(self, addr: SocketAddr) -> io::Result<Listener> {
        match self {
            Net::Tcp => TcpListener::bind(addr).await.map(Listener::Tcp),
            #[cfg(feature = "sim")]
            Net::Sim => {
                // turmoil binds only the unspecified address; the host's own, as the
                // config names it, is what peers dial and what we advertise.
                let any = SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), addr.port());
                let listener = turmoil::net::TcpListener::bind(any).await?;
                let mut local = listener.local_addr()?;
                if !addr.ip().is_unspecified() {
                    local.set_ip(addr.ip());
                }
                Ok(Listener::Sim(listener, local))
            }
        }
    }

    /// Connects to `addr`, from `bind` if given (TCP; a simulated host has one
    /// address).
    pub(crate) async fn connect(
        self,
        bind: Option<IpAddr>,
        addr: SocketAddr,
    ) -> io::Result<Stream> {
        match self {
            Net::Tcp => devmux_transport::connect_from(bind, addr)
                .await
                .map(Stream::Tcp),
            #[cfg(feature = "sim")]
            Net::Sim => turmoil::net::TcpStream::connect(addr)
                .await
                .map(Stream::Sim),
        }
    }
}

/// A bound stream-stack listener.
pub(crate) enum Listener {
    Tcp(TcpListener),
    /// turmoil's listener and the address it is reached at.
    #[cfg(feature = "sim")]
    Sim(turmoil::net::TcpListener, SocketAddr),
}

impl Listener {
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr(),
            #[cfg(feature = "sim")]
            Listener::Sim(_, local) => Ok(*local),
        }
    }
}

impl Accept for Listener {
    type Socket = Stream;

    async fn accept(&self) -> io::Result<(Stream, SocketAddr)> {
        match self {
            Listener::Tcp(l) => l.accept().await.map(|(s, a)| (Stream::Tcp(s), a)),
            #[cfg(feature = "sim")]
            Listener::Sim(l, _) => l.accept().await.map(|(s, a)| (Stream::Sim(s), a)),
        }
    }
}

/// A stream-stack socket.
pub(crate) enum Stream {
    Tcp(TcpStream),
    #[cfg(feature = "sim")]
    Sim(turmoil::net::TcpStream),
}

/// Calls `$f` on the socket inside `$self`, whichever it is.
macro_rules! each {
    ($self:expr, $s:ident => $f:expr) => {
        match $self {
            Stream::Tcp($s) => $f,
            #[cfg(feature = "sim")]
            Stream::Sim($s) => $f,
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self.get_mut(), s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_shutdown(cx))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(self.get_mut(), s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        each!(self, s => s.is_write_vectored())
    }
}

impl devmux_transport::Socket for Stream {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        each!(self, s => s.peer_addr())
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        each!(self, s => s.local_addr())
    }

    fn configure(&self) {
        match self {
            Stream::Tcp(s) => devmux_transport::configure_socket(s),
            // A simulated socket has no options.
            #[cfg(feature = "sim")]
            Stream::Sim(_) => {}
        }
    }
}
