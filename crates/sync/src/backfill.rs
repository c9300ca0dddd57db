//! The receipts backfill: blocks stored without their receipts (a chain file's, `devmux
//! import`; see [`devmux_chain::import`]) get them from peers that serve those blocks,
//! lowest first, each checked against its block's receipts root before it is stored.

use std::sync::Arc;
use std::time::Duration;

use devmux_chain::{validate, PendingReceipts};
use devmux_eth::alloy_primitives::B256;
use devmux_eth::{EthPeer, Receipt, ReceiptsQuery};
use tracing::{debug, info, warn};

use crate::budget::CheckFailed;
use crate::download::body_peers;
use crate::shared::Shared;
use crate::status::add;
use crate::Error;

/// Blocks asked for per request (eth/70 pages a block's receipts that exceed a
/// message).
const BLOCKS_PER_REQUEST: usize = 128;
/// How often a node with nothing to backfill looks again (a library user may import
/// blocks into a running node's chain).
const IDLE_POLL: Duration = Duration::from_secs(10);
/// How long to wait when no peer serves the blocks that wait.
const NO_PEER_WAIT: Duration = Duration::from_secs(1);

pub(crate) async fn backfill_loop(shared: Arc<Shared>) {
    let mut reported = false;
    loop {
        // The count is in memory: an idle node reads nothing from the store.
        if shared.chain.pending_receipts_count() == 0 {
            if reported {
                info!("receipts backfill: every stored block has its receipts");
                reported = false;
            }
            if !pause(&shared, IDLE_POLL).await {
                return;
            }
            continue;
        }
        let pending = match shared
            .or_cancel(shared.chain.pending_receipts(BLOCKS_PER_REQUEST))
            .await
        {
            Err(_) => return,
            Ok(Ok(pending)) => pending,
            Ok(Err(e)) => {
                warn!("receipts backfill: reading the store: {e}");
                if !pause(&shared, IDLE_POLL).await {
                    return;
                }
                continue;
            }
        };
        let Some(first) = pending.first().map(|p| p.number) else {
            // Only blocks off the canonical chain wait: nothing to ask for.
            if !pause(&shared, IDLE_POLL).await {
                return;
            }
            continue;
        };
        if !reported {
            let total = shared.chain.pending_receipts_count();
            info!("receipts backfill: {total} stored blocks wait for their receipts, from block {first}");
            reported = true;
        }
        let mut stored = 0;
        for peer in body_peers(&shared, first, None) {
            match backfill_from(&shared, &peer, &pending).await {
                Ok(0) => shared.bench(peer.peer_id(), shared.config.retry_cooldown),
                Ok(n) => {
                    stored = n;
                    break;
                }
                Err(Error::ShuttingDown) => return,
                Err(e) => shared.punish(&peer, &e),
            }
        }
        if stored == 0 && !pause(&shared, NO_PEER_WAIT).await {
            return;
        }
    }
}

/// Sleeps `period`; false if shutdown came first.
async fn pause(shared: &Shared, period: Duration) -> bool {
    shared.or_cancel(tokio::time::sleep(period)).await.is_ok()
}

/// Asks `peer` for the receipts of `pending`, checks what it sent against each block
/// (on the root-check budget: hashing is CPU work its data makes us do) and stores it;
/// returns how many blocks got their receipts (0: the peer has none of them).
async fn backfill_from(
    shared: &Shared,
    peer: &EthPeer,
    pending: &[PendingReceipts],
) -> Result<usize, Error> {
    let queries: Vec<ReceiptsQuery> = pending
        .iter()
        .map(|p| ReceiptsQuery::new(p.hash, &p.header, &p.body))
        .collect();
    let receipts = shared
        .request(peer, peer.get_block_receipts(queries))
        .await?;
    if receipts.is_empty() {
        return Ok(0);
    }
    let bytes: usize = receipts
        .iter()
        .map(devmux_eth::alloy_rlp::Encodable::length)
        .sum();
    add(&shared.counters.bytes_downloaded, bytes as u64);
    let spec = shared.chain.spec().clone();
    let blocks: Vec<PendingReceipts> = pending[..receipts.len().min(pending.len())].to_vec();
    let checked = shared
        .root_checks
        .run(peer.peer_id(), move |cancelled| {
            let mut out: Vec<(B256, Vec<Receipt>)> = Vec::with_capacity(blocks.len());
            for (block, receipts) in blocks.iter().zip(receipts) {
                if cancelled.is_set() {
                    return Err(CheckFailed::Cancelled);
                }
                validate::validate_receipts(
                    &spec,
                    &block.header,
                    block.hash,
                    block.body.transactions.len(),
                    &receipts,
                )
                .map_err(|e| CheckFailed::Invalid(e.to_string()))?;
                out.push((block.hash, receipts));
            }
            Ok(out)
        })
        .await?;
    let stored = shared
        .chain
        .insert_receipts(checked)
        .await
        .map_err(Error::Chain)?;
    add(&shared.counters.receipts_backfilled, stored as u64);
    debug!(peer = %peer.peer_id(), "receipts backfill: {stored} blocks from block {}", pending[0].number);
    Ok(stored)
}
