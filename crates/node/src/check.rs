//! `devmux db check`: is a data directory whole after the process died, however it died?
//!
//! redb commits are atomic and durable, and a node writes a batch of blocks in one
//! commit, so a `kill -9` at any instant must leave a store that opens and holds a
//! canonical chain with no hole in it. This module checks exactly that, with the
//! same validation a block from a peer passes ([`validate_transactions`],
//! [`validate_receipts`]), so a check that passes means the next start serves every
//! block it claims to have:
//!
//! - the chain store opens (redb repairs an unclean shutdown here);
//! - every number from genesis to the head has a canonical hash whose header is stored,
//!   hashes to it, carries that number and names the previous block as its parent;
//! - every such block has its body, matching its header's roots, and its receipts,
//!   matching the receipts root; blocks that legitimately wait for receipts (imported
//!   from a chain file, `receipts_pending`) are counted apart instead;
//! - the peer store's unexpired bans (by key, by address) and the ENR file's known
//!   peers are read as a starting node reads them, and counted.
//!
//! It opens the files itself, so no node may run on the directory meanwhile (redb
//! refuses a second open, and the check says so).

use std::collections::HashSet;
use std::path::Path;

use devmux_chain::validate::{validate_receipts, validate_transactions};
use devmux_chain::Chain;
use devmux_eth::alloy_primitives::B256;

use crate::{Error, NodeConfig};

/// What [`check_datadir`] found in a whole data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreReport {
    /// The canonical head's number.
    pub head: u64,
    /// The canonical head's hash.
    pub head_hash: B256,
    /// Canonical blocks checked, genesis included.
    pub blocks: u64,
    /// Transactions in them.
    pub transactions: u64,
    /// Canonical blocks whose receipts were checked against their header.
    pub receipts: u64,
    /// Canonical blocks stored without receipts that wait for them (`receipts_pending`).
    pub receipts_pending: u64,
    /// Unexpired bans by key in `peers.redb`.
    pub key_bans: usize,
    /// Unexpired bans by address in `peers.redb`.
    pub address_bans: usize,
    /// Records in `discovery-enrs.txt`.
    pub known_peers: usize,
}

impl std::fmt::Display for StoreReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "head={} hash={} blocks={} transactions={} receipts={} receipts_pending={} key_bans={} address_bans={} known_peers={}",
            self.head,
            self.head_hash,
            self.blocks,
            self.transactions,
            self.receipts,
            self.receipts_pending,
            self.key_bans,
            self.address_bans,
            self.known_peers
        )
    }
}

/// Checks the data directory `config` names (see the module docs). `Ok` only if the
/// chain is whole; the first inconsistency is [`Error::Inconsistent`]. Blocks: call
/// it outside the async reactor.
pub fn check_datadir(config: &NodeConfig) -> Result<StoreReport, Error> {
    config.validate()?;
    let spec = config.chain_spec()?;
    let datadir = &config.datadir;
    let path = datadir.join("chain.redb");
    // Opening would create a store: a missing one is a finding, not a fresh start.
    if !path.is_file() {
        return Err(Error::Inconsistent {
            path,
            problem: "no chain store here".into(),
        });
    }
    let chain = Chain::open(&path, spec)?;
    let inconsistent = |problem: String| Error::Inconsistent {
        path: path.clone(),
        problem,
    };
    let head = chain.head();
    let pending: HashSet<B256> = chain
        .pending_receipts_blocking(usize::MAX)?
        .into_iter()
        .map(|p| p.hash)
        .collect();
    let mut report = StoreReport {
        head: head.number,
        head_hash: head.hash,
        blocks: 0,
        transactions: 0,
        receipts: 0,
        receipts_pending: 0,
        key_bans: 0,
        address_bans: 0,
        known_peers: 0,
    };
    let mut parent: Option<B256> = None;
    for number in 0..=head.number {
        let hash = chain.canonical_hash_blocking(number)?.ok_or_else(|| {
            inconsistent(format!(
                "no canonical block {number} below the head {}",
                head.number
            ))
        })?;
        let header = chain
            .header_by_hash_blocking(hash)?
            .ok_or_else(|| inconsistent(format!("block {number} {hash}: no header")))?;
        if header.hash_slow() != hash {
            return Err(inconsistent(format!(
                "block {number}: its header hashes to {}, not {hash}",
                header.hash_slow()
            )));
        }
        if header.number != number {
            return Err(inconsistent(format!(
                "canonical block {number} {hash} has number {}",
                header.number
            )));
        }
        if let Some(parent) = parent {
            if header.parent_hash != parent {
                return Err(inconsistent(format!(
                    "block {number} {hash}: parent {} is not canonical block {} {parent}",
                    header.parent_hash,
                    number - 1
                )));
            }
        }
        let body = chain
            .body_blocking(hash)?
            .ok_or_else(|| inconsistent(format!("block {number} {hash}: no body")))?;
        let receipts = chain.receipts_blocking(hash)?;
        // Genesis is the spec's, written at creation with an empty body; its roots are
        // the chain's definition, not something a peer sent.
        if number > 0 {
            validate_transactions(chain.spec(), &header, hash, &body)
                .map_err(|e| inconsistent(format!("body: {e}")))?;
            match receipts {
                Some(receipts) => {
                    validate_receipts(
                        chain.spec(),
                        &header,
                        hash,
                        body.transactions.len(),
                        &receipts,
                    )
                    .map_err(|e| inconsistent(format!("receipts: {e}")))?;
                    report.receipts += 1;
                }
                None if pending.contains(&hash) => report.receipts_pending += 1,
                None => {
                    return Err(inconsistent(format!(
                        "block {number} {hash}: no receipts, and not waiting for them"
                    )))
                }
            }
        } else if receipts.is_none() {
            return Err(inconsistent("genesis: no receipts".into()));
        }
        report.blocks += 1;
        report.transactions += body.transactions.len() as u64;
        parent = Some(hash);
    }
    if report.head_hash != parent.unwrap_or_default() {
        return Err(inconsistent(format!(
            "the head {} is not canonical block {}",
            head.hash, head.number
        )));
    }
    drop(chain);
    let bans_path = datadir.join("peers.redb");
    if bans_path.is_file() {
        let bans = devmux_network::stored_bans(&bans_path)?;
        report.key_bans = bans.keys;
        report.address_bans = bans.addresses;
    }
    report.known_peers = read_known_peers(&datadir.join("discovery-enrs.txt"))?;
    Ok(report)
}

fn read_known_peers(path: &Path) -> Result<usize, Error> {
    devmux_discovery::stored_enrs(path)
        .map(|enrs| enrs.len())
        .map_err(|source| Error::Datadir {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use devmux_chain::devnet::Devnet;
    use devmux_chain::ChainSpec;
    use redb::ReadableTable;

    fn config(dir: &Path) -> NodeConfig {
        NodeConfig {
            dev: true,
            datadir: dir.to_path_buf(),
            ..NodeConfig::default()
        }
    }

    #[test]
    fn a_whole_store_passes_and_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let blocks: Vec<_> = Devnet::new().unwrap().blocks(30).collect();
        {
            let chain = Chain::open(dir.path().join("chain.redb"), ChainSpec::devnet()).unwrap();
            chain.insert_blocks_blocking(&blocks).unwrap();
        }
        let report = check_datadir(&config(dir.path())).unwrap();
        assert_eq!(report.head, 30);
        assert_eq!(report.head_hash, blocks[29].hash());
        assert_eq!(report.blocks, 31);
        assert_eq!(report.receipts, 30);
        assert_eq!(report.receipts_pending, 0);
        let txs: usize = blocks.iter().map(|b| b.body.transactions.len()).sum();
        assert_eq!(report.transactions, txs as u64);
        assert_eq!(
            (report.key_bans, report.address_bans, report.known_peers),
            (0, 0, 0)
        );
    }

    #[test]
    fn blocks_waiting_for_receipts_are_counted_apart() {
        let dir = tempfile::tempdir().unwrap();
        let blocks: Vec<_> = Devnet::new().unwrap().blocks(10).collect();
        {
            let chain = Chain::open(dir.path().join("chain.redb"), ChainSpec::devnet()).unwrap();
            chain
                .import_blocks_blocking(
                    blocks
                        .iter()
                        .map(|b| devmux_eth::Block {
                            header: b.header.clone(),
                            body: b.body.clone(),
                        })
                        .collect(),
                )
                .unwrap();
        }
        let report = check_datadir(&config(dir.path())).unwrap();
        let waiting = blocks
            .iter()
            .filter(|b| !b.body.transactions.is_empty())
            .count() as u64;
        assert!(waiting > 0);
        assert_eq!(report.receipts_pending, waiting);
        assert_eq!(report.receipts, 10 - waiting);
    }

    #[test]
    fn no_store_is_a_finding() {
        let dir = tempfile::tempdir().unwrap();
        let e = check_datadir(&config(dir.path())).unwrap_err();
        assert!(e.to_string().contains("no chain store"), "{e}");
        assert!(
            !dir.path().join("chain.redb").exists(),
            "the check created a store"
        );
    }

    /// Damage done behind the chain's back (straight into its redb tables) is found,
    /// with the block it is in.
    #[test]
    fn holes_and_mismatches_are_found() {
        type Table = redb::TableDefinition<'static, &'static [u8; 32], &'static [u8]>;
        const BODIES: Table = redb::TableDefinition::new("bodies");
        const RECEIPTS: Table = redb::TableDefinition::new("receipts");
        const CANONICAL: redb::TableDefinition<'static, u64, &'static [u8; 32]> =
            redb::TableDefinition::new("canonical");
        let blocks: Vec<_> = Devnet::new().unwrap().blocks(12).collect();
        // Blocks with transactions, so that swapped receipts cannot match by chance.
        let busy: Vec<_> = blocks
            .iter()
            .filter(|b| !b.body.transactions.is_empty())
            .collect();
        assert!(busy.len() >= 2);
        type Damage<'a> = Box<dyn Fn(&redb::WriteTransaction) + 'a>;
        let cases: Vec<(&str, Damage<'_>)> = vec![
            (
                "no body",
                Box::new(|tx| {
                    tx.open_table(BODIES)
                        .unwrap()
                        .remove(&blocks[6].hash().0)
                        .unwrap();
                }),
            ),
            (
                "receipts",
                Box::new(|tx| {
                    let mut t = tx.open_table(RECEIPTS).unwrap();
                    let other = t.get(&busy[1].hash().0).unwrap().unwrap().value().to_vec();
                    t.insert(&busy[0].hash().0, other.as_slice()).unwrap();
                }),
            ),
            (
                "no receipts, and not waiting",
                Box::new(|tx| {
                    tx.open_table(RECEIPTS)
                        .unwrap()
                        .remove(&blocks[4].hash().0)
                        .unwrap();
                }),
            ),
            (
                "no canonical block 3",
                Box::new(|tx| {
                    tx.open_table(CANONICAL).unwrap().remove(3).unwrap();
                }),
            ),
            (
                "canonical block 5 ",
                Box::new(|tx| {
                    tx.open_table(CANONICAL)
                        .unwrap()
                        .insert(5, &blocks[6].hash().0)
                        .unwrap();
                }),
            ),
        ];
        for (needle, damage) in cases {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("chain.redb");
            {
                let chain = Chain::open(&path, ChainSpec::devnet()).unwrap();
                chain.insert_blocks_blocking(&blocks).unwrap();
            }
            check_datadir(&config(dir.path())).unwrap();
            {
                let db = redb::Database::open(&path).unwrap();
                let tx = db.begin_write().unwrap();
                damage(&tx);
                tx.commit().unwrap();
            }
            let e = check_datadir(&config(dir.path())).unwrap_err();
            assert!(matches!(e, Error::Inconsistent { .. }), "{needle}: {e}");
            assert!(e.to_string().contains(needle), "{needle}: {e}");
            if needle.starts_with("canonical block 5") {
                assert!(e.to_string().contains("has number 7"), "{e}");
            }
        }
    }
}
