//! `devmux identity` and `devmux keygen`: a node's names, without starting it.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use devmux_chain::ChainSpec;
use devmux_discovery::enr::{CombinedKey, Enr};
use devmux_discovery::{ForkIdEntry, ETH_ENR_KEY, MUX_ENR_KEY};
use devmux_eth::Head;
use devmux_identity::{peer_multiaddr, Enode, NodeKey};
use devmux_node::NodeConfig;

/// Writes a new key to `out` (mode 0600) and prints its names.
pub(crate) fn keygen(out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        bail!(
            "{} already exists: keygen never overwrites a key; remove it or pick another --out",
            out.display()
        );
    }
    let key = NodeKey::generate();
    key.save(out)?;
    println!("wrote {}", out.display());
    println!("peer-id: {}", key.peer_id());
    println!("node-id: {}", key.node_id());
    Ok(())
}

/// The ENR a node with `config` advertises: the same entries discovery puts in it
/// (WIRE.md §4), with the current time as its sequence number.
fn enr(key: &NodeKey, config: &NodeConfig) -> anyhow::Result<Enr<CombinedKey>> {
    let signing = CombinedKey::secp256k1_from_bytes(&mut key.secret_bytes())
        .map_err(|e| anyhow::anyhow!("the node key cannot sign an ENR: {e}"))?;
    let seq = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(1)
        .max(1);
    let udp = config.discovery_port.unwrap_or(config.port);
    let fork = ChainSpec::devnet().fork_filter(Head::default()).current();
    let eth = ForkIdEntry::new(fork.hash.0, fork.next);
    let mut builder = Enr::builder();
    builder.seq(seq);
    match config.addr {
        IpAddr::V4(ip) => builder.ip4(ip).udp4(udp),
        IpAddr::V6(ip) => builder.ip6(ip).udp6(udp),
    };
    if config.use_p2p_server {
        builder.add_value(MUX_ENR_KEY, &config.port);
    } else {
        builder.tcp4(config.port);
    }
    builder.add_value_rlp(ETH_ENR_KEY, bytes::Bytes::from(eth.encode_enr_value()));
    builder
        .build(&signing)
        .map_err(|e| anyhow::anyhow!("building the ENR: {e}"))
}

/// Prints the names of the key `config` selects, with its address and ports.
pub(crate) fn print(config: &NodeConfig) -> anyhow::Result<()> {
    let path = config.nodekey_path();
    if !path.is_file() {
        bail!(
            "no node key at {}: start the node once with this datadir, or create one with `devmux keygen --out {}`",
            path.display(),
            path.display()
        );
    }
    let key = NodeKey::load(&path).context("reading the node key")?;
    let listen = SocketAddr::new(config.addr, config.port);
    let mut enode = Enode::new(key.node_id(), listen);
    enode.discport = config.discovery_port;
    let enr = enr(&key, config)?;
    println!("enode: {enode}");
    println!("enr: {}", enr.to_base64());
    println!("peer-id: {}", key.peer_id());
    println!("multiaddr: {}", peer_multiaddr(listen, &key.peer_id()));
    println!("node-id: {}", key.node_id());
    println!("key-file: {}", path.display());
    Ok(())
}
