//! The text of EIP-1459 tree entries: the signed root, branches, links and ENR leaves.
//!
//! Every parser here takes text from a DNS server we do not trust: it never panics and
//! refuses anything that is not exactly one entry (the property tests check both).
//! Rendering is canonical, so `parse(render(x)) == x` and an entry's name (its
//! [`entry_hash`]) is the hash of its rendering.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use data_encoding::{Encoding, BASE32_NOPAD, BASE64URL_NOPAD};
use k256::ecdsa::signature::hazmat::PrehashVerifier;
use k256::ecdsa::{RecoveryId, Signature, SigningKey, VerifyingKey};
use sha3::{Digest, Keccak256};

use super::DnsError;
use crate::Enr;

/// Prefix of a tree root (EIP-1459, "DNS Record Structure").
pub const ROOT_PREFIX: &str = "enrtree-root:v1";
/// Prefix of an intermediate entry listing child hashes (EIP-1459).
pub const BRANCH_PREFIX: &str = "enrtree-branch:";
/// Prefix of a link to another tree, and the scheme of tree URLs (EIP-1459).
pub const LINK_PREFIX: &str = "enrtree://";
/// Prefix of a leaf holding a node record: the ENR text form (EIP-778, EIP-1459).
pub const ENR_PREFIX: &str = "enr:";

/// Bytes of keccak256 an entry's name keeps: the EIP's "abbreviated" hash is 16 bytes
/// (26 base32 characters), as go-ethereum's signer writes them.
pub const HASH_BYTES: usize = 16;
/// Shortest hash accepted in a branch or root: go-ethereum accepts 12 to 32 bytes
/// (`minHashLength`), so trees signed with truncated hashes still resolve.
pub const MIN_HASH_BYTES: usize = 12;
/// Longest hash accepted: all of keccak256.
pub const MAX_HASH_BYTES: usize = 32;
/// Length of a root signature: secp256k1 `r ‖ s ‖ v` (EIP-1459: "a 65-byte secp256k1 EC
/// signature").
pub const SIGNATURE_BYTES: usize = 65;
/// Longest domain a link may name (RFC 1035: 255 octets on the wire, 253 as text).
pub const MAX_DOMAIN_LEN: usize = 253;

/// Base32 without padding that ignores the unused low bits of the last character, as Go's
/// `base32` (and so go-ethereum) does: go-ethereum's tests name children like
/// `BBBBBBBBBBBBBBBBBBBB`, whose last character has such bits set. Rendering uses the
/// canonical [`BASE32_NOPAD`]; what a hash means is checked against content anyway.
static BASE32_LENIENT: LazyLock<Encoding> = LazyLock::new(|| {
    let mut spec = BASE32_NOPAD.specification();
    spec.check_trailing_bits = false;
    spec.encoding().unwrap_or_else(|_| BASE32_NOPAD.clone())
});

/// keccak256 of `text`.
pub(crate) fn keccak256(text: &[u8]) -> [u8; 32] {
    Keccak256::digest(text).into()
}

/// The name of an entry under its tree's domain: base32 (no padding) of the first 16
/// bytes of keccak256 of the entry's text (EIP-1459).
pub fn entry_hash(text: &str) -> String {
    BASE32_NOPAD.encode(&keccak256(text.as_bytes())[..HASH_BYTES])
}

/// Decodes an entry hash (a root's `e=`/`l=` or a branch child): base32 of 12 to 32 bytes.
pub(crate) fn decode_hash(hash: &str) -> Option<Vec<u8>> {
    // Bound before decoding: 32 bytes are at most 52 base32 characters.
    if hash.len() > 52 {
        return None;
    }
    let bytes = BASE32_LENIENT.decode(hash.as_bytes()).ok()?;
    (MIN_HASH_BYTES..=MAX_HASH_BYTES)
        .contains(&bytes.len())
        .then_some(bytes)
}

/// Whether `text` hashes to the name `hash` it was fetched under (a prefix of its
/// keccak256, as long as the hash is).
pub(crate) fn matches_hash(hash: &str, text: &str) -> bool {
    decode_hash(hash).is_some_and(|want| keccak256(text.as_bytes()).starts_with(&want))
}

fn malformed(kind: &'static str, problem: &'static str) -> DnsError {
    DnsError::Malformed { kind, problem }
}

/// A tree root: `enrtree-root:v1 e=<enr-root> l=<link-root> seq=<n> sig=<signature>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Root {
    /// Hash of the top entry of the ENR subtree.
    pub enr_root: String,
    /// Hash of the top entry of the link subtree.
    pub link_root: String,
    /// The tree's sequence number; a signer raises it on every update.
    pub seq: u64,
    /// secp256k1 signature `r ‖ s ‖ v` over keccak256 of [`Root::signed_text`].
    pub signature: [u8; SIGNATURE_BYTES],
}

impl fmt::Debug for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string())
    }
}

impl Root {
    /// The text the signature covers: the root without ` sig=…` (EIP-1459).
    pub fn signed_text(&self) -> String {
        format!(
            "{ROOT_PREFIX} e={} l={} seq={}",
            self.enr_root, self.link_root, self.seq
        )
    }

    /// An unsigned root with `key`'s signature (deterministic, RFC 6979).
    pub fn sign(enr_root: String, link_root: String, seq: u64, key: &SigningKey) -> Self {
        let mut root = Root {
            enr_root,
            link_root,
            seq,
            signature: [0; SIGNATURE_BYTES],
        };
        let digest = keccak256(root.signed_text().as_bytes());
        let (sig, recid): (Signature, RecoveryId) = key.sign_prehash_recoverable(&digest);
        root.signature[..64].copy_from_slice(&sig.to_bytes());
        root.signature[64] = recid.to_byte();
        root
    }

    /// Whether the signature is `key`'s. Like go-ethereum, the recovery byte `v` is not
    /// checked; `s` must be in the lower half (k256 and libsecp256k1 both insist).
    pub fn verify(&self, key: &VerifyingKey) -> bool {
        let Ok(sig) = Signature::from_slice(&self.signature[..64]) else {
            return false;
        };
        let digest = keccak256(self.signed_text().as_bytes());
        key.verify_prehash(&digest, &sig).is_ok()
    }

    /// Parses root text. The signature is not verified here ([`Root::verify`]).
    pub fn parse(text: &str) -> Result<Self, DnsError> {
        const KIND: &str = "root";
        let rest = text
            .strip_prefix(ROOT_PREFIX)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or(malformed(KIND, "no enrtree-root:v1 prefix"))?;
        // Exactly four space-separated fields, in the EIP's order.
        let mut fields = rest.split(' ');
        let mut field = |name: &'static str| {
            fields
                .next()
                .and_then(|f| f.strip_prefix(name))
                .ok_or(malformed(KIND, "fields are not e= l= seq= sig="))
        };
        let enr_root = field("e=")?;
        let link_root = field("l=")?;
        let seq = field("seq=")?;
        let sig = field("sig=")?;
        if fields.next().is_some() {
            return Err(malformed(KIND, "text after sig="));
        }
        if decode_hash(enr_root).is_none() || decode_hash(link_root).is_none() {
            return Err(malformed(KIND, "e= or l= is not a base32 hash"));
        }
        // Decimal digits only (u64's parser would also take a leading `+`), so the
        // rendering the signature covers is the text received.
        if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed(KIND, "seq= is not a decimal number"));
        }
        let seq = seq
            .parse::<u64>()
            .map_err(|_| malformed(KIND, "seq= is not a 64-bit number"))?;
        // Bound before decoding: 65 bytes are 87 base64 characters.
        if sig.len() != 87 {
            return Err(malformed(KIND, "sig= is not 65 bytes of base64url"));
        }
        let sig = BASE64URL_NOPAD
            .decode(sig.as_bytes())
            .map_err(|_| malformed(KIND, "sig= is not base64url"))?;
        let signature: [u8; SIGNATURE_BYTES] = sig
            .try_into()
            .map_err(|_| malformed(KIND, "sig= is not 65 bytes"))?;
        Ok(Root {
            enr_root: enr_root.to_owned(),
            link_root: link_root.to_owned(),
            seq,
            signature,
        })
    }
}

impl fmt::Display for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} sig={}",
            self.signed_text(),
            BASE64URL_NOPAD.encode(&self.signature)
        )
    }
}

impl FromStr for Root {
    type Err = DnsError;
    fn from_str(s: &str) -> Result<Self, DnsError> {
        Root::parse(s)
    }
}

/// A link to a tree: `enrtree://<base32 compressed public key>@<domain>`. It is both the
/// URL a node is configured with and a leaf of a tree's link subtree.
#[derive(Clone, PartialEq, Eq)]
pub struct Link {
    /// The key that signs the tree's root.
    pub key: VerifyingKey,
    /// The DNS name whose TXT record holds the root.
    pub domain: String,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string())
    }
}

impl Link {
    /// A link to the tree at `domain` signed by `key`.
    pub fn new(key: VerifyingKey, domain: impl Into<String>) -> Self {
        Link {
            key,
            domain: domain.into(),
        }
    }

    /// Parses `enrtree://<key>@<domain>`.
    pub fn parse(text: &str) -> Result<Self, DnsError> {
        const KIND: &str = "link";
        let rest = text
            .strip_prefix(LINK_PREFIX)
            .ok_or(malformed(KIND, "no enrtree:// prefix"))?;
        let (key, domain) = rest
            .split_once('@')
            .ok_or(malformed(KIND, "no public key before @"))?;
        // Bound before decoding: 33 bytes are 53 base32 characters.
        if key.len() != 53 {
            return Err(malformed(KIND, "the key is not 33 bytes of base32"));
        }
        let key = BASE32_LENIENT
            .decode(key.as_bytes())
            .map_err(|_| malformed(KIND, "the key is not base32"))?;
        // Compressed only: the EIP's URL carries the 33-byte form.
        if key.len() != 33 {
            return Err(malformed(KIND, "the key is not a compressed secp256k1 key"));
        }
        let key = VerifyingKey::from_sec1_bytes(&key)
            .map_err(|_| malformed(KIND, "the key is not a secp256k1 point"))?;
        if !valid_domain(domain) {
            return Err(malformed(KIND, "the domain is not a DNS name"));
        }
        Ok(Link::new(key, domain))
    }

    /// The compressed key in base32, as in the URL.
    pub fn key_text(&self) -> String {
        BASE32_NOPAD.encode(self.key.to_sec1_point(true).as_bytes())
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{LINK_PREFIX}{}@{}", self.key_text(), self.domain)
    }
}

impl FromStr for Link {
    type Err = DnsError;
    fn from_str(s: &str) -> Result<Self, DnsError> {
        Link::parse(s)
    }
}

/// A DNS name as text: labels of 1–63 letters, digits, `-` or `_`, at most 253
/// characters, no trailing dot (the walker adds it to make lookups absolute, so a name
/// never goes through the system's search list).
pub(crate) fn valid_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= MAX_DOMAIN_LEN
        && domain.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// A non-root entry, the TXT content of `<hash>.<domain>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// `enrtree-branch:<h1>,<h2>,…`: the hashes of child entries (possibly none).
    Branch(Vec<String>),
    /// `enrtree://…`: a link to another tree (only in the link subtree).
    Link(Link),
    /// `enr:…`: a node record (only in the ENR subtree). Its signature is verified.
    Enr(Box<Enr>),
}

impl Entry {
    /// Parses entry text: a branch, a link or an ENR. A root is not an entry here.
    pub fn parse(text: &str) -> Result<Self, DnsError> {
        if let Some(children) = text.strip_prefix(BRANCH_PREFIX) {
            parse_branch(children).map(Entry::Branch)
        } else if text.starts_with(LINK_PREFIX) {
            Link::parse(text).map(Entry::Link)
        } else if let Some(b64) = text.strip_prefix(ENR_PREFIX) {
            parse_enr(b64).map(|enr| Entry::Enr(Box::new(enr)))
        } else {
            Err(DnsError::UnknownEntry)
        }
    }

    /// The entry's kind, as logs and errors name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Entry::Branch(_) => "branch",
            Entry::Link(_) => "link",
            Entry::Enr(_) => "enr",
        }
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Branch(children) => write!(f, "{BRANCH_PREFIX}{}", children.join(",")),
            Entry::Link(link) => link.fmt(f),
            Entry::Enr(enr) => f.write_str(&enr.to_base64()),
        }
    }
}

impl FromStr for Entry {
    type Err = DnsError;
    fn from_str(s: &str) -> Result<Self, DnsError> {
        Entry::parse(s)
    }
}

fn parse_branch(children: &str) -> Result<Vec<String>, DnsError> {
    // An empty branch is valid: it is how an empty subtree is written.
    if children.is_empty() {
        return Ok(Vec::new());
    }
    children
        .split(',')
        .map(|hash| {
            decode_hash(hash)
                .map(|_| hash.to_owned())
                .ok_or(malformed("branch", "a child is not a base32 hash"))
        })
        .collect()
}

/// Longest ENR text accepted: EIP-778 caps a record at 300 bytes, 400 in base64.
const MAX_ENR_BASE64: usize = 400;

fn parse_enr(b64: &str) -> Result<Enr, DnsError> {
    const KIND: &str = "enr";
    if b64.len() > MAX_ENR_BASE64 {
        return Err(malformed(KIND, "longer than 300 bytes"));
    }
    let rlp = BASE64URL_NOPAD
        .decode(b64.as_bytes())
        .map_err(|_| malformed(KIND, "not base64url without padding"))?;
    // `decode_exact`: the record must be all of the text (the `enr` crate's own `FromStr`
    // would accept trailing bytes). Decoding verifies the record's signature.
    alloy_rlp::decode_exact::<Enr>(&rlp).map_err(|_| malformed(KIND, "not a valid signed record"))
}
