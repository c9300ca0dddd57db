//! The devnet chain of WIRE.md §7: every devmux node started with `--dev` derives the
//! same genesis and the same blocks 1…N from the rules below, so test networks agree on
//! a chain without exchanging files.
//!
//! - Chain id = network id = 1337. Every fork through London active at block 0, no merge.
//! - Genesis: see [`genesis_header`].
//! - Dev keys: secret `i` = keccak256(`"devmux-dev-key-"` ‖ decimal `i`), `i` = 0…15.
//! - Block `n` ≥ 1 ([`Devnet::block`]): parent `n-1`, difficulty 1, timestamp genesis +
//!   2n, beneficiary the address of dev key 0, gas limit 30 000 000, base fee 1 gwei,
//!   the parent's state root (nothing is executed), and `n mod 4` EIP-1559 transfers of
//!   1 wei from dev key `n mod 16` to dev key `(n+1) mod 16`, max fee 2 gwei, tip 1 gwei,
//!   gas 21 000. Receipts: status 1, cumulative gas 21 000·k, no logs.
//!
//! Choices §7 leaves implicit, fixed here (and to be written into WIRE.md):
//! - Nonces are consecutive per sender across the whole chain: dev key `n mod 16` has
//!   sent `(n mod 4)` transactions in each earlier block with the same residue, so block
//!   `n` starts at nonce `((n-1) / 16) · (n mod 4)`. (Restarting at 0 in every block
//!   would make blocks `n` and `n+16` carry identical transactions.)
//! - Header fields §7 does not name take their zero value: zero mix hash and nonce, no
//!   ommers. The extra data of every block after genesis is its seal (§7.1,
//!   [`crate::seal`]); blocks 1…N are sealed by dev key 0.
//! - Signatures are RFC 6979 deterministic, low-`s` (see [`crate::signing`]).
//! - A produced block ([`seal_block`]) charges 21 000 gas per transaction, whatever
//!   its gas limit, since nothing is executed; at most [`MAX_TXS_PER_BLOCK`] fit.

use alloy_consensus::{SignableTransaction, TxEip1559, EMPTY_OMMER_ROOT_HASH, EMPTY_ROOT_HASH};
use alloy_primitives::{keccak256, Address, Bloom, Bytes, TxKind, B256, B64, U256};
use devmux_eth::{BlockBody, Header, Receipt, TransactionSigned};

use crate::signing::SecretKey;
use crate::{BlockWithReceipts, Error};

/// Chain id (EIP-155) of the devnet.
pub const CHAIN_ID: u64 = 1337;
/// eth network id of the devnet.
pub const NETWORK_ID: u64 = 1337;
/// Genesis timestamp.
pub const GENESIS_TIMESTAMP: u64 = 1_700_000_000;
/// Seconds between blocks: block `n` has timestamp genesis + 2n.
pub const BLOCK_TIME: u64 = 2;
/// Gas limit of every block.
pub const GAS_LIMIT: u64 = 30_000_000;
/// Base fee of every block: 1 gwei, constant.
pub const BASE_FEE: u64 = 1_000_000_000;
/// Genesis extra data.
pub const GENESIS_EXTRA_DATA: &[u8] = b"devmux devnet";
/// Number of dev keys.
pub const DEV_KEYS: usize = 16;
/// Gas of a transfer, and what every devnet transaction is charged.
pub const TRANSFER_GAS: u64 = 21_000;
/// Max fee per gas of devnet transfers: 2 gwei.
pub const TRANSFER_MAX_FEE: u128 = 2_000_000_000;
/// Priority fee (tip) of devnet transfers: 1 gwei.
pub const TRANSFER_TIP: u128 = 1_000_000_000;
/// Most transactions in one block: the gas limit over 21 000.
pub const MAX_TXS_PER_BLOCK: usize = (GAS_LIMIT / TRANSFER_GAS) as usize;

/// A signed EIP-1559 transfer of `value` wei from `key` with this nonce on chain
/// `chain_id`, at the devnet's fees and gas (tests use it on other chains too).
pub fn transfer_on(
    chain_id: u64,
    key: &SecretKey,
    nonce: u64,
    to: Address,
    value: U256,
) -> TransactionSigned {
    let tx = TxEip1559 {
        chain_id,
        nonce,
        gas_limit: TRANSFER_GAS,
        max_fee_per_gas: TRANSFER_MAX_FEE,
        max_priority_fee_per_gas: TRANSFER_TIP,
        to: TxKind::Call(to),
        value,
        access_list: Default::default(),
        input: Bytes::new(),
    };
    let signature = key.sign_hash(&tx.signature_hash());
    tx.into_signed(signature).into()
}

/// Secret of dev key `i`: keccak256(`"devmux-dev-key-"` ‖ decimal `i`).
pub fn dev_secret(i: usize) -> B256 {
    keccak256(format!("devmux-dev-key-{i}"))
}

/// Dev key `i`.
pub fn dev_key(i: usize) -> Result<SecretKey, Error> {
    SecretKey::from_bytes(&dev_secret(i))
}

/// The address of dev key 0: the devnet's default signer (WIRE.md §7.1) and the
/// beneficiary of its blocks. Public like every dev key, so it suits local development
/// only: a network strangers can reach configures signers whose keys are secret.
pub fn dev_signer() -> Address {
    static ADDRESS: std::sync::OnceLock<Address> = std::sync::OnceLock::new();
    *ADDRESS.get_or_init(|| dev_key(0).expect("dev key 0 is a valid scalar").address())
}

/// The devnet genesis header (WIRE.md §7).
pub fn genesis_header() -> Header {
    Header {
        parent_hash: B256::ZERO,
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        beneficiary: Address::ZERO,
        state_root: EMPTY_ROOT_HASH,
        transactions_root: EMPTY_ROOT_HASH,
        receipts_root: EMPTY_ROOT_HASH,
        logs_bloom: Bloom::ZERO,
        difficulty: U256::from(1),
        number: 0,
        gas_limit: GAS_LIMIT,
        gas_used: 0,
        timestamp: GENESIS_TIMESTAMP,
        extra_data: Bytes::from_static(GENESIS_EXTRA_DATA),
        mix_hash: B256::ZERO,
        nonce: B64::ZERO,
        base_fee_per_gas: Some(BASE_FEE),
        ..Default::default()
    }
}

/// Header fields of a block to seal that the chain's rules do not derive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockTemplate {
    /// Fee recipient.
    pub beneficiary: Address,
    /// Difficulty (1 on the devnet; a test may raise it to make a heavier fork).
    pub difficulty: U256,
    /// Timestamp.
    pub timestamp: u64,
}

impl BlockTemplate {
    /// The devnet template for block `number`.
    pub fn devnet(number: u64, beneficiary: Address) -> Self {
        Self {
            beneficiary,
            difficulty: U256::from(1),
            timestamp: GENESIS_TIMESTAMP + BLOCK_TIME * number,
        }
    }
}

/// Receipts of devnet transactions: nothing is executed, every transaction succeeds and
/// is charged [`TRANSFER_GAS`].
pub fn receipts_for(transactions: &[TransactionSigned]) -> Vec<Receipt> {
    transactions
        .iter()
        .zip(1u64..)
        .map(|(tx, k)| Receipt {
            tx_type: tx.tx_type(),
            success: true,
            cumulative_gas_used: TRANSFER_GAS * k,
            logs: Vec::new(),
        })
        .collect()
}

/// Builds the block after `parent` with these transactions by the devnet rules (roots,
/// gas used and bloom computed, state root carried over, base fee and gas limit
/// constant) and seals it with `signer` ([`crate::seal::seal`]). The caller keeps
/// `transactions` within [`MAX_TXS_PER_BLOCK`].
pub fn seal_block(
    parent: &Header,
    template: BlockTemplate,
    transactions: Vec<TransactionSigned>,
    signer: &SecretKey,
) -> BlockWithReceipts {
    let receipts = receipts_for(&transactions);
    let gas_used = receipts.last().map_or(0, |r| r.cumulative_gas_used);
    let mut header = Header {
        parent_hash: parent.hash_slow(),
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        beneficiary: template.beneficiary,
        state_root: parent.state_root,
        transactions_root: alloy_consensus::proofs::calculate_transaction_root(&transactions),
        receipts_root: devmux_eth::receipts_root(&receipts),
        logs_bloom: devmux_eth::logs_bloom(&receipts),
        difficulty: template.difficulty,
        number: parent.number + 1,
        gas_limit: GAS_LIMIT,
        gas_used,
        timestamp: template.timestamp,
        extra_data: Bytes::new(),
        mix_hash: B256::ZERO,
        nonce: B64::ZERO,
        base_fee_per_gas: Some(BASE_FEE),
        ..Default::default()
    };
    crate::seal::seal(&mut header, signer);
    let body = BlockBody {
        transactions,
        ommers: Vec::new(),
        withdrawals: None,
    };
    BlockWithReceipts {
        header,
        body,
        receipts,
    }
}

/// The devnet: its dev keys and the rules that derive its blocks.
#[derive(Clone, Debug)]
pub struct Devnet {
    keys: Vec<SecretKey>,
    genesis: Header,
}

impl Devnet {
    /// Derives the dev keys and genesis.
    pub fn new() -> Result<Self, Error> {
        let keys = (0..DEV_KEYS).map(dev_key).collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            keys,
            genesis: genesis_header(),
        })
    }

    /// The genesis header.
    pub const fn genesis(&self) -> &Header {
        &self.genesis
    }

    /// The 16 dev keys.
    pub fn keys(&self) -> &[SecretKey] {
        &self.keys
    }

    /// The beneficiary of every devnet block: dev key 0.
    pub fn beneficiary(&self) -> Address {
        self.keys[0].address()
    }

    /// A signed EIP-1559 transfer of `value` wei from dev key `from` (mod 16) with this
    /// nonce, at the devnet fees and gas.
    pub fn transfer(&self, from: usize, nonce: u64, to: Address, value: U256) -> TransactionSigned {
        transfer_on(CHAIN_ID, &self.keys[from % DEV_KEYS], nonce, to, value)
    }

    /// The transactions of devnet block `n` (none for `n = 0`).
    pub fn transactions(&self, n: u64) -> Vec<TransactionSigned> {
        if n == 0 {
            return Vec::new();
        }
        let count = n % 4;
        let keys = DEV_KEYS as u64;
        let from = (n % keys) as usize;
        let to = self.keys[((n + 1) % keys) as usize].address();
        let first_nonce = (n - 1) / keys * count;
        (0..count)
            .map(|i| self.transfer(from, first_nonce + i, to, U256::from(1)))
            .collect()
    }

    /// Devnet block `parent.number + 1` on top of `parent`, sealed by dev key 0.
    pub fn block(&self, parent: &Header) -> BlockWithReceipts {
        let n = parent.number + 1;
        seal_block(
            parent,
            BlockTemplate::devnet(n, self.beneficiary()),
            self.transactions(n),
            &self.keys[0],
        )
    }

    /// Devnet blocks `1..=count`, built one after the other.
    pub fn blocks(&self, count: u64) -> impl Iterator<Item = BlockWithReceipts> + '_ {
        let mut parent = self.genesis.clone();
        (0..count).map(move |_| {
            let block = self.block(&parent);
            parent = block.header.clone();
            block
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::Transaction;
    use alloy_primitives::b256;

    /// The devnet genesis hash, pinned. Print it with
    /// `cargo run -p devmux-chain --example devnet-genesis`.
    pub(crate) const DEVNET_GENESIS_HASH: B256 =
        b256!("55579b3dfe4ec42307934aaeec7e0ca01eaa347f45188728610a561313de19ba");

    #[test]
    fn genesis_hash_is_pinned() {
        assert_eq!(genesis_header().hash_slow(), DEVNET_GENESIS_HASH);
    }

    /// Regression pins, computed by this code (not external vectors): any change to how
    /// devnet blocks are derived changes these, and would split nodes running different
    /// builds. Change them only together with WIRE.md §7. They changed once, when blocks
    /// gained their seal (§7.1): the extra data of every block after genesis became dev
    /// key 0's 65-byte signature, so every hash after genesis moved; the genesis did not.
    #[test]
    fn block_hashes_are_pinned() {
        let blocks: Vec<_> = Devnet::new().unwrap().blocks(16).collect();
        assert_eq!(
            blocks[0].hash(),
            b256!("dd2e05d12d6df48c6c88f87030f1d21ca759a0528c26a16d5fbe8187351a2e8b")
        );
        assert_eq!(
            blocks[2].hash(),
            b256!("04adbe765cd314443815300fd2a65b775ca30ab855aa87109639420c44f4e292")
        );
        assert_eq!(
            blocks[15].hash(),
            b256!("beff926c5831c15f1460842400dd842cb37fe84f2a30df990cc4769b3799dc63")
        );
    }

    #[test]
    fn dev_keys_are_valid_and_distinct() {
        let devnet = Devnet::new().unwrap();
        let mut addrs: Vec<Address> = devnet.keys().iter().map(|k| k.address()).collect();
        addrs.sort();
        addrs.dedup();
        assert_eq!(addrs.len(), DEV_KEYS);
        assert_eq!(dev_secret(0), keccak256(b"devmux-dev-key-0"));
        assert_eq!(dev_secret(15), keccak256(b"devmux-dev-key-15"));
    }

    #[test]
    fn blocks_follow_the_rules() {
        let devnet = Devnet::new().unwrap();
        let blocks: Vec<_> = devnet.blocks(40).collect();
        let mut parent = devnet.genesis().clone();
        let mut nonces = std::collections::HashMap::<Address, u64>::new();
        for (n, block) in (1u64..).zip(&blocks) {
            let h = &block.header;
            assert_eq!(h.number, n);
            assert_eq!(h.parent_hash, parent.hash_slow());
            assert_eq!(h.timestamp, GENESIS_TIMESTAMP + 2 * n);
            assert_eq!(h.difficulty, U256::from(1));
            assert_eq!(h.beneficiary, devnet.beneficiary());
            assert_eq!(h.state_root, EMPTY_ROOT_HASH);
            assert_eq!(h.base_fee_per_gas, Some(BASE_FEE));
            let txs = &block.body.transactions;
            assert_eq!(txs.len() as u64, n % 4);
            assert_eq!(h.gas_used, 21_000 * (n % 4));
            for tx in txs {
                let sender =
                    crate::signing::recover_signer(tx.signature(), &tx.signature_hash()).unwrap();
                assert_eq!(sender, devnet.keys()[(n % 16) as usize].address());
                let next = nonces.entry(sender).or_default();
                assert_eq!(
                    tx.nonce(),
                    *next,
                    "block {n}: nonces are consecutive per sender"
                );
                *next += 1;
                assert_eq!(
                    tx.to(),
                    Some(devnet.keys()[((n + 1) % 16) as usize].address())
                );
                assert_eq!(tx.value(), U256::from(1));
            }
            parent = h.clone();
        }
        // Deterministic: the same rules give the same chain.
        let again: Vec<_> = Devnet::new().unwrap().blocks(40).collect();
        assert_eq!(again, blocks);
    }
}
