//! Fetching one block and the ancestors of it we lack, by hash
//! ([`crate::SyncHandle::fetch_block`]): what a consensus layer's forkchoice update needs
//! when it names a head we do not have, which may be on a branch no peer announces as its
//! head (so the sync rounds, which follow peers' heads, would never fetch it).
//!
//! From one peer at a time (those that announced the block as their head first, those
//! the sync rounds benched last): headers by hash, newest first (`GetBlockHeaders` with
//! `reverse`), each checked to be the parent of the one before, until one whose parent
//! we have, at most [`MAX_ANCESTRY`] of them; then the headers are checked against the
//! chain's header rules from that known parent on, and their bodies and receipts are
//! fetched from every peer that has them (the one that served the headers included) and
//! inserted, parents first, exactly as a sync round's ([`download_bodies`]).

use std::sync::Arc;

use devmux_eth::alloy_primitives::B256;
use devmux_eth::alloy_rlp::Encodable;
use devmux_eth::{EthPeer, GetBlockHeaders, Header};

use crate::checks::{link_headers, Hashed, LinkError};
use crate::download::{block_refusal, download_bodies, insert_synced, other_chain};
use crate::shared::Shared;
use crate::status::add;
use crate::Error;

/// Most headers fetched back from the wanted block before reaching one we have: 8192
/// (a day of 12 s slots is 7200). A block further ahead than that is left to the sync
/// rounds, which follow peers' heads forward from our chain; once they are close enough,
/// the fetch succeeds.
pub const MAX_ANCESTRY: usize = 8192;

/// Fetches block `hash` and its missing ancestors; returns the blocks inserted (0 when
/// it is stored already).
pub(crate) async fn fetch_block(shared: &Arc<Shared>, hash: B256) -> Result<usize, Error> {
    if shared.chain.header_by_hash(hash).await?.is_some() {
        return Ok(0);
    }
    let mut peers: Vec<EthPeer> = shared
        .peers
        .list()
        .into_iter()
        .filter(|p| !p.is_closed())
        .collect();
    crate::rng::shuffle_peers(&mut peers);
    // Peers that announced it as their head first: they surely have it. Peers the sync
    // rounds benched last, but asked too: a round benches a peer whose chain branches
    // off deeper than the reorg bound, and that may be the branch wanted here (a peer
    // that lied was disconnected).
    peers.sort_by_key(|p| (p.head().hash != hash, shared.is_benched(&p.peer_id())));
    let mut why = String::from("no peer to ask");
    for peer in peers {
        match from_peer(shared, &peer, hash).await {
            Ok(inserted) => return Ok(inserted),
            Err(e @ (Error::ShuttingDown | Error::Chain(_) | Error::AncestryTooLong { .. })) => {
                return Err(e)
            }
            // Lacking a block that is not its head is no fault.
            Err(e @ Error::Lacking { .. }) => why = e.to_string(),
            Err(e) => {
                if e.peer() == Some(peer.peer_id()) {
                    shared.punish(&peer, &e);
                }
                why = e.to_string();
            }
        }
    }
    Err(Error::Unavailable { hash, why })
}

/// [`fetch_block`] from `peer`'s headers.
async fn from_peer(shared: &Arc<Shared>, peer: &EthPeer, hash: B256) -> Result<usize, Error> {
    let id = peer.peer_id();
    let batch = shared.config.header_batch();
    let checkpoint = shared.chain.checkpoint();
    // Newest first: `wanted` is the hash the next header must have.
    let mut fetched: Vec<Hashed> = Vec::new();
    let mut wanted = hash;
    let ancestor = 'walk: loop {
        let room = (MAX_ANCESTRY - fetched.len()) as u64;
        let request = GetBlockHeaders {
            start: wanted.into(),
            limit: batch.min(room).max(1),
            skip: 0,
            reverse: true,
        };
        let headers = shared
            .request(peer, peer.get_block_headers(request))
            .await?;
        if headers.is_empty() {
            return Err(Error::Lacking {
                peer: id,
                what: format!("block {wanted}"),
            });
        }
        add(&shared.counters.headers_downloaded, headers.len() as u64);
        let bytes: usize = headers.iter().map(Encodable::length).sum();
        add(&shared.counters.bytes_downloaded, bytes as u64);
        for header in headers {
            let header = Hashed::new(header);
            if header.hash != wanted {
                return Err(Error::InvalidHeaders {
                    peer: id,
                    why: format!(
                        "asked for block {wanted} and its ancestors, got block {} ({}) instead",
                        header.header.number, header.hash
                    ),
                });
            }
            if let Some(pin) = checkpoint.filter(|p| p.number == header.header.number) {
                if pin.hash != header.hash {
                    return Err(other_chain(id, pin.number, header.hash));
                }
            }
            if header.header.number == 0 {
                // Not our genesis (we would have it): Status said it was.
                return Err(Error::InvalidHeaders {
                    peer: id,
                    why: format!("its chain of {hash} goes down to another genesis"),
                });
            }
            wanted = header.header.parent_hash;
            let parent = shared.chain.header_by_hash(wanted).await?;
            fetched.push(header);
            if let Some(parent) = parent {
                break 'walk Hashed {
                    header: parent,
                    hash: wanted,
                };
            }
        }
        if fetched.len() >= MAX_ANCESTRY {
            return Err(Error::AncestryTooLong {
                hash,
                max: MAX_ANCESTRY,
            });
        }
    };
    tracing::debug!(
        peer = %id,
        %hash,
        from = ancestor.header.number,
        blocks = fetched.len(),
        "fetching a block and its ancestors"
    );
    let headers: Vec<Header> = fetched.into_iter().rev().map(|h| h.header).collect();
    let linked = match link_headers(shared.chain.spec(), &ancestor, headers) {
        Ok(linked) => linked,
        // Each was checked to be the parent of the next already.
        Err(LinkError::Detached | LinkError::Invalid(_)) => {
            return Err(Error::InvalidHeaders {
                peer: id,
                why: format!("the ancestors of {hash} do not link"),
            })
        }
        Err(LinkError::Rule(e)) => return Err(block_refusal(id, e)),
    };
    let mut inserted = 0;
    for chunk in linked.chunks(batch as usize) {
        let blocks = download_bodies(shared, Arc::new(chunk.to_vec()), Some(id)).await?;
        inserted += insert_synced(shared, id, blocks).await?;
    }
    Ok(inserted)
}
