//! The go-ethereum harness (`devmux_tests::geth`): geth on a private proof-of-stake
//! chain, driven through the Engine API. Skipped (one line) when geth is not installed.

use std::net::IpAddr;

use devmux_chain::devnet::{dev_key, transfer_on};
use devmux_eth::alloy_eips::eip2718::Encodable2718;
use devmux_eth::alloy_primitives::U256;
use devmux_tests::geth::{self, Geth, GethOptions, CHAIN_ID};

/// geth's genesis funds dev keys 0–3 with 1000 ether each (the addresses are written
/// into the file; this checks them against devmux's own key derivation).
#[test]
fn geth_genesis_funds_dev_keys_0_to_3() {
    let text = std::fs::read_to_string(geth::default_genesis()).unwrap();
    let genesis: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(genesis["config"]["chainId"], CHAIN_ID);
    for i in 0..=3 {
        let address = format!("{:?}", dev_key(i).unwrap().address());
        let balance = &genesis["alloc"][&address]["balance"];
        assert_eq!(balance, "0x3635c9adc5dea00000", "dev key {i} ({address})");
    }
}

#[tokio::test]
async fn geth_makes_blocks_when_driven_through_the_engine_api() {
    if geth::find_geth().is_none() {
        return geth::skip("geth");
    }
    let IpAddr::V4(ip) = devmux_tests::next_loopback() else {
        unreachable!("next_loopback gives IPv4")
    };
    let geth = Geth::start(GethOptions::new(ip)).await.unwrap();

    // geth computed the genesis hash the sidecar file records.
    let genesis = geth.block_by_number(0).await.unwrap().unwrap();
    assert_eq!(genesis.hash, geth::default_genesis_hash().unwrap());

    let mut blocks = Vec::new();
    for _ in 0..3 {
        blocks.push(geth.produce_block().await.unwrap());
    }
    assert_eq!(geth.block_number().await.unwrap(), 3);
    let block3 = geth.block_by_number(3).await.unwrap().unwrap();
    assert_eq!(block3.hash, blocks[2].hash);
    assert_eq!(block3.parent_hash, blocks[1].hash);
    assert_eq!(
        blocks.iter().map(|b| b.number).collect::<Vec<_>>(),
        [1, 2, 3]
    );

    // A transfer from dev key 0 lands in the next block.
    let to = dev_key(1).unwrap().address();
    let tx = transfer_on(CHAIN_ID, &dev_key(0).unwrap(), 0, to, U256::from(1));
    let hash = geth.send_raw_transaction(&tx.encoded_2718()).await.unwrap();
    assert_eq!(hash, *tx.tx_hash());
    assert!(geth.pool_has(hash).await.unwrap());

    let block4 = geth.produce_block().await.unwrap();
    let block4 = geth.block_by_number(block4.number).await.unwrap().unwrap();
    assert_eq!(block4.transactions, [hash], "{}", geth.log_tail(20));
    assert!(!geth.pool_has(hash).await.unwrap());
}
