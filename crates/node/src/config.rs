//! `NodeConfig`: everything a node is started with, from flags or a TOML file.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;

/// Default TCP port (WIRE.md §5).
pub const DEFAULT_PORT: u16 = 30303;

/// A node's configuration. TOML keys are the flag names (`dev-blocks = 1000`).
/// Unknown keys are an error, so a typo never silently falls back to a default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct NodeConfig {
    /// Data directory: holds the node key (`nodekey`) and the stores. Created on
    /// first start.
    pub datadir: PathBuf,
    /// Run the multiplexed stream stack instead of the RLPx server.
    pub use_p2p_server: bool,
    /// IP to listen on and to advertise.
    pub addr: IpAddr,
    /// TCP port (0 picks a free one).
    pub port: u16,
    /// Serve the devnet chain (WIRE.md §7).
    pub dev: bool,
    /// Build blocks 1…N of the devnet chain at start (if not there yet).
    pub dev_blocks: u64,
    /// Peers to dial and keep dialling: `enode://` URLs (RLPx) or multiaddrs
    /// (stream stack).
    pub static_peers: Vec<String>,
    /// Most peers at once.
    pub max_peers: usize,
    /// The eth network id; defaults to the chain's (1337 on the devnet).
    pub network_id: Option<u64>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            datadir: PathBuf::from("devmux-data"),
            use_p2p_server: false,
            addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: DEFAULT_PORT,
            dev: false,
            dev_blocks: 0,
            static_peers: Vec::new(),
            max_peers: 50,
            network_id: None,
        }
    }
}

impl NodeConfig {
    /// Parses a TOML document.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, Error> {
        toml::from_str(text).map_err(|e| Error::Config {
            origin: origin.to_string(),
            problem: e.message().to_string(),
        })
    }

    /// Reads and parses a TOML file.
    pub fn from_toml_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            origin: path.display().to_string(),
            problem: format!("cannot read it: {e}"),
        })?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// The configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// The TCP address to listen on.
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }

    /// Checks what can be checked before anything starts.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |problem: String| Error::Config {
            origin: "configuration".into(),
            problem,
        };
        if !self.dev {
            return Err(bad(
                "no chain selected: pass --dev (dev = true) for the devnet chain; it is the only chain devmux serves so far".into(),
            ));
        }
        if self.datadir.as_os_str().is_empty() {
            return Err(bad("datadir must not be empty".into()));
        }
        if self.max_peers == 0 {
            return Err(bad("max-peers must be at least 1".into()));
        }
        for peer in &self.static_peers {
            let is_enode = peer.starts_with("enode://");
            if is_enode == self.use_p2p_server {
                let wanted = if self.use_p2p_server {
                    "a multiaddr (/ip4/…/tcp/…/p2p/…) for the stream stack"
                } else {
                    "an enode:// URL for the RLPx server"
                };
                return Err(bad(format!("static peer {peer:?} must be {wanted}")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trip_and_kebab_keys() {
        let text = r#"
            datadir = "/tmp/x"
            use-p2p-server = true
            port = 30450
            dev = true
            dev-blocks = 10
            static-peers = ["/ip4/127.0.0.1/tcp/1/p2p/16Uiu2HAmEWQnHq2jLKJypwVnVoQeFCULuyop6atvq2eWjYSUjzNi"]
        "#;
        let config = NodeConfig::from_toml_str(text, "test").unwrap();
        assert!(config.use_p2p_server && config.dev);
        assert_eq!((config.port, config.dev_blocks), (30450, 10));
        assert_eq!(config.addr, IpAddr::V4(Ipv4Addr::LOCALHOST));
        config.validate().unwrap();
        let again = NodeConfig::from_toml_str(&config.to_toml(), "again").unwrap();
        assert_eq!(again, config);
    }

    #[test]
    fn typos_and_bad_values_are_clear_errors() {
        let err = NodeConfig::from_toml_str("dev-block = 3", "f.toml").unwrap_err();
        assert!(
            err.to_string().contains("f.toml") && err.to_string().contains("dev-block"),
            "{err}"
        );
        let err = NodeConfig::from_toml_str("port = 70000", "f.toml").unwrap_err();
        assert!(err.to_string().contains("f.toml"), "{err}");
        assert!(NodeConfig::from_toml_str("addr = \"nope\"", "f.toml").is_err());
        assert!(
            NodeConfig::default().validate().is_err(),
            "no chain selected"
        );
        let config = NodeConfig {
            dev: true,
            static_peers: vec!["/ip4/127.0.0.1/tcp/1".into()],
            ..NodeConfig::default()
        };
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("enode://"));
    }
}
