//! Block exchange messages: headers, bodies, and the pre-merge block announcements.

use alloy_primitives::{B256, U256};
use alloy_rlp::{Decodable, Encodable, RlpDecodable, RlpEncodable};

use crate::{limits, Block, BlockBody, Error, Header};

/// Defines a message that is a bare RLP list of `$item`, capped at `$max` items when
/// decoded.
macro_rules! list_message {
    ($(#[$meta:meta])* $name:ident, $item:ty, $max:expr, $what:literal) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct $name(pub Vec<$item>);

        impl alloy_rlp::Encodable for $name {
            fn encode(&self, out: &mut dyn alloy_rlp::BufMut) {
                crate::codec::encode_list(&self.0, out);
            }

            fn length(&self) -> usize {
                crate::codec::list_length(&self.0)
            }
        }

        impl $name {
            #[allow(dead_code)]
            pub(crate) fn decode_wire(buf: &mut &[u8]) -> Result<Self, crate::Error> {
                crate::codec::decode_list(buf, $max, $what).map(Self)
            }
        }

        impl From<Vec<$item>> for $name {
            fn from(items: Vec<$item>) -> Self {
                Self(items)
            }
        }
    };
}
pub(crate) use list_message;

/// Where a header request starts: a block hash or a block number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockHashOrNumber {
    /// A block hash (a 32-byte string on the wire).
    Hash(B256),
    /// A block number (an integer on the wire).
    Number(u64),
}

impl Encodable for BlockHashOrNumber {
    fn encode(&self, out: &mut dyn alloy_rlp::BufMut) {
        match self {
            Self::Hash(h) => h.encode(out),
            Self::Number(n) => n.encode(out),
        }
    }

    fn length(&self) -> usize {
        match self {
            Self::Hash(h) => h.length(),
            Self::Number(n) => n.length(),
        }
    }
}

impl Decodable for BlockHashOrNumber {
    fn decode(buf: &mut &[u8]) -> alloy_rlp::Result<Self> {
        // A hash is the only 32-byte string here; an integer has at most 8 bytes.
        let header = alloy_rlp::Header::decode(&mut &buf[..])?;
        if !header.list && header.payload_length == 32 {
            B256::decode(buf).map(Self::Hash)
        } else {
            u64::decode(buf).map(Self::Number)
        }
    }
}

impl From<u64> for BlockHashOrNumber {
    fn from(n: u64) -> Self {
        Self::Number(n)
    }
}

impl From<B256> for BlockHashOrNumber {
    fn from(h: B256) -> Self {
        Self::Hash(h)
    }
}

/// `GetBlockHeaders` (0x03): `[startblock, limit, skip, reverse]`. Asks for at most
/// `limit` canonical headers from `start`, `skip` blocks apart, ascending unless
/// `reverse`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct GetBlockHeaders {
    /// First block.
    pub start: BlockHashOrNumber,
    /// Maximum number of headers.
    pub limit: u64,
    /// Blocks skipped between two returned headers.
    pub skip: u64,
    /// Descending instead of ascending numbers.
    pub reverse: bool,
}

impl GetBlockHeaders {
    pub(crate) fn decode_wire(buf: &mut &[u8]) -> Result<Self, Error> {
        Ok(Self::decode(buf)?)
    }
}

list_message!(
    /// `BlockHeaders` (0x04): the headers answering `GetBlockHeaders`.
    BlockHeaders, Header, limits::MAX_HEADERS, "BlockHeaders"
);
list_message!(
    /// `GetBlockBodies` (0x05): block hashes whose bodies are wanted.
    GetBlockBodies, B256, limits::MAX_REQUEST_ITEMS, "GetBlockBodies"
);
list_message!(
    /// `BlockBodies` (0x06): bodies answering `GetBlockBodies`, in request order.
    BlockBodies, BlockBody, limits::MAX_REQUEST_ITEMS, "BlockBodies"
);

/// One entry of `NewBlockHashes`: `[hash, number]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct BlockHashNumber {
    /// Block hash.
    pub hash: B256,
    /// Block number.
    pub number: u64,
}

list_message!(
    /// `NewBlockHashes` (0x01, eth/66–68): announces new blocks by hash and number.
    NewBlockHashes, BlockHashNumber, limits::MAX_NEW_BLOCK_HASHES, "NewBlockHashes"
);

/// `NewBlock` (0x07, eth/66–68): `[block, td]`, a full new block and its total
/// difficulty.
#[derive(Clone, Debug, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct NewBlock {
    /// The block.
    pub block: Block,
    /// Total difficulty including this block.
    pub td: U256,
}

impl NewBlock {
    pub(crate) fn decode_wire(buf: &mut &[u8]) -> Result<Self, Error> {
        Ok(Self::decode(buf)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::hex;

    /// EIP-2481's example `GetBlockHeaders` message.
    #[test]
    fn eip2481_get_block_headers() {
        let bytes = hex!(
            "e8820457e4a000000000000000000000000000000000000000000000000000000000deadc0de050580"
        );
        let mut buf = &bytes[..];
        let pair = crate::RequestPair::decode_with(&mut buf, GetBlockHeaders::decode_wire).unwrap();
        assert!(buf.is_empty());
        assert_eq!(pair.request_id, 1111);
        assert_eq!(
            pair.message,
            GetBlockHeaders {
                start: BlockHashOrNumber::Hash(B256::left_padding_from(&hex!("deadc0de"))),
                limit: 5,
                skip: 5,
                reverse: false,
            }
        );
        assert_eq!(alloy_rlp::encode(&pair), bytes);
    }

    /// EIP-2481's `GetBlockHeaders` by number.
    #[test]
    fn eip2481_get_block_headers_by_number() {
        let bytes = hex!("ca820457c682270f050580");
        let mut buf = &bytes[..];
        let pair = crate::RequestPair::decode_with(&mut buf, GetBlockHeaders::decode_wire).unwrap();
        assert_eq!(pair.request_id, 1111);
        assert_eq!(pair.message.start, BlockHashOrNumber::Number(9999));
        assert_eq!(alloy_rlp::encode(&pair), bytes);
    }

    #[test]
    fn hash_or_number_edge_cases() {
        for v in [
            BlockHashOrNumber::Number(0),
            BlockHashOrNumber::Number(0x7f),
            BlockHashOrNumber::Number(u64::MAX),
            BlockHashOrNumber::Hash(B256::ZERO),
        ] {
            let enc = alloy_rlp::encode(v);
            assert_eq!(
                alloy_rlp::decode_exact::<BlockHashOrNumber>(&enc).unwrap(),
                v
            );
        }
        // A 9-byte integer overflows u64; a 31-byte string is neither form.
        assert!(
            alloy_rlp::decode_exact::<BlockHashOrNumber>(hex!("89010000000000000000")).is_err()
        );
        let mut short = vec![0x9f];
        short.extend([1u8; 31]);
        assert!(alloy_rlp::decode_exact::<BlockHashOrNumber>(&short).is_err());
    }
}
