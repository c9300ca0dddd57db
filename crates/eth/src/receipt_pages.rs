//! The requesting side of receipts: what a block's receipts may be, and the collection
//! of one `get_receipts` call's answer from one `Receipts` response or, on eth/70
//! (EIP-7975), from several, with a block that a server split across responses stitched
//! back together.
//!
//! A partial list cannot be checked against the header's receipts root, so every list
//! is checked, before anything of its response is kept, against what the requester
//! knows of its block (EIP-7975's rules): no more receipts than the block has
//! transactions, each receipt within its transaction's gas limit / 8, all of them within
//! what the block's gas limit allows. Once a block's receipts are all there the caller
//! checks them against the receipts root, as for a block that came whole. No I/O here:
//! [`crate::EthPeer::get_block_receipts`] sends the requests this asks for.

use alloy_consensus::Transaction;
use alloy_primitives::B256;
use alloy_rlp::Encodable;

use crate::limits::{self, DecodeLimits};
use crate::{BlockBody, EthVersion, GetReceipts, Header, Receipt, Receipts};

/// A block whose receipts are asked for, with what its header and body say about them:
/// the bounds every list a peer sends for it must keep (see
/// [`crate::EthPeer::get_block_receipts`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptsQuery {
    /// The block's hash.
    pub hash: B256,
    /// The block's gas limit (its header's): bounds the total size of its receipts.
    pub gas_limit: u64,
    /// The gas limit of each of its transactions, in block order: one receipt per
    /// transaction, each within its transaction's gas limit / 8 bytes.
    pub tx_gas_limits: Vec<u64>,
}

impl ReceiptsQuery {
    /// The query for the block with this header, hash and body.
    pub fn new(hash: B256, header: &Header, body: &BlockBody) -> Self {
        Self {
            hash,
            gas_limit: header.gas_limit,
            tx_gas_limits: body.transactions.iter().map(|tx| tx.gas_limit()).collect(),
        }
    }
}

/// What the requester knows of one asked block.
#[derive(Clone, Debug)]
enum Known {
    /// Its transactions: the exact count and each one's gas limit.
    Block(ReceiptsQuery),
    /// Only its hash: the chain's bounds ([`DecodeLimits::max_block_gas`]) stand in for
    /// the block's.
    Hash(B256),
}

impl Known {
    fn hash(&self) -> B256 {
        match self {
            Self::Block(q) => q.hash,
            Self::Hash(h) => *h,
        }
    }

    /// The number of transactions, when known.
    fn txs(&self) -> Option<usize> {
        match self {
            Self::Block(q) => Some(q.tx_gas_limits.len()),
            Self::Hash(_) => None,
        }
    }

    /// Most receipts the block can have.
    fn max_receipts(&self, chain: &DecodeLimits) -> usize {
        self.txs()
            .unwrap_or_else(|| chain.max_txs(chain.max_block_gas))
    }

    /// Most bytes receipt `index` can take.
    fn max_receipt_size(&self, index: usize, chain: &DecodeLimits) -> u64 {
        let gas = match self {
            Self::Block(q) => q.tx_gas_limits.get(index).copied().unwrap_or(0),
            Self::Hash(_) => chain.max_block_gas,
        };
        limits::max_receipt_size(gas)
    }

    /// Most bytes all the block's receipts can take.
    fn max_total_size(&self, chain: &DecodeLimits) -> u64 {
        let gas = match self {
            Self::Block(q) => q.gas_limit,
            Self::Hash(_) => chain.max_block_gas,
        };
        limits::max_block_receipts_size(gas)
    }
}

/// What to do after a response.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// The call's answer: one list per block, for a prefix of the blocks asked.
    Done(Vec<Vec<Receipt>>),
    /// Ask this next (the rest of a block the last response left incomplete).
    More(GetReceipts),
}

/// One `get_receipts` call's state across its responses.
///
/// The first request asks for every block; when a response leaves its last block
/// incomplete, the next asks for that block alone, from its first missing receipt, until
/// a response completes it. Asking for the one block only (go-ethereum asks for every
/// block from it on) keeps what a call holds to one response's complete blocks plus one
/// block, which the gas-limit bound caps; the caller asks for the blocks after it in its
/// next call, as after any response that stops short.
#[derive(Debug)]
pub(crate) struct Collector {
    version: EthVersion,
    chain: DecodeLimits,
    blocks: Vec<Known>,
    /// Complete lists, for `blocks[..done.len()]`.
    done: Vec<Vec<Receipt>>,
    /// The receipts received so far of `blocks[done.len()]`, when a response left it
    /// incomplete.
    partial: Vec<Receipt>,
    /// Their size, encoded.
    partial_size: u64,
    /// Blocks the outstanding request asks for, from `blocks[done.len()]` on.
    asked: usize,
}

impl Collector {
    /// A call for the receipts of `queries`' blocks.
    pub(crate) fn for_blocks(
        version: EthVersion,
        chain: DecodeLimits,
        queries: Vec<ReceiptsQuery>,
    ) -> Self {
        Self::new(
            version,
            chain,
            queries.into_iter().map(Known::Block).collect(),
        )
    }

    /// A call for the receipts of blocks known by hash only.
    pub(crate) fn for_hashes(version: EthVersion, chain: DecodeLimits, hashes: Vec<B256>) -> Self {
        Self::new(
            version,
            chain,
            hashes.into_iter().map(Known::Hash).collect(),
        )
    }

    fn new(version: EthVersion, chain: DecodeLimits, blocks: Vec<Known>) -> Self {
        Self {
            version,
            chain,
            asked: blocks.len(),
            blocks,
            done: Vec::new(),
            partial: Vec::new(),
            partial_size: 0,
        }
    }

    /// The first request: every block, whole.
    pub(crate) fn first_request(&self) -> GetReceipts {
        GetReceipts::new(
            self.version,
            self.blocks.iter().map(Known::hash).collect(),
            0,
        )
    }

    /// Takes the response to the last request. An `Err` says how the response breaks the
    /// request's terms or the blocks' bounds; the call then fails and nothing of it is
    /// kept.
    pub(crate) fn on_response(&mut self, response: Receipts) -> Result<Step, String> {
        let incomplete = response.last_block_incomplete();
        let lists = response.into_receipts();
        let start = self.done.len();
        let offset = self.partial.len();
        if lists.len() > self.asked {
            return Err(format!(
                "receipts of {} blocks for {} hashes",
                lists.len(),
                self.asked
            ));
        }
        let Some(last) = lists.len().checked_sub(1) else {
            if incomplete {
                return Err("lastBlockIncomplete on a response without receipts".into());
            }
            // The peer has none of it (any more): what is complete is the answer.
            return Ok(Step::Done(std::mem::take(&mut self.done)));
        };
        // Judge the whole response before keeping any of it.
        let mut partial_size = 0;
        for (i, list) in lists.iter().enumerate() {
            let (offset, before) = if i == 0 {
                (offset, self.partial_size)
            } else {
                (0, 0)
            };
            let partial = incomplete && i == last;
            partial_size = self.check(start + i, offset, before, list, partial)?;
        }
        for (i, list) in lists.into_iter().enumerate() {
            let list = if i == 0 && offset > 0 {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend(list);
                whole
            } else {
                list
            };
            if incomplete && i == last {
                self.partial = list;
                self.partial_size = partial_size;
            } else {
                self.done.push(list);
            }
        }
        if !incomplete {
            return Ok(Step::Done(std::mem::take(&mut self.done)));
        }
        let next = self.done.len();
        self.asked = 1;
        Ok(Step::More(GetReceipts::new(
            self.version,
            vec![self.blocks[next].hash()],
            self.partial.len() as u64,
        )))
    }

    /// Checks the list for `blocks[block]` that starts at receipt `offset`, after
    /// `before` bytes of its receipts came in earlier responses; `partial` if the
    /// response says it is incomplete. Returns the block's receipt bytes so far.
    fn check(
        &self,
        block: usize,
        offset: usize,
        before: u64,
        list: &[Receipt],
        partial: bool,
    ) -> Result<u64, String> {
        let known = &self.blocks[block];
        let hash = known.hash();
        let count = offset + list.len();
        let max = known.max_receipts(&self.chain);
        if count > max {
            return Err(match known.txs() {
                Some(txs) => format!("{count} receipts for block {hash} of {txs} transactions"),
                None => format!(
                    "{count} receipts for block {hash}: more than a block of the chain's \
                     gas limit holds ({max})"
                ),
            });
        }
        if partial {
            if list.is_empty() {
                return Err(format!(
                    "lastBlockIncomplete on an empty list for block {hash}: no progress"
                ));
            }
            if known.txs() == Some(count) {
                return Err(format!(
                    "lastBlockIncomplete on block {hash}, whose {count} receipts are all there"
                ));
            }
        } else if let Some(txs) = known.txs().filter(|&txs| txs != count) {
            return Err(format!(
                "{count} receipts for block {hash} of {txs} transactions"
            ));
        }
        let mut total = before;
        for (j, receipt) in list.iter().enumerate() {
            let size = receipt.length() as u64;
            let max = known.max_receipt_size(offset + j, &self.chain);
            if size > max {
                return Err(format!(
                    "receipt {} of block {hash} takes {size} bytes, over the {max} its \
                     transaction's gas limit allows",
                    offset + j
                ));
            }
            total = total.saturating_add(size);
        }
        let max = known.max_total_size(&self.chain);
        if total > max {
            return Err(format!(
                "receipts of block {hash} take over {max} bytes, more than its gas limit \
                 allows"
            ));
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receipts_root;

    const V70: EthVersion = EthVersion::Eth70;

    /// A receipt with one log of `bytes` data bytes.
    fn receipt(bytes: usize, cumulative_gas_used: u64) -> Receipt {
        Receipt {
            tx_type: crate::TxType::Eip1559,
            success: true,
            cumulative_gas_used,
            logs: vec![alloy_primitives::Log::new_unchecked(
                alloy_primitives::Address::repeat_byte(7),
                vec![],
                vec![0xcd; bytes].into(),
            )],
        }
    }

    fn block(n: usize, bytes: usize) -> Vec<Receipt> {
        (0..n)
            .map(|i| receipt(bytes, 21_000 * (i as u64 + 1)))
            .collect()
    }

    /// A block of `txs` transactions of 1 M gas each, gas limit 30 M.
    fn query(byte: u8, txs: usize) -> ReceiptsQuery {
        ReceiptsQuery {
            hash: B256::repeat_byte(byte),
            gas_limit: 30_000_000,
            tx_gas_limits: vec![1_000_000; txs],
        }
    }

    fn paged(incomplete: bool, blocks: Vec<Vec<Receipt>>) -> Receipts {
        Receipts::Paged {
            last_block_incomplete: incomplete,
            blocks,
        }
    }

    fn collector(queries: Vec<ReceiptsQuery>) -> Collector {
        Collector::for_blocks(V70, DecodeLimits::devnet(), queries)
    }

    #[test]
    fn a_block_in_parts_is_stitched_and_asked_for_alone_from_where_it_stopped() {
        let (a, b) = (block(2, 10), block(6, 1000));
        let mut calls = collector(vec![query(1, 2), query(2, 6), query(3, 1)]);
        assert_eq!(
            calls.first_request(),
            GetReceipts::new(
                V70,
                vec![
                    B256::repeat_byte(1),
                    B256::repeat_byte(2),
                    B256::repeat_byte(3)
                ],
                0
            )
        );
        let step = calls.on_response(paged(true, vec![a.clone(), b[..2].to_vec()]));
        assert_eq!(
            step,
            Ok(Step::More(GetReceipts::new(
                V70,
                vec![B256::repeat_byte(2)],
                2
            )))
        );
        let step = calls.on_response(paged(true, vec![b[2..5].to_vec()]));
        assert_eq!(
            step,
            Ok(Step::More(GetReceipts::new(
                V70,
                vec![B256::repeat_byte(2)],
                5
            )))
        );
        let Ok(Step::Done(lists)) = calls.on_response(paged(false, vec![b[5..].to_vec()])) else {
            panic!("the block is complete")
        };
        // Block 3 was not asked for again: the caller's next call does.
        assert_eq!(lists, vec![a.clone(), b.clone()]);
        assert_eq!(receipts_root(&lists[1]), receipts_root(&b));
    }

    #[test]
    fn a_block_the_peer_stops_serving_midway_is_dropped_not_returned_in_part() {
        let (a, b) = (block(1, 10), block(4, 10));
        let mut calls = collector(vec![query(1, 1), query(2, 4)]);
        assert!(matches!(
            calls.on_response(paged(true, vec![a.clone(), b[..1].to_vec()])),
            Ok(Step::More(_))
        ));
        assert_eq!(
            calls.on_response(paged(false, vec![])),
            Ok(Step::Done(vec![a]))
        );
    }

    /// Each hostile response, to the first request (or, for `continuation`, to the
    /// follow-up after `[[r0]]` with the flag set for a block of 3), is refused whole.
    #[test]
    fn lying_responses_are_refused_before_anything_is_kept() {
        let one = |bytes| vec![receipt(bytes, 1)];
        let cases: Vec<(&str, bool, Receipts, &str)> = vec![
            (
                "flag on a complete list",
                false,
                paged(true, vec![block(3, 10)]),
                "are all there",
            ),
            (
                "more receipts than transactions",
                false,
                paged(false, vec![block(4, 10)]),
                "4 receipts for block",
            ),
            (
                "more than transactions, in part",
                false,
                paged(true, vec![block(4, 10)]),
                "4 receipts for block",
            ),
            (
                "fewer, yet complete",
                false,
                paged(false, vec![block(2, 10)]),
                "2 receipts for block",
            ),
            (
                "flag on an empty list",
                false,
                paged(true, vec![vec![]]),
                "no progress",
            ),
            (
                "flag without lists",
                false,
                paged(true, vec![]),
                "without receipts",
            ),
            (
                "more lists than hashes",
                false,
                paged(false, vec![block(3, 10), vec![]]),
                "2 blocks for 1",
            ),
            // 1 M gas allows 125 000 bytes.
            (
                "a receipt over its gas limit / 8",
                false,
                paged(true, vec![one(130_000)]),
                "gas limit allows",
            ),
            (
                "a continuation past the block",
                true,
                paged(false, vec![block(3, 10)]),
                "4 receipts for block",
            ),
            (
                "a continuation flagged complete",
                true,
                paged(true, vec![block(2, 10)]),
                "are all there",
            ),
            (
                "a continuation for two blocks",
                true,
                paged(false, vec![block(2, 10), vec![]]),
                "2 blocks for 1",
            ),
        ];
        for (name, continuation, response, needle) in cases {
            let mut calls = collector(vec![query(1, 3)]);
            if continuation {
                let first = calls.on_response(paged(true, vec![block(1, 10)]));
                assert!(matches!(first, Ok(Step::More(_))), "{name}");
            }
            let err = calls.on_response(response).expect_err(name);
            assert!(err.contains(needle), "{name}: {err}");
        }
    }

    #[test]
    fn a_block_larger_than_its_gas_limit_allows_is_refused_across_parts() {
        // Gas limit 1 M: its receipts may take 250 000 bytes in all; 5 transactions of
        // 1 M gas may each take 125 000. Three parts of 100 000 bytes pass one by one and
        // each receipt passes, but the third part takes the block over.
        let q = ReceiptsQuery {
            hash: B256::repeat_byte(9),
            gas_limit: 1_000_000,
            tx_gas_limits: vec![1_000_000; 5],
        };
        assert_eq!(limits::max_block_receipts_size(q.gas_limit), 250_000);
        let mut calls = collector(vec![q]);
        for _ in 0..2 {
            let step = calls.on_response(paged(true, vec![vec![receipt(100_000, 1)]]));
            assert!(matches!(step, Ok(Step::More(_))), "{step:?}");
        }
        let err = calls
            .on_response(paged(true, vec![vec![receipt(100_000, 1)]]))
            .unwrap_err();
        assert!(err.contains("more than its gas limit allows"), "{err}");
    }

    #[test]
    fn by_hash_the_chain_bounds_stand_in_for_the_block() {
        let limits = DecodeLimits::devnet();
        let max = limits.max_txs(limits.max_block_gas);
        let hash = B256::repeat_byte(4);
        // Counts are free up to the chain's largest block, across parts too.
        let mut calls = Collector::for_hashes(V70, limits, vec![hash]);
        let step = calls.on_response(paged(true, vec![block(max - 1, 0)]));
        assert_eq!(
            step,
            Ok(Step::More(GetReceipts::new(
                V70,
                vec![hash],
                max as u64 - 1
            )))
        );
        let err = calls
            .on_response(paged(true, vec![block(2, 0)]))
            .unwrap_err();
        assert!(
            err.contains("more than a block of the chain's gas limit holds"),
            "{err}"
        );
        // Whole lists of any length within it pass.
        let mut calls = Collector::for_hashes(EthVersion::Eth69, limits, vec![hash]);
        let lists = vec![block(5, 10)];
        assert_eq!(
            calls.on_response(Receipts::new(EthVersion::Eth69, lists.clone())),
            Ok(Step::Done(lists))
        );
    }

    #[test]
    fn before_eth70_lists_are_whole_and_checked_the_same() {
        let v69 = EthVersion::Eth69;
        let mut calls = Collector::for_blocks(v69, DecodeLimits::devnet(), vec![query(1, 2)]);
        assert_eq!(
            calls.first_request(),
            GetReceipts(vec![B256::repeat_byte(1)], None)
        );
        let err = calls
            .on_response(Receipts::new(v69, vec![block(3, 10)]))
            .unwrap_err();
        assert!(err.contains("3 receipts for block"), "{err}");
        let mut calls =
            Collector::for_blocks(v69, DecodeLimits::devnet(), vec![query(1, 2), query(2, 1)]);
        // A prefix is an answer.
        assert_eq!(
            calls.on_response(Receipts::new(v69, vec![block(2, 10)])),
            Ok(Step::Done(vec![block(2, 10)]))
        );
    }

    #[test]
    fn honest_receipts_fit_the_bounds_they_are_held_to() {
        // The largest receipt a transaction of gas limit g can have: g less the 21 000
        // it pays up front, all spent on one LOG0's data (375 gas + 8 per byte).
        for gas in [21_000u64 + 375, 100_000, 1_000_000, 30_000_000] {
            let data = ((gas - 21_000 - 375) / 8) as usize;
            let r = receipt(data, u64::MAX);
            assert!(r.length() as u64 <= limits::max_receipt_size(gas), "{gas}");
        }
    }
}
