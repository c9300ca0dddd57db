//! The devnet block producer (`--produce-blocks SECS`): every interval, a block on our
//! head from the pool's transactions, by the rules of WIRE.md §7.

use std::sync::Arc;
use std::time::Duration;

use devmux_chain::devnet::{self, seal_block, BlockTemplate, MAX_TXS_PER_BLOCK};
use devmux_chain::signing::SecretKey;
use devmux_chain::BlockWithReceipts;
use devmux_eth::alloy_primitives::Address;
use devmux_eth::TxPool;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

use crate::blocks::announce_block;
use crate::shared::Shared;
use crate::{Error, SyncHandle};

/// Builds devnet blocks on our head (WIRE.md §7): parent = head, difficulty 1,
/// timestamp genesis + 2n, beneficiary dev key 0 (as in every devnet block), gas limit 30 000 000, base fee 1 gwei,
/// the parent's state root, and the pool's oldest transactions (at most
/// [`MAX_TXS_PER_BLOCK`], each charged 21 000 gas, taken out of the pool), sealed with a
/// signer's key (§7.1). The block is inserted and announced through the relay of the
/// [`SyncHandle`] it was made from.
///
/// One producer per network: with difficulty 1 and "a tie keeps the head", two would
/// split it.
#[derive(Clone)]
pub struct Producer {
    shared: Arc<Shared>,
    beneficiary: Address,
    signer: SecretKey,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("beneficiary", &self.beneficiary)
            .field("signer", &self.signer.address())
            .finish_non_exhaustive()
    }
}

impl Producer {
    /// A producer relaying through `sync` and sealing with `signer`, which must be one
    /// of the chain's signers ([`Error::NotASigner`] otherwise: every block it made would
    /// be refused, by us first).
    pub fn new(sync: &SyncHandle, signer: SecretKey) -> Result<Self, Error> {
        let signers = sync
            .shared
            .chain
            .spec()
            .sealed_rules()
            .map(|rules| rules.signers.clone())
            .unwrap_or_default();
        if !signers.contains(&signer.address()) {
            return Err(Error::NotASigner {
                address: signer.address(),
                signers,
            });
        }
        Ok(Self {
            shared: sync.shared.clone(),
            beneficiary: devnet::dev_signer(),
            signer,
        })
    }

    /// Builds, inserts and announces one block now. The block is our head unless a
    /// heavier one arrived at the same moment; then its transactions go back to the
    /// pool and it stays a side block.
    pub async fn produce(&self) -> Result<BlockWithReceipts, Error> {
        let chain = &self.shared.chain;
        let head = chain.head();
        let parent = chain
            .header_by_hash(head.hash)
            .await?
            .ok_or(Error::HeadMissing(head.hash))?;
        let txs = self.shared.pool.take(MAX_TXS_PER_BLOCK);
        let template = BlockTemplate::devnet(parent.number + 1, self.beneficiary);
        let block = seal_block(&parent, template, txs, &self.signer);
        let hash = block.hash();
        match chain.insert_blocks(vec![block.clone()]).await {
            Ok(outcome) if outcome.head.hash == hash => {
                announce_block(
                    &self.shared,
                    &block,
                    hash,
                    outcome.head.total_difficulty,
                    None,
                );
                Ok(block)
            }
            Ok(_) => {
                debug!(
                    number = block.number(),
                    "produced block lost the head to another"
                );
                self.give_back(&block).await;
                Ok(block)
            }
            Err(e) => {
                self.give_back(&block).await;
                Err(e.into())
            }
        }
    }

    /// Returns a block's transactions to the pool.
    async fn give_back(&self, block: &BlockWithReceipts) {
        let txs = block
            .body
            .transactions
            .iter()
            .filter_map(|tx| tx.clone().try_into_pooled().ok())
            .collect();
        let _ = TxPool::insert(&self.shared.pool, txs).await;
    }

    /// Produces a block every `interval` until stopped (or until the sync it was made
    /// from shuts down). No block is made while sync is downloading a chain ahead of
    /// ours: it would be a fork.
    pub fn spawn(self, interval: Duration) -> ProducerHandle {
        let cancel = self.shared.cancel.child_token();
        let stop = cancel.clone();
        let task = tokio::spawn(
            async move {
                let period = interval.max(Duration::from_millis(1));
                let mut tick =
                    tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tick.tick() => {}
                    }
                    if self.shared.status.borrow().syncing {
                        debug!("syncing: no block produced");
                        continue;
                    }
                    match self.produce().await {
                        Ok(block) => info!(
                            number = block.number(),
                            txs = block.body.transactions.len(),
                            "produced block"
                        ),
                        Err(e) => warn!(error = %e, "block production failed"),
                    }
                }
            }
            .instrument(tracing::debug_span!("producer")),
        );
        ProducerHandle { stop, task }
    }
}

/// A running producer.
#[derive(Debug)]
pub struct ProducerHandle {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl ProducerHandle {
    /// Stops producing (a block being built is finished first).
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devmux_chain::devnet::Devnet;
    use devmux_chain::{Chain, ChainSpec, Pool, PoolConfig};
    use devmux_eth::{EthConfig, EthHandler};

    use crate::Syncer;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn produces_the_devnet_blocks_from_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        let chain = Chain::open_async(dir.path().join("chain.redb"), ChainSpec::devnet())
            .await
            .unwrap();
        let pool = Pool::new(PoolConfig::devnet());
        let (_handler, peers) = EthHandler::new(chain.clone(), pool.clone(), EthConfig::default());
        let sync = Syncer::spawn(
            chain.clone(),
            pool.clone(),
            peers,
            crate::SyncConfig::default(),
        );
        // Only a signer's key can produce.
        let stranger = devnet::dev_key(1).unwrap();
        assert!(matches!(
            Producer::new(&sync, stranger),
            Err(Error::NotASigner { .. })
        ));
        let producer = Producer::new(&sync, devnet::dev_key(0).unwrap()).unwrap();

        // With devnet block 1's transactions in the pool, the producer builds exactly
        // devnet block 1 (WIRE.md §7), and takes them out of the pool.
        let devnet = Devnet::new().unwrap();
        let txs = devnet.transactions(1);
        assert_eq!(txs.len(), 1);
        for tx in txs {
            pool.add(tx.try_into_pooled().unwrap()).unwrap();
        }
        let block = producer.produce().await.unwrap();
        let expected = devnet.block(devnet.genesis());
        assert_eq!(block, expected);
        assert_eq!(chain.head().hash, expected.hash());
        assert!(pool.is_empty());

        // An empty pool gives an empty block on the new head.
        let block = producer.produce().await.unwrap();
        assert_eq!(block.number(), 2);
        assert!(block.body.transactions.is_empty());
        assert_eq!(block.header.parent_hash, expected.hash());
        assert_eq!(block.header.timestamp, devnet::GENESIS_TIMESTAMP + 4);
        assert_eq!(chain.head().hash, block.hash());

        // A running producer keeps going until stopped.
        let running = producer.spawn(Duration::from_millis(20));
        for _ in 0..200 {
            if chain.head().number >= 5 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        running.stop().await;
        assert!(chain.head().number >= 5);
        sync.shutdown().await;
        assert!(sync.is_stopped());
    }
}
