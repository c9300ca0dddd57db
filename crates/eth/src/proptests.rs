//! Property tests: every message round-trips through `EthMessage`, and no input makes
//! the decoder panic.

use alloy_consensus::{
    SignableTransaction, TxEip1559, TxEip2930, TxEip4844, TxEip4844WithSidecar, TxEip7702, TxLegacy,
};
use alloy_eips::eip2930::{AccessList, AccessListItem};
use alloy_eips::eip4844::BlobTransactionSidecar;
use alloy_eips::eip7594::{BlobTransactionSidecarEip7594, BlobTransactionSidecarVariant};
use alloy_eips::eip7702::{Authorization, SignedAuthorization};
use alloy_primitives::{Address, Bloom, Bytes, Log, LogData, Signature, TxKind, B256, B64, U256};
use alloy_rlp::Decodable;
use proptest::collection::vec;
use proptest::prelude::*;

use crate::*;

fn b256() -> impl Strategy<Value = B256> {
    any::<[u8; 32]>().prop_map(B256::from)
}

fn address() -> impl Strategy<Value = Address> {
    any::<[u8; 20]>().prop_map(Address::from)
}

fn u256() -> impl Strategy<Value = U256> {
    prop_oneof![
        any::<u64>().prop_map(U256::from),
        any::<[u8; 32]>().prop_map(U256::from_be_bytes)
    ]
}

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn signature() -> impl Strategy<Value = Signature> {
    (u256(), u256(), any::<bool>()).prop_map(|(r, s, y)| Signature::new(r, s, y))
}

fn header() -> impl Strategy<Value = Header> {
    (
        (
            b256(),
            b256(),
            address(),
            b256(),
            b256(),
            b256(),
            any::<[u8; 256]>(),
        ),
        (
            u256(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            bytes(40),
            b256(),
        ),
        (
            any::<[u8; 8]>(),
            0usize..=8,
            any::<u64>(),
            b256(),
            any::<u64>(),
        ),
    )
        .prop_map(|(a, b, c)| {
            let (
                parent_hash,
                ommers_hash,
                beneficiary,
                state_root,
                transactions_root,
                receipts_root,
                bloom,
            ) = a;
            let (difficulty, number, gas_limit, gas_used, timestamp, extra_data, mix_hash) = b;
            let (nonce, optional, n, h, m) = c;
            // Optional fields are a prefix: a later one is only present with all earlier.
            let on = |i: usize| optional > i;
            Header {
                parent_hash,
                ommers_hash,
                beneficiary,
                state_root,
                transactions_root,
                receipts_root,
                logs_bloom: Bloom::from(bloom),
                difficulty,
                number,
                gas_limit,
                gas_used,
                timestamp,
                extra_data,
                mix_hash,
                nonce: B64::from(nonce),
                base_fee_per_gas: on(0).then_some(n),
                withdrawals_root: on(1).then_some(h),
                blob_gas_used: on(2).then_some(m),
                excess_blob_gas: on(3).then_some(n ^ m),
                parent_beacon_block_root: on(4).then_some(!h),
                requests_hash: on(5).then_some(h ^ B256::repeat_byte(1)),
                block_access_list_hash: on(6).then_some(h ^ B256::repeat_byte(2)),
                slot_number: on(7).then_some(m / 3),
            }
        })
}

fn access_list() -> impl Strategy<Value = AccessList> {
    vec((address(), vec(b256(), 0..3)), 0..3).prop_map(|items| {
        AccessList(
            items
                .into_iter()
                .map(|(address, storage_keys)| AccessListItem {
                    address,
                    storage_keys,
                })
                .collect(),
        )
    })
}

fn kind() -> impl Strategy<Value = TxKind> {
    prop_oneof![Just(TxKind::Create), address().prop_map(TxKind::Call)]
}

/// Fields shared by all transaction types.
#[derive(Clone, Debug)]
struct Common {
    chain_id: u64,
    nonce: u64,
    gas_limit: u64,
    fee: u128,
    tip: u128,
    value: U256,
    input: Bytes,
    access_list: AccessList,
}

fn common() -> impl Strategy<Value = Common> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u128>(),
        any::<u128>(),
        u256(),
        bytes(64),
        access_list(),
    )
        .prop_map(
            |(chain_id, nonce, gas_limit, fee, tip, value, input, access_list)| Common {
                chain_id,
                nonce,
                gas_limit,
                fee,
                tip,
                value,
                input,
                access_list,
            },
        )
}

fn tx4844(c: &Common, to: Address, blobs: Vec<B256>) -> TxEip4844 {
    TxEip4844 {
        chain_id: c.chain_id,
        nonce: c.nonce,
        gas_limit: c.gas_limit,
        max_fee_per_gas: c.fee,
        max_priority_fee_per_gas: c.tip,
        to,
        value: c.value,
        access_list: c.access_list.clone(),
        blob_versioned_hashes: blobs,
        max_fee_per_blob_gas: c.tip,
        input: c.input.clone(),
    }
}

fn authorizations() -> impl Strategy<Value = Vec<SignedAuthorization>> {
    vec(
        (
            u256(),
            address(),
            any::<u64>(),
            any::<bool>(),
            u256(),
            u256(),
        ),
        0..3,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(chain_id, address, nonce, y, r, s)| {
                SignedAuthorization::new_unchecked(
                    Authorization {
                        chain_id,
                        address,
                        nonce,
                    },
                    u8::from(y),
                    r,
                    s,
                )
            })
            .collect()
    })
}

/// A block transaction of any of the five types.
fn transaction() -> impl Strategy<Value = TransactionSigned> {
    (
        common(),
        kind(),
        address(),
        vec(b256(), 0..3),
        authorizations(),
        signature(),
        0u8..6,
    )
        .prop_map(|(c, kind, to, blobs, auths, sig, ty)| match ty {
            0 | 1 => TxLegacy {
                chain_id: (ty == 0).then_some(c.chain_id % (u64::MAX / 4)),
                nonce: c.nonce,
                gas_price: c.fee,
                gas_limit: c.gas_limit,
                to: kind,
                value: c.value,
                input: c.input,
            }
            .into_signed(sig)
            .into(),
            2 => TxEip2930 {
                chain_id: c.chain_id,
                nonce: c.nonce,
                gas_price: c.fee,
                gas_limit: c.gas_limit,
                to: kind,
                value: c.value,
                access_list: c.access_list,
                input: c.input,
            }
            .into_signed(sig)
            .into(),
            3 => TxEip1559 {
                chain_id: c.chain_id,
                nonce: c.nonce,
                gas_limit: c.gas_limit,
                max_fee_per_gas: c.fee,
                max_priority_fee_per_gas: c.tip,
                to: kind,
                value: c.value,
                access_list: c.access_list,
                input: c.input,
            }
            .into_signed(sig)
            .into(),
            4 => tx4844(&c, to, blobs).into_signed(sig).into(),
            _ => TxEip7702 {
                chain_id: c.chain_id,
                nonce: c.nonce,
                gas_limit: c.gas_limit,
                max_fee_per_gas: c.fee,
                max_priority_fee_per_gas: c.tip,
                to,
                value: c.value,
                access_list: c.access_list,
                authorization_list: auths,
                input: c.input,
            }
            .into_signed(sig)
            .into(),
        })
}

/// A pooled transaction: a non-blob transaction, or a blob transaction with an (empty,
/// to keep the tests fast) EIP-4844 or EIP-7594 sidecar.
fn pooled_transaction() -> impl Strategy<Value = PooledTransaction> {
    (
        transaction(),
        common(),
        address(),
        vec(b256(), 0..3),
        signature(),
        0u8..4,
    )
        .prop_map(|(tx, c, to, blobs, sig, pick)| match (tx, pick) {
            (TransactionSigned::Eip4844(_), 0) | (_, 1) => {
                let sidecar = BlobTransactionSidecarVariant::Eip4844(BlobTransactionSidecar::new(
                    vec![],
                    vec![],
                    vec![],
                ));
                TxEip4844WithSidecar::from_tx_and_sidecar(tx4844(&c, to, blobs), sidecar)
                    .into_signed(sig)
                    .into()
            }
            (TransactionSigned::Eip4844(_), _) | (_, 2) => {
                let sidecar = BlobTransactionSidecarVariant::Eip7594(
                    BlobTransactionSidecarEip7594::new(vec![], vec![], vec![]),
                );
                TxEip4844WithSidecar::from_tx_and_sidecar(tx4844(&c, to, blobs), sidecar)
                    .into_signed(sig)
                    .into()
            }
            (tx, _) => tx.try_into_pooled().unwrap_or_else(|_| unreachable!()),
        })
}

fn body() -> impl Strategy<Value = BlockBody> {
    (vec(transaction(), 0..4), vec(header(), 0..2)).prop_map(|(transactions, ommers)| BlockBody {
        transactions,
        ommers,
        withdrawals: None,
    })
}

fn log() -> impl Strategy<Value = Log> {
    (address(), vec(b256(), 0..4), bytes(40)).prop_map(|(address, topics, data)| Log {
        address,
        data: LogData::new_unchecked(topics, data),
    })
}

fn receipt() -> impl Strategy<Value = Receipt> {
    (0u8..5, any::<bool>(), any::<u64>(), vec(log(), 0..3)).prop_map(
        |(ty, success, cumulative_gas_used, logs)| Receipt {
            tx_type: TxType::try_from(ty).unwrap_or_default(),
            success,
            cumulative_gas_used,
            logs,
        },
    )
}

fn fork_id() -> impl Strategy<Value = ForkId> {
    (any::<[u8; 4]>(), any::<u64>()).prop_map(|(h, next)| ForkId {
        hash: ForkHash(h),
        next,
    })
}

fn announcement() -> impl Strategy<Value = TxAnnouncement> {
    (any::<u8>(), any::<u64>(), b256()).prop_map(|(ty, size, hash)| TxAnnouncement {
        ty,
        size,
        hash,
    })
}

/// A message valid for `version`, with a random request id where it has one.
fn message(version: EthVersion) -> BoxedStrategy<EthMessage> {
    let id = any::<u64>();
    let mut options: Vec<BoxedStrategy<EthMessage>> = vec![
        (
            any::<u64>(),
            u256(),
            b256(),
            b256(),
            fork_id(),
            any::<u64>(),
            any::<u64>(),
        )
            .prop_map(move |(network_id, td, head, genesis, fork_id, a, b)| {
                EthMessage::Status(if version.has_block_range() {
                    Status::WithRange(StatusWithRange {
                        version: version.as_u8(),
                        network_id,
                        genesis,
                        fork_id,
                        earliest: a.min(b),
                        latest: a.max(b),
                        latest_hash: head,
                    })
                } else {
                    Status::WithTd(StatusWithTd {
                        version: version.as_u8(),
                        network_id,
                        total_difficulty: td,
                        head,
                        genesis,
                        fork_id,
                    })
                })
            })
            .boxed(),
        vec(transaction(), 0..4)
            .prop_map(|t| EthMessage::Transactions(Transactions(t)))
            .boxed(),
        (
            id,
            prop_oneof![
                b256().prop_map(BlockHashOrNumber::Hash),
                any::<u64>().prop_map(BlockHashOrNumber::Number)
            ],
            any::<u64>(),
            any::<u64>(),
            any::<bool>(),
        )
            .prop_map(|(id, start, limit, skip, reverse)| {
                EthMessage::GetBlockHeaders(RequestPair::new(
                    id,
                    GetBlockHeaders {
                        start,
                        limit,
                        skip,
                        reverse,
                    },
                ))
            })
            .boxed(),
        (id, vec(header(), 0..4))
            .prop_map(|(id, h)| EthMessage::BlockHeaders(RequestPair::new(id, BlockHeaders(h))))
            .boxed(),
        (id, vec(b256(), 0..8))
            .prop_map(|(id, h)| EthMessage::GetBlockBodies(RequestPair::new(id, GetBlockBodies(h))))
            .boxed(),
        (id, vec(body(), 0..3))
            .prop_map(|(id, b)| EthMessage::BlockBodies(RequestPair::new(id, BlockBodies(b))))
            .boxed(),
        (vec(b256(), 0..8), vec(announcement(), 0..8))
            .prop_map(move |(hashes, typed)| {
                EthMessage::NewPooledTransactionHashes(if version.has_typed_announcements() {
                    NewPooledTransactionHashes::Typed(typed)
                } else {
                    NewPooledTransactionHashes::Hashes(hashes)
                })
            })
            .boxed(),
        (id, vec(b256(), 0..8))
            .prop_map(|(id, h)| {
                EthMessage::GetPooledTransactions(RequestPair::new(id, GetPooledTransactions(h)))
            })
            .boxed(),
        (id, vec(pooled_transaction(), 0..4))
            .prop_map(|(id, t)| {
                EthMessage::PooledTransactions(RequestPair::new(id, PooledTransactions(t)))
            })
            .boxed(),
        (id, vec(b256(), 0..8), any::<u64>())
            .prop_map(move |(id, h, first)| {
                EthMessage::GetReceipts(RequestPair::new(id, GetReceipts::new(version, h, first)))
            })
            .boxed(),
        (id, vec(vec(receipt(), 0..3), 0..3), any::<bool>())
            .prop_map(move |(id, r, incomplete)| {
                let receipts = match Receipts::new(version, r) {
                    Receipts::Paged { blocks, .. } => Receipts::Paged {
                        last_block_incomplete: incomplete,
                        blocks,
                    },
                    other => other,
                };
                EthMessage::Receipts(RequestPair::new(id, receipts))
            })
            .boxed(),
    ];
    if version.has_block_announcements() {
        options.push(
            vec((b256(), any::<u64>()), 0..4)
                .prop_map(|v| {
                    EthMessage::NewBlockHashes(NewBlockHashes(
                        v.into_iter()
                            .map(|(hash, number)| BlockHashNumber { hash, number })
                            .collect(),
                    ))
                })
                .boxed(),
        );
        options.push(
            (header(), body(), u256())
                .prop_map(|(header, body, td)| {
                    EthMessage::NewBlock(Box::new(NewBlock {
                        block: body.into_block(header),
                        td,
                    }))
                })
                .boxed(),
        );
    }
    if version.has_node_data() {
        options.push(
            (id, vec(b256(), 0..8))
                .prop_map(|(id, h)| EthMessage::GetNodeData(RequestPair::new(id, GetNodeData(h))))
                .boxed(),
        );
        options.push(
            (id, vec(bytes(40), 0..4))
                .prop_map(|(id, d)| EthMessage::NodeData(RequestPair::new(id, NodeData(d))))
                .boxed(),
        );
    }
    if version.has_block_range() {
        options.push(
            (any::<u64>(), any::<u64>(), b256())
                .prop_map(|(a, b, latest_hash)| {
                    EthMessage::BlockRangeUpdate(BlockRangeUpdate {
                        earliest: a.min(b),
                        latest: a.max(b),
                        latest_hash,
                    })
                })
                .boxed(),
        );
    }
    proptest::strategy::Union::new(options).boxed()
}

fn version() -> impl Strategy<Value = EthVersion> {
    prop::sample::select(EthVersion::ALL.to_vec())
}

fn message_with_version() -> impl Strategy<Value = (EthVersion, EthMessage)> {
    version().prop_flat_map(|v| message(v).prop_map(move |m| (v, m)))
}

/// Whether every inner list of a decoded message is within `limits`.
fn within_limits(msg: &EthMessage, limits: &crate::DecodeLimits) -> bool {
    let body_ok = |body: &BlockBody, max_txs: usize| {
        body.transactions.len() <= max_txs
            && body.ommers.len() <= limits.max_ommers
            && body.withdrawals.as_ref().map_or(0, |w| w.len()) <= limits.max_withdrawals
    };
    let max_txs = limits.max_txs(limits.max_block_gas);
    match msg {
        EthMessage::BlockBodies(r) => r.message.0.iter().all(|b| body_ok(b, max_txs)),
        EthMessage::NewBlock(b) => body_ok(&b.block.body, limits.max_txs(b.block.header.gas_limit)),
        EthMessage::Receipts(r) => r.message.clone().into_receipts().iter().all(|block| {
            block.len() <= max_txs && block.iter().all(|r| r.logs.len() <= limits.max_logs())
        }),
        _ => true,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Under tight limits (two transactions per block, 112 logs per receipt, no ommers or
    /// withdrawals), every message, intact or with bytes flipped, decodes to a value
    /// within the limits or to an error: never to one beyond them.
    #[test]
    fn decoded_messages_are_within_their_limits(
        (version, msg) in message_with_version(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
    ) {
        let tight = crate::DecodeLimits { max_block_gas: 42_000, max_ommers: 0, max_withdrawals: 0 };
        let (code, mut payload) = msg.encode();
        for (at, byte) in flips {
            if !payload.is_empty() {
                let i = at.index(payload.len());
                payload[i] ^= byte;
            }
        }
        if let Ok(decoded) = EthMessage::decode_bounded(version, code, &payload, &tight) {
            prop_assert!(within_limits(&decoded, &tight), "{:?}", decoded.message_id());
        }
    }

    #[test]
    fn arbitrary_bytes_decode_within_limits(version in version(), code in 0u8..0x14, payload in vec(any::<u8>(), 0..300)) {
        let limits = crate::DecodeLimits::devnet();
        if let Ok(decoded) = EthMessage::decode_bounded(version, code, &payload, &limits) {
            prop_assert!(within_limits(&decoded, &limits));
        }
    }

    #[test]
    fn every_message_round_trips((version, msg) in message_with_version()) {
        let (code, payload) = msg.encode_for(version).unwrap();
        prop_assert_eq!(payload.len(), msg.payload_length());
        let decoded = EthMessage::decode(version, code, &payload).unwrap();
        prop_assert_eq!(&decoded, &msg);
        // Re-encoding is byte-identical: the encoding is canonical.
        prop_assert_eq!(decoded.encode().1, payload);
    }

    #[test]
    fn arbitrary_bytes_never_panic(version in version(), code in 0u8..0x14, payload in vec(any::<u8>(), 0..300)) {
        let _ = EthMessage::decode(version, code, &payload);
    }

    /// Valid messages with bytes flipped, cut short or extended: errors or other valid
    /// messages, never a panic.
    #[test]
    fn mutated_messages_never_panic(
        (version, msg) in message_with_version(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
        extra in vec(any::<u8>(), 0..3),
    ) {
        let (code, mut payload) = msg.encode();
        if !payload.is_empty() {
            for (at, byte) in flips {
                let i = at.index(payload.len());
                payload[i] ^= byte;
            }
            let keep = cut.index(payload.len() + 1);
            let mut cut_short = payload[..keep].to_vec();
            let _ = EthMessage::decode(version, code, &cut_short);
            cut_short.extend(&extra);
            let _ = EthMessage::decode(version, code, &cut_short);
        }
        let _ = EthMessage::decode(version, code, &payload);
        payload.extend(extra);
        let _ = EthMessage::decode(version, code, &payload);
    }

    /// eth/70's receipt messages are eth/69's with one field more: `GetReceipts` the
    /// first receipt index before the hashes, `Receipts` the flag before the lists. Each
    /// round-trips, and the bytes after the new field are eth/69's.
    #[test]
    fn eth70_receipt_forms_are_eth69_plus_one_field(
        id in any::<u64>(),
        first in any::<u64>(),
        hashes in vec(b256(), 0..8),
        incomplete in any::<bool>(),
        blocks in vec(vec(receipt(), 0..3), 0..3),
    ) {
        let (v69, v70) = (EthVersion::Eth69, EthVersion::Eth70);
        let get70 = EthMessage::GetReceipts(RequestPair::new(id, GetReceipts::new(v70, hashes.clone(), first)));
        let get69 = EthMessage::GetReceipts(RequestPair::new(id, GetReceipts::new(v69, hashes.clone(), first)));
        let paged = EthMessage::Receipts(RequestPair::new(id, Receipts::Paged {
            last_block_incomplete: incomplete,
            blocks: blocks.clone(),
        }));
        let plain = EthMessage::Receipts(RequestPair::new(id, Receipts::new(v69, blocks.clone())));
        for (msg, old, field) in [
            (&get70, &get69, alloy_rlp::encode(first)),
            (&paged, &plain, alloy_rlp::encode(incomplete)),
        ] {
            let (code, payload) = msg.encode_for(v70).unwrap();
            prop_assert_eq!(&EthMessage::decode(v70, code, &payload).unwrap(), msg);
            prop_assert!(EthMessage::decode(v69, code, &payload).is_err());
            let (_, old_payload) = old.encode_for(v69).unwrap();
            // Strip both outer list headers and the request id: what is left differs by
            // the new field only.
            let inner = |p: &[u8]| {
                let mut buf = p;
                let h = alloy_rlp::Header::decode(&mut buf).unwrap();
                prop_assert!(h.list && h.payload_length == buf.len());
                let _ = u64::decode(&mut buf).unwrap();
                Ok(buf.to_vec())
            };
            let mut want = field.clone();
            want.extend(inner(&old_payload)?);
            prop_assert_eq!(inner(&payload)?, want);
        }
        let (code, payload) = get70.encode_for(v70).unwrap();
        let Ok(EthMessage::GetReceipts(back)) = EthMessage::decode(v70, code, &payload) else {
            return Err(TestCaseError::fail("not GetReceipts"));
        };
        prop_assert_eq!(back.message.hashes(), &hashes[..]);
        prop_assert_eq!(back.message.first_block_receipt_index(), first);
        let (code, payload) = paged.encode_for(v70).unwrap();
        let Ok(EthMessage::Receipts(back)) = EthMessage::decode(v70, code, &payload) else {
            return Err(TestCaseError::fail("not Receipts"));
        };
        prop_assert_eq!(back.message.last_block_incomplete(), incomplete);
        prop_assert_eq!(back.message.into_receipts(), blocks);
    }

    #[test]
    fn trailing_bytes_are_refused((version, msg) in message_with_version(), extra in vec(any::<u8>(), 1..4)) {
        let (code, mut payload) = msg.encode();
        payload.extend(extra);
        prop_assert!(EthMessage::decode(version, code, &payload).is_err());
    }
}
