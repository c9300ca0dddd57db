//! Capability negotiation and message-id demultiplexing (devp2p `rlpx.md`,
//! "Capability Messaging"; go-ethereum `matchProtocols` behaves the same way).
//!
//! The shared capabilities are the names both sides list, each at the highest
//! version both list. Their message-id spaces follow the `p2p` messages
//! (0x00–0x0f) in alphabetical (byte-wise) order of name, starting at 0x10, each
//! as long as its message count. The remote's counts are not on the wire, so the
//! local declaration's count is used for every shared capability.

use std::{collections::BTreeMap, ops::Deref};

/// The first message id after the `p2p` messages (rlpx.md: "message IDs
/// 0x00–0x0f are reserved for the p2p capability").
pub const BASE_PROTOCOL_OFFSET: u64 = 0x10;

/// A capability this node speaks: name, version and the length of its
/// message-id space (eth/66–68: 17, eth/69: 18).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Capability {
    /// The name, e.g. `eth` (ASCII, at most 8 characters per rlpx.md).
    pub name: String,
    /// The version, e.g. 68.
    pub version: u32,
    /// How many message ids it uses.
    pub message_count: u8,
}

impl Capability {
    /// A capability declaration.
    pub fn new(name: impl Into<String>, version: u32, message_count: u8) -> Self {
        Self {
            name: name.into(),
            version,
            message_count,
        }
    }
}

/// A capability as Hello lists it: `[name, version]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HelloCapability {
    /// The name.
    pub name: String,
    /// The version.
    pub version: u32,
}

impl From<&Capability> for HelloCapability {
    fn from(cap: &Capability) -> Self {
        Self {
            name: cap.name.clone(),
            version: cap.version,
        }
    }
}

/// A capability both sides share, with its place in the message-id space.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SharedCapability {
    /// The name.
    pub name: String,
    /// The highest version both sides list.
    pub version: u32,
    /// Its first message id on the wire.
    pub offset: u64,
    /// How many ids it uses (from the local declaration).
    pub message_count: u8,
}

/// The negotiated capabilities of a session, in offset order; index `i` in
/// this list is the capability index used by [`crate::Incoming::Capability`]
/// and [`crate::SessionWriter::send_capability`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedCapabilities {
    caps: Vec<SharedCapability>,
}

impl SharedCapabilities {
    /// Matches our declarations against the remote Hello's list.
    pub fn negotiate(local: &[Capability], remote: &[HelloCapability]) -> Self {
        // name → (version, message count), highest shared version per name.
        let mut best: BTreeMap<&str, (u32, u8)> = BTreeMap::new();
        for cap in local {
            let shared = remote
                .iter()
                .any(|r| r.name == cap.name && r.version == cap.version);
            if !shared {
                continue;
            }
            let entry = best
                .entry(cap.name.as_str())
                .or_insert((cap.version, cap.message_count));
            if cap.version > entry.0 {
                *entry = (cap.version, cap.message_count);
            }
        }
        let mut offset = BASE_PROTOCOL_OFFSET;
        let caps = best
            .into_iter()
            .map(|(name, (version, message_count))| {
                let cap = SharedCapability {
                    name: name.to_owned(),
                    version,
                    offset,
                    message_count,
                };
                offset += u64::from(message_count);
                cap
            })
            .collect();
        Self { caps }
    }

    /// The capability a wire message id belongs to: `(index, id within it)`.
    pub fn lookup(&self, msg_id: u64) -> Option<(usize, u8)> {
        self.caps.iter().enumerate().find_map(|(index, cap)| {
            let id = msg_id.checked_sub(cap.offset)?;
            (id < u64::from(cap.message_count)).then_some((index, id as u8))
        })
    }

    /// The wire message id of message `id` of capability `index`, if both exist.
    pub fn msg_id(&self, index: usize, id: u8) -> Option<u64> {
        let cap = self.caps.get(index)?;
        (id < cap.message_count).then_some(cap.offset + u64::from(id))
    }

    /// The index of the shared capability called `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.caps.iter().position(|c| c.name == name)
    }

    /// The list, in offset order.
    pub fn as_slice(&self) -> &[SharedCapability] {
        &self.caps
    }

    /// The list, by value.
    pub fn into_vec(self) -> Vec<SharedCapability> {
        self.caps
    }
}

impl Deref for SharedCapabilities {
    type Target = [SharedCapability];

    fn deref(&self) -> &[SharedCapability] {
        &self.caps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hello(caps: &[(&str, u32)]) -> Vec<HelloCapability> {
        caps.iter()
            .map(|(n, v)| HelloCapability {
                name: (*n).to_owned(),
                version: *v,
            })
            .collect()
    }

    #[test]
    fn highest_shared_version_alphabetical_offsets() {
        let local = vec![
            Capability::new("eth", 66, 17),
            Capability::new("eth", 67, 17),
            Capability::new("eth", 68, 17),
            Capability::new("snap", 1, 8),
            Capability::new("les", 4, 23),
            Capability::new("aaa", 1, 3),
        ];
        let remote = hello(&[
            ("snap", 1),
            ("eth", 67),
            ("eth", 66),
            ("eth", 69),
            ("bzz", 1),
            ("aaa", 1),
        ]);
        let shared = SharedCapabilities::negotiate(&local, &remote);
        let got: Vec<_> = shared
            .iter()
            .map(|c| (c.name.as_str(), c.version, c.offset, c.message_count))
            .collect();
        assert_eq!(
            got,
            vec![
                ("aaa", 1, 0x10, 3),
                ("eth", 67, 0x13, 17),
                ("snap", 1, 0x24, 8)
            ]
        );
        assert_eq!(shared.lookup(0x0f), None);
        assert_eq!(shared.lookup(0x10), Some((0, 0)));
        assert_eq!(shared.lookup(0x12), Some((0, 2)));
        assert_eq!(shared.lookup(0x13), Some((1, 0)));
        assert_eq!(shared.lookup(0x23), Some((1, 16)));
        assert_eq!(shared.lookup(0x24), Some((2, 0)));
        assert_eq!(shared.lookup(0x2b), Some((2, 7)));
        assert_eq!(shared.lookup(0x2c), None);
        assert_eq!(shared.lookup(u64::MAX), None);
        assert_eq!(shared.msg_id(1, 16), Some(0x23));
        assert_eq!(shared.msg_id(1, 17), None);
        assert_eq!(shared.msg_id(3, 0), None);
        assert_eq!(shared.position("snap"), Some(2));
    }

    #[test]
    fn nothing_shared() {
        let local = vec![Capability::new("eth", 68, 17)];
        assert!(
            SharedCapabilities::negotiate(&local, &hello(&[("eth", 67), ("snap", 1)])).is_empty()
        );
        assert!(SharedCapabilities::negotiate(&[], &hello(&[("eth", 68)])).is_empty());
    }

    proptest! {
        #[test]
        fn prop_lookup_inverts_msg_id(
            local in prop::collection::vec(("[a-e]{1,3}", 0u32..4, 0u8..20), 0..8),
            remote in prop::collection::vec(("[a-e]{1,3}", 0u32..4), 0..8),
        ) {
            let local: Vec<_> = local.into_iter().map(|(n, v, c)| Capability::new(n, v, c)).collect();
            let remote: Vec<_> = remote.into_iter().map(|(name, version)| HelloCapability { name, version }).collect();
            let shared = SharedCapabilities::negotiate(&local, &remote);
            let mut expected_offset = BASE_PROTOCOL_OFFSET;
            for (index, cap) in shared.iter().enumerate() {
                prop_assert_eq!(cap.offset, expected_offset);
                expected_offset += u64::from(cap.message_count);
                prop_assert!(remote.iter().any(|r| r.name == cap.name && r.version == cap.version));
                // No higher shared version of the same name exists.
                prop_assert!(!local.iter().any(|l| l.name == cap.name && l.version > cap.version
                    && remote.iter().any(|r| r.name == l.name && r.version == l.version)));
                for id in 0..cap.message_count {
                    let msg_id = shared.msg_id(index, id).unwrap();
                    prop_assert_eq!(shared.lookup(msg_id), Some((index, id)));
                }
            }
            prop_assert!(shared.windows(2).all(|w| w[0].name < w[1].name));
            prop_assert_eq!(shared.lookup(expected_offset), None);
        }
    }
}
