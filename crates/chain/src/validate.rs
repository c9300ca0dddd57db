//! Block validation on insert: what a block must satisfy to be stored, without executing
//! it (devmux has no EVM). These are the data-validity checks of `devp2p/caps/eth.md`
//! that need no state.

use alloy_consensus::proofs;
use alloy_primitives::B256;
use devmux_eth::Header;

use crate::{BlockWithReceipts, Error};

/// Checks `block` (whose hash is `hash`) against its `parent`: number, timestamp, gas,
/// and every root the header commits to.
pub fn validate_block(block: &BlockWithReceipts, hash: B256, parent: &Header) -> Result<(), Error> {
    let header = &block.header;
    let number = header.number;
    let mismatch = |field: &'static str, got: String, expected: String| Error::RootMismatch {
        number,
        hash,
        field,
        got,
        expected,
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

    let body = &block.body;
    let ommers_hash = body.calculate_ommers_root();
    if header.ommers_hash != ommers_hash {
        return Err(mismatch(
            "ommers_hash",
            header.ommers_hash.to_string(),
            ommers_hash.to_string(),
        ));
    }
    let tx_root = proofs::calculate_transaction_root(&body.transactions);
    if header.transactions_root != tx_root {
        return Err(mismatch(
            "transactions_root",
            header.transactions_root.to_string(),
            tx_root.to_string(),
        ));
    }
    let withdrawals_root = body.calculate_withdrawals_root();
    if header.withdrawals_root != withdrawals_root {
        return Err(mismatch(
            "withdrawals_root",
            format!("{:?}", header.withdrawals_root),
            format!("{withdrawals_root:?}"),
        ));
    }

    let receipts = &block.receipts;
    if receipts.len() != body.transactions.len() {
        return Err(Error::ReceiptCount {
            number,
            hash,
            receipts: receipts.len(),
            transactions: body.transactions.len(),
        });
    }
    let receipts_root = devmux_eth::receipts_root(receipts);
    if header.receipts_root != receipts_root {
        return Err(mismatch(
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
            "logs_bloom",
            header.logs_bloom.to_string(),
            bloom.to_string(),
        ));
    }
    Ok(())
}
