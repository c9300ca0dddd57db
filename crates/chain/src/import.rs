//! Chain files in go-ethereum's export format: what `geth export` writes and `geth
//! import` reads, and what go-ethereum's conformance suite ships as `chain.rlp`. The file
//! is the blocks, one RLP `[header, transactions, ommers, withdrawals?]` after another,
//! with no receipts (they come from executing the blocks, which devmux does not do).
//!
//! [`import_file`] reads one into a [`Chain`] in batches, each validated and committed
//! atomically ([`Chain::import_blocks_blocking`]); the blocks' receipts are fetched from
//! peers later (the `receipts_pending` table of [`crate::Chain`]'s store).
//!
//! ```no_run
//! use devmux_chain::{import, Chain, ChainSpec};
//!
//! # fn main() -> Result<(), devmux_chain::Error> {
//! let chain = Chain::open("chain.redb", ChainSpec::hoodi())?;
//! let summary = import::import_file(&chain, "hoodi.rlp", |outcome| {
//!     println!("head {}", outcome.head.number);
//! })?;
//! println!("{} blocks imported, {} known", summary.imported, summary.known);
//! # Ok(())
//! # }
//! ```

use std::io::{BufReader, ErrorKind, Read};
use std::path::Path;

use devmux_eth::Block;

use crate::{Chain, ChainHead, Error, InsertOutcome};

/// The largest block a chain file may hold, in bytes of RLP. A mainnet block is a few
/// MiB at most; the bound keeps a corrupt length prefix from allocating gigabytes.
pub const MAX_FILE_BLOCK_SIZE: usize = 128 * 1024 * 1024;

/// Blocks per insert batch (one commit, one fsync each)...
const BATCH_BLOCKS: usize = 2048;
/// ...or bytes of RLP per batch, whichever comes first.
const BATCH_BYTES: usize = 64 * 1024 * 1024;

/// What [`import_file`] did.
#[derive(Clone, Copy, Debug)]
pub struct ImportSummary {
    /// Blocks read from the file.
    pub read: u64,
    /// Blocks stored that the chain did not have.
    pub imported: u64,
    /// Blocks the chain had already (the genesis, a file imported twice).
    pub known: u64,
    /// The head afterwards.
    pub head: ChainHead,
}

/// Reads blocks from a chain file one at a time, each bounded by
/// [`MAX_FILE_BLOCK_SIZE`] before it is read.
#[derive(Debug)]
pub struct ChainFile<R> {
    reader: R,
    offset: u64,
}

impl<R: Read> ChainFile<R> {
    /// A reader of the chain file `reader` (buffer it: blocks are read in small pieces).
    pub fn new(reader: R) -> Self {
        Self { reader, offset: 0 }
    }

    /// Where the next block starts, in bytes from the start of the file.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next block and its size in bytes; `None` at the end of the file.
    pub fn next_block(&mut self) -> Result<Option<(Block, usize)>, Error> {
        let start = self.offset;
        let bad = |reason: String| Error::ChainFile {
            offset: start,
            reason,
        };
        let mut first = [0u8; 1];
        match self.reader.read_exact(&mut first) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(Error::ChainFileRead(e)),
        }
        if first == [0x1f] {
            return Err(bad(
                "gzip-compressed (the first byte is gzip's): decompress it first".into(),
            ));
        }
        // An RLP list header: one byte, or one byte and up to 8 length bytes.
        let length_bytes = match first[0] {
            0xc0..=0xf7 => 0,
            0xf8..=0xff => usize::from(first[0] - 0xf7),
            other => {
                return Err(bad(format!(
                    "byte {other:#04x} does not start an RLP list (a block)"
                )))
            }
        };
        let mut header = vec![first[0]; 1 + length_bytes];
        self.read_exact(&mut header[1..], start)?;
        let payload_length = match header[1..] {
            [] => usize::from(first[0] - 0xc0),
            // Canonical RLP: no leading zero byte, and a long form only past 55 bytes
            // (the full decode below would refuse it anyway; refuse before reading).
            [0, ..] => return Err(bad("block length with a leading zero byte".into())),
            ref bytes => {
                let length = bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
                if length <= 55 {
                    return Err(bad("block length in long form under 56 bytes".into()));
                }
                usize::try_from(length).unwrap_or(usize::MAX)
            }
        };
        let size = header.len().saturating_add(payload_length);
        if size > MAX_FILE_BLOCK_SIZE {
            return Err(bad(format!(
                "a block of {size} bytes (at most {MAX_FILE_BLOCK_SIZE})"
            )));
        }
        let mut raw = header;
        raw.resize(size, 0);
        self.read_exact(&mut raw[1 + length_bytes..], start)?;
        let block: Block =
            alloy_rlp::decode_exact(&raw).map_err(|e| bad(format!("not a block: {e}")))?;
        self.offset = start + size as u64;
        Ok(Some((block, size)))
    }

    fn read_exact(&mut self, buf: &mut [u8], start: u64) -> Result<(), Error> {
        self.reader.read_exact(buf).map_err(|e| match e.kind() {
            ErrorKind::UnexpectedEof => Error::ChainFile {
                offset: start,
                reason: "the file ends inside a block".into(),
            },
            _ => Error::ChainFileRead(e),
        })
    }
}

/// Imports the chain file at `path` into `chain`: batches of blocks, each validated
/// (headers by the chain's rules, bodies against their roots) and committed atomically,
/// with `on_batch` called after each. Blocks the chain has are skipped; a block whose
/// parent is neither stored nor earlier in the file, or that fails validation, stops the
/// import with the error naming it (the batches before it stay imported). Blocks with
/// transactions wait for their receipts, which sync fetches from peers.
pub fn import_file(
    chain: &Chain,
    path: impl AsRef<Path>,
    mut on_batch: impl FnMut(&InsertOutcome),
) -> Result<ImportSummary, Error> {
    let file = std::fs::File::open(path).map_err(Error::ChainFileRead)?;
    let mut blocks = ChainFile::new(BufReader::with_capacity(1 << 20, file));
    let mut summary = ImportSummary {
        read: 0,
        imported: 0,
        known: 0,
        head: chain.head(),
    };
    let mut batch = Vec::new();
    let mut bytes = 0;
    loop {
        let next = blocks.next_block()?;
        let end = next.is_none();
        if let Some((block, size)) = next {
            if block.header.number == 0 && block.header.hash_slow() != chain.genesis_hash() {
                return Err(Error::ChainFile {
                    offset: blocks.offset() - size as u64,
                    reason: format!(
                        "its genesis block is not this network's ({})",
                        chain.genesis_hash()
                    ),
                });
            }
            summary.read += 1;
            bytes += size;
            batch.push(block);
        }
        if !batch.is_empty() && (end || batch.len() >= BATCH_BLOCKS || bytes >= BATCH_BYTES) {
            let outcome = chain.import_blocks_blocking(std::mem::take(&mut batch))?;
            bytes = 0;
            summary.imported += outcome.inserted as u64;
            summary.known += outcome.known as u64;
            summary.head = outcome.head;
            on_batch(&outcome);
        }
        if end {
            return Ok(summary);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use alloy_primitives::B256;
    use devmux_eth::BlockBody;

    use super::*;
    use crate::devnet::Devnet;
    use crate::{BlockWithReceipts, ChainSpec};

    fn devnet(n: u64) -> Vec<BlockWithReceipts> {
        Devnet::new().unwrap().blocks(n).collect()
    }

    fn file_of(blocks: impl IntoIterator<Item = (devmux_eth::Header, BlockBody)>) -> Vec<u8> {
        let mut out = Vec::new();
        for (header, body) in blocks {
            out.extend(alloy_rlp::encode(Block { header, body }));
        }
        out
    }

    /// The devnet genesis and blocks 1..=`n`, as `geth export` writes a chain.
    fn export(blocks: &[BlockWithReceipts]) -> Vec<u8> {
        let genesis = (ChainSpec::devnet().genesis, BlockBody::default());
        file_of(
            std::iter::once(genesis)
                .chain(blocks.iter().map(|b| (b.header.clone(), b.body.clone()))),
        )
    }

    fn write(dir: &tempfile::TempDir, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.path().join("chain.rlp");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
        path
    }

    fn open(dir: &tempfile::TempDir) -> Chain {
        Chain::open(dir.path().join("c.redb"), ChainSpec::devnet()).unwrap()
    }

    #[test]
    fn an_exported_chain_imports_and_its_receipts_wait_for_peers() {
        let dir = tempfile::tempdir().unwrap();
        let blocks = devnet(40);
        let path = write(&dir, &export(&blocks));
        let chain = open(&dir);
        let mut batches = 0;
        let summary = import_file(&chain, &path, |_| batches += 1).unwrap();
        assert_eq!((summary.read, summary.imported, summary.known), (41, 40, 1));
        assert_eq!(batches, 1);
        assert_eq!(chain.head().hash, blocks[39].hash());
        // Devnet block n carries n mod 4 transactions: those with any wait for receipts.
        let waiting: Vec<&BlockWithReceipts> = blocks
            .iter()
            .filter(|b| !b.body.transactions.is_empty())
            .collect();
        assert_eq!(waiting.len(), 30);
        assert_eq!(chain.pending_receipts_count(), 30);
        let pending = chain.pending_receipts_blocking(usize::MAX).unwrap();
        let numbers: Vec<u64> = pending.iter().map(|p| p.number).collect();
        let expected: Vec<u64> = waiting.iter().map(|b| b.number()).collect();
        assert_eq!(
            numbers, expected,
            "lowest first, only blocks with transactions"
        );
        assert_eq!(pending[0].body, waiting[0].body);
        // Headers and bodies are served; receipts stop before the first that waits.
        let hashes: Vec<B256> = blocks.iter().map(BlockWithReceipts::hash).collect();
        assert_eq!(chain.bodies_blocking(&hashes).unwrap().len(), 40);
        assert_eq!(chain.block_receipts_blocking(&hashes).unwrap().len(), 0);
        assert!(chain.block_blocking(hashes[0]).unwrap().is_none());

        // Another block's receipts do not fit this one's root: refused whole.
        let wrong = vec![
            (waiting[0].hash(), waiting[0].receipts.clone()),
            (waiting[1].hash(), waiting[2].receipts.clone()),
        ];
        assert!(chain.insert_receipts_blocking(&wrong).is_err());
        assert_eq!(chain.pending_receipts_count(), 30);
        // The right ones are stored; blocks that do not wait are skipped.
        let right: Vec<(B256, Vec<devmux_eth::Receipt>)> = blocks
            .iter()
            .map(|b| (b.hash(), b.receipts.clone()))
            .collect();
        assert_eq!(chain.insert_receipts_blocking(&right[..20]).unwrap(), 15);
        assert_eq!(chain.insert_receipts_blocking(&right[..20]).unwrap(), 0);
        assert_eq!(chain.pending_receipts_count(), 15);
        // A sync batch that brings receipts fills the blocks it finds waiting.
        let outcome = chain.insert_blocks_blocking(&blocks[20..]).unwrap();
        assert_eq!((outcome.inserted, outcome.known), (0, 20));
        assert_eq!(chain.pending_receipts_count(), 0);
        let served = chain.block_receipts_blocking(&hashes).unwrap();
        let all: Vec<_> = blocks.iter().map(|b| b.receipts.clone()).collect();
        assert_eq!(served, all);
        // A second import of the same file changes nothing.
        let again = import_file(&chain, &path, |_| {}).unwrap();
        assert_eq!((again.imported, again.known), (0, 41));
    }

    #[test]
    fn a_body_that_misses_its_root_stops_the_import_and_nothing_of_its_batch_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let mut blocks = devnet(10);
        // Block 6's transactions are block 7's: its transactions root no longer matches.
        blocks[5].body = blocks[6].body.clone();
        let path = write(&dir, &export(&blocks));
        let chain = open(&dir);
        let e = import_file(&chain, &path, |_| {}).unwrap_err();
        assert!(matches!(e, Error::RootMismatch { number: 6, .. }), "{e}");
        assert_eq!(chain.head().number, 0);
        assert_eq!(chain.pending_receipts_count(), 0);
    }

    #[test]
    fn a_header_that_breaks_the_rules_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut blocks = devnet(3);
        // Unsealed: a chain file is held to the same header rules as a peer's blocks.
        blocks[2].header.extra_data = Default::default();
        let path = write(&dir, &export(&blocks));
        let chain = open(&dir);
        assert!(import_file(&chain, &path, |_| {}).is_err());
        assert_eq!(chain.head().number, 0);
    }

    #[test]
    fn broken_files_are_refused_with_where_they_break() {
        let dir = tempfile::tempdir().unwrap();
        let chain = open(&dir);
        let blocks = devnet(3);
        let good = export(&blocks);
        let reason = |bytes: &[u8]| match import_file(&chain, write(&dir, bytes), |_| {}) {
            Err(Error::ChainFile { offset, reason }) => (offset, reason),
            other => panic!("{other:?}"),
        };
        // Cut inside the last block.
        let (offset, why) = reason(&good[..good.len() - 5]);
        assert!(why.contains("ends inside a block"), "{why}");
        let last = alloy_rlp::encode(Block {
            header: blocks[2].header.clone(),
            body: blocks[2].body.clone(),
        });
        assert_eq!(offset as usize, good.len() - last.len());
        // A length prefix of 1 GiB is refused before anything is read or allocated.
        let (offset, why) = reason(&[0xfb, 0x40, 0x00, 0x00, 0x00, 0x01]);
        assert_eq!(offset, 0);
        assert!(why.contains("at most"), "{why}");
        // Not a list; gzip; trailing garbage inside a block's list.
        assert!(reason(&[0x80]).1.contains("RLP list"));
        assert!(reason(&[0x1f, 0x8b, 0x08]).1.contains("gzip"));
        let (_, why) = reason(&[0xc3, 0x01, 0x02, 0x03]);
        assert!(why.contains("not a block"), "{why}");
        // Another network's genesis.
        let mut other = ChainSpec::devnet().genesis;
        other.timestamp += 1;
        let (_, why) = reason(&file_of([(other, BlockBody::default())]));
        assert!(why.contains("genesis"), "{why}");
        // An empty file is an empty chain.
        let summary = import_file(&chain, write(&dir, &[]), |_| {}).unwrap();
        assert_eq!(summary.read, 0);
    }

    #[test]
    fn a_block_whose_parent_is_missing_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        let blocks = devnet(5);
        let path = write(
            &dir,
            &file_of(
                blocks[2..]
                    .iter()
                    .map(|b| (b.header.clone(), b.body.clone())),
            ),
        );
        let chain = open(&dir);
        let e = import_file(&chain, &path, |_| {}).unwrap_err();
        assert!(matches!(e, Error::UnknownParent { number: 3, .. }), "{e}");
    }
}
