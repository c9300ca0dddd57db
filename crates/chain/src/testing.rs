//! Proof-of-stake chains for this crate's tests: a schedule merged at genesis with
//! Shanghai, Cancun and Prague at 0, and empty blocks that follow every header rule.

use alloy_consensus::{EMPTY_OMMER_ROOT_HASH, EMPTY_ROOT_HASH};
use alloy_eips::eip1559::BaseFeeParams;
use alloy_eips::eip7840::BlobParams;
use alloy_primitives::{Address, B256};
use devmux_eth::{BlockBody, Header};

use crate::forks::{Activation, ForkSchedule, Hardfork};
use crate::{BlockWithReceipts, ChainSpec, Consensus};

/// Merged at genesis; Shanghai, Cancun and Prague at 0; Osaka at `osaka`.
pub(crate) fn pos_forks(osaka: u64) -> ForkSchedule {
    let mut forks = ForkSchedule::merged_at_genesis();
    for fork in [Hardfork::Shanghai, Hardfork::Cancun, Hardfork::Prague] {
        forks.set(fork, Activation::Time(0));
    }
    forks.set(Hardfork::Osaka, Activation::Time(osaka));
    forks.set_blob_params(Hardfork::Cancun, BlobParams::cancun());
    forks.set_blob_params(Hardfork::Prague, BlobParams::prague());
    forks.set_blob_params(Hardfork::Osaka, BlobParams::osaka());
    forks
}

/// A proof-of-stake chain (Osaka not scheduled) whose genesis is at `timestamp`.
pub(crate) fn pos_spec(timestamp: u64) -> ChainSpec {
    let genesis = Header {
        timestamp,
        gas_limit: 30_000_000,
        base_fee_per_gas: Some(1_000_000_000),
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        state_root: EMPTY_ROOT_HASH,
        transactions_root: EMPTY_ROOT_HASH,
        receipts_root: EMPTY_ROOT_HASH,
        withdrawals_root: Some(EMPTY_ROOT_HASH),
        blob_gas_used: Some(0),
        excess_blob_gas: Some(0),
        parent_beacon_block_root: Some(B256::ZERO),
        requests_hash: Some(B256::ZERO),
        ..Header::default()
    };
    ChainSpec {
        name: "pos-test".into(),
        chain_id: 7_000,
        network_id: 7_000,
        genesis,
        forks: pos_forks(u64::MAX),
        consensus: Consensus::ProofOfStake,
        bootnodes: Vec::new(),
        dns_lists: Vec::new(),
    }
}

/// An empty block on `parent` 12 s later, told apart from its siblings by `tag` (its
/// beneficiary).
pub(crate) fn pos_block(parent: &Header, tag: u8) -> BlockWithReceipts {
    let header = Header {
        parent_hash: parent.hash_slow(),
        number: parent.number + 1,
        timestamp: parent.timestamp + 12,
        beneficiary: Address::with_last_byte(tag),
        gas_used: 0,
        base_fee_per_gas: parent.next_block_base_fee(BaseFeeParams::ethereum()),
        excess_blob_gas: Some(0),
        blob_gas_used: Some(0),
        ..parent.clone()
    };
    BlockWithReceipts {
        header,
        body: BlockBody {
            transactions: Vec::new(),
            ommers: Vec::new(),
            withdrawals: Some(Default::default()),
        },
        receipts: Vec::new(),
    }
}

/// `len` empty blocks on `parent`.
pub(crate) fn pos_chain(parent: &Header, len: usize, tag: u8) -> Vec<BlockWithReceipts> {
    let mut out: Vec<BlockWithReceipts> = Vec::new();
    for _ in 0..len {
        let block = pos_block(out.last().map_or(parent, |b| &b.header), tag);
        out.push(block);
    }
    out
}
