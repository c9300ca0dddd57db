//! Message codes, request ids and [`EthMessage`], the codec of whole messages.

use alloy_rlp::{Decodable, Encodable, Header};

use crate::{
    codec, limits, BlockBodies, BlockHeaders, BlockRangeUpdate, Error, EthVersion, GetBlockBodies,
    GetBlockHeaders, GetNodeData, GetPooledTransactions, GetReceipts, NewBlock, NewBlockHashes,
    NewPooledTransactionHashes, NodeData, PooledTransactions, Receipts, Status, Transactions,
};

/// The eth message codes (`devp2p/caps/eth.md`, "Protocol Messages"). On the stream stack
/// they are the frame's code byte as is; on RLPx they are offset by the capability's
/// message-id base (WIRE.md §1, §2). Codes 0x0b and 0x0c are unassigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum MessageId {
    /// `Status`, 0x00.
    Status = 0x00,
    /// `NewBlockHashes`, 0x01 (eth/66–68).
    NewBlockHashes = 0x01,
    /// `Transactions`, 0x02.
    Transactions = 0x02,
    /// `GetBlockHeaders`, 0x03.
    GetBlockHeaders = 0x03,
    /// `BlockHeaders`, 0x04.
    BlockHeaders = 0x04,
    /// `GetBlockBodies`, 0x05.
    GetBlockBodies = 0x05,
    /// `BlockBodies`, 0x06.
    BlockBodies = 0x06,
    /// `NewBlock`, 0x07 (eth/66–68).
    NewBlock = 0x07,
    /// `NewPooledTransactionHashes`, 0x08.
    NewPooledTransactionHashes = 0x08,
    /// `GetPooledTransactions`, 0x09.
    GetPooledTransactions = 0x09,
    /// `PooledTransactions`, 0x0a.
    PooledTransactions = 0x0a,
    /// `GetNodeData`, 0x0d (eth/66 only; removed by EIP-4938).
    GetNodeData = 0x0d,
    /// `NodeData`, 0x0e (eth/66 only; removed by EIP-4938).
    NodeData = 0x0e,
    /// `GetReceipts`, 0x0f.
    GetReceipts = 0x0f,
    /// `Receipts`, 0x10.
    Receipts = 0x10,
    /// `BlockRangeUpdate`, 0x11 (eth/69 and eth/70, EIP-7642).
    BlockRangeUpdate = 0x11,
}

impl MessageId {
    /// The code on the wire.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// Whether the message exists in `version`.
    pub const fn is_valid_for(self, version: EthVersion) -> bool {
        match self {
            Self::GetNodeData | Self::NodeData => version.has_node_data(),
            Self::BlockRangeUpdate => version.has_block_range(),
            Self::NewBlockHashes | Self::NewBlock => version.has_block_announcements(),
            _ => true,
        }
    }

    /// Whether the message is a request that the peer must answer.
    pub const fn is_request(self) -> bool {
        matches!(
            self,
            Self::GetBlockHeaders
                | Self::GetBlockBodies
                | Self::GetPooledTransactions
                | Self::GetNodeData
                | Self::GetReceipts
        )
    }

    /// Whether the message is a response to a request.
    pub const fn is_response(self) -> bool {
        matches!(
            self,
            Self::BlockHeaders
                | Self::BlockBodies
                | Self::PooledTransactions
                | Self::NodeData
                | Self::Receipts
        )
    }
}

impl TryFrom<u8> for MessageId {
    type Error = u8;

    fn try_from(code: u8) -> Result<Self, u8> {
        Ok(match code {
            0x00 => Self::Status,
            0x01 => Self::NewBlockHashes,
            0x02 => Self::Transactions,
            0x03 => Self::GetBlockHeaders,
            0x04 => Self::BlockHeaders,
            0x05 => Self::GetBlockBodies,
            0x06 => Self::BlockBodies,
            0x07 => Self::NewBlock,
            0x08 => Self::NewPooledTransactionHashes,
            0x09 => Self::GetPooledTransactions,
            0x0a => Self::PooledTransactions,
            0x0d => Self::GetNodeData,
            0x0e => Self::NodeData,
            0x0f => Self::GetReceipts,
            0x10 => Self::Receipts,
            0x11 => Self::BlockRangeUpdate,
            other => return Err(other),
        })
    }
}

/// A request or response with its request id (EIP-2481): `[request-id, message]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestPair<T> {
    /// The id the requester chose; the response mirrors it.
    pub request_id: u64,
    /// The request or response itself.
    pub message: T,
}

impl<T> RequestPair<T> {
    /// Pairs a message with a request id.
    pub const fn new(request_id: u64, message: T) -> Self {
        Self {
            request_id,
            message,
        }
    }

    /// Decodes `[request-id, message]`, the message with `f`.
    pub(crate) fn decode_with(
        buf: &mut &[u8],
        f: impl FnOnce(&mut &[u8]) -> Result<T, Error>,
    ) -> Result<Self, Error> {
        codec::decode_fields(buf, |fields| {
            let request_id = u64::decode(fields)?;
            let message = f(fields)?;
            Ok(Self {
                request_id,
                message,
            })
        })
    }
}

impl<T: Encodable> Encodable for RequestPair<T> {
    fn encode(&self, out: &mut dyn alloy_rlp::BufMut) {
        let payload_length = self.request_id.length() + self.message.length();
        Header {
            list: true,
            payload_length,
        }
        .encode(out);
        self.request_id.encode(out);
        self.message.encode(out);
    }

    fn length(&self) -> usize {
        let payload_length = self.request_id.length() + self.message.length();
        Header {
            list: true,
            payload_length,
        }
        .length_with_payload()
    }
}

/// Any eth/66–70 message.
///
/// This is the codec the eth handler works with: a transport hands it `(code, payload)`
/// frames ([`EthMessage::decode`]) and sends what [`EthMessage::encode_for`] returns.
/// Decoding is strict: trailing bytes, over-long lists, messages absent from the
/// negotiated version and payloads over [`limits::MAX_MESSAGE_SIZE`] are errors, and
/// no input makes it panic.
///
/// ```
/// use devmux_eth::{EthMessage, EthVersion, GetBlockHeaders, RequestPair};
///
/// let request = EthMessage::GetBlockHeaders(RequestPair::new(
///     7,
///     GetBlockHeaders { start: 100u64.into(), limit: 64, skip: 0, reverse: false },
/// ));
/// let (code, payload) = request.encode_for(EthVersion::Eth68).unwrap();
/// assert_eq!(code, 0x03);
/// assert_eq!(EthMessage::decode(EthVersion::Eth68, code, &payload).unwrap(), request);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EthMessage {
    /// 0x00.
    Status(Status),
    /// 0x01, eth/66–68.
    NewBlockHashes(NewBlockHashes),
    /// 0x02.
    Transactions(Transactions),
    /// 0x03.
    GetBlockHeaders(RequestPair<GetBlockHeaders>),
    /// 0x04.
    BlockHeaders(RequestPair<BlockHeaders>),
    /// 0x05.
    GetBlockBodies(RequestPair<GetBlockBodies>),
    /// 0x06.
    BlockBodies(RequestPair<BlockBodies>),
    /// 0x07, eth/66–68. Boxed: a block is much larger than the other variants.
    NewBlock(Box<NewBlock>),
    /// 0x08.
    NewPooledTransactionHashes(NewPooledTransactionHashes),
    /// 0x09.
    GetPooledTransactions(RequestPair<GetPooledTransactions>),
    /// 0x0a.
    PooledTransactions(RequestPair<PooledTransactions>),
    /// 0x0d, eth/66 only.
    GetNodeData(RequestPair<GetNodeData>),
    /// 0x0e, eth/66 only.
    NodeData(RequestPair<NodeData>),
    /// 0x0f.
    GetReceipts(RequestPair<GetReceipts>),
    /// 0x10.
    Receipts(RequestPair<Receipts>),
    /// 0x11, eth/69 and eth/70.
    BlockRangeUpdate(BlockRangeUpdate),
}

impl EthMessage {
    /// Decodes the message with code `code` and RLP `payload` received on a session that
    /// negotiated `version`, under the default [`limits::DecodeLimits`] (generic Ethereum's).
    pub fn decode(version: EthVersion, code: u8, payload: &[u8]) -> Result<Self, Error> {
        Self::decode_bounded(version, code, payload, &limits::DecodeLimits::default())
    }

    /// [`EthMessage::decode`] under `limits`: the message's lists are counted and its
    /// decoded size estimated before anything is allocated, and a message over a limit
    /// is refused with the limit named ([`Error::ListTooLong`], [`Error::Amplification`]).
    pub fn decode_bounded(
        version: EthVersion,
        code: u8,
        payload: &[u8],
        limits: &limits::DecodeLimits,
    ) -> Result<Self, Error> {
        if payload.len() > limits::MAX_MESSAGE_SIZE {
            return Err(Error::MessageTooLarge {
                size: payload.len(),
                max: limits::MAX_MESSAGE_SIZE,
            });
        }
        let id =
            MessageId::try_from(code).map_err(|code| Error::UnknownMessage { version, code })?;
        if !id.is_valid_for(version) {
            return Err(Error::NotInVersion { id, version });
        }
        crate::bounds::scan(version, id, payload, limits)?;
        codec::decode_exact(payload, |buf| {
            Ok(match id {
                MessageId::Status => Self::Status(Status::decode_wire(version, buf)?),
                MessageId::NewBlockHashes => {
                    Self::NewBlockHashes(NewBlockHashes::decode_wire(buf)?)
                }
                MessageId::Transactions => Self::Transactions(Transactions::decode_wire(buf)?),
                MessageId::GetBlockHeaders => Self::GetBlockHeaders(RequestPair::decode_with(
                    buf,
                    GetBlockHeaders::decode_wire,
                )?),
                MessageId::BlockHeaders => {
                    Self::BlockHeaders(RequestPair::decode_with(buf, BlockHeaders::decode_wire)?)
                }
                MessageId::GetBlockBodies => Self::GetBlockBodies(RequestPair::decode_with(
                    buf,
                    GetBlockBodies::decode_wire,
                )?),
                MessageId::BlockBodies => {
                    Self::BlockBodies(RequestPair::decode_with(buf, BlockBodies::decode_wire)?)
                }
                MessageId::NewBlock => Self::NewBlock(Box::new(NewBlock::decode_wire(buf)?)),
                MessageId::NewPooledTransactionHashes => Self::NewPooledTransactionHashes(
                    NewPooledTransactionHashes::decode_wire(version, buf)?,
                ),
                MessageId::GetPooledTransactions => Self::GetPooledTransactions(
                    RequestPair::decode_with(buf, GetPooledTransactions::decode_wire)?,
                ),
                MessageId::PooledTransactions => Self::PooledTransactions(
                    RequestPair::decode_with(buf, PooledTransactions::decode_wire)?,
                ),
                MessageId::GetNodeData => {
                    Self::GetNodeData(RequestPair::decode_with(buf, GetNodeData::decode_wire)?)
                }
                MessageId::NodeData => {
                    Self::NodeData(RequestPair::decode_with(buf, NodeData::decode_wire)?)
                }
                MessageId::GetReceipts => Self::GetReceipts(RequestPair::decode_with(buf, |b| {
                    GetReceipts::decode_wire(version, b)
                })?),
                MessageId::Receipts => Self::Receipts(RequestPair::decode_with(buf, |b| {
                    Receipts::decode_wire(version, b)
                })?),
                MessageId::BlockRangeUpdate => {
                    Self::BlockRangeUpdate(BlockRangeUpdate::decode_wire(buf)?)
                }
            })
        })
    }

    /// Encodes the message as `(code, payload)`, whatever the version. Prefer
    /// [`EthMessage::encode_for`], which also checks that the message belongs to the
    /// session's version.
    pub fn encode(&self) -> (u8, Vec<u8>) {
        let mut out = Vec::with_capacity(self.payload_length());
        match self {
            Self::Status(m) => m.encode(&mut out),
            Self::NewBlockHashes(m) => m.encode(&mut out),
            Self::Transactions(m) => m.encode(&mut out),
            Self::GetBlockHeaders(m) => m.encode(&mut out),
            Self::BlockHeaders(m) => m.encode(&mut out),
            Self::GetBlockBodies(m) => m.encode(&mut out),
            Self::BlockBodies(m) => m.encode(&mut out),
            Self::NewBlock(m) => m.encode(&mut out),
            Self::NewPooledTransactionHashes(m) => m.encode(&mut out),
            Self::GetPooledTransactions(m) => m.encode(&mut out),
            Self::PooledTransactions(m) => m.encode(&mut out),
            Self::GetNodeData(m) => m.encode(&mut out),
            Self::NodeData(m) => m.encode(&mut out),
            Self::GetReceipts(m) => m.encode(&mut out),
            Self::Receipts(m) => m.encode(&mut out),
            Self::BlockRangeUpdate(m) => m.encode(&mut out),
        }
        (self.message_id().code(), out)
    }

    /// Encodes the message for a session on `version`, refusing a message (or a form of
    /// it, such as a Status with total difficulty on eth/69, or eth/69's `GetReceipts`
    /// on eth/70) that `version` lacks.
    pub fn encode_for(&self, version: EthVersion) -> Result<(u8, Vec<u8>), Error> {
        if !self.fits(version) {
            return Err(Error::NotInVersion {
                id: self.message_id(),
                version,
            });
        }
        Ok(self.encode())
    }

    /// Length of the encoded payload.
    pub fn payload_length(&self) -> usize {
        match self {
            Self::Status(m) => m.length(),
            Self::NewBlockHashes(m) => m.length(),
            Self::Transactions(m) => m.length(),
            Self::GetBlockHeaders(m) => m.length(),
            Self::BlockHeaders(m) => m.length(),
            Self::GetBlockBodies(m) => m.length(),
            Self::BlockBodies(m) => m.length(),
            Self::NewBlock(m) => m.length(),
            Self::NewPooledTransactionHashes(m) => m.length(),
            Self::GetPooledTransactions(m) => m.length(),
            Self::PooledTransactions(m) => m.length(),
            Self::GetNodeData(m) => m.length(),
            Self::NodeData(m) => m.length(),
            Self::GetReceipts(m) => m.length(),
            Self::Receipts(m) => m.length(),
            Self::BlockRangeUpdate(m) => m.length(),
        }
    }

    /// The message's id.
    pub const fn message_id(&self) -> MessageId {
        match self {
            Self::Status(_) => MessageId::Status,
            Self::NewBlockHashes(_) => MessageId::NewBlockHashes,
            Self::Transactions(_) => MessageId::Transactions,
            Self::GetBlockHeaders(_) => MessageId::GetBlockHeaders,
            Self::BlockHeaders(_) => MessageId::BlockHeaders,
            Self::GetBlockBodies(_) => MessageId::GetBlockBodies,
            Self::BlockBodies(_) => MessageId::BlockBodies,
            Self::NewBlock(_) => MessageId::NewBlock,
            Self::NewPooledTransactionHashes(_) => MessageId::NewPooledTransactionHashes,
            Self::GetPooledTransactions(_) => MessageId::GetPooledTransactions,
            Self::PooledTransactions(_) => MessageId::PooledTransactions,
            Self::GetNodeData(_) => MessageId::GetNodeData,
            Self::NodeData(_) => MessageId::NodeData,
            Self::GetReceipts(_) => MessageId::GetReceipts,
            Self::Receipts(_) => MessageId::Receipts,
            Self::BlockRangeUpdate(_) => MessageId::BlockRangeUpdate,
        }
    }

    /// The request id of a request or response.
    pub const fn request_id(&self) -> Option<u64> {
        Some(match self {
            Self::GetBlockHeaders(m) => m.request_id,
            Self::BlockHeaders(m) => m.request_id,
            Self::GetBlockBodies(m) => m.request_id,
            Self::BlockBodies(m) => m.request_id,
            Self::GetPooledTransactions(m) => m.request_id,
            Self::PooledTransactions(m) => m.request_id,
            Self::GetNodeData(m) => m.request_id,
            Self::NodeData(m) => m.request_id,
            Self::GetReceipts(m) => m.request_id,
            Self::Receipts(m) => m.request_id,
            _ => return None,
        })
    }

    /// Whether this message, in this form, belongs to `version`.
    pub const fn fits(&self, version: EthVersion) -> bool {
        if !self.message_id().is_valid_for(version) {
            return false;
        }
        match self {
            Self::Status(s) => s.fits(version),
            Self::NewPooledTransactionHashes(m) => m.fits(version),
            Self::GetReceipts(m) => m.message.fits(version),
            Self::Receipts(m) => m.message.fits(version),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_gaps() {
        for code in 0..=u8::MAX {
            match MessageId::try_from(code) {
                Ok(id) => assert_eq!(id.code(), code),
                Err(c) => assert!(c == 0x0b || c == 0x0c || c > 0x11, "{c:#x}"),
            }
        }
    }

    #[test]
    fn versions_gate_messages() {
        use EthVersion::*;
        assert!(MessageId::GetNodeData.is_valid_for(Eth66));
        assert!(!MessageId::GetNodeData.is_valid_for(Eth67));
        assert!(!MessageId::BlockRangeUpdate.is_valid_for(Eth68));
        assert!(MessageId::BlockRangeUpdate.is_valid_for(Eth69));
        assert!(MessageId::NewBlock.is_valid_for(Eth68));
        assert!(!MessageId::NewBlock.is_valid_for(Eth69));
        // The highest code of each version is its message count minus one.
        for v in EthVersion::ALL {
            let highest = (0..=u8::MAX)
                .filter_map(|c| MessageId::try_from(c).ok())
                .filter(|id| id.is_valid_for(v) || *id == MessageId::Receipts)
                .map(MessageId::code)
                .max();
            assert_eq!(highest, Some(v.message_count() - 1), "{v}");
        }
    }

    #[test]
    fn rejects_unknown_and_out_of_version() {
        assert!(matches!(
            EthMessage::decode(EthVersion::Eth68, 0x0b, &[0xc0]),
            Err(Error::UnknownMessage { code: 0x0b, .. })
        ));
        assert!(matches!(
            EthMessage::decode(EthVersion::Eth67, 0x0d, &[0xc0]),
            Err(Error::NotInVersion {
                id: MessageId::GetNodeData,
                ..
            })
        ));
        let big = vec![0u8; limits::MAX_MESSAGE_SIZE + 1];
        assert!(matches!(
            EthMessage::decode(EthVersion::Eth68, 0x02, &big),
            Err(Error::MessageTooLarge { .. })
        ));
    }

    #[test]
    fn rejects_trailing_bytes() {
        // GetBlockBodies [1, []] followed by a stray byte.
        let payload = [0xc2, 0x01, 0xc0, 0x00];
        assert!(matches!(
            EthMessage::decode(EthVersion::Eth68, 0x05, &payload),
            Err(Error::TrailingBytes(1))
        ));
        // An extra field inside the request pair.
        let payload = [0xc3, 0x01, 0xc0, 0x01];
        assert!(EthMessage::decode(EthVersion::Eth68, 0x05, &payload).is_err());
    }

    #[test]
    fn rejects_oversized_lists() {
        let hashes = vec![alloy_primitives::B256::ZERO; limits::MAX_REQUEST_ITEMS + 1];
        let msg = EthMessage::GetBlockBodies(RequestPair::new(1, GetBlockBodies(hashes)));
        let (code, payload) = msg.encode();
        assert!(matches!(
            EthMessage::decode(EthVersion::Eth68, code, &payload),
            Err(Error::ListTooLong {
                max: limits::MAX_REQUEST_ITEMS,
                ..
            })
        ));
    }

    #[test]
    fn encode_for_checks_the_form() {
        let msg =
            EthMessage::NewPooledTransactionHashes(NewPooledTransactionHashes::Hashes(vec![]));
        assert!(msg.encode_for(EthVersion::Eth67).is_ok());
        assert!(msg.encode_for(EthVersion::Eth68).is_err());
        let msg = EthMessage::Receipts(RequestPair::new(1, Receipts::WithoutBloom(vec![])));
        assert!(msg.encode_for(EthVersion::Eth69).is_ok());
        assert!(msg.encode_for(EthVersion::Eth66).is_err());
        assert!(msg.encode_for(EthVersion::Eth70).is_err());
        // eth/70's receipt forms fit eth/70 only, and eth/70 takes no other.
        let paged = EthMessage::Receipts(RequestPair::new(
            1,
            Receipts::new(EthVersion::Eth70, vec![]),
        ));
        let indexed = EthMessage::GetReceipts(RequestPair::new(
            1,
            GetReceipts::new(EthVersion::Eth70, vec![], 0),
        ));
        let plain = EthMessage::GetReceipts(RequestPair::new(1, GetReceipts(vec![], None)));
        for version in [EthVersion::Eth66, EthVersion::Eth68, EthVersion::Eth69] {
            assert!(paged.encode_for(version).is_err(), "{version}");
            assert!(indexed.encode_for(version).is_err(), "{version}");
            assert!(plain.encode_for(version).is_ok(), "{version}");
        }
        assert!(paged.encode_for(EthVersion::Eth70).is_ok());
        assert!(indexed.encode_for(EthVersion::Eth70).is_ok());
        assert!(plain.encode_for(EthVersion::Eth70).is_err());
    }

    #[test]
    fn eth70_receipt_messages_carry_their_new_field() {
        // The same lists on eth/69 and eth/70 differ by the flag only; the same hashes by
        // the index only.
        let v70 = EthVersion::Eth70;
        let (_, on69) =
            EthMessage::GetReceipts(RequestPair::new(7, GetReceipts(vec![], None))).encode();
        let (_, on70) =
            EthMessage::GetReceipts(RequestPair::new(7, GetReceipts::new(v70, vec![], 5))).encode();
        assert_eq!(on69, [0xc2, 0x07, 0xc0]);
        assert_eq!(on70, [0xc3, 0x07, 0x05, 0xc0]);
        // eth/69 bytes on an eth/70 session lack a field: refused, not misread.
        assert!(EthMessage::decode(v70, 0x0f, &on69).is_err());
        assert!(EthMessage::decode(EthVersion::Eth69, 0x0f, &on70).is_err());
        let paged = |flag| Receipts::Paged {
            last_block_incomplete: flag,
            blocks: vec![vec![]],
        };
        for (flag, byte) in [(false, 0x80), (true, 0x01)] {
            let (code, payload) = EthMessage::Receipts(RequestPair::new(7, paged(flag))).encode();
            assert_eq!(payload, [0xc4, 0x07, byte, 0xc1, 0xc0]);
            let EthMessage::Receipts(back) = EthMessage::decode(v70, code, &payload).unwrap()
            else {
                panic!("not receipts")
            };
            assert_eq!(back.message.last_block_incomplete(), flag);
        }
        // The flag is `{0,1}`: 2, or a non-canonical zero byte, is malformed.
        for bad in [0x02, 0x00] {
            let payload = [0xc4, 0x07, bad, 0xc1, 0xc0];
            assert!(matches!(
                EthMessage::decode(v70, 0x10, &payload),
                Err(Error::Rlp(_))
            ));
        }
    }
}
