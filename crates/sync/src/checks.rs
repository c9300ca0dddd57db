//! Checks of what peers send against what it must match: headers against their parents
//! here, bodies and receipts against their headers in the chain's
//! [`devmux_chain::validate`] (one place for each rule). Pure functions, so that faults
//! are pinned on the peer that sent the data.

use devmux_chain::ChainSpec;
use devmux_eth::alloy_consensus::EMPTY_ROOT_HASH;
use devmux_eth::alloy_primitives::B256;
use devmux_eth::Header;

/// A header and its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Hashed {
    pub(crate) header: Header,
    pub(crate) hash: B256,
}

impl Hashed {
    pub(crate) fn new(header: Header) -> Self {
        let hash = header.hash_slow();
        Self { header, hash }
    }
}

/// How a header response fails to extend the chain.
#[derive(Debug)]
pub(crate) enum LinkError {
    /// The first header does not link to the parent we asked after: the peer's chain
    /// changed since (not a lie by itself).
    Detached,
    /// The headers do not link among themselves: a lie.
    Invalid(String),
    /// A header breaks one of the chain's header rules, its seal included: a lie, whose
    /// cost the chain's error says ([`crate::download::block_refusal`]).
    Rule(devmux_chain::Error),
}

/// Links `headers` to `parent` and to each other, and checks each against the chain's
/// header rules ([`devmux_chain::validate::validate_header`], the one place those rules
/// live), all before any body is requested. A first header that does not follow
/// `parent` is [`LinkError::Detached`] (the peer's chain moved); headers that do not
/// link among themselves are [`LinkError::Invalid`], and a broken rule
/// [`LinkError::Rule`].
pub(crate) fn link_headers(
    spec: &ChainSpec,
    parent: &Hashed,
    headers: Vec<Header>,
) -> Result<Vec<Hashed>, LinkError> {
    let now = devmux_chain::validate::now_secs();
    let mut out: Vec<Hashed> = Vec::with_capacity(headers.len());
    for header in headers {
        let prev = out.last().unwrap_or(parent);
        if header.parent_hash != prev.hash {
            if out.is_empty() {
                return Err(LinkError::Detached);
            }
            return Err(LinkError::Invalid(format!(
                "header {} does not link to header {}",
                header.number, prev.header.number
            )));
        }
        let sealed = Hashed::new(header);
        devmux_chain::validate::validate_header(
            spec,
            &sealed.header,
            sealed.hash,
            &prev.header,
            now,
        )
        .map_err(LinkError::Rule)?;
        out.push(sealed);
    }
    Ok(out)
}

/// Whether a block's receipts must be fetched: a header with the empty receipts root
/// has none.
pub(crate) fn needs_receipts(header: &Header) -> bool {
    header.receipts_root != EMPTY_ROOT_HASH
}

/// How many of `n` peers get a full block or transaction: √n, at least one when there
/// is anyone (`devp2p/caps/eth.md`: "a small fraction (typically the square root)").
pub(crate) fn sqrt_count(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        n.isqrt().max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devmux_chain::devnet::Devnet;

    fn chain(n: u64) -> (Hashed, Vec<devmux_chain::BlockWithReceipts>) {
        let devnet = Devnet::new().unwrap();
        (
            Hashed::new(devnet.genesis().clone()),
            devnet.blocks(n).collect(),
        )
    }

    fn headers(blocks: &[devmux_chain::BlockWithReceipts]) -> Vec<Header> {
        blocks.iter().map(|b| b.header.clone()).collect()
    }

    #[test]
    fn headers_must_link() {
        let (genesis, blocks) = chain(8);
        let rules = ChainSpec::devnet();
        let linked = link_headers(&rules, &genesis, headers(&blocks)).unwrap();
        assert_eq!(linked.len(), 8);
        assert_eq!(linked[7].hash, blocks[7].hash());

        // Not after the parent asked for: the peer moved, not a lie.
        assert!(matches!(
            link_headers(&rules, &linked[2], headers(&blocks[4..])),
            Err(LinkError::Detached)
        ));
        // A forged header in the middle is refused for its seal, before the links after
        // it are looked at.
        let mut forged = headers(&blocks);
        forged[3].extra_data = b"forged".to_vec().into();
        assert!(matches!(
            link_headers(&rules, &genesis, forged),
            Err(LinkError::Rule(devmux_chain::Error::BadSeal {
                number: 4,
                ..
            }))
        ));
        // Sealed again by the signer, it is valid, but the header after it no longer
        // links.
        let mut forged = headers(&blocks);
        forged[3].beneficiary = Default::default();
        devmux_chain::seal::seal(&mut forged[3], &devmux_chain::devnet::dev_key(0).unwrap());
        assert!(matches!(
            link_headers(&rules, &genesis, forged),
            Err(LinkError::Invalid(why)) if why.contains("header 5 does not link")
        ));
        // Linked, but numbered or timed wrong.
        let mut bad = headers(&blocks[..1]);
        bad[0].number = 2;
        assert!(matches!(
            link_headers(&rules, &genesis, bad),
            Err(LinkError::Rule(_))
        ));
        let mut bad = headers(&blocks[..1]);
        bad[0].timestamp = genesis.header.timestamp;
        assert!(matches!(
            link_headers(&rules, &genesis, bad),
            Err(LinkError::Rule(_))
        ));
        let mut bad = headers(&blocks[..1]);
        bad[0].gas_used = bad[0].gas_limit + 1;
        assert!(matches!(
            link_headers(&rules, &genesis, bad),
            Err(LinkError::Rule(_))
        ));
        // Linked, but breaking a header rule: the forged heavy block, a far-future time.
        let mut bad = headers(&blocks[..1]);
        bad[0].difficulty = devmux_eth::alloy_primitives::U256::from(1_000_000);
        assert!(matches!(
            link_headers(&rules, &genesis, bad),
            Err(LinkError::Rule(devmux_chain::Error::InvalidHeader {
                rule: "difficulty",
                ..
            }))
        ));
        let mut bad = headers(&blocks[..1]);
        bad[0].timestamp = devmux_chain::validate::now_secs() + 60;
        assert!(matches!(
            link_headers(&rules, &genesis, bad),
            Err(LinkError::Rule(devmux_chain::Error::InvalidHeader {
                rule: "timestamp",
                ..
            }))
        ));
        assert!(matches!(link_headers(&rules, &genesis, vec![]), Ok(v) if v.is_empty()));
    }

    #[test]
    fn square_root_of_peers() {
        let counts: Vec<usize> = [0, 1, 2, 3, 4, 8, 9, 50, 100].map(sqrt_count).to_vec();
        assert_eq!(counts, vec![0, 1, 1, 1, 2, 2, 3, 7, 10]);
    }
}
