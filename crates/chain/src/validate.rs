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

use alloy_consensus::{proofs, EMPTY_OMMER_ROOT_HASH};
use alloy_primitives::B256;
use devmux_eth::{BlockBody, Header, Receipt};

use crate::{seal, BlockWithReceipts, Error, HeaderRules};

/// Seconds since the Unix epoch on our clock, for the future-timestamp rule.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Checks `header` (whose hash is `hash`) against its `parent` and `rules`, on the header
/// alone: number = parent + 1; the rules' difficulty; timestamp after the parent's and at
/// most [`HeaderRules::max_future_secs`] after `now` (seconds since the epoch); the rules'
/// gas limit; gas used within it; the rules' base fee; no ommers; and last, as the one
/// check that costs a signature recovery, a well-formed seal by one of the rules'
/// signers ([`Error::BadSeal`] otherwise).
pub fn validate_header(
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

/// Checks `block` (whose hash is `hash`) against `parent` and `rules`: the header first
/// ([`validate_header`]), then the body ([`validate_body`]).
pub fn validate_block(
    rules: &HeaderRules,
    block: &BlockWithReceipts,
    hash: B256,
    parent: &Header,
    now: u64,
) -> Result<(), Error> {
    validate_header(rules, &block.header, hash, parent, now)?;
    validate_body(block, hash)
}

/// Checks the body and receipts of `block` (whose hash is `hash`) against every root and
/// total its header commits to: [`validate_transactions`], then [`validate_receipts`].
pub fn validate_body(block: &BlockWithReceipts, hash: B256) -> Result<(), Error> {
    validate_transactions(&block.header, hash, &block.body)?;
    validate_receipts(
        &block.header,
        hash,
        block.body.transactions.len(),
        &block.receipts,
    )
}

/// Checks `body` against the roots of `header` (whose hash is `hash`): ommers hash,
/// transactions root, withdrawals root. Sync runs it as soon as a body arrives, before
/// the block's receipts are requested.
pub fn validate_transactions(header: &Header, hash: B256, body: &BlockBody) -> Result<(), Error> {
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

/// Checks `receipts` against `header` (whose hash is `hash`, and whose body has
/// `transactions` transactions): one receipt per transaction, the receipts root, gas
/// used equal to the last receipt's cumulative gas, and the logs bloom.
pub fn validate_receipts(
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
    if header.gas_used != cumulative {
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
    use alloy_primitives::U256;

    /// Each rule of WIRE.md §7.1 that a header alone can break, broken one at a time on
    /// an otherwise valid devnet block 1.
    #[test]
    fn every_header_rule_is_checked_on_the_header_alone() {
        let rules = HeaderRules::devnet();
        let genesis = genesis_header();
        let block = Devnet::new().unwrap().blocks(1).next().unwrap();
        let now = now_secs();
        let check = |h: &Header| validate_header(&rules, h, h.hash_slow(), &genesis, now);
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
        let seal_fault = |rules: &HeaderRules, h: &Header| match validate_header(
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
        validate_header(&rules, &by_stranger, by_stranger.hash_slow(), &genesis, now).unwrap();
        assert!(seal_fault(&rules, &block.header).contains("not a signer"));
    }

    /// The blocks the devnet derives pass both steps, one after the other.
    #[test]
    fn devnet_blocks_validate() {
        let rules = HeaderRules::devnet();
        let mut parent = genesis_header();
        for block in Devnet::new().unwrap().blocks(40) {
            validate_block(&rules, &block, block.hash(), &parent, now_secs()).unwrap();
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
        validate_transactions(header, hash, &block.body).unwrap();
        validate_receipts(header, hash, 3, &block.receipts).unwrap();
        // Block 4 has no transactions and no receipts.
        let empty = &blocks[3];
        validate_receipts(&empty.header, empty.hash(), 0, &[]).unwrap();

        let mut body = block.body.clone();
        body.transactions.pop();
        let e = validate_transactions(header, hash, &body).unwrap_err();
        assert_eq!(field(e), "transactions_root");
        // Another block's body.
        assert!(validate_transactions(header, hash, &blocks[6].body).is_err());
        let mut body = block.body.clone();
        body.ommers.push(blocks[0].header.clone());
        let e = validate_transactions(header, hash, &body).unwrap_err();
        assert_eq!(field(e), "ommers_hash");
        let mut body = block.body.clone();
        body.withdrawals = Some(Default::default());
        let e = validate_transactions(header, hash, &body).unwrap_err();
        assert_eq!(field(e), "withdrawals_root");

        let mut receipts = block.receipts.clone();
        receipts[1].success = false;
        let e = validate_receipts(header, hash, 3, &receipts).unwrap_err();
        assert_eq!(field(e), "receipts_root");
        let e = validate_receipts(header, hash, 3, &block.receipts[..2]).unwrap_err();
        assert!(matches!(e, Error::ReceiptCount { receipts: 2, .. }), "{e}");
    }
}
