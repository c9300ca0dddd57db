//! `devmux identity` and `devmux keygen`: a node's names, without starting it.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{bail, Context};
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
    // The Ethereum address of the same secret: what `--dev-signers` names when the file
    // is a producer's `--signer-key`.
    let signer = devmux_chain::signing::SecretKey::from_bytes(&key.secret_bytes().into())
        .context("deriving the key's address")?;
    println!("address: {}", signer.address());
    Ok(())
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
    let enr = devmux_node::enr_for(config, &key).context("building the ENR")?;
    println!("enode: {enode}");
    println!("enr: {enr}");
    println!("peer-id: {}", key.peer_id());
    println!("multiaddr: {}", peer_multiaddr(listen, &key.peer_id()));
    println!("node-id: {}", key.node_id());
    println!("key-file: {}", path.display());
    Ok(())
}
