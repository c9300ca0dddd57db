//! Receipt exchange messages.

use alloy_consensus::TxReceipt;
use alloy_primitives::B256;
use alloy_rlp::{Decodable, Encodable};

use crate::blocks::list_message;
use crate::{codec, limits, Error, EthVersion, Receipt, ReceiptWithBloom};

list_message!(
    /// `GetReceipts` (0x0f): block hashes whose receipts are wanted.
    GetReceipts, B256, limits::MAX_REQUEST_ITEMS, "GetReceipts"
);

/// `Receipts` (0x10): one list of receipts per requested block, in request order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Receipts {
    /// eth/66–68: consensus encoding with the logs bloom; a typed receipt is the RLP
    /// string `type || rlp([status, cumulative-gas, bloom, logs])`.
    WithBloom(Vec<Vec<ReceiptWithBloom>>),
    /// eth/69 (EIP-7642): `[tx-type, status, cumulative-gas, logs]` for every type, no
    /// bloom.
    WithoutBloom(Vec<Vec<Receipt>>),
}

impl Receipts {
    /// The form `version` uses, computing blooms where it needs them.
    pub fn new(version: EthVersion, blocks: Vec<Vec<Receipt>>) -> Self {
        if version.has_block_range() {
            Self::WithoutBloom(blocks)
        } else {
            Self::WithBloom(
                blocks
                    .into_iter()
                    .map(|b| b.into_iter().map(|r| r.into_with_bloom()).collect())
                    .collect(),
            )
        }
    }

    /// The receipts without blooms (a received bloom is dropped, not trusted: verifying
    /// against the header's receipts root recomputes it).
    pub fn into_receipts(self) -> Vec<Vec<Receipt>> {
        match self {
            Self::WithoutBloom(b) => b,
            Self::WithBloom(b) => b
                .into_iter()
                .map(|r| r.into_iter().map(|r| r.receipt).collect())
                .collect(),
        }
    }

    /// Number of blocks answered.
    pub fn len(&self) -> usize {
        match self {
            Self::WithBloom(b) => b.len(),
            Self::WithoutBloom(b) => b.len(),
        }
    }

    /// Whether no block is answered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this form belongs to `version`.
    pub const fn fits(&self, version: EthVersion) -> bool {
        matches!(self, Self::WithoutBloom(_)) == version.has_block_range()
    }

    pub(crate) fn decode_wire(version: EthVersion, buf: &mut &[u8]) -> Result<Self, Error> {
        let max = limits::MAX_REQUEST_ITEMS;
        if version.has_block_range() {
            let blocks = decode_blocks::<Receipt>(buf, max)?;
            Ok(Self::WithoutBloom(blocks))
        } else {
            let blocks = decode_blocks::<ReceiptWithBloom>(buf, max)?;
            Ok(Self::WithBloom(blocks))
        }
    }
}

/// A list of per-block receipt lists. The inner lists are bounded by the message size.
fn decode_blocks<T: Decodable>(buf: &mut &[u8], max: usize) -> Result<Vec<Vec<T>>, Error> {
    let mut payload = alloy_rlp::Header::decode_bytes(buf, true)?;
    let mut out = Vec::new();
    while !payload.is_empty() {
        if out.len() == max {
            return Err(Error::ListTooLong {
                what: "Receipts",
                max,
            });
        }
        out.push(codec::decode_list(&mut payload, usize::MAX, "Receipts")?);
    }
    Ok(out)
}

impl Encodable for Receipts {
    fn encode(&self, out: &mut dyn alloy_rlp::BufMut) {
        match self {
            Self::WithBloom(b) => b.encode(out),
            Self::WithoutBloom(b) => b.encode(out),
        }
    }

    fn length(&self) -> usize {
        match self {
            Self::WithBloom(b) => b.length(),
            Self::WithoutBloom(b) => b.length(),
        }
    }
}

/// The receipts root of a block's receipts: the trie of their consensus encodings
/// (with blooms), as the header's `receipts_root` commits to.
pub fn receipts_root(receipts: &[Receipt]) -> B256 {
    let with_bloom: Vec<ReceiptWithBloom> = receipts
        .iter()
        .map(|r| r.clone().into_with_bloom())
        .collect();
    alloy_consensus::proofs::calculate_receipt_root(&with_bloom)
}

/// The logs bloom of a block: the union of its receipts' blooms.
pub fn logs_bloom(receipts: &[Receipt]) -> alloy_primitives::Bloom {
    receipts
        .iter()
        .fold(alloy_primitives::Bloom::ZERO, |acc, r| acc | r.bloom())
}
