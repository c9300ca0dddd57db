//! Prints the devnet genesis hash, fork id and dev key addresses (WIRE.md §7).
//!
//! `cargo run -p devmux-chain --example devnet-genesis`

fn main() -> Result<(), devmux_chain::Error> {
    let spec = devmux_chain::ChainSpec::devnet();
    let fork_id = spec.fork_filter(devmux_eth::Head::default()).current();
    println!("genesis hash: {}", spec.genesis_hash());
    println!(
        "fork id:      [{:#010x}, {}]",
        u32::from_be_bytes(fork_id.hash.0),
        fork_id.next
    );
    println!("chain id:     {}", spec.chain_id);
    for i in 0..devmux_chain::devnet::DEV_KEYS {
        println!(
            "dev key {i:>2}:   {}",
            devmux_chain::devnet::dev_key(i)?.address()
        );
    }
    Ok(())
}
