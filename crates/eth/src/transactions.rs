//! Transaction exchange messages.

use alloy_primitives::{Bytes, B256};
use alloy_rlp::{Encodable, Header};

use crate::blocks::list_message;
use crate::{codec, limits, Error, PooledTransaction, TransactionSigned};

list_message!(
    /// `Transactions` (0x02): full transactions pushed to a peer. EIP-4844 transactions
    /// must not be sent this way (they are announced and fetched with their sidecar).
    Transactions, TransactionSigned, limits::MAX_ANNOUNCEMENT_ITEMS, "Transactions"
);
list_message!(
    /// `GetPooledTransactions` (0x09): transaction hashes wanted from the peer's pool.
    GetPooledTransactions, B256, limits::MAX_REQUEST_ITEMS, "GetPooledTransactions"
);
list_message!(
    /// `PooledTransactions` (0x0a): the requested transactions in pooled form, in request
    /// order, unknown ones skipped.
    PooledTransactions, PooledTransaction, limits::MAX_REQUEST_ITEMS, "PooledTransactions"
);
list_message!(
    /// `GetNodeData` (0x0d, eth/66 only): state trie nodes wanted by hash.
    GetNodeData, B256, limits::MAX_REQUEST_ITEMS, "GetNodeData"
);
list_message!(
    /// `NodeData` (0x0e, eth/66 only): the requested trie nodes.
    NodeData, Bytes, limits::MAX_REQUEST_ITEMS, "NodeData"
);

/// One announced transaction: what eth/68 `NewPooledTransactionHashes` says about it, and
/// what a pool needs to announce it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TxAnnouncement {
    /// Transaction type (0 legacy, 1 EIP-2930, 2 EIP-1559, 3 EIP-4844, 4 EIP-7702).
    pub ty: u8,
    /// Size of the transaction as `PooledTransactions` would carry it, without the RLP
    /// string header around a typed transaction (`devp2p/caps/eth.md`).
    pub size: u64,
    /// Transaction hash.
    pub hash: B256,
}

/// `NewPooledTransactionHashes` (0x08): announces transactions by hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NewPooledTransactionHashes {
    /// eth/66–67: `[hash, ...]`.
    Hashes(Vec<B256>),
    /// eth/68+ (EIP-5793): `[types: B, [size, ...], [hash, ...]]`, three lists of equal
    /// length.
    Typed(Vec<TxAnnouncement>),
}

impl NewPooledTransactionHashes {
    /// The form `version` uses, from full announcements.
    pub fn new(version: crate::EthVersion, txs: Vec<TxAnnouncement>) -> Self {
        if version.has_typed_announcements() {
            Self::Typed(txs)
        } else {
            Self::Hashes(txs.into_iter().map(|t| t.hash).collect())
        }
    }

    /// The announced hashes.
    pub fn hashes(&self) -> Vec<B256> {
        match self {
            Self::Hashes(h) => h.clone(),
            Self::Typed(t) => t.iter().map(|t| t.hash).collect(),
        }
    }

    /// Number of announced transactions.
    pub fn len(&self) -> usize {
        match self {
            Self::Hashes(h) => h.len(),
            Self::Typed(t) => t.len(),
        }
    }

    /// Whether nothing is announced.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this form belongs to `version`.
    pub const fn fits(&self, version: crate::EthVersion) -> bool {
        matches!(self, Self::Typed(_)) == version.has_typed_announcements()
    }

    pub(crate) fn decode_wire(version: crate::EthVersion, buf: &mut &[u8]) -> Result<Self, Error> {
        let max = limits::MAX_ANNOUNCEMENT_ITEMS;
        if !version.has_typed_announcements() {
            return codec::decode_list(buf, max, "NewPooledTransactionHashes").map(Self::Hashes);
        }
        codec::decode_fields(buf, |fields| {
            let types = Header::decode_bytes(fields, false)?;
            if types.len() > max {
                return Err(Error::ListTooLong {
                    what: "NewPooledTransactionHashes",
                    max,
                });
            }
            let sizes: Vec<u64> = codec::decode_list(fields, max, "NewPooledTransactionHashes")?;
            let hashes: Vec<B256> = codec::decode_list(fields, max, "NewPooledTransactionHashes")?;
            if types.len() != sizes.len() || sizes.len() != hashes.len() {
                return Err(Error::AnnouncementMismatch {
                    types: types.len(),
                    sizes: sizes.len(),
                    hashes: hashes.len(),
                });
            }
            Ok(Self::Typed(
                types
                    .iter()
                    .zip(sizes)
                    .zip(hashes)
                    .map(|((&ty, size), hash)| TxAnnouncement { ty, size, hash })
                    .collect(),
            ))
        })
    }

    /// The three eth/68 lists.
    fn typed_parts(txs: &[TxAnnouncement]) -> (Bytes, Vec<u64>, Vec<B256>) {
        let types = txs.iter().map(|t| t.ty).collect::<Vec<u8>>().into();
        let sizes = txs.iter().map(|t| t.size).collect();
        let hashes = txs.iter().map(|t| t.hash).collect();
        (types, sizes, hashes)
    }
}

impl Encodable for NewPooledTransactionHashes {
    fn encode(&self, out: &mut dyn alloy_rlp::BufMut) {
        match self {
            Self::Hashes(h) => codec::encode_list(h, out),
            Self::Typed(t) => {
                let (types, sizes, hashes) = Self::typed_parts(t);
                let payload_length =
                    types.length() + codec::list_length(&sizes) + codec::list_length(&hashes);
                Header {
                    list: true,
                    payload_length,
                }
                .encode(out);
                types.encode(out);
                codec::encode_list(&sizes, out);
                codec::encode_list(&hashes, out);
            }
        }
    }

    fn length(&self) -> usize {
        match self {
            Self::Hashes(h) => codec::list_length(h),
            Self::Typed(t) => {
                let (types, sizes, hashes) = Self::typed_parts(t);
                let payload_length =
                    types.length() + codec::list_length(&sizes) + codec::list_length(&hashes);
                Header {
                    list: true,
                    payload_length,
                }
                .length_with_payload()
            }
        }
    }
}
