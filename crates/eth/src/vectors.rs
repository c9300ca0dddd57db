//! Published vectors (see `testdata/README.md` for where each comes from). Every hash
//! asserted here was published by someone else; none is computed by our encoder first.

use alloy_consensus::{SignableTransaction, TxEip4844, TxReceipt};
use alloy_eips::eip2718::{Decodable2718, Encodable2718};
use alloy_primitives::{address, b256, hex, Address, Bloom, Bytes, Signature, B256, B64, U256};
use alloy_rlp::Decodable;

use crate::*;

fn testdata(name: &str) -> Vec<u8> {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    hex::decode(text.trim()).unwrap()
}

/// Mainnet block 0, from its well-known fields.
#[test]
fn mainnet_genesis_header() {
    let header = Header {
        parent_hash: B256::ZERO,
        ommers_hash: alloy_consensus::EMPTY_OMMER_ROOT_HASH,
        beneficiary: Address::ZERO,
        state_root: b256!("d7f8974fb5ac78d9ac099b9ad5018bedc2ce0a72dad1827a1709da30580f0544"),
        transactions_root: alloy_consensus::EMPTY_ROOT_HASH,
        receipts_root: alloy_consensus::EMPTY_ROOT_HASH,
        logs_bloom: Bloom::ZERO,
        difficulty: U256::from(17_179_869_184u64),
        number: 0,
        gas_limit: 5000,
        gas_used: 0,
        timestamp: 0,
        extra_data: Bytes::from(hex!(
            "11bbe8db4e347b4e8c937c1c8370e4b5ed33adb3db69cbdb7a38e1e50b1b82fa"
        )),
        mix_hash: B256::ZERO,
        nonce: B64::from(0x42u64),
        ..Default::default()
    };
    assert_eq!(
        header.hash_slow(),
        b256!("d4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3")
    );
}

/// Mainnet block 1, from its well-known fields.
#[test]
fn mainnet_block_1_header() {
    let header = Header {
        parent_hash: b256!("d4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3"),
        ommers_hash: alloy_consensus::EMPTY_OMMER_ROOT_HASH,
        beneficiary: address!("05a56e2d52c817161883f50c441c3228cfe54d9f"),
        state_root: b256!("d67e4d450343046425ae4271474353857ab860dbc0a1dde64b41b5cd3a532bf3"),
        transactions_root: alloy_consensus::EMPTY_ROOT_HASH,
        receipts_root: alloy_consensus::EMPTY_ROOT_HASH,
        logs_bloom: Bloom::ZERO,
        difficulty: U256::from(17_171_480_576u64),
        number: 1,
        gas_limit: 5000,
        gas_used: 0,
        timestamp: 1_438_269_988,
        extra_data: Bytes::from(&b"Geth/v1.0.0/linux/go1.4.2"[..]),
        mix_hash: b256!("969b900de27b6ac6a67742365dd65f55a0526c41fd18e1b16f1a1215c2e66f59"),
        nonce: B64::from(0x539bd4979fef1ec4u64),
        ..Default::default()
    };
    assert_eq!(
        header.hash_slow(),
        b256!("88e96d4537bea4d9c05d12549907b32561d3bf31f45aae734cdc119f13406cb6")
    );
}

/// Mainnet block 15537393, the last proof-of-work block: header, body (one EIP-1559
/// transaction) and receipts, from portal-spec-tests.
#[test]
fn mainnet_block_15537393() {
    let header_rlp = testdata("mainnet-15537393.header.hex");
    let header: Header = alloy_rlp::decode_exact(&header_rlp).unwrap();
    assert_eq!(header.number, 15_537_393);
    assert_eq!(
        header.hash_slow(),
        b256!("55b11b918355b1ef9c5db810302ebad0bf2544255b530cdce90674d5887bb286")
    );
    assert_eq!(alloy_rlp::encode(&header), header_rlp);

    let body_rlp = testdata("mainnet-15537393.body.hex");
    let body: BlockBody = alloy_rlp::decode_exact(&body_rlp).unwrap();
    assert_eq!(alloy_rlp::encode(&body), body_rlp);
    assert_eq!(body.transactions.len(), 1);
    assert_eq!(body.transactions[0].tx_type(), TxType::Eip1559);
    assert_eq!(
        alloy_consensus::proofs::calculate_transaction_root(&body.transactions),
        header.transactions_root
    );
    assert_eq!(body.calculate_ommers_root(), header.ommers_hash);

    // The receipts are stored in the eth/69 form; the consensus form with blooms must
    // hash to the header's receipts root.
    let receipts_rlp = testdata("mainnet-15537393.receipts69.hex");
    let receipts: Vec<Receipt> = alloy_rlp::decode_exact(&receipts_rlp).unwrap();
    assert_eq!(alloy_rlp::encode(&receipts), receipts_rlp);
    assert_eq!(receipts_root(&receipts), header.receipts_root);
    assert_eq!(logs_bloom(&receipts), header.logs_bloom);
    assert_eq!(
        receipts.last().map(|r| r.cumulative_gas_used()),
        Some(header.gas_used)
    );

    // The same data through the messages of both receipt forms and of block exchange.
    let hash = header.hash_slow();
    for version in EthVersion::ALL {
        let msg = EthMessage::Receipts(RequestPair::new(
            9,
            Receipts::new(version, vec![receipts.clone()]),
        ));
        let (code, payload) = msg.encode_for(version).unwrap();
        let EthMessage::Receipts(back) = EthMessage::decode(version, code, &payload).unwrap()
        else {
            panic!("not receipts")
        };
        assert_eq!(back.message.into_receipts(), vec![receipts.clone()]);
    }
    let block = EthMessage::NewBlock(Box::new(NewBlock {
        block: body.clone().into_block(header.clone()),
        td: U256::from(1),
    }));
    let (code, payload) = block.encode_for(EthVersion::Eth68).unwrap();
    let EthMessage::NewBlock(back) = EthMessage::decode(EthVersion::Eth68, code, &payload).unwrap()
    else {
        panic!("not a block")
    };
    assert_eq!(back.block.header.hash_slow(), hash);
}

/// Mainnet block 22431084, the first Prague block: a header with every field through
/// `requests_hash`. The hash is the portal-spec-tests content key of the header.
#[test]
fn mainnet_block_22431084_header() {
    let rlp = testdata("mainnet-22431084.header.hex");
    let header: Header = alloy_rlp::decode_exact(&rlp).unwrap();
    assert_eq!(header.number, 22_431_084);
    assert!(header.base_fee_per_gas.is_some());
    assert!(header.withdrawals_root.is_some());
    assert!(header.blob_gas_used.is_some() && header.excess_blob_gas.is_some());
    assert!(header.parent_beacon_block_root.is_some());
    assert!(header.requests_hash.is_some());
    assert_eq!(
        header.hash_slow(),
        b256!("50c8cab760b2948349c590461b166773c45d8f4858cccf5a43025ab2960152e8")
    );
    assert_eq!(alloy_rlp::encode(&header), rlp);
}

/// Decodes a raw (EIP-2718) transaction, checks its published hash and that it
/// re-encodes to the same bytes, in both the block form and the `Transactions` form.
fn check_tx(file: &str, ty: TxType, hash: B256) -> TransactionSigned {
    let raw = testdata(file);
    let tx = TransactionSigned::decode_2718_exact(&raw).unwrap();
    assert_eq!(tx.tx_type(), ty, "{file}");
    assert_eq!(*tx.tx_hash(), hash, "{file}");
    assert_eq!(tx.encoded_2718(), raw, "{file}");
    // Inside a message, typed transactions are wrapped in an RLP string.
    let msg = EthMessage::Transactions(Transactions(vec![tx.clone()]));
    let (code, payload) = msg.encode_for(EthVersion::Eth68).unwrap();
    assert_eq!(
        EthMessage::decode(EthVersion::Eth68, code, &payload).unwrap(),
        msg
    );
    tx
}

#[test]
fn mainnet_transactions() {
    check_tx(
        "mainnet-tx-legacy-280cde7c.hex",
        TxType::Legacy,
        b256!("280cde7cdefe4b188750e76c888f13bd05ce9a4d7767730feefe8a0e50ca6fc4"),
    );
    check_tx(
        "mainnet-tx-1559-ce4dc6d7.hex",
        TxType::Eip1559,
        b256!("ce4dc6d7a7549a98ee3b071b67e970879ff51b5b95d1c340bacd80fa1e1aab31"),
    );
    check_tx(
        "mainnet-tx-1559-86718885.hex",
        TxType::Eip1559,
        b256!("86718885c4b4218c6af87d3d0b0d83e3cc465df2a05c048aa4db9f1a6f9de91f"),
    );
    // Not mainnet: the ethereum/tests vector (see testdata/README.md).
    check_tx(
        "ethtests-tx-2930-accessListStorage32Bytes.hex",
        TxType::Eip2930,
        b256!("b4f8b14a7aaf85ec2f76be9fbe4155deae1f87b2da95af73be3c27ed8d4c8cb7"),
    );
    check_tx(
        "mainnet-tx-4844-93fc9daa.hex",
        TxType::Eip4844,
        b256!("93fc9daaa0726c3292a2e939df60f7e773c6a6a726a61ce43f4a217c64d85e87"),
    );
}

/// The mainnet blob transaction 0x93fc9daa… rebuilt from its published fields and
/// signature: the published hash pins our encoding of every field.
#[test]
fn mainnet_4844_from_fields() {
    let tx = TxEip4844 {
        chain_id: 1,
        nonce: 15435,
        gas_limit: 8_000_000,
        max_fee_per_gas: 10_571_233_596,
        max_priority_fee_per_gas: 1_000_000_000,
        to: address!("a8cb082a5a689e0d594d7da1e2d72a3d63adc1bd"),
        value: U256::ZERO,
        access_list: Default::default(),
        blob_versioned_hashes: vec![
            b256!("01e5276d91ac1ddb3b1c2d61295211220036e9a04be24c00f76916cc2659d004"),
            b256!("0128eb58aff09fd3a7957cd80aa86186d5849569997cdfcfa23772811b706cc2"),
        ],
        max_fee_per_blob_gas: 1,
        input: testdata("mainnet-tx-4844-93fc9daa.input.hex").into(),
    };
    let signature = Signature::new(
        U256::from_be_bytes(hex!(
            "6c173c3c8db3e3299f2f728d293b912c12e75243e3aa66911c2329b58434e2a4"
        )),
        U256::from_be_bytes(hex!(
            "7dd4d1c228cedc5a414a668ab165d9e888e61e4c3b44cd7daf9cdcc4cec5d6b2"
        )),
        false,
    );
    let signed: TransactionSigned = tx.into_signed(signature).into();
    assert_eq!(
        *signed.tx_hash(),
        b256!("93fc9daaa0726c3292a2e939df60f7e773c6a6a726a61ce43f4a217c64d85e87")
    );
    assert_eq!(
        signed.encoded_2718(),
        testdata("mainnet-tx-4844-93fc9daa.hex")
    );
}

/// EIP-2481's test cases: every request/response message of eth/66 with request id 1111.
#[test]
fn eip2481_messages() {
    let path = format!("{}/testdata/eip2481.txt", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let mut seen = 0;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut parts = line.split_whitespace();
        let (name, code, rlp) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let code = u8::from_str_radix(code, 16).unwrap();
        let payload = hex::decode(rlp).unwrap();
        let msg = EthMessage::decode(EthVersion::Eth66, code, &payload)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(format!("{:?}", msg.message_id()), name);
        assert_eq!(msg.request_id(), Some(1111), "{name}");
        assert_eq!(
            msg.encode_for(EthVersion::Eth66).unwrap(),
            (code, payload),
            "{name}"
        );

        // The hashes the EIP publishes for the objects inside.
        let header_hash = b256!("8c2f2af15b7b563b6ab1e09bed0e9caade7ed730aec98b70a993597a797579a9");
        let tx_hashes = [
            b256!("588df025c4c2d757d3e314bd3dfbfe352687324e6b8557ad1731585e96928aed"),
            b256!("f39c7dac06a9f3abf09faf5e30439a349d3717611b3ed337cd52b0d192bc72da"),
        ];
        match &msg {
            EthMessage::BlockHeaders(m) => assert_eq!(m.message.0[0].hash_slow(), header_hash),
            EthMessage::BlockBodies(m) => {
                let body = &m.message.0[0];
                let hashes: Vec<B256> = body.transactions.iter().map(|t| *t.tx_hash()).collect();
                assert_eq!(hashes, tx_hashes);
                assert_eq!(body.ommers[0].hash_slow(), header_hash);
            }
            EthMessage::PooledTransactions(m) => {
                let hashes: Vec<B256> = m.message.0.iter().map(|t| *t.tx_hash()).collect();
                assert_eq!(hashes, tx_hashes);
            }
            EthMessage::Receipts(m) => {
                let Receipts::WithBloom(blocks) = &m.message else {
                    panic!("eth/66 form")
                };
                let r = &blocks[0][0].receipt;
                assert!(!r.success);
                assert_eq!(r.cumulative_gas_used, 1);
                assert_eq!(r.logs.len(), 1);
                assert_eq!(r.logs[0].data.data.as_ref(), &hex!("0100ff"));
            }
            _ => {}
        }
        seen += 1;
    }
    assert_eq!(seen, 11);
}

/// Decoding a receipt list from the raw vector without the helper, to show the format.
#[test]
fn receipts69_shape() {
    let rlp = testdata("mainnet-15537393.receipts69.hex");
    let mut buf = &rlp[..];
    let list = Vec::<Receipt>::decode(&mut buf).unwrap();
    assert!(buf.is_empty());
    assert_eq!(list[0].tx_type, TxType::Eip1559);
    assert!(list[0].success);
}

/// EIP-7975 (eth/70) publishes no test vectors. These bytes are go-ethereum v1.17.10's
/// (`rlp.EncodeToBytes` of its `GetReceiptsPacket70`, `ReceiptsPacket70` and, for
/// comparison, the eth/69 packets, in `eth/protocols/eth/protocol.go`, the receipts built
/// with its `NewReceiptList`), and every field is annotated by hand below. Request id 1111
/// (`0x0457`), as in EIP-2481's vectors.
#[test]
fn eip7975_messages_as_go_ethereum_encodes_them() {
    let hashes = vec![B256::repeat_byte(0x11), B256::repeat_byte(0x22)];
    let receipts = vec![
        vec![Receipt {
            tx_type: TxType::Eip1559,
            success: true,
            cumulative_gas_used: 21_000,
            logs: vec![],
        }],
        vec![Receipt {
            tx_type: TxType::Legacy,
            success: false,
            cumulative_gas_used: 0x01_0000,
            logs: vec![alloy_primitives::Log::new_unchecked(
                Address::repeat_byte(0x33),
                vec![B256::repeat_byte(0x44)],
                Bytes::from_static(&hex!("0100ff")),
            )],
        }],
    ];
    let h11 = "a01111111111111111111111111111111111111111111111111111111111111111";
    let h22 = "a02222222222222222222222222222222222222222222222222222222222222222";
    // [type 2, status 1, cumulative gas 21 000, no logs]
    let r1 = "c7c60201825208c0";
    // [type 0, status 0, cumulative gas 65 536, [[address 0x33…, [topic 0x44…], data 0100ff]]]
    let r2 = concat!(
        "f847f845808083010000f83df83b94",
        "3333333333333333333333333333333333333333",
        "e1a0",
        "4444444444444444444444444444444444444444444444444444444444444444",
        "830100ff"
    );
    let cases = [
        (
            "GetReceipts eth/70",
            EthVersion::Eth70,
            // [1111, firstBlockReceiptIndex 3, [hash, hash]]
            format!("f84882045703f842{h11}{h22}"),
            EthMessage::GetReceipts(RequestPair::new(
                1111,
                GetReceipts::new(EthVersion::Eth70, hashes.clone(), 3),
            )),
        ),
        (
            "Receipts eth/70, last block incomplete",
            EthVersion::Eth70,
            // [1111, lastBlockIncomplete 1, [[r1], [r2]]]
            format!("f85782045701f851{r1}{r2}"),
            EthMessage::Receipts(RequestPair::new(
                1111,
                Receipts::Paged {
                    last_block_incomplete: true,
                    blocks: receipts.clone(),
                },
            )),
        ),
        (
            "Receipts eth/70, complete",
            EthVersion::Eth70,
            // [1111, lastBlockIncomplete 0 (the empty string), [[r1], [r2]]]
            format!("f85782045780f851{r1}{r2}"),
            EthMessage::Receipts(RequestPair::new(
                1111,
                Receipts::new(EthVersion::Eth70, receipts.clone()),
            )),
        ),
        (
            "GetReceipts eth/69",
            EthVersion::Eth69,
            format!("f847820457f842{h11}{h22}"),
            EthMessage::GetReceipts(RequestPair::new(1111, GetReceipts::from(hashes.clone()))),
        ),
        (
            "Receipts eth/69",
            EthVersion::Eth69,
            format!("f856820457f851{r1}{r2}"),
            EthMessage::Receipts(RequestPair::new(
                1111,
                Receipts::new(EthVersion::Eth69, receipts.clone()),
            )),
        ),
    ];
    for (name, version, hex, msg) in cases {
        let payload = hex::decode(&hex).unwrap();
        let code = msg.message_id().code();
        assert_eq!(
            EthMessage::decode(version, code, &payload).unwrap(),
            msg,
            "{name}"
        );
        assert_eq!(msg.encode_for(version).unwrap(), (code, payload), "{name}");
    }
}
