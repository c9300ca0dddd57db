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

/// The head of the datadir's chain store and where it came from: the store's head if
/// it exists and can be opened (not while the node runs), else genesis.
fn stored_head(config: &NodeConfig, spec: &devmux_chain::ChainSpec) -> (devmux_eth::Head, String) {
    let genesis = devmux_eth::Head {
        number: 0,
        timestamp: spec.genesis.timestamp,
    };
    let path = config.datadir.join("chain.redb");
    if !path.is_file() {
        return (genesis, "at genesis: no chain store yet".into());
    }
    match devmux_chain::Chain::open(&path, spec.clone()) {
        Ok(chain) => {
            let head = chain.head();
            (
                devmux_eth::Head {
                    number: head.number,
                    timestamp: head.timestamp,
                },
                format!("at head {}", head.number),
            )
        }
        Err(e) => (
            genesis,
            format!("at genesis: chain store not readable: {e}"),
        ),
    }
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
    // An enode URL names a discv4 endpoint: its discport is discv4's when discv4 runs.
    enode.discport = if config.runs_discovery(devmux_node::DiscoveryProtocol::V4) {
        Some(config.discv4_addr().port())
    } else {
        config.discovery_port
    };
    // Identity names a key; a chain is only needed for the ENR's fork id, so without
    // one it shows the devnet's, and says so.
    let mut config = config.clone();
    let chosen = config.chain_name().is_ok();
    if !chosen {
        config.dev = true;
    }
    let spec = config.chain_spec().context("selecting the chain")?;
    let (head, at) = stored_head(&config, &spec);
    let enr = devmux_node::enr_for(&config, &key, head).context("building the ENR")?;
    let fork_id = spec.fork_id(head);
    println!(
        "network: {}{}",
        spec.name,
        if chosen {
            ""
        } else {
            " (none given: pass --network or --genesis)"
        }
    );
    println!(
        "fork-id: 0x{} next {} ({at})",
        hex::encode(fork_id.hash.0),
        fork_id.next
    );
    println!("enode: {enode}");
    println!("enr: {enr}");
    println!("peer-id: {}", key.peer_id());
    println!("multiaddr: {}", peer_multiaddr(listen, &key.peer_id()));
    println!("node-id: {}", key.node_id());
    println!("key-file: {}", path.display());
    Ok(())
}
