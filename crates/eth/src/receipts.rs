//! Receipt exchange messages.

use alloy_consensus::TxReceipt;
use alloy_primitives::B256;
use alloy_rlp::{Decodable, Encodable};

use crate::{codec, limits, Error, EthVersion, Receipt, ReceiptWithBloom};

/// `GetReceipts` (0x0f): block hashes whose receipts are wanted, and on eth/70 the
/// index of the first receipt wanted of the first block (EIP-7975
/// `firstBlockReceiptIndex`: the server omits the receipts before it).
///
/// A tuple struct so that `.0` is the hashes, as in the other list requests. The second
/// field is the form: `None` is eth/66–69's `[request-id, [hash, …]]`, `Some(index)` is
/// eth/70's `[request-id, index, [hash, …]]` ([`GetReceipts::fits`]). Its `Encodable`
/// writes the fields that follow the request id, so on eth/70 it writes two items; it
/// is meant to be encoded inside [`crate::RequestPair`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GetReceipts(pub Vec<B256>, pub Option<u64>);

impl GetReceipts {
    /// A request for the receipts of `hashes` in `version`'s form, from receipt
    /// `first_index` of the first block on (only eth/70 can say so: elsewhere the index
    /// is dropped and the whole first block is asked for).
    pub fn new(version: EthVersion, hashes: Vec<B256>, first_index: u64) -> Self {
        Self(hashes, version.has_receipt_pages().then_some(first_index))
    }

    /// The blocks asked for, by hash.
    pub fn hashes(&self) -> &[B256] {
        &self.0
    }

    /// The first receipt wanted of the first block: 0 unless an eth/70 request says
    /// otherwise.
    pub fn first_block_receipt_index(&self) -> u64 {
        self.1.unwrap_or(0)
    }

    /// Whether this form belongs to `version`: eth/70 has the index, the others do not.
    pub const fn fits(&self, version: EthVersion) -> bool {
        self.1.is_some() == version.has_receipt_pages()
    }

    pub(crate) fn decode_wire(version: EthVersion, buf: &mut &[u8]) -> Result<Self, Error> {
        let first_index = if version.has_receipt_pages() {
            Some(u64::decode(buf)?)
        } else {
            None
        };
        let hashes = codec::decode_list(buf, limits::MAX_REQUEST_ITEMS, "GetReceipts")?;
        Ok(Self(hashes, first_index))
    }
}

impl From<Vec<B256>> for GetReceipts {
    /// The eth/66–69 form.
    fn from(hashes: Vec<B256>) -> Self {
        Self(hashes, None)
    }
}

impl Encodable for GetReceipts {
    fn encode(&self, out: &mut dyn alloy_rlp::BufMut) {
        if let Some(index) = self.1 {
            index.encode(out);
        }
        codec::encode_list(&self.0, out);
    }

    fn length(&self) -> usize {
        self.1.map_or(0, |index| index.length()) + codec::list_length(&self.0)
    }
}

/// `Receipts` (0x10): one list of receipts per requested block, in request order.
///
/// Its `Encodable` writes the fields that follow the request id (on eth/70 two items:
/// the flag and the lists); it is meant to be encoded inside [`crate::RequestPair`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Receipts {
    /// eth/66–68: consensus encoding with the logs bloom; a typed receipt is the RLP
    /// string `type || rlp([status, cumulative-gas, bloom, logs])`.
    WithBloom(Vec<Vec<ReceiptWithBloom>>),
    /// eth/69 (EIP-7642): `[tx-type, status, cumulative-gas, logs]` for every type, no
    /// bloom.
    WithoutBloom(Vec<Vec<Receipt>>),
    /// eth/70 (EIP-7975): eth/69's lists after a `lastBlockIncomplete` flag, on the wire
    /// `[request-id, flag, [[receipt, …], …]]` with the flag `0` or `1`.
    Paged {
        /// Whether the last list holds only the first part of its block's receipts (the
        /// requester asks for the rest in a new request).
        last_block_incomplete: bool,
        /// The lists, one per block; the first may start inside its block, at the
        /// request's `firstBlockReceiptIndex`.
        blocks: Vec<Vec<Receipt>>,
    },
}

impl Receipts {
    /// The form `version` uses, computing blooms where it needs them. On eth/70 every
    /// list is whole (`lastBlockIncomplete` = 0).
    pub fn new(version: EthVersion, blocks: Vec<Vec<Receipt>>) -> Self {
        if version.has_receipt_pages() {
            Self::Paged {
                last_block_incomplete: false,
                blocks,
            }
        } else if version.has_block_range() {
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
    ///
    /// On eth/70 this drops `lastBlockIncomplete`: read
    /// [`Receipts::last_block_incomplete`] first.
    pub fn into_receipts(self) -> Vec<Vec<Receipt>> {
        match self {
            Self::WithoutBloom(b) | Self::Paged { blocks: b, .. } => b,
            Self::WithBloom(b) => b
                .into_iter()
                .map(|r| r.into_iter().map(|r| r.receipt).collect())
                .collect(),
        }
    }

    /// Whether the last list is only part of its block's receipts (eth/70's flag; false
    /// in the other forms, whose lists are always whole).
    pub const fn last_block_incomplete(&self) -> bool {
        matches!(
            self,
            Self::Paged {
                last_block_incomplete: true,
                ..
            }
        )
    }

    /// Number of blocks answered (in part, for an incomplete last one).
    pub fn len(&self) -> usize {
        match self {
            Self::WithBloom(b) => b.len(),
            Self::WithoutBloom(b) | Self::Paged { blocks: b, .. } => b.len(),
        }
    }

    /// Whether no block is answered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this form belongs to `version`.
    pub const fn fits(&self, version: EthVersion) -> bool {
        match self {
            Self::WithBloom(_) => !version.has_block_range(),
            Self::WithoutBloom(_) => version.has_block_range() && !version.has_receipt_pages(),
            Self::Paged { .. } => version.has_receipt_pages(),
        }
    }

    pub(crate) fn decode_wire(version: EthVersion, buf: &mut &[u8]) -> Result<Self, Error> {
        let max = limits::MAX_REQUEST_ITEMS;
        if version.has_receipt_pages() {
            // `{0,1}`: alloy's bool refuses any other value, and a non-canonical 0x00.
            let last_block_incomplete = bool::decode(buf)?;
            let blocks = decode_blocks::<Receipt>(buf, max)?;
            Ok(Self::Paged {
                last_block_incomplete,
                blocks,
            })
        } else if version.has_block_range() {
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
            Self::Paged {
                last_block_incomplete,
                blocks,
            } => {
                last_block_incomplete.encode(out);
                blocks.encode(out);
            }
        }
    }

    fn length(&self) -> usize {
        match self {
            Self::WithBloom(b) => b.length(),
            Self::WithoutBloom(b) => b.length(),
            Self::Paged {
                last_block_incomplete,
                blocks,
            } => last_block_incomplete.length() + blocks.length(),
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
