//! Node identity for devmux: one secp256k1 key and every name derived from it.
//!
//! A devmux node has exactly one secret key. From it come:
//! - the libp2p [`PeerId`] and protobuf public key used by the multiplexed stream
//!   stack (computed by `libp2p-identity`, so they are byte-identical to rust-libp2p's);
//! - the Noise handshake signature ([`NodeKey::sign`]: ECDSA over SHA-256, DER, low-S);
//! - the devp2p [`NodeId`] (64-byte uncompressed public key) used by RLPx, its
//!   `keccak256` (the discv5 node id) and the [`Enode`] URL;
//! - `/ip4/…/tcp/…/p2p/…` multiaddrs ([`peer_multiaddr`], [`parse_peer_multiaddr`]).
//!
//! ```
//! use devmux_identity::{NodeKey, Enode};
//! # fn main() -> Result<(), devmux_identity::Error> {
//! let key = NodeKey::from_secret_bytes(&[1u8; 32])?;
//! assert_eq!(
//!     key.peer_id().to_string(),
//!     "16Uiu2HAmEWQnHq2jLKJypwVnVoQeFCULuyop6atvq2eWjYSUjzNi"
//! );
//! let enode = Enode::new(key.node_id(), "127.0.0.1:30303".parse().unwrap());
//! let parsed: Enode = enode.to_string().parse()?;
//! assert_eq!(parsed.id.to_peer_id()?, key.peer_id());
//! # Ok(()) }
//! ```

use std::fmt;
use std::fs;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::str::FromStr;

pub use libp2p_identity::{PeerId, PublicKey};
pub use multiaddr::{Multiaddr, Protocol};
use sha3::{Digest, Keccak256};

/// Errors of the identity crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The secret key bytes are not a valid secp256k1 scalar.
    #[error("invalid secp256k1 secret key")]
    InvalidSecretKey,
    /// A key file could not be read or written.
    #[error("key file {path}: {source}")]
    KeyFileIo {
        /// The file's path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A key file does not hold 64 hex digits.
    #[error("key file {path} is malformed: expected 64 hex digits (a 32-byte secp256k1 secret), {problem}")]
    MalformedKeyFile {
        /// The file's path.
        path: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A node id is not a valid secp256k1 public key.
    #[error("invalid node id: {0}")]
    InvalidNodeId(String),
    /// An `enode://` URL could not be parsed.
    #[error("invalid enode URL {url:?}: {problem}")]
    InvalidEnode {
        /// The text given.
        url: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A multiaddr could not be used as a peer address.
    #[error("invalid peer multiaddr {addr:?}: {problem}")]
    InvalidMultiaddr {
        /// The text given.
        addr: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// The node's one secp256k1 key.
#[derive(Clone)]
pub struct NodeKey {
    keypair: libp2p_identity::secp256k1::Keypair,
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_struct("NodeKey")
            .field("peer_id", &self.peer_id())
            .finish()
    }
}

impl NodeKey {
    /// Generates a fresh random key from the OS's random source.
    pub fn generate() -> Self {
        use rand::RngCore;
        loop {
            let mut bytes = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            // A uniformly random 32-byte string is out of range with probability ~2^-128.
            if let Ok(key) = Self::from_secret_bytes(&bytes) {
                return key;
            }
        }
    }

    /// Builds a key from its 32-byte secret.
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Result<Self, Error> {
        let mut copy = *secret;
        let secret = libp2p_identity::secp256k1::SecretKey::try_from_bytes(&mut copy)
            .map_err(|_| Error::InvalidSecretKey)?;
        Ok(Self {
            keypair: secret.into(),
        })
    }

    /// Parses a key from 64 hex digits (an optional `0x` prefix and surrounding
    /// white space are accepted).
    pub fn from_hex(text: &str) -> Result<Self, Error> {
        Self::parse_hex(text, "<text>")
    }

    fn parse_hex(text: &str, path: &str) -> Result<Self, Error> {
        let trimmed = text.trim();
        let trimmed = trimmed.strip_prefix("0x").unwrap_or(trimmed);
        let malformed = |problem: String| Error::MalformedKeyFile {
            path: path.to_string(),
            problem,
        };
        if trimmed.len() != 64 {
            return Err(malformed(format!("found {} characters", trimmed.len())));
        }
        let mut secret = [0u8; 32];
        hex::decode_to_slice(trimmed, &mut secret)
            .map_err(|e| malformed(format!("not hex: {e}")))?;
        Self::from_secret_bytes(&secret)
            .map_err(|_| malformed("not a valid secp256k1 secret".into()))
    }

    /// Loads a key from a hex file written by [`NodeKey::save`].
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = fs::read_to_string(path).map_err(|source| Error::KeyFileIo {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse_hex(&text, &path.display().to_string())
    }

    /// Writes the secret as hex to a new file that only the owner may read (mode 0600).
    /// Fails if the file exists, so a key is never overwritten by accident.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let io_err = |source| Error::KeyFileIo {
            path: path.display().to_string(),
            source,
        };
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(io_err)?;
        file.write_all(format!("{}\n", hex::encode(self.secret_bytes())).as_bytes())
            .map_err(io_err)?;
        file.sync_all().map_err(io_err)
    }

    /// Loads the key at `path`, or generates one and saves it there if no file exists.
    pub fn load_or_generate(path: &Path) -> Result<Self, Error> {
        if path.exists() {
            Self::load(path)
        } else {
            let key = Self::generate();
            key.save(path)?;
            Ok(key)
        }
    }

    /// The 32-byte secret. Handle with care.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.keypair.secret().to_bytes()
    }

    /// The libp2p keypair (for code that needs `libp2p-identity` directly).
    pub fn libp2p_keypair(&self) -> libp2p_identity::Keypair {
        self.keypair.clone().into()
    }

    /// The public key in libp2p's form.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::from(self.keypair.public().clone())
    }

    /// The protobuf encoding of the public key (`PublicKey{Type=Secp256k1, Data=33 bytes}`),
    /// as carried in the Noise payload and in identify.
    pub fn public_key_protobuf(&self) -> Vec<u8> {
        self.public_key().encode_protobuf()
    }

    /// The libp2p PeerId: identity multihash of the protobuf public key.
    pub fn peer_id(&self) -> PeerId {
        self.public_key().to_peer_id()
    }

    /// Signs `msg` as libp2p does: ECDSA over SHA-256(msg), DER-encoded, low-S.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.keypair.secret().sign(msg)
    }

    /// The devp2p node id: the 64-byte uncompressed public key.
    pub fn node_id(&self) -> NodeId {
        NodeId::from_libp2p(self.keypair.public())
    }
}

/// A devp2p node id: a secp256k1 public key as 64 bytes (uncompressed, without the
/// `0x04` prefix), as in `enode://` URLs and the RLPx Hello.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub [u8; 64]);

impl NodeId {
    fn from_libp2p(key: &libp2p_identity::secp256k1::PublicKey) -> Self {
        let full = key.to_bytes_uncompressed();
        let mut id = [0u8; 64];
        id.copy_from_slice(&full[1..]);
        Self(id)
    }

    /// Checks that the bytes are a point on the curve and returns the libp2p key.
    pub fn to_public_key(&self) -> Result<PublicKey, Error> {
        let mut full = [0u8; 65];
        full[0] = 0x04;
        full[1..].copy_from_slice(&self.0);
        let key = libp2p_identity::secp256k1::PublicKey::try_from_bytes(&full)
            .map_err(|e| Error::InvalidNodeId(e.to_string()))?;
        Ok(PublicKey::from(key))
    }

    /// The libp2p PeerId of the same key: both stacks name a peer the same way.
    pub fn to_peer_id(&self) -> Result<PeerId, Error> {
        Ok(self.to_public_key()?.to_peer_id())
    }

    /// The node id of a libp2p public key, if it is a secp256k1 key.
    pub fn from_public_key(key: &PublicKey) -> Result<Self, Error> {
        let key = key
            .clone()
            .try_into_secp256k1()
            .map_err(|_| Error::InvalidNodeId("not a secp256k1 key".into()))?;
        Ok(Self::from_libp2p(&key))
    }

    /// `keccak256` of the 64 bytes: the discv5 node id, whose XOR distance orders
    /// the routing table.
    pub fn discv5_id(&self) -> [u8; 32] {
        Keccak256::digest(self.0).into()
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({}…)", &hex::encode(&self.0[..8]))
    }
}

impl FromStr for NodeId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let mut id = [0u8; 64];
        hex::decode_to_slice(s.strip_prefix("0x").unwrap_or(s), &mut id)
            .map_err(|e| Error::InvalidNodeId(format!("expected 128 hex digits: {e}")))?;
        let id = NodeId(id);
        id.to_public_key()?;
        Ok(id)
    }
}

/// An `enode://<node id hex>@<ip>:<tcp port>[?discport=<udp port>]` URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Enode {
    /// The node's id.
    pub id: NodeId,
    /// The RLPx TCP address.
    pub addr: SocketAddr,
    /// The discovery UDP port, where it differs from the TCP port.
    pub discport: Option<u16>,
}

impl Enode {
    /// An enode URL for `id` at `addr`.
    pub fn new(id: NodeId, addr: SocketAddr) -> Self {
        Self {
            id,
            addr,
            discport: None,
        }
    }
}

impl fmt::Display for Enode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "enode://{}@{}", self.id, self.addr)?;
        if let Some(port) = self.discport.filter(|p| *p != self.addr.port()) {
            write!(f, "?discport={port}")?;
        }
        Ok(())
    }
}

impl FromStr for Enode {
    type Err = Error;
    fn from_str(url: &str) -> Result<Self, Error> {
        let bad = |problem: &str| Error::InvalidEnode {
            url: url.to_string(),
            problem: problem.to_string(),
        };
        let rest = url
            .trim()
            .strip_prefix("enode://")
            .ok_or_else(|| bad("must start with enode://"))?;
        let (id, host) = rest
            .split_once('@')
            .ok_or_else(|| bad("missing '@' between node id and address"))?;
        let id: NodeId = id.parse().map_err(|e: Error| bad(&e.to_string()))?;
        let (host, query) = match host.split_once('?') {
            Some((h, q)) => (h, Some(q)),
            None => (host, None),
        };
        let addr: SocketAddr = host
            .parse()
            .map_err(|_| bad("address must be IP:PORT (IPv6 in brackets)"))?;
        let mut discport = None;
        if let Some(query) = query {
            for pair in query.split('&') {
                if let Some(port) = pair.strip_prefix("discport=") {
                    discport = Some(port.parse().map_err(|_| bad("discport is not a port"))?);
                }
            }
        }
        Ok(Self { id, addr, discport })
    }
}

/// `/ip4/<ip>/tcp/<port>/p2p/<peer id>` (or `/ip6/…`).
pub fn peer_multiaddr(addr: SocketAddr, peer: &PeerId) -> Multiaddr {
    socket_multiaddr(addr).with(Protocol::P2p(*peer))
}

/// `/ip4/<ip>/tcp/<port>` (or `/ip6/…`).
pub fn socket_multiaddr(addr: SocketAddr) -> Multiaddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) => Protocol::Ip4(ip),
        IpAddr::V6(ip) => Protocol::Ip6(ip),
    };
    Multiaddr::empty().with(ip).with(Protocol::Tcp(addr.port()))
}

/// Splits `/ip4|ip6/<ip>/tcp/<port>[/p2p/<peer id>]` into a socket address and the
/// optional PeerId that a dial must then verify.
pub fn parse_peer_multiaddr(addr: &Multiaddr) -> Result<(SocketAddr, Option<PeerId>), Error> {
    let bad = |problem: &str| Error::InvalidMultiaddr {
        addr: addr.to_string(),
        problem: problem.to_string(),
    };
    let mut iter = addr.iter();
    let ip: IpAddr = match iter.next() {
        Some(Protocol::Ip4(ip)) => ip.into(),
        Some(Protocol::Ip6(ip)) => ip.into(),
        _ => return Err(bad("must start with /ip4/ or /ip6/")),
    };
    let port = match iter.next() {
        Some(Protocol::Tcp(port)) => port,
        _ => return Err(bad("expected /tcp/<port> after the IP")),
    };
    let peer = match iter.next() {
        None => None,
        Some(Protocol::P2p(peer)) => Some(peer),
        Some(_) => return Err(bad("only /p2p/<peer id> may follow /tcp/<port>")),
    };
    if iter.next().is_some() {
        return Err(bad("unexpected components after /p2p/<peer id>"));
    }
    Ok((SocketAddr::new(ip, port), peer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Known answer from WIRE.md §6: key 0x01×32.
    #[test]
    fn known_answer_peer_id_and_discv5_id() {
        let key = NodeKey::from_secret_bytes(&[1u8; 32]).unwrap();
        assert_eq!(
            key.peer_id().to_string(),
            "16Uiu2HAmEWQnHq2jLKJypwVnVoQeFCULuyop6atvq2eWjYSUjzNi"
        );
        assert_eq!(
            hex::encode(key.node_id().discv5_id()),
            "b8a0722ae6cb48cde0b4ae1f1a642f0e3c3af545e7acbd38b07251b3990914f1"
        );
        // protobuf PublicKey{Type=Secp256k1(2), Data=33 bytes}: 08 02 12 21 <33 bytes>
        let pb = key.public_key_protobuf();
        assert_eq!(&pb[..4], &[0x08, 0x02, 0x12, 0x21]);
        assert_eq!(pb.len(), 37);
    }

    #[test]
    fn signature_verifies_with_libp2p() {
        let key = NodeKey::generate();
        let sig = key.sign(b"noise-libp2p-static-key:abc");
        assert!(key
            .public_key()
            .verify(b"noise-libp2p-static-key:abc", &sig));
        assert!(!key
            .public_key()
            .verify(b"noise-libp2p-static-key:abd", &sig));
        // DER: starts with SEQUENCE.
        assert_eq!(sig[0], 0x30);
    }

    #[test]
    fn node_id_round_trips_to_peer_id() {
        let key = NodeKey::generate();
        assert_eq!(key.node_id().to_peer_id().unwrap(), key.peer_id());
        let pk = key.public_key();
        assert_eq!(NodeId::from_public_key(&pk).unwrap(), key.node_id());
    }

    #[test]
    fn key_file_save_load_mode_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nodekey");
        let key = NodeKey::load_or_generate(&path).unwrap();
        let again = NodeKey::load_or_generate(&path).unwrap();
        assert_eq!(key.peer_id(), again.peer_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Never overwrite an existing key.
        assert!(matches!(key.save(&path), Err(Error::KeyFileIo { .. })));

        let bad = dir.path().join("bad");
        fs::write(&bad, "zz").unwrap();
        let err = NodeKey::load(&bad).unwrap_err();
        assert!(matches!(err, Error::MalformedKeyFile { .. }), "{err}");
        fs::write(&bad, "00".repeat(32)).unwrap();
        assert!(matches!(
            NodeKey::load(&bad),
            Err(Error::MalformedKeyFile { .. })
        ));
        fs::write(&bad, format!("0x{}\n", "01".repeat(32))).unwrap();
        assert_eq!(
            NodeKey::load(&bad).unwrap().peer_id().to_string(),
            "16Uiu2HAmEWQnHq2jLKJypwVnVoQeFCULuyop6atvq2eWjYSUjzNi"
        );
    }

    #[test]
    fn enode_parse_and_display() {
        let key = NodeKey::from_secret_bytes(&[1u8; 32]).unwrap();
        let url = format!("enode://{}@127.0.0.1:30303?discport=30301", key.node_id());
        let enode: Enode = url.parse().unwrap();
        assert_eq!(enode.addr, "127.0.0.1:30303".parse().unwrap());
        assert_eq!(enode.discport, Some(30301));
        assert_eq!(enode.to_string(), url);
        let v6: Enode = format!("enode://{}@[::1]:1", key.node_id())
            .parse()
            .unwrap();
        assert!(v6.addr.is_ipv6());
        for bad in [
            "enode://xyz@127.0.0.1:1",
            "http://a@b",
            &format!("enode://{}", key.node_id()),
            &format!("enode://{}@127.0.0.1", key.node_id()),
            &format!("enode://{}@127.0.0.1:1", "00".repeat(64)),
        ] {
            assert!(bad.parse::<Enode>().is_err(), "{bad}");
        }
    }

    #[test]
    fn multiaddr_round_trip() {
        let key = NodeKey::generate();
        let addr: SocketAddr = "127.0.0.1:4001".parse().unwrap();
        let ma = peer_multiaddr(addr, &key.peer_id());
        assert!(ma
            .to_string()
            .starts_with("/ip4/127.0.0.1/tcp/4001/p2p/16Uiu2HA"));
        assert_eq!(
            parse_peer_multiaddr(&ma).unwrap(),
            (addr, Some(key.peer_id()))
        );
        let plain: Multiaddr = "/ip6/::1/tcp/5".parse().unwrap();
        assert_eq!(
            parse_peer_multiaddr(&plain).unwrap(),
            ("[::1]:5".parse().unwrap(), None)
        );
        let udp: Multiaddr = "/ip4/127.0.0.1/udp/5".parse().unwrap();
        assert!(parse_peer_multiaddr(&udp).is_err());
    }

    proptest! {
        #[test]
        fn enode_parser_never_panics(s in ".{0,200}") {
            let _ = s.parse::<Enode>();
            let _ = NodeKey::from_hex(&s);
        }

        #[test]
        fn any_valid_secret_round_trips(secret in proptest::array::uniform32(1u8..)) {
            if let Ok(key) = NodeKey::from_secret_bytes(&secret) {
                let hex = hex::encode(key.secret_bytes());
                let back = NodeKey::from_hex(&hex).unwrap();
                prop_assert_eq!(back.peer_id(), key.peer_id());
                let enode = Enode::new(key.node_id(), "127.0.0.1:1".parse().unwrap());
                prop_assert_eq!(enode.to_string().parse::<Enode>().unwrap(), enode);
            }
        }
    }
}
