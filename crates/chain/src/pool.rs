//! A bounded transaction pool keyed by hash.
//!
//! It holds transactions in their pooled (network) form, oldest first, bounded by count
//! and by bytes. On insert it checks what can be checked without state (type, chain id,
//! size, intrinsic gas, fee cap against the base fee, signature). Against floods it
//! follows go-ethereum's defaults ([`PoolConfig::devnet`]): at most 16 transactions per
//! sender from peers, a 3 h lifetime, and when the peers' share is full a transaction
//! gets in only by paying strictly more per gas than the cheapest one, which it evicts.
//! Local transactions (`eth_sendRawTransaction`, [`Pool::add_local`]) have slots of
//! their own that peers cannot fill, so a flood never locks a user out. Block
//! production takes transactions out in arrival order; importing a block removes the
//! transactions it includes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use alloy_consensus::{EthereumTxEnvelope, Signed, Transaction};
use alloy_eips::eip2718::Encodable2718;
use alloy_eips::Typed2718;
use alloy_primitives::{Address, B256};
use devmux_eth::{limits, BlockBody, PooledTransaction, TransactionSigned, TxAnnouncement};
use schnellru::{ByLength, LruMap};
use tokio::sync::broadcast;

use crate::{signing, Error};

/// Pool limits and chain rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Chain id transactions must carry (EIP-155 for legacy ones).
    pub chain_id: u64,
    /// Transaction types accepted (those active on the chain).
    pub types: Vec<u8>,
    /// Most transactions held.
    pub max_count: usize,
    /// Most bytes held (sum of encoded sizes).
    pub max_bytes: usize,
    /// Largest encoded transaction accepted: 128 KiB, "common practice" per
    /// `devp2p/caps/eth.md`.
    pub max_tx_size: usize,
    /// Base fee every transaction's fee cap must cover.
    pub base_fee: u64,
    /// Most transactions of one sender held from peers (go-ethereum's `AccountSlots`,
    /// 16): one account cannot fill the pool. Local transactions are exempt.
    pub max_per_sender: usize,
    /// How long a transaction from a peer stays pooled (go-ethereum's `Lifetime`, 3 h).
    pub lifetime: Duration,
    /// Slots only local transactions (`eth_sendRawTransaction`) may take: peers fill at
    /// most `max_count - local_slots`, so a flood of junk never locks a user out.
    pub local_slots: usize,
}

impl PoolConfig {
    /// The pool of `spec`'s chain: the devnet's ([`PoolConfig::devnet`]) on a sealed
    /// chain; on a proof-of-stake one the same limits with the chain's id, and a fee cap
    /// floor of 7 wei, the lowest base fee EIP-1559 lets a chain reach (the pool does not
    /// follow the head's base fee; blob and EIP-7702 transactions are not pooled).
    pub fn for_chain(spec: &crate::ChainSpec) -> Self {
        if spec.is_sealed() {
            return Self {
                chain_id: spec.chain_id,
                ..Self::devnet()
            };
        }
        Self {
            chain_id: spec.chain_id,
            base_fee: alloy_eips::eip1559::MIN_PROTOCOL_BASE_FEE,
            ..Self::devnet()
        }
    }

    /// The devnet pool: chain 1337, London types (legacy, EIP-2930, EIP-1559), 1 gwei base
    /// fee, up to 8192 transactions and 64 MiB, with go-ethereum's flood defaults: 16
    /// per sender, 3 h lifetime, and 1024 of the slots kept for local transactions.
    pub fn devnet() -> Self {
        Self {
            chain_id: crate::devnet::CHAIN_ID,
            types: vec![0, 1, 2],
            max_count: 8192,
            max_bytes: 64 * 1024 * 1024,
            max_tx_size: 128 * 1024,
            base_fee: crate::devnet::BASE_FEE,
            max_per_sender: 16,
            lifetime: Duration::from_secs(3 * 3600),
            local_slots: 1024,
        }
    }
}

struct Entry {
    tx: Arc<PooledTransaction>,
    sender: Address,
    announcement: TxAnnouncement,
    seq: u64,
    /// Added by `add_local` (RPC): exempt from the per-sender cap, the lifetime and
    /// eviction.
    local: bool,
    added: Instant,
    /// What the transaction pays a block producer per gas at the pool's base fee: the
    /// order in which remote transactions are evicted.
    tip: u128,
}

#[derive(Default)]
struct State {
    by_hash: HashMap<B256, Entry>,
    /// Arrival order.
    by_seq: BTreeMap<u64, B256>,
    /// Remote transactions by (tip, arrival), cheapest and then oldest first.
    by_tip: BTreeSet<(u128, u64)>,
    /// Remote transactions held per sender.
    per_sender: HashMap<Address, usize>,
    remote: usize,
    next_seq: u64,
    bytes: usize,
}

impl State {
    fn remove(&mut self, hash: &B256) -> Option<Entry> {
        let entry = self.by_hash.remove(hash)?;
        self.by_seq.remove(&entry.seq);
        self.bytes -= entry.announcement.size as usize;
        if !entry.local {
            self.by_tip.remove(&(entry.tip, entry.seq));
            self.remote -= 1;
            if let Some(n) = self.per_sender.get_mut(&entry.sender) {
                *n -= 1;
                if *n == 0 {
                    self.per_sender.remove(&entry.sender);
                }
            }
        }
        Some(entry)
    }

    /// Drops remote transactions older than `lifetime`, oldest first.
    fn expire(&mut self, lifetime: Duration, now: Instant) {
        let expired: Vec<B256> = self
            .by_seq
            .values()
            .filter_map(|h| self.by_hash.get(h))
            .take_while(|e| now.saturating_duration_since(e.added) > lifetime || e.local)
            .filter(|e| !e.local)
            .map(|e| *e.tx.tx_hash())
            .collect();
        for hash in expired {
            self.remove(&hash);
        }
    }
}

/// The transaction pool. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Pool {
    config: Arc<PoolConfig>,
    state: Arc<Mutex<State>>,
    added: broadcast::Sender<TxAnnouncement>,
    /// Hashes of transactions whose signature did not recover: sent again, they are
    /// refused without a second recovery.
    bad_signatures: Arc<Mutex<LruMap<B256, ()>>>,
}

/// How many invalid-signature hashes the pool remembers.
pub const BAD_SIGNATURE_MEMORY: u32 = 4096;

impl core::fmt::Debug for Pool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pool")
            .field("len", &self.len())
            .field("bytes", &self.bytes())
            .finish()
    }
}

impl Pool {
    /// An empty pool.
    pub fn new(config: PoolConfig) -> Self {
        // Slow subscribers lag and skip announcements rather than hold the pool up.
        let (added, _) = broadcast::channel(limits::MAX_TX_ANNOUNCEMENTS);
        Self {
            config: Arc::new(config),
            state: Arc::default(),
            added,
            bad_signatures: Arc::new(Mutex::new(LruMap::new(ByLength::new(BAD_SIGNATURE_MEMORY)))),
        }
    }

    fn bad_signatures(&self) -> MutexGuard<'_, LruMap<B256, ()>> {
        self.bad_signatures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Number of transactions held.
    pub fn len(&self) -> usize {
        self.state().by_hash.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.state().bytes
    }

    /// Whether `hash` is remembered as a transaction whose signature did not recover
    /// (at most [`BAD_SIGNATURE_MEMORY`] are).
    pub fn is_known_bad(&self, hash: &B256) -> bool {
        self.bad_signatures().peek(hash).is_some()
    }

    /// Whether the pool holds `hash`.
    pub fn contains(&self, hash: &B256) -> bool {
        self.state().by_hash.contains_key(hash)
    }

    /// Announcements of transactions added from now on, for relaying them.
    pub fn subscribe(&self) -> broadcast::Receiver<TxAnnouncement> {
        self.added.subscribe()
    }

    /// Checks a transaction without the pool's state; returns its sender. Costs one
    /// signature recovery.
    pub fn validate(&self, tx: &PooledTransaction) -> Result<Address, Error> {
        let cfg = &self.config;
        let ty = tx.ty();
        if !cfg.types.contains(&ty) {
            return Err(Error::TxType(ty));
        }
        if tx.chain_id() != Some(cfg.chain_id) {
            return Err(Error::TxChainId {
                got: tx.chain_id(),
                expected: cfg.chain_id,
            });
        }
        let size = tx.encode_2718_len();
        if size > cfg.max_tx_size {
            return Err(Error::TxTooLarge {
                size,
                max: cfg.max_tx_size,
            });
        }
        let intrinsic = intrinsic_gas(tx);
        if tx.gas_limit() < intrinsic {
            return Err(Error::TxIntrinsicGas {
                gas_limit: tx.gas_limit(),
                intrinsic,
            });
        }
        if tx.max_fee_per_gas() < u128::from(cfg.base_fee) {
            return Err(Error::TxFeeTooLow {
                fee_cap: tx.max_fee_per_gas(),
                base_fee: cfg.base_fee,
            });
        }
        signing::recover_signer(tx.signature(), &tx.signature_hash())
    }

    /// Validates and adds one transaction from a peer; returns its hash. Within the
    /// per-sender cap and the peers' share of the pool; when that share is full, it
    /// evicts the cheapest remote transaction if it pays strictly more per gas.
    pub fn add(&self, tx: PooledTransaction) -> Result<B256, Error> {
        self.add_from(tx, false)
    }

    /// Validates and adds one local transaction (`eth_sendRawTransaction`): it may take
    /// the slots kept for local transactions, is exempt from the per-sender cap and the
    /// lifetime, and is never evicted for a better-paying one.
    pub fn add_local(&self, tx: PooledTransaction) -> Result<B256, Error> {
        self.add_from(tx, true)
    }

    fn add_from(&self, tx: PooledTransaction, local: bool) -> Result<B256, Error> {
        let hash = *tx.tx_hash();
        if self.contains(&hash) {
            return Err(Error::TxKnown(hash));
        }
        if self.bad_signatures().get(&hash).is_some() {
            return Err(Error::TxSignature);
        }
        let sender = match self.validate(&tx) {
            Ok(sender) => sender,
            Err(Error::TxSignature) => {
                self.bad_signatures().insert(hash, ());
                return Err(Error::TxSignature);
            }
            Err(e) => return Err(e),
        };
        let size = tx.encode_2718_len();
        let announcement = TxAnnouncement {
            ty: tx.ty(),
            size: size as u64,
            hash,
        };
        let tip = tx
            .effective_tip_per_gas(self.config.base_fee)
            .unwrap_or_default();
        let now = Instant::now();
        {
            let mut state = self.state();
            let cfg = &self.config;
            state.expire(cfg.lifetime, now);
            if state.by_hash.contains_key(&hash) {
                return Err(Error::TxKnown(hash));
            }
            if !local {
                let held = state.per_sender.get(&sender).copied().unwrap_or(0);
                if held >= cfg.max_per_sender {
                    return Err(Error::SenderFull {
                        sender,
                        max: cfg.max_per_sender,
                    });
                }
            }
            let remote_cap = cfg.max_count.saturating_sub(cfg.local_slots);
            let full = |state: &State| {
                state.by_hash.len() >= cfg.max_count
                    || state.bytes.saturating_add(size) > cfg.max_bytes
                    || (!local && state.remote >= remote_cap)
            };
            // A better-paying transaction takes the place of the cheapest remote one.
            while full(&state) {
                let Some(&(worst_tip, worst_seq)) = state.by_tip.first() else {
                    return Err(Error::PoolFull);
                };
                if !local && tip <= worst_tip {
                    return Err(Error::PoolFull);
                }
                let Some(worst) = state.by_seq.get(&worst_seq).copied() else {
                    return Err(Error::PoolFull);
                };
                state.remove(&worst);
            }
            let seq = state.next_seq;
            state.next_seq += 1;
            state.bytes += size;
            state.by_seq.insert(seq, hash);
            if !local {
                state.by_tip.insert((tip, seq));
                state.remote += 1;
                *state.per_sender.entry(sender).or_default() += 1;
            }
            state.by_hash.insert(
                hash,
                Entry {
                    tx: Arc::new(tx),
                    sender,
                    announcement,
                    seq,
                    local,
                    added: now,
                    tip,
                },
            );
        }
        // Nobody listening is fine.
        let _ = self.added.send(announcement);
        Ok(hash)
    }

    /// Adds transactions one by one; one result per transaction.
    pub fn add_all(&self, txs: Vec<PooledTransaction>) -> Vec<Result<B256, Error>> {
        self.add_all_until(txs, &AtomicBool::new(false))
    }

    /// [`Pool::add_all`], stopping before the next transaction once `cancelled` is set:
    /// those not looked at get [`Error::Cancelled`].
    pub fn add_all_until(
        &self,
        txs: Vec<PooledTransaction>,
        cancelled: &AtomicBool,
    ) -> Vec<Result<B256, Error>> {
        txs.into_iter()
            .map(|tx| {
                if cancelled.load(Ordering::Relaxed) {
                    Err(Error::Cancelled)
                } else {
                    self.add(tx)
                }
            })
            .collect()
    }

    /// Announcements of every pooled transaction, oldest first.
    pub fn announcements(&self) -> Vec<TxAnnouncement> {
        let state = self.state();
        state
            .by_seq
            .values()
            .filter_map(|h| state.by_hash.get(h))
            .map(|e| e.announcement)
            .collect()
    }

    /// The sender of a pooled transaction.
    pub fn sender(&self, hash: &B256) -> Option<Address> {
        self.state().by_hash.get(hash).map(|e| e.sender)
    }

    /// Pooled transactions for `hashes`, in order, unknown ones skipped, within
    /// [`limits::MAX_POOLED_TXS_SERVE`] and [`limits::SOFT_RESPONSE_SIZE`].
    pub fn get_many(&self, hashes: &[B256]) -> Vec<Arc<PooledTransaction>> {
        let state = self.state();
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for entry in hashes.iter().filter_map(|h| state.by_hash.get(h)) {
            if out.len() == limits::MAX_POOLED_TXS_SERVE || bytes >= limits::SOFT_RESPONSE_SIZE {
                break;
            }
            bytes += entry.announcement.size as usize;
            out.push(entry.tx.clone());
        }
        out
    }

    /// Removes these transactions (e.g. those of an imported block); unknown ones are
    /// ignored. Returns how many were removed.
    pub fn remove(&self, hashes: &[B256]) -> usize {
        let mut state = self.state();
        hashes.iter().filter(|h| state.remove(h).is_some()).count()
    }

    /// Removes the transactions of a block.
    pub fn remove_block(&self, body: &BlockBody) -> usize {
        let hashes: Vec<B256> = body.transactions.iter().map(|t| *t.tx_hash()).collect();
        self.remove(&hashes)
    }

    /// Takes up to `max` transactions out of the pool, oldest first, in block form, for
    /// block production.
    pub fn take(&self, max: usize) -> Vec<TransactionSigned> {
        let mut state = self.state();
        let hashes: Vec<B256> = state.by_seq.values().take(max).copied().collect();
        let mut out = Vec::with_capacity(hashes.len());
        for hash in hashes {
            if let Some(entry) = state.remove(&hash) {
                out.push(to_block_form(Arc::unwrap_or_clone(entry.tx)));
            }
        }
        out
    }
}

/// A pooled transaction in the form blocks carry: an EIP-4844 transaction loses its
/// sidecar.
pub fn to_block_form(tx: PooledTransaction) -> TransactionSigned {
    match tx {
        EthereumTxEnvelope::Legacy(t) => EthereumTxEnvelope::Legacy(t),
        EthereumTxEnvelope::Eip2930(t) => EthereumTxEnvelope::Eip2930(t),
        EthereumTxEnvelope::Eip1559(t) => EthereumTxEnvelope::Eip1559(t),
        EthereumTxEnvelope::Eip7702(t) => EthereumTxEnvelope::Eip7702(t),
        EthereumTxEnvelope::Eip4844(t) => {
            let (tx, signature, hash) = t.into_parts();
            EthereumTxEnvelope::Eip4844(Signed::new_unchecked(tx.tx, signature, hash))
        }
    }
}

/// Intrinsic gas (Yellow Paper, EIP-2028 calldata, EIP-2930 access lists, EIP-3860
/// initcode words are not charged before Shanghai, EIP-7702 authorizations).
pub fn intrinsic_gas(tx: &PooledTransaction) -> u64 {
    let input = tx.input();
    let zeros = input.iter().filter(|&&b| b == 0).count() as u64;
    let nonzeros = input.len() as u64 - zeros;
    let mut gas = 21_000u64
        .saturating_add(zeros * 4)
        .saturating_add(nonzeros * 16);
    if tx.is_create() {
        gas = gas.saturating_add(32_000);
    }
    if let Some(list) = tx.access_list() {
        for item in list.iter() {
            gas = gas
                .saturating_add(2_400)
                .saturating_add(1_900 * item.storage_keys.len() as u64);
        }
    }
    if let Some(auths) = tx.authorization_list() {
        gas = gas.saturating_add(25_000 * auths.len() as u64);
    }
    gas
}

impl devmux_eth::TxPool for Pool {
    type Error = Error;

    fn announcements(&self) -> Vec<TxAnnouncement> {
        Pool::announcements(self)
    }

    fn unknown(&self, hashes: &[B256]) -> Vec<B256> {
        let state = self.state();
        hashes
            .iter()
            .filter(|h| !state.by_hash.contains_key(*h))
            .copied()
            .collect()
    }

    fn get(&self, hashes: &[B256]) -> Vec<PooledTransaction> {
        self.get_many(hashes)
            .into_iter()
            .map(Arc::unwrap_or_clone)
            .collect()
    }

    fn is_peer_fault(error: &Error) -> bool {
        matches!(error, Error::TxSignature)
    }

    async fn insert(&self, txs: Vec<PooledTransaction>) -> Vec<Result<B256, Error>> {
        /// Sets the flag when the insert's future is dropped (its caller timed out or
        /// left), so that the blocking task stops recovering signatures nobody awaits.
        struct CancelOnDrop(Arc<AtomicBool>);
        impl Drop for CancelOnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let count = txs.len();
        let pool = self.clone();
        let cancelled = Arc::new(AtomicBool::new(false));
        let _guard = CancelOnDrop(cancelled.clone());
        // Signature recovery is CPU work: keep it off the reactor.
        match crate::blocking::off_reactor(move || pool.add_all_until(txs, &cancelled)).await {
            Ok(results) => results,
            Err(e) => (0..count).map(|_| Err(Error::Task(e.clone()))).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devnet::Devnet;
    use alloy_consensus::{SignableTransaction, TxEip1559, TxEip4844, TxEip4844WithSidecar};
    use alloy_eips::eip4844::BlobTransactionSidecar;
    use alloy_eips::eip7594::BlobTransactionSidecarVariant;
    use alloy_primitives::{Bytes, TxKind, U256};
    use devmux_eth::TxPool;

    fn pooled(tx: TransactionSigned) -> PooledTransaction {
        tx.try_into_pooled().unwrap()
    }

    fn transfers(devnet: &Devnet, n: u64) -> Vec<PooledTransaction> {
        let to = devnet.keys()[1].address();
        (0..n)
            .map(|i| pooled(devnet.transfer(2, i, to, U256::from(i))))
            .collect()
    }

    fn signed_1559(devnet: &Devnet, edit: impl FnOnce(&mut TxEip1559)) -> PooledTransaction {
        let mut tx = TxEip1559 {
            chain_id: 1337,
            nonce: 0,
            gas_limit: 21_000,
            max_fee_per_gas: 2_000_000_000,
            max_priority_fee_per_gas: 1,
            to: TxKind::Call(devnet.keys()[3].address()),
            value: U256::from(1),
            access_list: Default::default(),
            input: Bytes::new(),
        };
        edit(&mut tx);
        let sig = devnet.keys()[4].sign_hash(&tx.signature_hash());
        pooled(tx.into_signed(sig).into())
    }

    #[test]
    fn holds_announces_serves_and_gives_up_transactions() {
        let devnet = Devnet::new().unwrap();
        let pool = Pool::new(PoolConfig::devnet());
        let mut events = pool.subscribe();
        let txs = transfers(&devnet, 5);
        let hashes: Vec<B256> = pool
            .add_all(txs.clone())
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(pool.len(), 5);
        assert_eq!(pool.sender(&hashes[0]), Some(devnet.keys()[2].address()));

        let ann = pool.announcements();
        assert_eq!(ann.iter().map(|a| a.hash).collect::<Vec<_>>(), hashes);
        assert!(ann
            .iter()
            .all(|a| a.ty == 2 && a.size == txs[0].encode_2718_len() as u64));
        assert_eq!(events.try_recv().unwrap(), ann[0]);
        assert_eq!(
            pool.bytes(),
            ann.iter().map(|a| a.size as usize).sum::<usize>()
        );

        assert!(matches!(pool.add(txs[0].clone()), Err(Error::TxKnown(_))));
        let unknown = B256::repeat_byte(9);
        assert_eq!(pool.unknown(&[hashes[1], unknown]), vec![unknown]);
        let got = TxPool::get(&pool, &[hashes[3], unknown, hashes[1]]);
        assert_eq!(got, vec![txs[3].clone(), txs[1].clone()]);

        let taken = pool.take(2);
        assert_eq!(
            taken.iter().map(|t| *t.tx_hash()).collect::<Vec<_>>(),
            hashes[..2]
        );
        assert_eq!(pool.len(), 3);
        assert_eq!(pool.remove(&[hashes[4], unknown]), 1);
        assert_eq!(pool.len(), 2);
        let body = BlockBody {
            transactions: taken,
            ommers: vec![],
            withdrawals: None,
        };
        assert_eq!(pool.remove_block(&body), 0);
        assert_eq!(pool.take(10).len(), 2);
        assert!(pool.is_empty());
        assert_eq!(pool.bytes(), 0);
    }

    #[test]
    fn refuses_invalid_transactions() {
        let devnet = Devnet::new().unwrap();
        let pool = Pool::new(PoolConfig::devnet());
        let err = |tx| pool.add(tx).unwrap_err();
        assert!(matches!(
            err(signed_1559(&devnet, |t| t.chain_id = 1)),
            Error::TxChainId { got: Some(1), .. }
        ));
        assert!(matches!(
            err(signed_1559(&devnet, |t| t.gas_limit = 20_999)),
            Error::TxIntrinsicGas { .. }
        ));
        assert!(matches!(
            err(signed_1559(&devnet, |t| t.input = Bytes::from(vec![1u8; 100]))),
            Error::TxIntrinsicGas {
                intrinsic: 22_600,
                ..
            }
        ));
        assert!(matches!(
            err(signed_1559(&devnet, |t| t.max_fee_per_gas = 999_999_999)),
            Error::TxFeeTooLow { .. }
        ));
        assert!(matches!(
            err(signed_1559(&devnet, |t| {
                t.input = Bytes::from(vec![0u8; 200 * 1024]);
                t.gas_limit = 10_000_000;
            })),
            Error::TxTooLarge { .. }
        ));
        // A tampered signature recovers to nobody or is high-s.
        let tx = signed_1559(&devnet, |_| {});
        let PooledTransaction::Eip1559(signed) = tx else {
            unreachable!()
        };
        let (inner, sig, _) = signed.into_parts();
        let high_s = signing::high_s_twin(&sig);
        assert!(matches!(
            err(pooled(inner.clone().into_signed(high_s).into())),
            Error::TxSignature
        ));
        // A blob transaction: valid in itself, but Cancun is not active on the devnet.
        let blob = TxEip4844 {
            chain_id: 1337,
            gas_limit: 21_000,
            max_fee_per_gas: 2_000_000_000,
            ..Default::default()
        };
        let sidecar = BlobTransactionSidecarVariant::Eip4844(BlobTransactionSidecar::new(
            vec![],
            vec![],
            vec![],
        ));
        let with_sidecar = TxEip4844WithSidecar::from_tx_and_sidecar(blob, sidecar);
        let sig = devnet.keys()[4].sign_hash(&with_sidecar.signature_hash());
        assert!(matches!(
            err(with_sidecar.into_signed(sig).into()),
            Error::TxType(3)
        ));
        assert!(pool.is_empty());
    }

    /// ethereum/tests `ttEIP2930/accessListStorage32Bytes` publishes intrinsic gas 0x62d4.
    #[test]
    fn intrinsic_gas_matches_ethereum_tests() {
        let path = format!(
            "{}/../eth/testdata/ethtests-tx-2930-accessListStorage32Bytes.hex",
            env!("CARGO_MANIFEST_DIR")
        );
        let raw =
            alloy_primitives::hex::decode(std::fs::read_to_string(path).unwrap().trim()).unwrap();
        let tx = <TransactionSigned as alloy_eips::eip2718::Decodable2718>::decode_2718_exact(&raw)
            .unwrap();
        assert_eq!(intrinsic_gas(&pooled(tx)), 0x62d4);
    }

    #[test]
    fn bounds_hold_under_a_flood() {
        let config = PoolConfig {
            max_count: 100,
            max_bytes: 100 * 1024,
            local_slots: 0,
            ..PoolConfig::devnet()
        };
        let pool = Pool::new(config);
        // From as many senders, all at the same price: nothing can evict anything.
        let flood: Vec<_> = (0..1_000).map(|i| junk(i, 0, 1)).collect();
        let results = pool.add_all(flood.clone());
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 100);
        assert!(results[100..]
            .iter()
            .all(|r| matches!(r, Err(Error::PoolFull))));
        assert_eq!(pool.len(), 100);
        // The first hundred stayed: a flood at the same price cannot push out what the
        // pool holds.
        assert!(pool.contains(flood[0].tx_hash()));

        let small = Pool::new(PoolConfig {
            max_bytes: 1_000,
            ..PoolConfig::devnet()
        });
        let size = flood[0].encode_2718_len();
        let fits = 1_000 / size;
        let results = small.add_all(flood[..fits + 5].to_vec());
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), fits);
        assert!(small.bytes() <= 1_000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn async_insert_through_the_trait() {
        let pool = Pool::new(PoolConfig::devnet());
        let txs: Vec<_> = (0..20).map(|i| junk(i, 0, 1)).collect();
        let results = TxPool::insert(&pool, txs.clone()).await;
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(TxPool::announcements(&pool).len(), 20);
    }

    #[test]
    fn invalid_signatures_are_remembered_and_imports_can_be_cancelled() {
        let devnet = Devnet::new().unwrap();
        let pool = Pool::new(PoolConfig::devnet());
        let good = devnet
            .transfer(
                1,
                0,
                devnet.keys()[2].address(),
                alloy_primitives::U256::from(1),
            )
            .try_into_pooled()
            .unwrap();
        let tx = TxEip1559 {
            chain_id: 1337,
            nonce: 0,
            gas_limit: 21_000,
            max_fee_per_gas: 2_000_000_000,
            to: alloy_primitives::TxKind::Call(Address::ZERO),
            ..Default::default()
        };
        let honest = devnet.keys()[3].sign_hash(&tx.signature_hash());
        let high_s = signing::high_s_twin(&honest);
        let bad: PooledTransaction = tx.into_signed(high_s).into();
        let bad_hash = *bad.tx_hash();
        assert!(!pool.is_known_bad(&bad_hash));
        assert!(matches!(pool.add(bad.clone()), Err(Error::TxSignature)));
        assert!(pool.is_known_bad(&bad_hash));
        // Sent again, it is refused from memory, with the same error.
        assert!(matches!(pool.add(bad), Err(Error::TxSignature)));
        assert!(<Pool as TxPool>::is_peer_fault(&Error::TxSignature));
        assert!(!<Pool as TxPool>::is_peer_fault(&Error::PoolFull));

        // A cancelled import looks at nothing more.
        let cancelled = AtomicBool::new(true);
        let results = pool.add_all_until(vec![good.clone()], &cancelled);
        assert!(matches!(results[..], [Err(Error::Cancelled)]));
        assert!(!pool.contains(good.tx_hash()));
        assert!(pool.add_all(vec![good.clone()])[0].is_ok());
    }

    /// A transfer from a key derived from `i` (a junk sender), paying `tip` per gas.
    fn junk(i: usize, nonce: u64, tip: u128) -> PooledTransaction {
        let key = signing::SecretKey::from_bytes(&alloy_primitives::keccak256(format!(
            "junk-sender-{i}"
        )))
        .unwrap();
        let tx = TxEip1559 {
            chain_id: 1337,
            nonce,
            gas_limit: 21_000,
            max_fee_per_gas: 1_000_000_000 + tip,
            max_priority_fee_per_gas: tip,
            to: alloy_primitives::TxKind::Call(Address::ZERO),
            ..Default::default()
        };
        let signature = key.sign_hash(&tx.signature_hash());
        tx.into_signed(signature).into()
    }

    /// go-ethereum's flood defaults: 16 per sender from peers (locals exempt), and a
    /// pool filled by 8192 junk senders still takes an honest local transaction, while
    /// more junk at the same price is refused and better-paying junk evicts the cheapest.
    #[test]
    fn a_flood_of_junk_senders_never_locks_out_a_local_transaction() {
        let pool = Pool::new(PoolConfig::devnet());
        let config = pool.config().clone();
        assert_eq!(
            (config.max_per_sender, config.lifetime, config.local_slots),
            (16, Duration::from_secs(3 * 3600), 1024)
        );

        // One sender: 16 from peers, then refused; locally it may go on.
        for nonce in 0..16 {
            pool.add(junk(0, nonce, 1)).unwrap();
        }
        assert!(matches!(
            pool.add(junk(0, 16, 1)),
            Err(Error::SenderFull { max: 16, .. })
        ));
        pool.add_local(junk(0, 17, 1)).unwrap();
        assert_eq!(pool.len(), 17);
        pool.remove(
            &pool
                .announcements()
                .iter()
                .map(|a| a.hash)
                .collect::<Vec<_>>(),
        );
        assert!(pool.is_empty());

        // 8192 junk senders: the peers' share (7168) fills, the rest is refused.
        let refused = (1..=8192)
            .map(|i| pool.add(junk(i, 0, 1)))
            .filter(|r| matches!(r, Err(Error::PoolFull)))
            .count();
        assert_eq!(pool.len(), 8192 - 1024);
        assert_eq!(refused, 1024);
        // An honest user's transaction (eth_sendRawTransaction) still gets in.
        let honest = junk(100_000, 0, 1);
        let honest_hash = pool.add_local(honest).unwrap();
        assert!(pool.contains(&honest_hash));
        // A better-paying transaction from a peer evicts the cheapest (oldest) junk.
        let oldest = pool.announcements()[0].hash;
        let rich = pool.add(junk(200_000, 0, 5)).unwrap();
        assert!(pool.contains(&rich) && !pool.contains(&oldest));
        assert_eq!(pool.len(), 8192 - 1024 + 1);
        // Paying the same as the cheapest is not enough.
        assert!(matches!(
            pool.add(junk(200_001, 0, 1)),
            Err(Error::PoolFull)
        ));
        // And the local one is never what gets evicted.
        for i in 0..2000 {
            pool.add(junk(300_000 + i, 0, 10)).unwrap();
        }
        assert!(pool.contains(&honest_hash));
    }

    #[test]
    fn remote_transactions_expire_after_their_lifetime() {
        let pool = Pool::new(PoolConfig {
            lifetime: Duration::from_millis(50),
            ..PoolConfig::devnet()
        });
        let old = pool.add(junk(1, 0, 1)).unwrap();
        let local = pool.add_local(junk(2, 0, 1)).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let new = pool.add(junk(3, 0, 1)).unwrap();
        assert!(!pool.contains(&old), "expired");
        assert!(pool.contains(&local) && pool.contains(&new));
    }
}
