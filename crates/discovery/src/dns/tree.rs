//! The signer: a tree built from a list of ENRs and links, signed with the list's key
//! and rendered to the TXT records an operator publishes.
//!
//! The layout is go-ethereum's (`p2p/dnsdisc/tree.go`, `MakeTree`): ENRs sorted by node
//! id, branches of at most [`MAX_CHILDREN`] children, a lone entry standing as its own
//! subtree root. The same input therefore gives the same records as `devp2p dns sign`,
//! which the EIP's example tree checks.

use std::collections::BTreeMap;

use k256::ecdsa::{SigningKey, VerifyingKey};

use super::entry::{entry_hash, Entry, Link, Root};
use crate::Enr;

/// Most children in one branch: go-ethereum's `maxChildren`. Thirteen 26-character
/// hashes and their commas keep a branch's TXT answer within the 512-byte UDP limit
/// EIP-1459 asks records to fit, with room left for a long query name.
pub const MAX_CHILDREN: usize = 13;

/// A signed tree: its root and every entry by name (hash).
#[derive(Clone, Debug)]
pub struct SignedTree {
    root: Root,
    key: VerifyingKey,
    /// Entry hash → entry text.
    entries: BTreeMap<String, String>,
}

impl SignedTree {
    /// Builds and signs a tree of `enrs` (one per node id: the highest `seq` is kept) and
    /// `links` (duplicates dropped), with sequence number `seq`.
    pub fn sign(seq: u64, enrs: &[Enr], links: &[Link], key: &SigningKey) -> Self {
        let mut records: Vec<&Enr> = enrs.iter().collect();
        // Highest seq first within a node id, so dedup keeps it.
        records.sort_by(|a, b| {
            a.node_id()
                .raw()
                .cmp(&b.node_id().raw())
                .then(b.seq().cmp(&a.seq()))
        });
        records.dedup_by(|b, a| a.node_id() == b.node_id());
        let enr_texts = records.iter().map(|enr| enr.to_base64()).collect();

        let mut link_texts: Vec<String> = Vec::with_capacity(links.len());
        for link in links {
            let text = Entry::Link(link.clone()).to_string();
            if !link_texts.contains(&text) {
                link_texts.push(text);
            }
        }

        let mut entries = BTreeMap::new();
        let enr_root = build(enr_texts, &mut entries);
        let link_root = build(link_texts, &mut entries);
        let enr_hash = insert(&mut entries, enr_root);
        let link_hash = insert(&mut entries, link_root);
        SignedTree {
            root: Root::sign(enr_hash, link_hash, seq, key),
            key: *key.verifying_key(),
            entries,
        }
    }

    /// The signed root.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// The link (URL) to this tree when published at `domain`.
    pub fn link(&self, domain: &str) -> Link {
        Link::new(self.key, domain)
    }

    /// Every entry below the root as `(hash, text)`, in hash order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(h, t)| (h.as_str(), t.as_str()))
    }

    /// The TXT records to publish the tree at `domain`: `(name, value)` with the root at
    /// `domain` first, then `<hash>.<domain>` for every entry. Values longer than 255
    /// bytes go out as several character-strings of one record (clients join them);
    /// splitting is the DNS server's or provider's job.
    pub fn to_txt(&self, domain: &str) -> Vec<(String, String)> {
        let mut records = Vec::with_capacity(self.entries.len() + 1);
        records.push((domain.to_owned(), self.root.to_string()));
        for (hash, text) in &self.entries {
            records.push((format!("{hash}.{domain}"), text.clone()));
        }
        records
    }
}

pub(super) fn insert(entries: &mut BTreeMap<String, String>, text: String) -> String {
    let hash = entry_hash(&text);
    entries.insert(hash.clone(), text);
    hash
}

/// The text of the top entry of a subtree holding `leaves`; every entry below it goes into
/// `entries` (the top entry itself is the caller's to insert).
pub(super) fn build(mut leaves: Vec<String>, entries: &mut BTreeMap<String, String>) -> String {
    if leaves.len() == 1 {
        return leaves.remove(0);
    }
    if leaves.len() <= MAX_CHILDREN {
        let hashes: Vec<String> = leaves
            .into_iter()
            .map(|text| insert(entries, text))
            .collect();
        return Entry::Branch(hashes).to_string();
    }
    let mut subtrees = Vec::with_capacity(leaves.len().div_ceil(MAX_CHILDREN));
    while !leaves.is_empty() {
        let rest = leaves.split_off(leaves.len().min(MAX_CHILDREN));
        let sub = build(std::mem::replace(&mut leaves, rest), entries);
        insert(entries, sub.clone());
        subtrees.push(sub);
    }
    build(subtrees, entries)
}
