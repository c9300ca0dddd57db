//! Block validation, without executing anything (devmux has no EVM), in two steps that
//! every path into the chain takes in this order (import of pushed blocks, sync, and the
//! store's own insert):
//!
//! 1. [`validate_header`]: the header alone against its parent and the chain's
//!    [`HeaderRules`] (WIRE.md §7.1). It is cheap, so it runs before a body is requested
//!    or decoded and before anything is stored: a header that fails costs us nothing
//!    more, and is never relayed.
//! 2. [`validate_body`]: the body and receipts against the roots the header commits to
//!    (the data-validity checks of `devp2p/caps/eth.md` that need no state), in two
//!    halves that sync runs as each part arrives: [`validate_transactions`] on the body,
//!    [`validate_receipts`] on its receipts.
//!
//! [`validate_block`] runs both.

use std::time::{SystemTime, UNIX_EPOCH};

use alloy_consensus::Transaction as _;
use alloy_consensus::{proofs, EMPTY_OMMER_ROOT_HASH};
use alloy_eips::eip1559::{
    BaseFeeParams, DEFAULT_ELASTICITY_MULTIPLIER, GAS_LIMIT_BOUND_DIVISOR, INITIAL_BASE_FEE,
};
use alloy_eips::eip4844::DATA_GAS_PER_BLOB;
use alloy_eips::eip7825::MAX_TX_GAS_LIMIT_OSAKA;
use alloy_primitives::B256;
use alloy_rlp::Encodable as _;
use devmux_eth::{BlockBody, Header, Receipt, TxType};

use crate::forks::{ForkSchedule, Hardfork};
use crate::{seal, BlockWithReceipts, ChainSpec, Consensus, Error, HeaderRules};

/// Seconds since the Unix epoch on our clock, for the future-timestamp rule.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Checks `header` (whose hash is `hash`) against its `parent` by the rules of `spec`'s
/// consensus, on the header alone: [`validate_sealed_header`] on a sealed chain (the
/// devnet), [`validate_pos_header`] on a proof-of-stake one.
pub fn validate_header(
    spec: &ChainSpec,
    header: &Header,
    hash: B256,
    parent: &Header,
    now: u64,
) -> Result<(), Error> {
    match &spec.consensus {
        Consensus::Sealed(rules) => validate_sealed_header(rules, header, hash, parent, now),
        Consensus::ProofOfStake => validate_pos_header(&spec.forks, header, hash, parent, now),
    }
}

/// The checks every chain makes first: number = parent + 1, timestamp after the parent's,
/// gas used within the gas limit.
fn validate_lineage(header: &Header, hash: B256, parent: &Header) -> Result<(), Error> {
    let number = header.number;
    let expected = parent.number.saturating_add(1);
    if number != expected {
        return Err(Error::WrongNumber {
            number,
            hash,
            expected,
        });
    }
    if header.timestamp <= parent.timestamp {
        return Err(Error::TimestampNotIncreasing {
            number,
            hash,
            timestamp: header.timestamp,
            parent: parent.timestamp,
        });
    }
    if header.gas_used > header.gas_limit {
        return Err(Error::BadGasUsed {
            number,
            hash,
            gas_used: header.gas_used,
            reason: "above the gas limit",
        });
    }
    Ok(())
}

/// Checks a sealed chain's `header` (whose hash is `hash`) against its `parent` and
/// `rules`, on the header alone: number = parent + 1; the rules' difficulty; timestamp
/// after the parent's and at most [`HeaderRules::max_future_secs`] after `now` (seconds
/// since the epoch); the rules' gas limit; gas used within it; the rules' base fee; no
/// ommers; and last, as the one check that costs a signature recovery, a well-formed
/// seal by one of the rules' signers ([`Error::BadSeal`] otherwise).
pub fn validate_sealed_header(
    rules: &HeaderRules,
    header: &Header,
    hash: B256,
    parent: &Header,
    now: u64,
) -> Result<(), Error> {
    let number = header.number;
    let broken = |rule: &'static str, detail: String| Error::InvalidHeader {
        number,
        hash,
        rule,
        detail,
    };
    validate_lineage(header, hash, parent)?;
    if header.difficulty != rules.difficulty {
        return Err(broken(
            "difficulty",
            format!("{} instead of {}", header.difficulty, rules.difficulty),
        ));
    }
    let latest = now.saturating_add(rules.max_future_secs);
    if header.timestamp > latest {
        return Err(broken(
            "timestamp",
            format!(
                "{} is more than {} s ahead of our clock ({now})",
                header.timestamp, rules.max_future_secs
            ),
        ));
    }
    if header.gas_limit != rules.gas_limit {
        return Err(broken(
            "gas limit",
            format!("{} instead of {}", header.gas_limit, rules.gas_limit),
        ));
    }
    if header.base_fee_per_gas != Some(rules.base_fee) {
        return Err(broken(
            "base fee",
            format!(
                "{:?} instead of {}",
                header.base_fee_per_gas, rules.base_fee
            ),
        ));
    }
    if header.ommers_hash != EMPTY_OMMER_ROOT_HASH {
        return Err(broken(
            "ommers hash",
            format!("{} instead of the empty list's", header.ommers_hash),
        ));
    }
    // Last, as the one rule that costs a signature recovery.
    let bad_seal = |detail: String| Error::BadSeal {
        number,
        hash,
        detail,
    };
    let sealer = seal::sealer(header).map_err(|fault| bad_seal(fault.to_string()))?;
    if !rules.is_signer(&sealer) {
        return Err(bad_seal(format!("sealed by {sealer}, not a signer")));
    }
    Ok(())
}

/// Checks a proof-of-stake `header` (whose hash is `hash`) against its `parent` and the
/// fork schedule, on the header alone, as go-ethereum's beacon consensus does
/// (`consensus/beacon`, `misc/eip1559`, `misc/eip4844`), plus a bound on the future:
///
/// - number = parent + 1; timestamp after the parent's and at most
///   [`crate::MAX_FUTURE_SECS`] after `now`; gas used within the gas limit;
/// - extra data at most 32 bytes; difficulty 0, nonce 0, no ommers (the merge);
/// - gas limit at least 5000, at most [`crate::MAX_POS_GAS_LIMIT`], and within 1/1024 of
///   the parent's (twice the parent's at the London block);
/// - the base fee the parent implies (EIP-1559; 1 gwei at the London block);
/// - each fork's fields present exactly when the fork is active: withdrawals root
///   (Shanghai), blob gas used, excess blob gas and parent beacon root (Cancun),
///   requests hash (Prague), block access list hash and slot number (Amsterdam);
/// - blob gas used a multiple of a blob's gas and within the fork's maximum, and the
///   excess blob gas the parent implies (EIP-4844, with EIP-7918's reserve price from
///   Osaka), by the blob parameters in force at the header's timestamp.
///
/// What cannot be checked without executing the block or asking the consensus layer is
/// left to them: the state root, the requests hash's contents, the parent beacon root's
/// value, the beneficiary and the randomness (mix hash).
pub fn validate_pos_header(
    forks: &ForkSchedule,
    header: &Header,
    hash: B256,
    parent: &Header,
    now: u64,
) -> Result<(), Error> {
    let number = header.number;
    let broken = |rule: &'static str, detail: String| Error::InvalidHeader {
        number,
        hash,
        rule,
        detail,
    };
    validate_lineage(header, hash, parent)?;
    let latest = now.saturating_add(crate::MAX_FUTURE_SECS);
    if header.timestamp > latest {
        return Err(broken(
            "timestamp",
            format!(
                "{} is more than {} s ahead of our clock ({now})",
                header.timestamp,
                crate::MAX_FUTURE_SECS
            ),
        ));
    }
    if header.extra_data.len() > MAX_EXTRA_DATA {
        return Err(broken(
            "extra data",
            format!(
                "{} bytes, at most {MAX_EXTRA_DATA}",
                header.extra_data.len()
            ),
        ));
    }
    if !header.difficulty.is_zero() {
        return Err(broken(
            "difficulty",
            format!(
                "{} after the merge, where it is 0 (proof-of-work history is not validated)",
                header.difficulty
            ),
        ));
    }
    if !header.nonce.is_zero() {
        return Err(broken("nonce", format!("{} instead of 0", header.nonce)));
    }
    if header.ommers_hash != EMPTY_OMMER_ROOT_HASH {
        return Err(broken(
            "ommers hash",
            format!("{} instead of the empty list's", header.ommers_hash),
        ));
    }
    let (time, at) = (header.timestamp, |fork| {
        forks.is_active(fork, number, header.timestamp)
    });
    let london_block =
        forks.activation(Hardfork::London) == Some(crate::forks::Activation::Block(number));
    let parent_limit = if london_block {
        parent
            .gas_limit
            .saturating_mul(DEFAULT_ELASTICITY_MULTIPLIER)
    } else {
        parent.gas_limit
    };
    let bound = parent_limit / GAS_LIMIT_BOUND_DIVISOR;
    if header.gas_limit.abs_diff(parent_limit) >= bound
        || header.gas_limit < MIN_GAS_LIMIT
        || header.gas_limit > crate::MAX_POS_GAS_LIMIT
    {
        return Err(broken(
            "gas limit",
            format!(
                "{} where the parent's {parent_limit} allows ±{} (and {MIN_GAS_LIMIT}..={})",
                header.gas_limit,
                bound.saturating_sub(1),
                crate::MAX_POS_GAS_LIMIT
            ),
        ));
    }
    if at(Hardfork::London) {
        let expected = if london_block || !forks.is_active(Hardfork::London, parent.number, 0) {
            Some(INITIAL_BASE_FEE)
        } else {
            parent.next_block_base_fee(BaseFeeParams::ethereum())
        };
        if header.base_fee_per_gas != expected || expected.is_none() {
            return Err(broken(
                "base fee",
                format!(
                    "{:?} where the parent implies {expected:?}",
                    header.base_fee_per_gas
                ),
            ));
        }
    } else if header.base_fee_per_gas.is_some() {
        return Err(broken("base fee", "present before London".into()));
    }
    let present = |rule: &'static str, is: bool, fork: Hardfork| {
        let active = at(fork);
        if is == active {
            Ok(())
        } else if active {
            Err(broken(rule, format!("missing, {} is active", fork.name())))
        } else {
            Err(broken(rule, format!("present before {}", fork.name())))
        }
    };
    present(
        "withdrawals root",
        header.withdrawals_root.is_some(),
        Hardfork::Shanghai,
    )?;
    present(
        "blob gas used",
        header.blob_gas_used.is_some(),
        Hardfork::Cancun,
    )?;
    present(
        "excess blob gas",
        header.excess_blob_gas.is_some(),
        Hardfork::Cancun,
    )?;
    present(
        "parent beacon block root",
        header.parent_beacon_block_root.is_some(),
        Hardfork::Cancun,
    )?;
    present(
        "requests hash",
        header.requests_hash.is_some(),
        Hardfork::Prague,
    )?;
    present(
        "block access list hash",
        header.block_access_list_hash.is_some(),
        Hardfork::Amsterdam,
    )?;
    present(
        "slot number",
        header.slot_number.is_some(),
        Hardfork::Amsterdam,
    )?;
    if let (Some(used), Some(excess)) = (header.blob_gas_used, header.excess_blob_gas) {
        let Some(params) = forks.blob_params_at(time) else {
            return Err(broken(
                "blob gas used",
                "the chain sets no blob parameters for this fork".into(),
            ));
        };
        if used % DATA_GAS_PER_BLOB != 0 || used > params.max_blob_gas_per_block() {
            return Err(broken(
                "blob gas used",
                format!(
                    "{used}: a multiple of {DATA_GAS_PER_BLOB} and at most {}",
                    params.max_blob_gas_per_block()
                ),
            ));
        }
        let parent_excess = parent.excess_blob_gas.unwrap_or(0);
        let parent_used = parent.blob_gas_used.unwrap_or(0);
        let expected = if at(Hardfork::Osaka) {
            params.next_block_excess_blob_gas_osaka(
                parent_excess,
                parent_used,
                parent.base_fee_per_gas.unwrap_or(0),
            )
        } else {
            (parent_excess + parent_used).saturating_sub(params.target_blob_gas_per_block())
        };
        if excess != expected {
            return Err(broken(
                "excess blob gas",
                format!("{excess} where the parent implies {expected}"),
            ));
        }
    }
    Ok(())
}

/// The most extra data a proof-of-stake header carries: 32 bytes.
pub const MAX_EXTRA_DATA: usize = 32;
/// The lowest gas limit a block may have.
pub const MIN_GAS_LIMIT: u64 = 5_000;

/// Checks `block` (whose hash is `hash`) against `parent` by `spec`'s rules: the header
/// first ([`validate_header`]), then the body ([`validate_body`]).
pub fn validate_block(
    spec: &ChainSpec,
    block: &BlockWithReceipts,
    hash: B256,
    parent: &Header,
    now: u64,
) -> Result<(), Error> {
    validate_header(spec, &block.header, hash, parent, now)?;
    validate_body(spec, block, hash)
}

/// Checks the body and receipts of `block` (whose hash is `hash`) against every root and
/// total its header commits to: [`validate_transactions`], then [`validate_receipts`].
pub fn validate_body(spec: &ChainSpec, block: &BlockWithReceipts, hash: B256) -> Result<(), Error> {
    validate_transactions(spec, &block.header, hash, &block.body)?;
    validate_receipts(
        spec,
        &block.header,
        hash,
        block.body.transactions.len(),
        &block.receipts,
    )
}

/// Checks `body` against the roots of `header` (whose hash is `hash`): ommers hash,
/// transactions root, withdrawals root, and on a proof-of-stake chain what each fork
/// allows ([`validate_fork_body`]). Sync runs it as soon as a body arrives, before the
/// block's receipts are requested.
pub fn validate_transactions(
    spec: &ChainSpec,
    header: &Header,
    hash: B256,
    body: &BlockBody,
) -> Result<(), Error> {
    if !spec.is_sealed() {
        validate_fork_body(&spec.forks, header, hash, body)?;
    }
    let ommers_hash = body.calculate_ommers_root();
    if header.ommers_hash != ommers_hash {
        return Err(mismatch(
            header,
            hash,
            "ommers_hash",
            header.ommers_hash.to_string(),
            ommers_hash.to_string(),
        ));
    }
    let tx_root = proofs::calculate_transaction_root(&body.transactions);
    if header.transactions_root != tx_root {
        return Err(mismatch(
            header,
            hash,
            "transactions_root",
            header.transactions_root.to_string(),
            tx_root.to_string(),
        ));
    }
    let withdrawals_root = body.calculate_withdrawals_root();
    if header.withdrawals_root != withdrawals_root {
        return Err(mismatch(
            header,
            hash,
            "withdrawals_root",
            format!("{:?}", header.withdrawals_root),
            format!("{withdrawals_root:?}"),
        ));
    }
    Ok(())
}

/// What a proof-of-stake body may hold at its header's fork: transaction types only
/// from the fork that brings them (EIP-2930 at Berlin, EIP-1559 at London, EIP-4844 at
/// Cancun, EIP-7702 at Prague); blob transactions within the fork's per-transaction
/// maximum and together exactly the header's blob gas used; from Osaka, no transaction
/// above EIP-7825's gas cap and no block above EIP-7934's RLP size.
pub fn validate_fork_body(
    forks: &ForkSchedule,
    header: &Header,
    hash: B256,
    body: &BlockBody,
) -> Result<(), Error> {
    let number = header.number;
    let at = |fork| forks.is_active(fork, number, header.timestamp);
    let broken = |rule: &'static str, detail: String| Error::InvalidBody {
        number,
        hash,
        rule,
        detail,
    };
    let osaka = at(Hardfork::Osaka);
    let blob_params = forks.blob_params_at(header.timestamp);
    let mut blobs: u64 = 0;
    for (i, tx) in body.transactions.iter().enumerate() {
        let fork = match tx.tx_type() {
            TxType::Legacy => Hardfork::Frontier,
            TxType::Eip2930 => Hardfork::Berlin,
            TxType::Eip1559 => Hardfork::London,
            TxType::Eip4844 => Hardfork::Cancun,
            TxType::Eip7702 => Hardfork::Prague,
        };
        if !at(fork) {
            return Err(broken(
                "transaction type",
                format!(
                    "transaction {i} is of type {} before {}",
                    tx.tx_type(),
                    fork.name()
                ),
            ));
        }
        if osaka && tx.gas_limit() > MAX_TX_GAS_LIMIT_OSAKA {
            return Err(broken(
                "transaction gas limit",
                format!(
                    "transaction {i} has {} gas, above EIP-7825's {MAX_TX_GAS_LIMIT_OSAKA}",
                    tx.gas_limit()
                ),
            ));
        }
        if let Some(hashes) = tx.blob_versioned_hashes() {
            let count = hashes.len() as u64;
            let per_tx = blob_params.map_or(0, |p| p.max_blobs_per_tx);
            if count == 0 || count > per_tx {
                return Err(broken(
                    "blobs per transaction",
                    format!("transaction {i} carries {count} blobs: 1..={per_tx}"),
                ));
            }
            blobs = blobs.saturating_add(count);
        }
    }
    if let Some(used) = header.blob_gas_used {
        let carried = blobs.saturating_mul(DATA_GAS_PER_BLOB);
        if carried != used {
            return Err(broken(
                "blob gas used",
                format!("the header says {used}, the body's blobs use {carried}"),
            ));
        }
    }
    if osaka {
        let size = header.length() + body.length();
        if size > MAX_RLP_BLOCK_SIZE {
            return Err(broken(
                "block size",
                format!("{size} bytes of RLP, above EIP-7934's {MAX_RLP_BLOCK_SIZE}"),
            ));
        }
    }
    Ok(())
}

/// EIP-7934's largest block, as RLP: 10 MiB less a 2 MiB margin for the consensus
/// layer's wrapping.
pub const MAX_RLP_BLOCK_SIZE: usize = 8 * 1024 * 1024;

/// Checks `receipts` against `header` (whose hash is `hash`, and whose body has
/// `transactions` transactions): one receipt per transaction, the receipts root, the
/// logs bloom, and before Amsterdam gas used equal to the last receipt's cumulative gas.
/// From Amsterdam a header's gas used is the larger of its execution and state gas
/// (EIP-8037, go-ethereum's `GasPool::Used`) before refunds, which receipts do not
/// record: that check then needs execution.
pub fn validate_receipts(
    spec: &ChainSpec,
    header: &Header,
    hash: B256,
    transactions: usize,
    receipts: &[Receipt],
) -> Result<(), Error> {
    let number = header.number;
    if receipts.len() != transactions {
        return Err(Error::ReceiptCount {
            number,
            hash,
            receipts: receipts.len(),
            transactions,
        });
    }
    let receipts_root = devmux_eth::receipts_root(receipts);
    if header.receipts_root != receipts_root {
        return Err(mismatch(
            header,
            hash,
            "receipts_root",
            header.receipts_root.to_string(),
            receipts_root.to_string(),
        ));
    }
    let cumulative = receipts.last().map_or(0, |r| r.cumulative_gas_used);
    let amsterdam = spec
        .forks
        .is_active(Hardfork::Amsterdam, number, header.timestamp);
    if !amsterdam && header.gas_used != cumulative {
        return Err(Error::BadGasUsed {
            number,
            hash,
            gas_used: header.gas_used,
            reason: "differs from the receipts' cumulative gas",
        });
    }
    let bloom = devmux_eth::logs_bloom(receipts);
    if header.logs_bloom != bloom {
        return Err(mismatch(
            header,
            hash,
            "logs_bloom",
            header.logs_bloom.to_string(),
            bloom.to_string(),
        ));
    }
    Ok(())
}

fn mismatch(
    header: &Header,
    hash: B256,
    field: &'static str,
    got: String,
    expected: String,
) -> Error {
    Error::RootMismatch {
        number: header.number,
        hash,
        field,
        got,
        expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devnet::{genesis_header, Devnet};
    use crate::testing::pos_forks;
    use alloy_primitives::U256;
    use devmux_eth::TransactionSigned;

    /// Each rule of WIRE.md §7.1 that a header alone can break, broken one at a time on
    /// an otherwise valid devnet block 1.
    #[test]
    fn every_header_rule_is_checked_on_the_header_alone() {
        let rules = HeaderRules::devnet();
        let genesis = genesis_header();
        let block = Devnet::new().unwrap().blocks(1).next().unwrap();
        let now = now_secs();
        let check = |h: &Header| validate_sealed_header(&rules, h, h.hash_slow(), &genesis, now);
        check(&block.header).unwrap();
        let signer = crate::devnet::dev_key(0).unwrap();
        // A changed header is sealed again by the signer, so that only the rule under
        // test is broken.
        let changed = |mutate: &dyn Fn(&mut Header)| {
            let mut h = block.header.clone();
            mutate(&mut h);
            seal::seal(&mut h, &signer);
            h
        };

        let rule_of = |mutate: &dyn Fn(&mut Header)| {
            let h = changed(mutate);
            match check(&h) {
                Err(Error::InvalidHeader { rule, .. }) => rule,
                other => panic!("expected a broken header rule, got {other:?}"),
            }
        };
        assert_eq!(
            rule_of(&|h| h.difficulty = U256::from(1_000_000)),
            "difficulty"
        );
        assert_eq!(rule_of(&|h| h.difficulty = U256::ZERO), "difficulty");
        assert_eq!(rule_of(&|h| h.timestamp = now + 16), "timestamp");
        assert_eq!(rule_of(&|h| h.gas_limit = 30_000_001), "gas limit");
        assert_eq!(rule_of(&|h| h.base_fee_per_gas = Some(7)), "base fee");
        assert_eq!(rule_of(&|h| h.base_fee_per_gas = None), "base fee");
        assert_eq!(
            rule_of(&|h| h.ommers_hash = B256::repeat_byte(1)),
            "ommers hash"
        );

        // 15 s ahead is still allowed.
        check(&changed(&|h| h.timestamp = now + 15)).unwrap();

        let h = changed(&|h| h.number = 2);
        assert!(matches!(check(&h), Err(Error::WrongNumber { .. })));
        let h = changed(&|h| h.timestamp = genesis.timestamp);
        assert!(matches!(
            check(&h),
            Err(Error::TimestampNotIncreasing { .. })
        ));
        let h = changed(&|h| h.gas_used = h.gas_limit + 1);
        assert!(matches!(check(&h), Err(Error::BadGasUsed { .. })));
    }

    /// A block is refused unless sealed by a signer: unsealed, sealed by a dev key that
    /// is not a signer, re-sealed with the high-`s` twin of an honest seal, or changed
    /// after sealing. And the signer set is the rules', not dev key 0 by fiat.
    #[test]
    fn only_a_signers_seal_is_accepted() {
        let mut rules = HeaderRules::devnet();
        let genesis = genesis_header();
        let block = Devnet::new().unwrap().blocks(1).next().unwrap();
        let now = now_secs();
        let seal_fault = |rules: &HeaderRules, h: &Header| match validate_sealed_header(
            rules,
            h,
            h.hash_slow(),
            &genesis,
            now,
        ) {
            Err(Error::BadSeal { detail, .. }) => detail,
            other => panic!("expected a bad seal, got {other:?}"),
        };

        let mut unsealed = block.header.clone();
        unsealed.extra_data = Default::default();
        assert!(seal_fault(&rules, &unsealed).contains("65-byte"));

        let stranger = crate::devnet::dev_key(1).unwrap();
        let mut by_stranger = block.header.clone();
        seal::seal(&mut by_stranger, &stranger);
        assert!(seal_fault(&rules, &by_stranger).contains("not a signer"));

        let high_s = seal::high_s_twin(&block.header);
        assert!(seal_fault(&rules, &high_s).contains("upper half"));

        let mut tampered = block.header.clone();
        tampered.beneficiary = stranger.address();
        assert!(seal_fault(&rules, &tampered).contains("not a signer"));

        // With dev key 1 as the only signer, dev key 0's blocks are the forgeries.
        rules.signers = vec![stranger.address()];
        validate_sealed_header(&rules, &by_stranger, by_stranger.hash_slow(), &genesis, now)
            .unwrap();
        assert!(seal_fault(&rules, &block.header).contains("not a signer"));
    }

    /// The blocks the devnet derives pass both steps, one after the other.
    #[test]
    fn devnet_blocks_validate() {
        let mut parent = genesis_header();
        for block in Devnet::new().unwrap().blocks(40) {
            validate_block(
                &ChainSpec::devnet(),
                &block,
                block.hash(),
                &parent,
                now_secs(),
            )
            .unwrap();
            parent = block.header;
        }
    }

    /// Each half of the body check refuses data that does not match its header, naming
    /// the field: what sync relies on to blame the peer that sent the body or receipts.
    #[test]
    fn bodies_and_receipts_must_match_their_headers() {
        let blocks: Vec<_> = Devnet::new().unwrap().blocks(8).collect();
        let block = &blocks[2]; // block 3: three transactions
        let (header, hash) = (&block.header, block.hash());
        let field = |e: Error| match e {
            Error::RootMismatch { field, .. } => field.to_string(),
            e => e.to_string(),
        };
        assert_eq!(block.body.transactions.len(), 3);
        validate_transactions(&ChainSpec::devnet(), header, hash, &block.body).unwrap();
        validate_receipts(&ChainSpec::devnet(), header, hash, 3, &block.receipts).unwrap();
        // Block 4 has no transactions and no receipts.
        let empty = &blocks[3];
        validate_receipts(&ChainSpec::devnet(), &empty.header, empty.hash(), 0, &[]).unwrap();

        let mut body = block.body.clone();
        body.transactions.pop();
        let e = validate_transactions(&ChainSpec::devnet(), header, hash, &body).unwrap_err();
        assert_eq!(field(e), "transactions_root");
        // Another block's body.
        assert!(
            validate_transactions(&ChainSpec::devnet(), header, hash, &blocks[6].body).is_err()
        );
        let mut body = block.body.clone();
        body.ommers.push(blocks[0].header.clone());
        let e = validate_transactions(&ChainSpec::devnet(), header, hash, &body).unwrap_err();
        assert_eq!(field(e), "ommers_hash");
        let mut body = block.body.clone();
        body.withdrawals = Some(Default::default());
        let e = validate_transactions(&ChainSpec::devnet(), header, hash, &body).unwrap_err();
        assert_eq!(field(e), "withdrawals_root");

        let mut receipts = block.receipts.clone();
        receipts[1].success = false;
        let e = validate_receipts(&ChainSpec::devnet(), header, hash, 3, &receipts).unwrap_err();
        assert_eq!(field(e), "receipts_root");
        let e = validate_receipts(&ChainSpec::devnet(), header, hash, 3, &block.receipts[..2])
            .unwrap_err();
        assert!(matches!(e, Error::ReceiptCount { receipts: 2, .. }), "{e}");
    }

    mod properties {
        use super::*;
        use crate::devnet::{seal_block, BlockTemplate};
        use alloy_primitives::Address;
        use alloy_rlp::{Decodable, Encodable};
        use proptest::collection::vec;
        use proptest::prelude::*;

        /// One produced block: its transfers (from key, nonce, value), how many seconds
        /// after its parent, and its beneficiary.
        type Spec = (Vec<(usize, u64, u64)>, u64, [u8; 20]);

        fn spec() -> impl Strategy<Value = Spec> {
            (
                vec((0usize..16, 0u64..1_000, any::<u64>()), 0..8),
                1u64..120,
                any::<[u8; 20]>(),
            )
        }

        /// Ways to break a valid block after it was sealed: each must be refused.
        const TAMPERINGS: usize = 7;

        fn tamper(block: &mut BlockWithReceipts, how: usize, parent: &Header) {
            let h = &mut block.header;
            match how {
                0 => h.difficulty += U256::from(1),
                1 => h.timestamp = parent.timestamp,
                2 => h.gas_limit += 1,
                3 => h.base_fee_per_gas = h.base_fee_per_gas.map(|f| f + 1),
                4 => {
                    // A byte of the seal.
                    let mut extra = h.extra_data.to_vec();
                    extra[7] ^= 1;
                    h.extra_data = extra.into();
                }
                5 => {
                    // A transaction more or one fewer: the body no longer matches.
                    if block.body.transactions.pop().is_none() {
                        let tx = Devnet::new()
                            .unwrap()
                            .transfer(1, 0, Address::ZERO, U256::ZERO);
                        block.body.transactions.push(tx);
                    }
                }
                _ => {
                    // A receipt that says otherwise, or one that was never due.
                    match block.receipts.first_mut() {
                        Some(r) => r.success = !r.success,
                        None => {
                            block.receipts = crate::devnet::receipts_for(&[Devnet::new()
                                .unwrap()
                                .transfer(1, 0, Address::ZERO, U256::ZERO)])
                        }
                    }
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(48))]

            /// Blocks the producer's rules seal, with any transactions, timestamps and
            /// beneficiaries, validate against their parents; they round-trip through
            /// RLP to the same block and hash, which still validates; and any one
            /// tampering after sealing is refused.
            #[test]
            fn produced_blocks_validate_round_trip_and_refuse_tampering(
                specs in vec(spec(), 1..4),
                how in 0..TAMPERINGS,
            ) {
                let devnet = Devnet::new().unwrap();

                let now = now_secs();
                let mut parent = genesis_header();
                for (transfers, gap, beneficiary) in specs {
                    let txs = transfers
                        .iter()
                        .map(|&(from, nonce, value)| {
                            devnet.transfer(from, nonce, Address::ZERO, U256::from(value))
                        })
                        .collect();
                    let template = BlockTemplate {
                        beneficiary: Address::from(beneficiary),
                        difficulty: U256::from(1),
                        timestamp: parent.timestamp + gap,
                    };
                    let block = seal_block(&parent, template, txs, &devnet.keys()[0]);
                    let hash = block.hash();
                    validate_block(&ChainSpec::devnet(), &block, hash, &parent, now).unwrap();

                    let mut wire = Vec::new();
                    block.header.encode(&mut wire);
                    block.body.encode(&mut wire);
                    block.receipts.encode(&mut wire);
                    let mut buf = wire.as_slice();
                    let decoded = BlockWithReceipts {
                        header: Header::decode(&mut buf).unwrap(),
                        body: BlockBody::decode(&mut buf).unwrap(),
                        receipts: Vec::<Receipt>::decode(&mut buf).unwrap(),
                    };
                    prop_assert!(buf.is_empty());
                    prop_assert_eq!(&decoded, &block);
                    prop_assert_eq!(decoded.hash(), hash);
                    validate_block(&ChainSpec::devnet(), &decoded, hash, &parent, now).unwrap();

                    let mut broken = block.clone();
                    tamper(&mut broken, how, &parent);
                    let broken_hash = broken.hash();
                    prop_assert!(
                        validate_block(&ChainSpec::devnet(), &broken, broken_hash, &parent, now).is_err(),
                        "tampering {} was accepted", how
                    );
                    parent = block.header;
                }
            }
        }
    }

    fn pos_parent() -> Header {
        Header {
            number: 10,
            timestamp: 1_000,
            gas_limit: 30_000_000,
            gas_used: 20_000_000,
            base_fee_per_gas: Some(1_000_000_000),
            withdrawals_root: Some(alloy_consensus::EMPTY_ROOT_HASH),
            blob_gas_used: Some(4 * DATA_GAS_PER_BLOB),
            excess_blob_gas: Some(10 * DATA_GAS_PER_BLOB),
            parent_beacon_block_root: Some(B256::repeat_byte(7)),
            requests_hash: Some(B256::repeat_byte(8)),
            ..Header::default()
        }
    }

    /// The child `pos_parent` implies under `forks`: every computed field as the parent
    /// makes it.
    fn pos_child(forks: &ForkSchedule, parent: &Header) -> Header {
        let timestamp = parent.timestamp + 12;
        let params = forks.blob_params_at(timestamp).unwrap();
        let excess = if forks.is_active(Hardfork::Osaka, parent.number + 1, timestamp) {
            params.next_block_excess_blob_gas_osaka(
                parent.excess_blob_gas.unwrap(),
                parent.blob_gas_used.unwrap(),
                parent.base_fee_per_gas.unwrap(),
            )
        } else {
            (parent.excess_blob_gas.unwrap() + parent.blob_gas_used.unwrap())
                .saturating_sub(params.target_blob_gas_per_block())
        };
        Header {
            parent_hash: parent.hash_slow(),
            number: parent.number + 1,
            timestamp,
            gas_limit: parent.gas_limit,
            base_fee_per_gas: parent.next_block_base_fee(BaseFeeParams::ethereum()),
            excess_blob_gas: Some(excess),
            blob_gas_used: Some(0),
            ..parent.clone()
        }
    }

    /// Each rule of a proof-of-stake header, broken one at a time on an otherwise valid
    /// child; and the computed fields are go-ethereum's numbers, worked by hand.
    #[test]
    fn every_proof_of_stake_header_rule_is_checked() {
        let forks = pos_forks(0);
        let parent = pos_parent();
        let child = pos_child(&forks, &parent);
        let now = child.timestamp;
        let check = |h: &Header| validate_pos_header(&forks, h, h.hash_slow(), &parent, now);
        check(&child).unwrap();
        // The parent used 20M of a 15M target: the base fee rises by 1/8 · 5/15 = 1/24.
        assert_eq!(child.base_fee_per_gas, Some(1_041_666_666));
        let rule_of = |mutate: &dyn Fn(&mut Header)| {
            let mut h = child.clone();
            mutate(&mut h);
            match check(&h) {
                Err(Error::InvalidHeader { rule, .. }) => rule,
                other => panic!("expected a broken header rule, got {other:?}"),
            }
        };
        assert_eq!(rule_of(&|h| h.difficulty = U256::from(1)), "difficulty");
        assert_eq!(
            rule_of(&|h| h.nonce = alloy_primitives::B64::from(1u64)),
            "nonce"
        );
        assert_eq!(
            rule_of(&|h| h.extra_data = vec![0; 33].into()),
            "extra data"
        );
        assert_eq!(rule_of(&|h| h.ommers_hash = B256::ZERO), "ommers hash");
        assert_eq!(rule_of(&|h| h.timestamp = now + 16), "timestamp");
        // Less than 1/1024 of the parent's (29 296): 29 295 is the most it may move.
        let mut moved = child.clone();
        moved.gas_limit = parent.gas_limit + 29_295;
        check(&moved).unwrap();
        moved.gas_limit = parent.gas_limit - 29_295;
        check(&moved).unwrap();
        assert_eq!(rule_of(&|h| h.gas_limit = 30_000_000 + 29_296), "gas limit");
        assert_eq!(rule_of(&|h| h.gas_limit = 30_000_000 - 29_296), "gas limit");
        assert_eq!(
            rule_of(&|h| h.base_fee_per_gas = Some(1_000_000_000)),
            "base fee"
        );
        assert_eq!(rule_of(&|h| h.base_fee_per_gas = None), "base fee");
        assert_eq!(rule_of(&|h| h.withdrawals_root = None), "withdrawals root");
        assert_eq!(rule_of(&|h| h.blob_gas_used = None), "blob gas used");
        assert_eq!(rule_of(&|h| h.excess_blob_gas = None), "excess blob gas");
        assert_eq!(
            rule_of(&|h| h.parent_beacon_block_root = None),
            "parent beacon block root"
        );
        assert_eq!(rule_of(&|h| h.requests_hash = None), "requests hash");
        assert_eq!(
            rule_of(&|h| h.block_access_list_hash = Some(B256::ZERO)),
            "block access list hash"
        );
        assert_eq!(rule_of(&|h| h.slot_number = Some(1)), "slot number");
        assert_eq!(rule_of(&|h| h.blob_gas_used = Some(1)), "blob gas used");
        let max = forks.blob_params_at(now).unwrap().max_blob_gas_per_block();
        assert_eq!(
            rule_of(&|h| h.blob_gas_used = Some(max + DATA_GAS_PER_BLOB)),
            "blob gas used"
        );
        assert_eq!(rule_of(&|h| h.excess_blob_gas = Some(0)), "excess blob gas");

        let mut h = child.clone();
        h.number = 12;
        assert!(matches!(check(&h), Err(Error::WrongNumber { .. })));
        h = child.clone();
        h.timestamp = parent.timestamp;
        assert!(matches!(
            check(&h),
            Err(Error::TimestampNotIncreasing { .. })
        ));
    }

    /// Excess blob gas by both formulas: EIP-4844's before Osaka; from Osaka EIP-7918's,
    /// which keeps growing the excess while blobs are cheaper than the execution base
    /// fee's reserve price (here the blob fee is the 1-wei minimum against a 1 gwei base fee).
    #[test]
    fn excess_blob_gas_follows_eip_4844_before_osaka_and_eip_7918_after() {
        let parent = pos_parent();
        let before = pos_forks(u64::MAX);
        let child = pos_child(&before, &parent);
        // Prague's target is 6 blobs: 10 + 4 - 6 = 8 blobs' worth.
        assert_eq!(child.excess_blob_gas, Some(8 * DATA_GAS_PER_BLOB));
        validate_pos_header(&before, &child, child.hash_slow(), &parent, child.timestamp).unwrap();
        let after = pos_forks(0);
        let child = pos_child(&after, &parent);
        // Reserve price binds: excess grows by used · (max - target) / max = 4 · 3/9.
        assert_eq!(
            child.excess_blob_gas,
            Some(10 * DATA_GAS_PER_BLOB + 4 * DATA_GAS_PER_BLOB * 3 / 9)
        );
        // The pre-Osaka number is refused after Osaka.
        let mut wrong = child.clone();
        wrong.excess_blob_gas = Some(8 * DATA_GAS_PER_BLOB);
        assert!(matches!(
            validate_pos_header(&after, &wrong, wrong.hash_slow(), &parent, wrong.timestamp),
            Err(Error::InvalidHeader {
                rule: "excess blob gas",
                ..
            })
        ));
    }

    /// What a body may hold by fork: blob transactions must account for the header's blob
    /// gas, and after Osaka no transaction may exceed EIP-7825's cap.
    #[test]
    fn proof_of_stake_bodies_are_held_to_their_fork() {
        use alloy_consensus::{Signed, TxEip1559, TxEip4844};
        use alloy_primitives::Signature;
        let forks = pos_forks(0);
        let parent = pos_parent();
        let header = pos_child(&forks, &parent);
        let hash = header.hash_slow();
        let sig = Signature::test_signature();
        let transfer = |gas_limit| {
            TransactionSigned::Eip1559(Signed::new_unchecked(
                TxEip1559 {
                    chain_id: 1,
                    gas_limit,
                    ..Default::default()
                },
                sig,
                B256::ZERO,
            ))
        };
        let blob_tx = |blobs: usize| {
            TransactionSigned::Eip4844(Signed::new_unchecked(
                TxEip4844 {
                    chain_id: 1,
                    gas_limit: 21_000,
                    blob_versioned_hashes: vec![B256::repeat_byte(1); blobs],
                    ..Default::default()
                },
                sig,
                B256::ZERO,
            ))
        };
        let body = |txs: Vec<TransactionSigned>| BlockBody {
            transactions: txs,
            ommers: vec![],
            withdrawals: Some(Default::default()),
        };
        let rule = |h: &Header, b: &BlockBody| match validate_fork_body(&forks, h, hash, b) {
            Err(Error::InvalidBody { rule, .. }) => rule,
            other => panic!("expected a broken body rule, got {other:?}"),
        };
        validate_fork_body(
            &forks,
            &header,
            hash,
            &body(vec![transfer(MAX_TX_GAS_LIMIT_OSAKA)]),
        )
        .unwrap();
        assert_eq!(
            rule(&header, &body(vec![transfer(MAX_TX_GAS_LIMIT_OSAKA + 1)])),
            "transaction gas limit"
        );
        // The header says no blob gas: a blob transaction does not fit it.
        assert_eq!(rule(&header, &body(vec![blob_tx(1)])), "blob gas used");
        let mut with_blobs = header.clone();
        with_blobs.blob_gas_used = Some(2 * DATA_GAS_PER_BLOB);
        validate_fork_body(&forks, &with_blobs, hash, &body(vec![blob_tx(2)])).unwrap();
        // Osaka allows 6 blobs per transaction (EIP-7594).
        with_blobs.blob_gas_used = Some(7 * DATA_GAS_PER_BLOB);
        assert_eq!(
            rule(&with_blobs, &body(vec![blob_tx(7)])),
            "blobs per transaction"
        );
        // Before Cancun a blob transaction is of a type not yet allowed.
        let mut early = ForkSchedule::merged_at_genesis();
        early.set(Hardfork::Shanghai, crate::forks::Activation::Time(0));
        assert!(matches!(
            validate_fork_body(&early, &header, hash, &body(vec![blob_tx(1)])),
            Err(Error::InvalidBody {
                rule: "transaction type",
                ..
            })
        ));
    }

    /// Before Amsterdam a header's gas used is its receipts' cumulative gas; from
    /// Amsterdam it counts gas before refunds (EIP-8037), which receipts do not show, so
    /// the two may differ.
    #[test]
    fn gas_used_matches_the_receipts_only_before_amsterdam() {
        let mut spec = crate::testing::pos_spec(0);
        let receipt = Receipt {
            cumulative_gas_used: 21_000,
            ..Receipt::default()
        };
        let mut header = spec.genesis.clone();
        header.gas_used = 30_000;
        header.receipts_root = devmux_eth::receipts_root(std::slice::from_ref(&receipt));
        header.logs_bloom = devmux_eth::logs_bloom(std::slice::from_ref(&receipt));
        let check = |spec: &ChainSpec| {
            validate_receipts(spec, &header, B256::ZERO, 1, std::slice::from_ref(&receipt))
        };
        assert!(matches!(check(&spec), Err(Error::BadGasUsed { .. })));
        spec.forks
            .set(Hardfork::Amsterdam, crate::forks::Activation::Time(0));
        check(&spec).unwrap();
    }
}
