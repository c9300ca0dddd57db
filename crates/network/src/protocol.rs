//! Protocol ids: validated names such as `/eth/68/1.0.0`.

use std::fmt;
use std::sync::Arc;

use crate::Error;

/// The longest protocol id accepted. multistream-select allows longer lines, but
/// ids are names, not payloads.
pub const MAX_PROTOCOL_ID_LEN: usize = 140;

/// A protocol id: starts with `/`, printable ASCII without spaces, at most
/// [`MAX_PROTOCOL_ID_LEN`] bytes. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProtocolId(Arc<str>);

impl ProtocolId {
    /// Validates `id`.
    pub fn new(id: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::InvalidProtocolId {
            id: id.chars().take(MAX_PROTOCOL_ID_LEN).collect(),
            why: why.to_string(),
        };
        if !id.starts_with('/') {
            return Err(bad("must start with '/'"));
        }
        if id.len() > MAX_PROTOCOL_ID_LEN {
            return Err(bad("too long"));
        }
        if !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad("only printable ASCII without spaces is allowed"));
        }
        Ok(Self(id.into()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The RLPx capability this id stands for: `/<name>/<version>/1.0.0` with a
    /// lowercase alphanumeric name and an unsigned integer version (WIRE.md §2).
    pub fn capability(&self) -> Option<(&str, u32)> {
        let rest = self.0.strip_prefix('/')?;
        let mut parts = rest.split('/');
        let (name, version, suffix) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || suffix != "1.0.0" {
            return None;
        }
        let name_ok = !name.is_empty()
            && name.len() <= 8
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let version_ok = !version.is_empty()
            && version.bytes().all(|b| b.is_ascii_digit())
            && (version == "0" || !version.starts_with('0'));
        if !name_ok || !version_ok {
            return None;
        }
        Some((name, version.parse().ok()?))
    }

    /// The stream-stack id of an RLPx capability.
    pub fn from_capability(name: &str, version: u32) -> Result<Self, Error> {
        Self::new(&format!("/{name}/{version}/1.0.0"))
    }
}

impl AsRef<str> for ProtocolId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProtocolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ProtocolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProtocolId({})", &self.0)
    }
}

impl TryFrom<&str> for ProtocolId {
    type Error = Error;
    fn try_from(id: &str) -> Result<Self, Error> {
        Self::new(id)
    }
}

impl std::str::FromStr for ProtocolId {
    type Err = Error;
    fn from_str(id: &str) -> Result<Self, Error> {
        Self::new(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn validation() {
        assert!(ProtocolId::new("/eth/68/1.0.0").is_ok());
        assert!(ProtocolId::new("eth/68").is_err());
        assert!(ProtocolId::new("/a b").is_err());
        assert!(ProtocolId::new("/a\n").is_err());
        assert!(ProtocolId::new(&format!("/{}", "x".repeat(200))).is_err());
    }

    #[test]
    fn capabilities() {
        let id = ProtocolId::new("/eth/68/1.0.0").unwrap();
        assert_eq!(id.capability(), Some(("eth", 68)));
        assert_eq!(
            ProtocolId::from_capability("snap", 1).unwrap().as_str(),
            "/snap/1/1.0.0"
        );
        for not in [
            "/demo/echo/1.0.0",
            "/eth/68/2.0.0",
            "/Eth/68/1.0.0",
            "/eth/68",
            "/ipfs/ping/1.0.0",
            "/eth/x1/1.0.0",
        ] {
            assert_eq!(ProtocolId::new(not).unwrap().capability(), None, "{not}");
        }
    }

    proptest! {
        #[test]
        fn never_panics_and_round_trips(s in "\\PC{0,160}") {
            if let Ok(id) = ProtocolId::new(&s) {
                prop_assert_eq!(id.as_str(), s.as_str());
                if let Some((name, version)) = id.capability() {
                    prop_assert_eq!(ProtocolId::from_capability(name, version).unwrap(), id.clone());
                }
            }
        }
    }
}
