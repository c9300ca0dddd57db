//! Writes the seed corpus of every fuzz target (`fuzz/corpus/<target>/seed-*`) from
//! valid encodings: devnet blocks and messages, Status, Hello, handshake bodies,
//! frames, enode URLs, multiaddrs, a config file, a transaction. Run it after a
//! target or an encoding changes; the files are checked in and replayed by
//! `tests/it/fuzz_corpus.rs`.
//!
//! ```text
//! cargo run -p devmux-tests --example fuzz_seeds
//! ```

use std::path::PathBuf;

use bytes::BytesMut;
use devmux_chain::devnet::Devnet;
use devmux_eth::alloy_eips::eip2718::Encodable2718;
use devmux_eth::alloy_primitives::{Address, B256, U256};
use devmux_eth::alloy_rlp::{self, Encodable};
use devmux_eth::{
    Block, BlockBodies, BlockHeaders, ChainStatus, EthMessage, EthVersion, ForkHash, ForkId,
    NewBlock, RequestPair, Status,
};
use devmux_network::{encode_frame, Message, NodeKey};
use devmux_rlpx::{DisconnectReason, Hello, HelloCapability};

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut written = 0;
    let mut seed = |target: &str, data: Vec<u8>| -> anyhow::Result<()> {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        let n = std::fs::read_dir(&dir)?.count();
        std::fs::write(dir.join(format!("seed-{n:03}")), data)?;
        written += 1;
        Ok(())
    };
    for target in [
        "registrar_frame",
        "noise_payload",
        "identify_goodbye",
        "rlpx_handshake",
        "rlpx_p2p",
        "eth_message",
        "eth_status_forkid",
        "text_inputs",
        "noise_frames",
        "rlpx_frames",
        "enr",
    ] {
        let dir = root.join(target);
        if dir.exists() {
            for f in std::fs::read_dir(&dir)? {
                let f = f?.path();
                if f.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
                {
                    std::fs::remove_file(f)?;
                }
            }
        }
    }

    // Registrar frames: a few messages back to back, and a lone empty one.
    let mut frames = BytesMut::new();
    for (code, len) in [(0u8, 0usize), (1, 5), (0x11, 300), (7, 70_000)] {
        encode_frame(&Message::new(code, vec![0xab; len]), &mut frames);
    }
    seed("registrar_frame", frames.to_vec())?;
    seed("registrar_frame", vec![1, 0])?;

    // Noise payloads: protobuf fields 1 and 2 (key, signature) with plausible sizes.
    let key = NodeKey::from_secret_bytes(&[7u8; 32])?;
    let mut payload = vec![0x0a, 37, 0x08, 0x02, 0x12, 33];
    payload.extend(
        key.libp2p_keypair()
            .public()
            .encode_protobuf()
            .iter()
            .skip(4),
    );
    payload.extend([0x12, 70, 0x30, 68]);
    payload.extend([1u8; 68]);
    seed("noise_payload", payload)?;

    // identify: a length-prefixed protobuf with a public key; goodbye: a framed reason.
    let public = key.libp2p_keypair().public().encode_protobuf();
    let mut identify = vec![0x0a, public.len() as u8];
    identify.extend(&public);
    identify.extend([0x2a, 13]);
    identify.extend(b"devmux/0.1.0 ");
    let mut framed = unsigned_varint::encode::usize_buffer();
    let mut msg = vec![0u8];
    msg.extend(unsigned_varint::encode::usize(identify.len(), &mut framed));
    msg.extend(&identify);
    seed("identify_goodbye", msg)?;
    let mut goodbye = BytesMut::new();
    let reason = devmux_rlpx::p2p::encode_disconnect(DisconnectReason::TooManyPeers);
    encode_frame(&Message::new(1, reason.to_vec()), &mut goodbye);
    let mut g = vec![1u8];
    g.extend(&goodbye[..]);
    seed("identify_goodbye", g)?;

    // ECIES bodies: EIP-8 RLP auth [sig, pubkey, nonce, 4] and ack [pubkey, nonce, 4],
    // and the fixed pre-EIP-8 layouts.
    let item = |b: &[u8]| alloy_rlp::encode(b);
    let vsn = alloy_rlp::encode(4u8);
    let auth = devmux_tests::hostile::rlp_list(&[
        &item(&[1u8; 65]),
        &item(&[2u8; 64]),
        &item(&[3u8; 32]),
        &vsn,
    ]);
    let ack = devmux_tests::hostile::rlp_list(&[&item(&[2u8; 64]), &item(&[3u8; 32]), &vsn]);
    seed("rlpx_handshake", [&[1u8][..], &auth].concat())?;
    seed("rlpx_handshake", [&[3u8][..], &ack].concat())?;
    seed("rlpx_handshake", [vec![0u8], vec![9u8; 194]].concat())?;
    seed("rlpx_handshake", [vec![2u8], vec![9u8; 97]].concat())?;

    // p2p: a Hello, a Disconnect, a Snappy payload.
    let hello = Hello {
        protocol_version: 5,
        client_id: "devmux/0.1.0".into(),
        capabilities: vec![
            HelloCapability {
                name: "eth".into(),
                version: 68,
            },
            HelloCapability {
                name: "eth".into(),
                version: 69,
            },
        ],
        listen_port: 30303,
        id: [4u8; 64],
    };
    let mut out = Vec::new();
    hello.encode(&mut out);
    seed("rlpx_p2p", [&[0u8][..], &out].concat())?;
    seed("rlpx_p2p", [&[1u8][..], &reason[..]].concat())?;
    let compressed = snap::raw::Encoder::new().compress_vec(&[0x42u8; 5000])?;
    seed("rlpx_p2p", [&[2u8][..], &compressed].concat())?;

    // eth: devnet blocks as headers, bodies and NewBlock, for every version.
    let devnet = Devnet::new()?;
    let blocks: Vec<_> = devnet.blocks(4).collect();
    let messages = [
        EthMessage::BlockHeaders(RequestPair::new(
            7,
            BlockHeaders(blocks.iter().map(|b| b.header.clone()).collect()),
        )),
        EthMessage::BlockBodies(RequestPair::new(
            8,
            BlockBodies(blocks.iter().map(|b| b.body.clone()).collect()),
        )),
        EthMessage::NewBlock(Box::new(NewBlock {
            block: Block::new(blocks[2].header.clone(), blocks[2].body.clone()),
            td: U256::from(4),
        })),
    ];
    for (i, version) in EthVersion::ALL.iter().enumerate() {
        for msg in &messages {
            if let Ok((code, payload)) = msg.encode_for(*version) {
                seed("eth_message", [&[i as u8, code][..], &payload].concat())?;
            }
        }
    }

    // Status (every version), a fork id, an ENR eth entry.
    let spec = devmux_chain::ChainSpec::devnet();
    let filter = spec.fork_filter(devmux_eth::Head::default());
    let chain = ChainStatus {
        genesis: spec.genesis_hash(),
        head_hash: B256::repeat_byte(1),
        head_number: 4,
        head_timestamp: 1_700_000_008,
        total_difficulty: U256::from(5),
        earliest: 0,
        fork_id: filter.current(),
        fork_filter: filter,
    };
    for version in EthVersion::ALL {
        let (_, payload) =
            EthMessage::Status(Status::new(version, 1337, &chain)).encode_for(version)?;
        seed("eth_status_forkid", [&[0u8][..], &payload].concat())?;
    }
    let id = ForkId {
        hash: ForkHash([0xfc, 0x64, 0xec, 0x04]),
        next: 1_150_000,
    };
    seed(
        "eth_status_forkid",
        [&[1u8][..], &alloy_rlp::encode(id)].concat(),
    )?;
    seed(
        "eth_status_forkid",
        [&[2u8][..], &devmux_discovery::encode_enr_value(id)].concat(),
    )?;

    // Text: an enode, a multiaddr, a config file; a devnet transaction's bytes.
    let enode = format!(
        "enode://{}@127.0.0.1:30303?discport=30304",
        hex::encode([4u8; 64])
    );
    seed("text_inputs", enode.into_bytes())?;
    seed(
        "text_inputs",
        format!("/ip4/127.0.0.1/tcp/30303/p2p/{}", key.peer_id()).into_bytes(),
    )?;
    seed(
        "text_inputs",
        b"dev = true\nport = 30303\ndev-blocks = 100\nstatic-peers = []\nhttp = \"127.0.0.1:8545\"\n"
            .to_vec(),
    )?;
    let tx = devnet.transfer(1, 0, Address::ZERO, U256::from(1));
    let mut raw = Vec::new();
    tx.encode_2718(&mut raw);
    seed("text_inputs", raw)?;
    let mut header = Vec::new();
    blocks[0].header.encode(&mut header);
    seed("text_inputs", header)?;

    // Noise transport messages: `chunk ‖ read size ‖ (kind ‖ len LE ‖ bytes)*`: good
    // messages in trickled reads, one over a byte-at-a-time socket, then a raw byte, a
    // tampered message.
    let record = |kind: u8, body: &[u8]| {
        let len = (body.len() as u16).to_le_bytes();
        [&[kind, len[0], len[1]][..], body].concat()
    };
    let good = [
        record(0, b"hello"),
        record(1, &[0x5a; 1200]),
        record(0, b""),
    ]
    .concat();
    seed("noise_frames", [&[3u8, 1][..], &good].concat())?;
    seed(
        "noise_frames",
        [&[0u8, 0][..], &record(0, &[7; 300])].concat(),
    )?;
    seed(
        "noise_frames",
        [&[9u8, 2][..], &good, &record(2, &[0])].concat(),
    )?;
    seed(
        "noise_frames",
        [&[200u8, 200][..], &good, &record(3, b"flip")].concat(),
    )?;

    // RLPx frames: `mode ‖ (kind ‖ lo ‖ hi ‖ bytes)*`: Ping, Pong, eth and snap
    // messages of ours (kind 3; the message id from the kind's upper bits), plain and
    // Snappy; a frame with a lying header (kind 1), a raw frame body (kind 0).
    let ping = record(3, &[]);
    let pong = record(3 | 1 << 3, &[]);
    let eth_status = record(3 | 1 << 2, &alloy_rlp::encode(vec![68u64, 1337, 1]));
    let snap_accounts = record(3 | 1 << 2 | 1 << 3 | 1 << 4, &[0xc2; 6]);
    let messages = [ping, pong, eth_status, snap_accounts].concat();
    seed("rlpx_frames", [&[0u8][..], &messages].concat())?;
    seed("rlpx_frames", [&[1u8][..], &messages].concat())?;
    let large = record(3 | 1 << 2 | 7 << 4, &[0x11; 2000]);
    seed("rlpx_frames", [&[6u8][..], &messages, &large].concat())?;
    let mut lying = vec![0u8; 16];
    lying[..3].copy_from_slice(&[0x00, 0x40, 0x00]);
    lying.extend([0x10, 0xc0]);
    seed("rlpx_frames", [&[0u8, 1, 18, 0][..], &lying].concat())?;
    seed(
        "rlpx_frames",
        [&[1u8, 0, 3, 0][..], &[0x02, 0x01, 0xc0]].concat(),
    )?;

    // ENRs: a node's own record as RLP and as text, and entries of a record to sign.
    let record_key = NodeKey::from_secret_bytes(&[5u8; 32])?;
    let config = devmux_discovery::DiscoveryConfig {
        rlpx_tcp_port: Some(30303),
        mux_tcp_port: Some(31303),
        eth: ForkId {
            hash: ForkHash([0xde, 0xad, 0xbe, 0xef]),
            next: 0,
        },
        ..devmux_discovery::DiscoveryConfig::default()
    };
    let enr = devmux_discovery::local_enr(&config, &record_key)?;
    seed("enr", [&[0u8][..], &alloy_rlp::encode(&enr)].concat())?;
    seed("enr", [&[1u8][..], enr.to_base64().as_bytes()].concat())?;
    let entry = |key: &str, value: &[u8]| {
        [
            &[key.len() as u8][..],
            key.as_bytes(),
            &[value.len() as u8],
            value,
        ]
        .concat()
    };
    let eth = devmux_discovery::encode_enr_value(config.eth);
    seed(
        "enr",
        [
            &[2u8][..],
            &entry("ip", &[0x84, 198, 51, 100, 7]),
            &entry("tcp", &[0x82, 0x76, 0x5f]),
            &entry("mux", &[0x82, 0x7a, 0x47]),
            &entry("eth", &eth),
        ]
        .concat(),
    )?;
    seed(
        "enr",
        [
            &[2u8][..],
            &entry("ip", &[0x84, 127, 0, 0, 1]),
            &entry("tcp", &[0x82, 0x76, 0x5f]),
            &entry("eth", &eth),
        ]
        .concat(),
    )?;

    println!("{written} seeds written under {}", root.display());
    Ok(())
}
