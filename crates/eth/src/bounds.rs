//! The scan that runs before a message is decoded: it walks the RLP structure of the
//! messages that carry many items (headers, bodies, blocks, receipts, transactions),
//! reading list headers only, and refuses the message if a list is longer than its
//! [`DecodeLimits`] allow or if the decoded form would take more memory than the
//! message's budget ([`DecodeLimits::memory_budget`]). Nothing is allocated until the
//! scan passes, so what a peer can make us allocate is bounded by what it sends.
//!
//! The scan judges only counts; the decoder that runs after it still checks everything
//! else (and fails on anything the scan let through malformed).

use std::mem::size_of;

use alloy_eips::eip4895::Withdrawal;
use alloy_primitives::Log;
use alloy_rlp::{Decodable, Header as RlpHeader};

use crate::limits::DecodeLimits;
use crate::{
    Error, EthVersion, Header, MessageId, PooledTransaction, Receipt, ReceiptWithBloom,
    TransactionSigned,
};

/// Scans the payload of message `id` against `limits` (see the module docs).
pub(crate) fn scan(
    version: EthVersion,
    id: MessageId,
    payload: &[u8],
    limits: &DecodeLimits,
) -> Result<(), Error> {
    let mut scan = Scan {
        limits,
        estimate: 0,
        budget: DecodeLimits::memory_budget(payload.len()),
    };
    let mut buf = payload;
    match id {
        MessageId::Transactions => {
            scan.list(
                &mut buf,
                crate::limits::MAX_ANNOUNCEMENT_ITEMS,
                "Transactions",
                size_of::<TransactionSigned>(),
            )?;
        }
        MessageId::PooledTransactions => {
            let mut fields = request_pair(&mut buf)?;
            scan.list(
                &mut fields,
                crate::limits::MAX_REQUEST_ITEMS,
                "PooledTransactions",
                size_of::<PooledTransaction>(),
            )?;
        }
        MessageId::BlockHeaders => {
            let mut fields = request_pair(&mut buf)?;
            scan.list(
                &mut fields,
                crate::limits::MAX_HEADERS,
                "BlockHeaders",
                size_of::<Header>(),
            )?;
        }
        MessageId::BlockBodies => {
            let mut fields = request_pair(&mut buf)?;
            let mut bodies = scan.list(
                &mut fields,
                crate::limits::MAX_REQUEST_ITEMS,
                "BlockBodies",
                size_of::<crate::BlockBody>(),
            )?;
            // A body's header is not in the message: the chain's largest block bounds it
            // (the roots check after decoding pins it to the real header).
            let max_txs = limits.max_txs(limits.max_block_gas);
            while !bodies.is_empty() {
                let mut body = list_payload(&mut bodies)?;
                scan.body(&mut body, max_txs)?;
            }
        }
        MessageId::NewBlock => {
            let mut fields = list_payload(&mut buf)?;
            let mut block = list_payload(&mut fields)?;
            // The header first: its gas limit bounds the body (and the chain's bounds it).
            let header = Header::decode(&mut block)?;
            scan.charge("NewBlock", 1, size_of::<crate::NewBlock>())?;
            scan.body(&mut block, limits.max_txs(header.gas_limit))?;
        }
        MessageId::Receipts => {
            let mut fields = request_pair(&mut buf)?;
            if version.has_receipt_pages() {
                // eth/70's `lastBlockIncomplete` comes before the lists (EIP-7975).
                skip_item(&mut fields)?;
            }
            let item = if version.has_block_range() {
                size_of::<Receipt>()
            } else {
                size_of::<ReceiptWithBloom>()
            };
            let max_receipts = limits.max_txs(limits.max_block_gas);
            let mut blocks = scan.list(
                &mut fields,
                crate::limits::MAX_REQUEST_ITEMS,
                "Receipts",
                size_of::<Vec<Receipt>>(),
            )?;
            while !blocks.is_empty() {
                let mut receipts = scan.list(
                    &mut blocks,
                    max_receipts,
                    "receipts per block (gas limit / 21 000)",
                    item,
                )?;
                while !receipts.is_empty() {
                    scan.receipt(&mut receipts)?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// The request id of a request or response `[request-id, message]`, read without
/// decoding the message.
pub(crate) fn peek_request_id(payload: &[u8]) -> Result<u64, Error> {
    let mut buf = payload;
    let mut fields = list_payload(&mut buf)?;
    Ok(u64::decode(&mut fields)?)
}

struct Scan<'l> {
    limits: &'l DecodeLimits,
    estimate: usize,
    budget: usize,
}

impl Scan<'_> {
    /// Adds `count` items of `size` bytes to the estimate.
    fn charge(&mut self, what: &'static str, count: usize, size: usize) -> Result<(), Error> {
        self.estimate = self.estimate.saturating_add(count.saturating_mul(size));
        if self.estimate > self.budget {
            return Err(Error::Amplification {
                what,
                estimate: self.estimate,
                budget: self.budget,
            });
        }
        Ok(())
    }

    /// The payload of the list at the start of `buf` (advancing past it), after checking
    /// that it holds at most `max` items and charging them at `size` bytes each.
    fn list<'a>(
        &mut self,
        buf: &mut &'a [u8],
        max: usize,
        what: &'static str,
        size: usize,
    ) -> Result<&'a [u8], Error> {
        let payload = list_payload(buf)?;
        let count = count_items(payload, max, what)?;
        self.charge(what, count, size)?;
        Ok(payload)
    }

    /// A body's fields `[transactions, ommers, withdrawals?]`.
    fn body(&mut self, fields: &mut &[u8], max_txs: usize) -> Result<(), Error> {
        self.list(
            fields,
            max_txs,
            "transactions per body (gas limit / 21 000)",
            size_of::<TransactionSigned>(),
        )?;
        self.list(
            fields,
            self.limits.max_ommers,
            "ommers per body",
            size_of::<Header>(),
        )?;
        if !fields.is_empty() {
            self.list(
                fields,
                self.limits.max_withdrawals,
                "withdrawals per body",
                size_of::<Withdrawal>(),
            )?;
        }
        Ok(())
    }

    /// One receipt at the start of `buf`: eth/69's `[type, status, gas, logs]`, or
    /// eth/66–68's `[status, gas, bloom, logs]`, as a list (legacy) or inside a string
    /// after the type byte (typed). Either way the logs are the fourth field.
    fn receipt(&mut self, buf: &mut &[u8]) -> Result<(), Error> {
        let header = RlpHeader::decode(buf)?;
        let body = take(buf, header.payload_length)?;
        let mut fields = if header.list {
            body
        } else {
            // Typed: type byte, then the list.
            let mut inner = body.get(1..).ok_or(alloy_rlp::Error::InputTooShort)?;
            list_payload(&mut inner)?
        };
        for _ in 0..3 {
            skip_item(&mut fields)?;
        }
        self.list(
            &mut fields,
            self.limits.max_logs(),
            "logs per receipt (gas limit / 375)",
            size_of::<Log>(),
        )?;
        Ok(())
    }
}

/// The fields of `[request-id, message]`, after the request id.
fn request_pair<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], Error> {
    let mut fields = list_payload(buf)?;
    skip_item(&mut fields)?;
    Ok(fields)
}

/// The payload of the RLP list at the start of `buf`, advancing past the list.
fn list_payload<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], Error> {
    let header = RlpHeader::decode(buf)?;
    if !header.list {
        return Err(alloy_rlp::Error::UnexpectedString.into());
    }
    take(buf, header.payload_length)
}

/// Splits `len` bytes off the front of `buf`.
fn take<'a>(buf: &mut &'a [u8], len: usize) -> Result<&'a [u8], Error> {
    if buf.len() < len {
        return Err(alloy_rlp::Error::InputTooShort.into());
    }
    let (head, rest) = buf.split_at(len);
    *buf = rest;
    Ok(head)
}

/// Skips one RLP item (string or list) at the start of `buf`.
fn skip_item(buf: &mut &[u8]) -> Result<(), Error> {
    // A single byte below 0x80 is its own item: `Header::decode` leaves it in place and
    // reports a payload of one byte, so skipping the payload skips it.
    let header = RlpHeader::decode(buf)?;
    take(buf, header.payload_length)?;
    Ok(())
}

/// Counts the items of a list payload, headers only, failing at item `max + 1`.
fn count_items(mut payload: &[u8], max: usize, what: &'static str) -> Result<usize, Error> {
    let mut count = 0;
    while !payload.is_empty() {
        if count == max {
            return Err(Error::ListTooLong { what, max });
        }
        skip_item(&mut payload)?;
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BlockBodies, BlockBody, EthMessage, RequestPair};

    /// A legacy transaction of ten bytes: `[0, 0, 0, "", 0, "", 0, 0, 0]`: the cheapest
    /// item a peer can put in a body (issue 14's 900 000-transaction body).
    const TINY_TX: [u8; 10] = [0xc9, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80];

    fn body_of(count: usize) -> Vec<u8> {
        let txs_len = TINY_TX.len() * count;
        let mut txs = Vec::with_capacity(txs_len + 9);
        RlpHeader {
            list: true,
            payload_length: txs_len,
        }
        .encode(&mut txs);
        for _ in 0..count {
            txs.extend_from_slice(&TINY_TX);
        }
        let mut body = Vec::new();
        RlpHeader {
            list: true,
            payload_length: txs.len() + 1,
        }
        .encode(&mut body);
        body.extend_from_slice(&txs);
        body.push(0xc0); // no ommers
        body
    }

    fn bodies_message(bodies: &[Vec<u8>]) -> Vec<u8> {
        let inner: usize = bodies.iter().map(Vec::len).sum();
        let mut list = Vec::new();
        RlpHeader {
            list: true,
            payload_length: inner,
        }
        .encode(&mut list);
        for b in bodies {
            list.extend_from_slice(b);
        }
        let mut out = Vec::new();
        RlpHeader {
            list: true,
            payload_length: list.len() + 1,
        }
        .encode(&mut out);
        out.push(0x07); // request id 7
        out.extend_from_slice(&list);
        out
    }

    #[test]
    fn a_body_of_900_000_transactions_is_refused_at_the_limit() {
        let payload = bodies_message(&[body_of(900_000)]);
        assert!(payload.len() > 9_000_000);
        let limits = DecodeLimits::devnet();
        let err = scan(EthVersion::Eth68, MessageId::BlockBodies, &payload, &limits).unwrap_err();
        assert!(matches!(err, Error::ListTooLong { max: 1428, .. }), "{err}");
        assert!(err.to_string().contains("gas limit / 21 000"), "{err}");
        // And the decoder the handler runs refuses it the same way.
        let err =
            EthMessage::decode_bounded(EthVersion::Eth68, 0x06, &payload, &limits).unwrap_err();
        assert!(matches!(err, Error::ListTooLong { max: 1428, .. }), "{err}");
    }

    #[test]
    fn many_bodies_of_tiny_transactions_break_the_memory_budget() {
        // 1428 transactions per body is within the count limit; 500 such bodies are 7 MB
        // on the wire and would decode to ~20 times that.
        let body = body_of(1428);
        let payload = bodies_message(&vec![body; 500]);
        let err = scan(
            EthVersion::Eth68,
            MessageId::BlockBodies,
            &payload,
            &DecodeLimits::devnet(),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Amplification { .. }), "{err}");
    }

    #[test]
    fn eth70_receipt_lists_are_counted_behind_the_flag() {
        // 1429 receipts in one block: one more than a 30 M gas block can hold.
        let receipt = crate::Receipt::default();
        let blocks = vec![vec![receipt; 1429]];
        let limits = DecodeLimits::devnet();
        for flag in [false, true] {
            let msg = EthMessage::Receipts(RequestPair::new(
                3,
                crate::Receipts::Paged {
                    last_block_incomplete: flag,
                    blocks: blocks.clone(),
                },
            ));
            let (_, payload) = msg.encode();
            let err = scan(EthVersion::Eth70, MessageId::Receipts, &payload, &limits).unwrap_err();
            assert!(matches!(err, Error::ListTooLong { max: 1428, .. }), "{err}");
            // Read as eth/69 (no flag), the same bytes are malformed, not passed.
            assert!(scan(EthVersion::Eth69, MessageId::Receipts, &payload, &limits).is_err());
        }
    }

    #[test]
    fn honest_messages_pass_and_inner_limits_come_from_the_config() {
        let body = BlockBody {
            transactions: Vec::new(),
            ommers: vec![Header::default()],
            withdrawals: None,
        };
        let msg = EthMessage::BlockBodies(RequestPair::new(1, BlockBodies(vec![body])));
        let (code, payload) = msg.encode();
        // The devnet allows no ommers…
        let devnet = DecodeLimits::devnet();
        let err =
            EthMessage::decode_bounded(EthVersion::Eth68, code, &payload, &devnet).unwrap_err();
        assert!(err.to_string().contains("ommers per body"), "{err}");
        // …a chain with ommers does.
        let with_ommers = DecodeLimits {
            max_ommers: 2,
            ..devnet
        };
        assert_eq!(
            EthMessage::decode_bounded(EthVersion::Eth68, code, &payload, &with_ommers).unwrap(),
            msg
        );
        assert_eq!(peek_request_id(&payload).unwrap(), 1);
    }
}
