//! Known answers from EIP-1459 and go-ethereum's `p2p/dnsdisc` tests, property tests of
//! every entry parser, and walks over an in-memory resolver.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use data_encoding::BASE32_NOPAD;
use enr::CombinedKey;
use k256::ecdsa::{SigningKey, VerifyingKey};
use proptest::prelude::*;
use tokio_util::sync::CancellationToken;

use super::entry::{keccak256, ENR_PREFIX};
use super::resolver::MapResolver;
use super::*;
use crate::Enr;

// ---- EIP-1459's example zone ("DNS Record Structure"), copied from the EIP text ----

const EIP_URL: &str =
    "enrtree://AM5FCQLWIZX2QFPNJAP7VUERCCRNGRHWZG3YYHIUV7BVDQ5FDPRT2@nodes.example.org";
/// The key the EIP says `EIP_URL` holds, uncompressed.
const EIP_URL_KEY: &str = "049f88229042fef9200246f49f94d9b77c4e954721442714e85850cb6d9e5daf2d880ea0e53cb3ac1a75f9923c2726a4f941f7d326781baa6380754a360de5c2b6";
const EIP_ROOT: &str = "enrtree-root:v1 e=JWXYDBPXYWG6FX3GMDIBFA6CJ4 l=C7HRFPF3BLGF3YR4DY5KX3SMBE seq=1 sig=o908WmNp7LibOfPsr4btQwatZJ5URBr2ZAuxvK4UWHlsB9sUOTJQaGAlLPVAhM__XJesCHxLISo94z5Z2a463gA";
const EIP_ENTRIES: [(&str, &str); 5] = [
    ("C7HRFPF3BLGF3YR4DY5KX3SMBE", "enrtree://AM5FCQLWIZX2QFPNJAP7VUERCCRNGRHWZG3YYHIUV7BVDQ5FDPRT2@morenodes.example.org"),
    ("JWXYDBPXYWG6FX3GMDIBFA6CJ4", "enrtree-branch:2XS2367YHAXJFGLZHVAWLQD4ZY,H4FHT4B454P6UXFD7JCYQ5PWDY,MHTDO6TMUBRIA2XWG5LUDACK24"),
    ("2XS2367YHAXJFGLZHVAWLQD4ZY", "enr:-HW4QOFzoVLaFJnNhbgMoDXPnOvcdVuj7pDpqRvh6BRDO68aVi5ZcjB3vzQRZH2IcLBGHzo8uUN3snqmgTiE56CH3AMBgmlkgnY0iXNlY3AyNTZrMaECC2_24YYkYHEgdzxlSNKQEnHhuNAbNlMlWJxrJxbAFvA"),
    ("H4FHT4B454P6UXFD7JCYQ5PWDY", "enr:-HW4QAggRauloj2SDLtIHN1XBkvhFZ1vtf1raYQp9TBW2RD5EEawDzbtSmlXUfnaHcvwOizhVYLtr7e6vw7NAf6mTuoCgmlkgnY0iXNlY3AyNTZrMaECjrXI8TLNXU0f8cthpAMxEshUyQlK-AM0PW2wfrnacNI"),
    ("MHTDO6TMUBRIA2XWG5LUDACK24", "enr:-HW4QLAYqmrwllBEnzWWs7I5Ev2IAs7x_dZlbYdRdMUx5EyKHDXp7AV5CkuPGUPdvbv1_Ms1CPfhcGCvSElSosZmyoqAgmlkgnY0iXNlY3AyNTZrMaECriawHKWdDRk2xeZkrOXBQ0dfMFLHY4eENZwdufn1S1o"),
];

// ---- go-ethereum p2p/dnsdisc (v1.17.10) test vectors ----

/// `signingKeyForTesting` in client_test.go: the key that signed the EIP's example root.
const GETH_TEST_KEY: &str = "dc599867fc513f8f5e2c2c9c489cde5e71362d1d9ec6e693e0de063236ed1240";
/// Its link key, as go-ethereum's tests write it (`TestParseEntry`, `TestClientSyncTree`).
const GETH_TEST_LINK_KEY: &str = "AKPYQIUQIL7PSIACI32J7FGZW56E5FKHEFCCOFHILBIMW3M6LWXS2";

fn geth_key() -> SigningKey {
    let bytes = hex::decode(GETH_TEST_KEY).unwrap();
    SigningKey::from_slice(&bytes).unwrap()
}

fn eip_key() -> VerifyingKey {
    Link::parse(EIP_URL).unwrap().key
}

/// The EIP text is inconsistent: the key it says its example URL holds (`0x049f88…`) is
/// not the key the URL's base32 encodes (`AM5FC…`, the same key as the example's link to
/// `morenodes.example.org`). The stated key is go-ethereum's test key (`AKPYQ…`), and it is
/// the one that signed the example root (next test).
#[test]
fn eip_url_key_differs_from_the_key_the_eip_names() {
    let url = Link::parse(EIP_URL).unwrap();
    assert_eq!(url.domain, "nodes.example.org");
    assert_eq!(url.to_string(), EIP_URL);
    assert_ne!(
        hex::encode(url.key.to_sec1_point(false).as_bytes()),
        EIP_URL_KEY
    );
    let stated = VerifyingKey::from_sec1_bytes(&hex::decode(EIP_URL_KEY).unwrap()).unwrap();
    assert_eq!(stated, *geth_key().verifying_key());
    assert_eq!(Link::new(stated, "n").key_text(), GETH_TEST_LINK_KEY);
    // The example link entry names the URL's key.
    assert_eq!(Link::parse(EIP_ENTRIES[0].1).unwrap().key, url.key);
}

#[test]
fn eip_example_entries_hash_to_their_names() {
    for (name, text) in EIP_ENTRIES {
        assert_eq!(entry_hash(text), name, "{text}");
        let entry = Entry::parse(text).unwrap();
        assert_eq!(entry.to_string(), text, "canonical rendering");
    }
    // Tampering with one character changes the name.
    let (name, text) = EIP_ENTRIES[2];
    let tampered = text.replacen("QOFz", "QOFy", 1);
    assert_ne!(entry_hash(&tampered), name);
}

/// The example root in EIP-1459 does not verify with the key in the EIP's example URL; it
/// does with the public key the EIP states, go-ethereum's test key (`AKPYQ…`:
/// client_test.go `TestClientSyncTree` walks the same records with that URL).
#[test]
fn eip_example_root_verifies_with_the_stated_key_not_the_url_key() {
    let root = Root::parse(EIP_ROOT).unwrap();
    assert_eq!(root.to_string(), EIP_ROOT);
    assert_eq!(root.seq, 1);
    assert_eq!(root.enr_root, "JWXYDBPXYWG6FX3GMDIBFA6CJ4");
    assert_eq!(root.link_root, "C7HRFPF3BLGF3YR4DY5KX3SMBE");
    assert!(!root.verify(&eip_key()), "the discrepancy in the EIP text");
    let stated = VerifyingKey::from_sec1_bytes(&hex::decode(EIP_URL_KEY).unwrap()).unwrap();
    assert!(root.verify(&stated));

    let geth = Link::parse(&format!("enrtree://{GETH_TEST_LINK_KEY}@nodes.example.org")).unwrap();
    assert_eq!(geth.key, *geth_key().verifying_key());
    assert!(root.verify(&geth.key));

    // A tampered root fails: another seq, another subtree hash, another signature.
    let mut other_seq = root.clone();
    other_seq.seq = 2;
    assert!(!other_seq.verify(&geth.key));
    let tampered_e = Root::parse(&EIP_ROOT.replace("e=JWXY", "e=JWXZ")).unwrap();
    assert!(!tampered_e.verify(&geth.key));
    let mut bad_sig = root.clone();
    bad_sig.signature[10] ^= 1;
    assert!(!bad_sig.verify(&geth.key));
}

/// RFC 6979 signatures are deterministic: k256 and libsecp256k1 (go-ethereum) give the
/// same bytes, so the signer reproduces the EIP's whole example zone.
#[test]
fn signer_reproduces_the_eip_example_zone() {
    let enrs: Vec<Enr> = EIP_ENTRIES[2..]
        .iter()
        .map(|(_, t)| t.parse().unwrap())
        .collect();
    let link = Link::parse(EIP_ENTRIES[0].1).unwrap();
    let tree = SignedTree::sign(1, &enrs, &[link], &geth_key());
    assert_eq!(tree.root().to_string(), EIP_ROOT);
    let mut want: Vec<(String, String)> = vec![("nodes.example.org".into(), EIP_ROOT.into())];
    let mut entries: Vec<_> = EIP_ENTRIES
        .iter()
        .map(|(h, t)| (format!("{h}.nodes.example.org"), t.to_string()))
        .collect();
    entries.sort();
    want.extend(entries);
    assert_eq!(tree.to_txt("nodes.example.org"), want);
}

/// go-ethereum `TestParseRoot`.
#[test]
fn geth_parse_root_vectors() {
    // No `l=`.
    assert!(matches!(
        Root::parse("enrtree-root:v1 e=TO4Q75OQ2N7DX4EOOR7X66A6OM seq=3 sig=N-YY6UB9xD0hFx1Gmnt7v0RfSxch5tKyry2SRDoLx7B4GfPXagwLxQqyf7gAMvApFn_ORwZQekMWa_pXrcGCtw"),
        Err(DnsError::Malformed { kind: "root", .. })
    ));
    // A signature of 64 bytes.
    assert!(matches!(
        Root::parse("enrtree-root:v1 e=TO4Q75OQ2N7DX4EOOR7X66A6OM l=TO4Q75OQ2N7DX4EOOR7X66A6OM seq=3 sig=N-YY6UB9xD0hFx1Gmnt7v0RfSxch5tKyry2SRDoLx7B4GfPXagwLxQqyf7gAMvApFn_ORwZQekMWa_pXrcGCtw"),
        Err(DnsError::Malformed { kind: "root", .. })
    ));
    let root = Root::parse("enrtree-root:v1 e=QFT4PBCRX4XQCV3VUYJ6BTCEPU l=JGUFMSAGI7KZYB3P7IZW4S5Y3A seq=3 sig=3FmXuVwpa8Y7OstZTx9PIb1mt8FrW7VpDOFv4AaGCsZ2EIHmhraWhe4NxYhQDlw5MjeFXYMbJjsPeKlHzmJREQE").unwrap();
    assert_eq!(root.enr_root, "QFT4PBCRX4XQCV3VUYJ6BTCEPU");
    assert_eq!(root.link_root, "JGUFMSAGI7KZYB3P7IZW4S5Y3A");
    assert_eq!(root.seq, 3);
    assert_eq!(
        hex::encode(root.signature),
        "dc5997b95c296bc63b3acb594f1f4f21bd66b7c16b5bb5690ce16fe006860ac6761081e686b69685ee0dc588500e5c393237855d831b263b0f78a947ce62511101"
    );
}

/// go-ethereum `TestParseEntry`.
#[test]
fn geth_parse_entry_vectors() {
    let bad_branch = |t: &str| {
        assert!(
            matches!(
                Entry::parse(t),
                Err(DnsError::Malformed { kind: "branch", .. })
            ),
            "{t}"
        )
    };
    bad_branch("enrtree-branch:1,2");
    bad_branch("enrtree-branch:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert_eq!(
        Entry::parse("enrtree-branch:").unwrap(),
        Entry::Branch(vec![])
    );
    assert_eq!(
        Entry::parse("enrtree-branch:AAAAAAAAAAAAAAAAAAAA").unwrap(),
        Entry::Branch(vec!["AAAAAAAAAAAAAAAAAAAA".into()])
    );
    assert_eq!(
        Entry::parse("enrtree-branch:AAAAAAAAAAAAAAAAAAAA,BBBBBBBBBBBBBBBBBBBB").unwrap(),
        Entry::Branch(vec![
            "AAAAAAAAAAAAAAAAAAAA".into(),
            "BBBBBBBBBBBBBBBBBBBB".into()
        ])
    );

    let link = Entry::parse(
        "enrtree://AKPYQIUQIL7PSIACI32J7FGZW56E5FKHEFCCOFHILBIMW3M6LWXS2@nodes.example.org",
    )
    .unwrap();
    assert_eq!(
        link,
        Entry::Link(Link::new(*geth_key().verifying_key(), "nodes.example.org"))
    );
    let bad_link = |t: &str| {
        assert!(
            matches!(
                Entry::parse(t),
                Err(DnsError::Malformed { kind: "link", .. })
            ),
            "{t}"
        )
    };
    bad_link("enrtree://nodes.example.org");
    bad_link("enrtree://AP62DT7WOTEQZGQZOU474PP3KMEGVTTE7A7NPRXKX3DUD57@nodes.example.org");
    bad_link("enrtree://AP62DT7WONEQZGQZOU474PP3KMEGVTTE7A7NPRXKX3DUD57TQHGIA@nodes.example.org");

    let enr = "enr:-HW4QES8QIeXTYlDzbfr1WEzE-XKY4f8gJFJzjJL-9D7TC9lJb4Z3JPRRz1lP4pL_N_QpT6rGQjAU9Apnc-C1iMP36OAgmlkgnY0iXNlY3AyNTZrMaED5IdwfMxdmR8W37HqSFdQLjDkIwBd4Q_MjxgZifgKSdM";
    match Entry::parse(enr).unwrap() {
        Entry::Enr(record) => assert_eq!(record.to_base64(), enr),
        other => panic!("{other:?}"),
    }
    // Padding is not base64url-without-padding.
    assert!(matches!(
        Entry::parse("enr:-HW4QLZHjM4vZXkbp-5xJoHsKSbE7W39FPC8283X-y8oHcHPTnDDlIlzL5ArvDUlHZVDPgmFASrh7cWgLOLxj4wprRkHgmlkgnY0iXNlY3AyNTZrMaEC3t2jLMhDpCDX5mbSEwDn4L3iUfyXzoO8G28XvjGRkrAg="),
        Err(DnsError::Malformed { kind: "enr", .. })
    ));
    for unknown in ["", "foo", "enrtree", "enrtree-x="] {
        assert_eq!(
            Entry::parse(unknown),
            Err(DnsError::UnknownEntry),
            "{unknown:?}"
        );
    }
}

#[test]
fn enr_with_trailing_bytes_or_a_bad_signature_is_refused() {
    let (_, text) = EIP_ENTRIES[2];
    let rlp = data_encoding::BASE64URL_NOPAD
        .decode(&text.as_bytes()[ENR_PREFIX.len()..])
        .unwrap();
    let mut trailing = rlp.clone();
    trailing.push(0x80);
    let trailing = format!("enr:{}", data_encoding::BASE64URL_NOPAD.encode(&trailing));
    assert!(Entry::parse(&trailing).is_err());
    let mut resigned = rlp;
    // A byte inside the signature.
    resigned[10] ^= 1;
    let resigned = format!("enr:{}", data_encoding::BASE64URL_NOPAD.encode(&resigned));
    assert!(Entry::parse(&resigned).is_err());
}

/// go-ethereum `TestClientSyncTree`: the EIP zone under the name `n`, walked with
/// go-ethereum's test key.
#[tokio::test]
async fn geth_sync_tree_vector() {
    let resolver = MapResolver::new(eip_zone("n"));
    let url = Link::parse(&format!("enrtree://{GETH_TEST_LINK_KEY}@n")).unwrap();
    let tree = resolve_tree(&resolver, &url, &DnsLimits::default()).await;
    assert_eq!(tree.report.outcome, TreeOutcome::Walked);
    assert_eq!(tree.report.skipped, vec![]);
    assert_eq!(tree.root.map(|r| r.seq), Some(1));
    let mut got: Vec<String> = tree.enrs.iter().map(|e| e.to_base64()).collect();
    got.sort();
    let mut want: Vec<String> = EIP_ENTRIES[2..]
        .iter()
        .map(|(_, t)| t.to_string())
        .collect();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(
        tree.links.iter().map(|l| l.to_string()).collect::<Vec<_>>(),
        vec![EIP_ENTRIES[0].1.to_string()]
    );
    // Root + 5 entries, each fetched once.
    assert_eq!(tree.report.lookups, 6);

    // With the EIP's own URL key the root is refused.
    let eip = Link::new(eip_key(), "n");
    let refused = resolve_tree(&resolver, &eip, &DnsLimits::default()).await;
    assert!(matches!(
        refused.report.outcome,
        TreeOutcome::Refused(DnsError::BadSignature { .. })
    ));
    assert!(refused.enrs.is_empty());
}

/// go-ethereum `TestClientSyncTreeBadNode`: a tree whose ENR leaf is `enr:-----`. The
/// walk skips it (go-ethereum's `SyncTree` fails) and keeps the link.
#[tokio::test]
async fn geth_bad_node_vector() {
    let root = "enrtree-root:v1 e=INDMVBZEEQ4ESVYAKGIYU74EAA l=C7HRFPF3BLGF3YR4DY5KX3SMBE seq=3 sig=Vl3AmunLur0JZ3sIyJPSH6A3Vvdp4F40jWQeCmkIhmcgwE4VC5U9wpK8C_uL_CMY29fd6FAhspRvq2z_VysTLAA";
    let resolver = MapResolver::new([
        ("n".to_string(), root.to_string()),
        (
            "C7HRFPF3BLGF3YR4DY5KX3SMBE.n".into(),
            EIP_ENTRIES[0].1.into(),
        ),
        ("INDMVBZEEQ4ESVYAKGIYU74EAA.n".into(), "enr:-----".into()),
    ]);
    let url = Link::parse(&format!("enrtree://{GETH_TEST_LINK_KEY}@n")).unwrap();
    let tree = resolve_tree(&resolver, &url, &DnsLimits::default()).await;
    assert_eq!(tree.root.map(|r| r.seq), Some(3));
    assert!(tree.enrs.is_empty());
    assert_eq!(tree.links.len(), 1);
    assert_eq!(tree.report.skipped_total, 1);
    match &tree.report.skipped[0] {
        DnsError::Entry { name, source } => {
            assert_eq!(name, "INDMVBZEEQ4ESVYAKGIYU74EAA.n.");
            assert!(matches!(**source, DnsError::Malformed { kind: "enr", .. }));
        }
        other => panic!("{other:?}"),
    }
}

fn eip_zone(domain: &str) -> Vec<(String, String)> {
    let mut zone = vec![(domain.to_string(), EIP_ROOT.to_string())];
    zone.extend(
        EIP_ENTRIES
            .iter()
            .map(|(h, t)| (format!("{h}.{domain}"), t.to_string())),
    );
    zone
}

// ---- test records ----

/// A record for node `i`, `seq` as given, with an IPv4 address and UDP/TCP ports.
pub(super) fn test_enr(i: u32, seq: u64) -> Enr {
    let mut secret = [0u8; 32];
    secret[..4].copy_from_slice(&i.to_be_bytes());
    secret[31] = 1;
    let key = CombinedKey::secp256k1_from_bytes(&mut secret).unwrap();
    Enr::builder()
        .seq(seq)
        .ip4(std::net::Ipv4Addr::new(10, 0, (i >> 8) as u8, i as u8))
        .udp4(30303)
        .tcp4(30303)
        .build(&key)
        .unwrap()
}

/// 64 records, made once: signing is slow in debug builds.
pub(super) static TEST_ENRS: LazyLock<Vec<Enr>> =
    LazyLock::new(|| (0..64).map(|i| test_enr(i, 1)).collect());

pub(super) fn tree_key(seed: u8) -> SigningKey {
    SigningKey::from_slice(&[seed; 32]).unwrap()
}

fn sorted(enrs: impl IntoIterator<Item = Enr>) -> Vec<String> {
    let mut v: Vec<String> = enrs.into_iter().map(|e| e.to_base64()).collect();
    v.sort();
    v
}

// ---- signer ----

#[test]
fn signed_tree_entries_are_named_by_their_hashes_and_branches_are_small() {
    for n in [0, 1, 2, 13, 14, 40, 64] {
        let tree = SignedTree::sign(7, &TEST_ENRS[..n], &[], &tree_key(1));
        assert!(tree.root().verify(tree_key(1).verifying_key()));
        let mut leaves = 0;
        for (hash, text) in tree.entries() {
            assert_eq!(entry_hash(text), hash);
            match Entry::parse(text).unwrap() {
                Entry::Branch(children) => assert!(children.len() <= MAX_CHILDREN, "{n}"),
                Entry::Enr(_) => leaves += 1,
                Entry::Link(_) => panic!("no links given"),
            }
            assert!(text.len() <= DnsLimits::default().max_txt_bytes);
        }
        assert_eq!(leaves, n);
    }
}

#[tokio::test]
async fn signed_tree_walks_back_to_its_records() {
    let other = SignedTree::sign(1, &TEST_ENRS[..1], &[], &tree_key(2));
    let link = other.link("other.example.org");
    let tree = SignedTree::sign(
        3,
        &TEST_ENRS[..40],
        std::slice::from_ref(&link),
        &tree_key(1),
    );
    let resolver = MapResolver::new(tree.to_txt("nodes.example.org"));
    let url = tree.link("nodes.example.org");
    let walked = resolve_tree(&resolver, &url, &DnsLimits::default()).await;
    assert_eq!(walked.report.skipped, vec![]);
    assert_eq!(sorted(walked.enrs), sorted(TEST_ENRS[..40].to_vec()));
    assert_eq!(walked.links, vec![link]);
    // Root, then one lookup per entry.
    assert_eq!(walked.report.lookups, 1 + tree.entries().count());
}

#[tokio::test]
async fn walk_bounds_entries_and_depth() {
    let tree = SignedTree::sign(1, &TEST_ENRS[..64], &[], &tree_key(1));
    let resolver = MapResolver::new(tree.to_txt("n.example.org"));
    let url = tree.link("n.example.org");

    let few = DnsLimits::default().with_max_entries(10);
    let walked = resolve_tree(&resolver, &url, &few).await;
    assert!(walked.report.limits_hit.contains(&"max entries"));
    assert!(walked.report.lookups <= 1 + 10);
    assert!(walked.enrs.len() < 10);
    // Depth first: what was fetched within the bound includes leaves.
    assert!(!walked.enrs.is_empty());

    // 64 leaves under 13-child branches: two levels below the top.
    let shallow = DnsLimits::default().with_max_depth(1);
    let walked = resolve_tree(&resolver, &url, &shallow).await;
    assert!(walked.report.limits_hit.contains(&"max depth"));
    assert!(walked.enrs.is_empty());
}

#[tokio::test]
async fn hash_mismatch_and_wrong_subtree_are_skipped() {
    let tree = SignedTree::sign(1, &TEST_ENRS[..3], &[], &tree_key(1));
    let mut zone = tree.to_txt("n.example.org");
    // Swap one leaf's content for another record: it no longer matches its name.
    let leaf = zone
        .iter()
        .position(|(_, v)| v.starts_with("enr:"))
        .unwrap();
    zone[leaf].1 = TEST_ENRS[10].to_base64();
    let resolver = MapResolver::new(zone);
    let walked = resolve_tree(
        &resolver,
        &tree.link("n.example.org"),
        &DnsLimits::default(),
    )
    .await;
    assert_eq!(walked.enrs.len(), 2);
    assert!(matches!(
        walked.report.skipped[..],
        [DnsError::HashMismatch { .. }]
    ));

    // An ENR in the link subtree (a tree whose `l=` is a leaf record).
    let key = tree_key(1);
    let enr_text = TEST_ENRS[0].to_base64();
    let root = Root::sign(
        entry_hash("enrtree-branch:"),
        entry_hash(&enr_text),
        1,
        &key,
    );
    let resolver = MapResolver::new([
        ("w.example.org".to_string(), root.to_string()),
        (
            format!("{}.w.example.org", entry_hash("enrtree-branch:")),
            "enrtree-branch:".into(),
        ),
        (format!("{}.w.example.org", entry_hash(&enr_text)), enr_text),
    ]);
    let url = Link::new(*key.verifying_key(), "w.example.org");
    let walked = resolve_tree(&resolver, &url, &DnsLimits::default()).await;
    assert!(walked.enrs.is_empty());
    assert!(matches!(
        walked.report.skipped[..],
        [DnsError::WrongSubtree { kind: "enr", .. }]
    ));
}

#[tokio::test]
async fn service_follows_links_once_and_ignores_stale_roots() {
    // a links to b, b links back to a (a loop) and to c.
    let (ka, kb, kc) = (tree_key(1), tree_key(2), tree_key(3));
    let la = Link::new(*ka.verifying_key(), "a.example.org");
    let lb = Link::new(*kb.verifying_key(), "b.example.org");
    let lc = Link::new(*kc.verifying_key(), "c.example.org");
    let a = SignedTree::sign(5, &TEST_ENRS[0..10], std::slice::from_ref(&lb), &ka);
    let b = SignedTree::sign(1, &TEST_ENRS[10..20], &[la.clone(), lc.clone()], &kb);
    let c = SignedTree::sign(1, &TEST_ENRS[20..30], &[], &kc);
    let resolver = Arc::new(MapResolver::new(
        [
            a.to_txt("a.example.org"),
            b.to_txt("b.example.org"),
            c.to_txt("c.example.org"),
        ]
        .concat(),
    ));
    let config = DnsConfig::default()
        .with_urls([la.to_string()])
        .with_refresh(Duration::from_millis(50));
    let cancel = CancellationToken::new();
    let (dns, mut rx) =
        DnsDiscovery::start_with_resolver(config, resolver.clone(), cancel.clone()).unwrap();
    let mut got = Vec::new();
    while got.len() < 30 {
        got.push(
            tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    assert_eq!(sorted(got), sorted(TEST_ENRS[..30].to_vec()));

    let mut reports = dns.reports();
    let first = reports.wait_for(|r| r.round >= 1).await.unwrap().clone();
    assert_eq!(first.trees.len(), 3);
    assert!(first.trees[1]
        .skipped
        .iter()
        .any(|e| matches!(e, DnsError::Repeated { name } if *name == la.to_string())));

    // A replayed older root of a (seq 4 < 5, validly signed) is ignored.
    let old = SignedTree::sign(4, &TEST_ENRS[40..41], &[], &ka);
    resolver.set(old.to_txt("a.example.org"));
    let round = reports
        .wait_for(|r| r.round > first.round)
        .await
        .unwrap()
        .clone();
    assert_eq!(round.trees[0].outcome, TreeOutcome::Stale { cached: 5 });
    assert_eq!(round.trees[0].lookups, 1);
    // b and c unchanged: one root lookup each.
    assert_eq!(round.trees[1].outcome, TreeOutcome::Unchanged);
    assert_eq!(round.trees[2].lookups, 1);
    assert!(rx.try_recv().is_err(), "nothing new");
    dns.shutdown().await;
}

#[test]
fn config_rejects_bad_urls() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = DnsConfig::default().with_urls(["enrtree://nothing@example.org"]);
        let resolver = Arc::new(MapResolver::default());
        let err = DnsDiscovery::start_with_resolver(config, resolver, CancellationToken::new())
            .unwrap_err();
        assert!(matches!(
            err,
            crate::Error::Dns(DnsError::Malformed { kind: "link", .. })
        ));
    });
}

// ---- property tests ----

fn hash_text() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<u8>(), 12..=32).prop_map(|b| BASE32_NOPAD.encode(&b))
}

fn domain() -> impl Strategy<Value = String> {
    "[a-z0-9_-]{1,20}(\\.[a-zA-Z0-9-]{1,20}){0,4}"
}

fn signing_key() -> impl Strategy<Value = SigningKey> {
    any::<[u8; 32]>().prop_filter_map("not a scalar", |b| SigningKey::from_slice(&b).ok())
}

proptest! {
    #[test]
    fn parsers_never_panic(text in ".{0,600}") {
        let _ = Root::parse(&text);
        let _ = Entry::parse(&text);
        let _ = Link::parse(&text);
    }

    #[test]
    fn parsers_never_panic_past_the_prefix(
        prefix in prop::sample::select(vec![
            "enrtree-root:v1 ", "enrtree-root:v1 e=", "enrtree-branch:", "enrtree://", "enr:",
            "enr:-", "enrtree-root:v1 e=JWXYDBPXYWG6FX3GMDIBFA6CJ4 l=C7HRFPF3BLGF3YR4DY5KX3SMBE seq=",
        ]),
        rest in "[ -~]{0,450}",
    ) {
        let text = format!("{prefix}{rest}");
        let _ = Root::parse(&text);
        let _ = Entry::parse(&text);
        let _ = Link::parse(&text);
    }

    #[test]
    fn root_round_trips(e in hash_text(), l in hash_text(), seq: u64, sig in prop::array::uniform32(any::<u8>()), sig2 in prop::array::uniform32(any::<u8>()), v: u8) {
        let mut signature = [0u8; 65];
        signature[..32].copy_from_slice(&sig);
        signature[32..64].copy_from_slice(&sig2);
        signature[64] = v;
        let root = Root { enr_root: e, link_root: l, seq, signature };
        prop_assert_eq!(Root::parse(&root.to_string()), Ok(root));
    }

    #[test]
    fn signed_root_verifies_only_with_its_key(e in hash_text(), l in hash_text(), seq: u64, key in signing_key(), other in signing_key()) {
        let root = Root::sign(e, l, seq, &key);
        let parsed = Root::parse(&root.to_string()).unwrap();
        prop_assert!(parsed.verify(key.verifying_key()));
        prop_assert_eq!(parsed.verify(other.verifying_key()), key == other);
    }

    #[test]
    fn branch_round_trips(children in prop::collection::vec(hash_text(), 0..20)) {
        let entry = Entry::Branch(children);
        prop_assert_eq!(Entry::parse(&entry.to_string()), Ok(entry));
    }

    #[test]
    fn link_round_trips(key in signing_key(), domain in domain()) {
        let link = Link::new(*key.verifying_key(), domain);
        prop_assert_eq!(Link::parse(&link.to_string()), Ok(link.clone()));
        prop_assert_eq!(Entry::parse(&link.to_string()), Ok(Entry::Link(link)));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn enr_round_trips(i: u32, seq: u64) {
        let enr = test_enr(i, seq);
        let text = enr.to_base64();
        prop_assert_eq!(Entry::parse(&text), Ok(Entry::Enr(Box::new(enr))));
        prop_assert_eq!(Entry::parse(&text).unwrap().to_string(), text);
    }

    #[test]
    fn signed_trees_hash_and_walk_back(n in 0usize..64, seq: u64, seed in 1u8..200) {
        let key = tree_key(seed);
        let tree = SignedTree::sign(seq, &TEST_ENRS[..n], &[], &key);
        for (hash, text) in tree.entries() {
            prop_assert_eq!(entry_hash(text), hash);
            prop_assert_eq!(BASE32_NOPAD.decode(hash.as_bytes()).unwrap(), keccak256(text.as_bytes())[..16].to_vec());
        }
        let resolver = MapResolver::new(tree.to_txt("t.example.org"));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let walked = rt.block_on(resolve_tree(&resolver, &tree.link("t.example.org"), &DnsLimits::default()));
        prop_assert_eq!(walked.report.skipped_total, 0);
        prop_assert_eq!(sorted(walked.enrs), sorted(TEST_ENRS[..n].to_vec()));
    }
}
