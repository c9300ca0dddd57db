//! Fork schedules: which Ethereum hard fork is active at a given block number and
//! timestamp, and the blob parameters each blob-carrying fork sets.
//!
//! A [`ForkSchedule`] is what go-ethereum's `params.ChainConfig` holds: each fork with
//! its activation (by block before the merge, by timestamp after it), the terminal
//! total difficulty, and the blob schedule (EIP-7840). Validation asks
//! [`ForkSchedule::is_active`]; the fork id (EIP-2124, EIP-6122) takes
//! [`ForkSchedule::block_forks`] and [`ForkSchedule::time_forks`], which gather the
//! activations exactly as go-ethereum's `core/forkid.gatherForks` does: every fork
//! field, duplicates once, those at genesis dropped.
//!
//! ```
//! use devmux_chain::forks::{Activation, ForkSchedule, Hardfork};
//!
//! let mut schedule = ForkSchedule::merged_at_genesis();
//! schedule.set(Hardfork::Shanghai, Activation::Time(0));
//! schedule.set(Hardfork::Cancun, Activation::Time(1_000));
//! assert!(schedule.is_active(Hardfork::London, 0, 0));
//! assert!(!schedule.is_active(Hardfork::Cancun, 5, 999));
//! assert!(schedule.is_active(Hardfork::Cancun, 6, 1_000));
//! assert_eq!(schedule.time_forks(0), vec![1_000]);
//! ```

use alloy_eips::eip7840::BlobParams;
use alloy_primitives::U256;

/// The Ethereum hard forks devmux knows, in activation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Hardfork {
    /// Frontier (genesis rules).
    Frontier,
    /// Homestead.
    Homestead,
    /// The DAO fork (block-activated, mainnet only).
    Dao,
    /// Tangerine Whistle (EIP-150).
    Tangerine,
    /// Spurious Dragon (EIP-155, EIP-158).
    SpuriousDragon,
    /// Byzantium.
    Byzantium,
    /// Constantinople.
    Constantinople,
    /// Petersburg.
    Petersburg,
    /// Istanbul.
    Istanbul,
    /// Muir Glacier (difficulty bomb delay).
    MuirGlacier,
    /// Berlin.
    Berlin,
    /// London (EIP-1559 base fee).
    London,
    /// Arrow Glacier (difficulty bomb delay).
    ArrowGlacier,
    /// Gray Glacier (difficulty bomb delay).
    GrayGlacier,
    /// The merge netsplit block (go-ethereum's `mergeNetsplitBlock`): a fork id marker
    /// only, set on some networks after the merge.
    MergeNetsplit,
    /// Shanghai (withdrawals).
    Shanghai,
    /// Cancun (blobs, parent beacon root).
    Cancun,
    /// Prague (execution-layer requests, EIP-7702).
    Prague,
    /// Osaka (EIP-7918 blob base cost, EIP-7825 transaction gas cap, EIP-7934 block size).
    Osaka,
    /// Blob-parameter-only fork 1.
    Bpo1,
    /// Blob-parameter-only fork 2.
    Bpo2,
    /// Blob-parameter-only fork 3.
    Bpo3,
    /// Blob-parameter-only fork 4.
    Bpo4,
    /// Blob-parameter-only fork 5.
    Bpo5,
    /// Amsterdam (block access lists, slot numbers in headers).
    Amsterdam,
}

impl Hardfork {
    /// Every fork, in activation order.
    pub const ALL: [Self; 25] = [
        Self::Frontier,
        Self::Homestead,
        Self::Dao,
        Self::Tangerine,
        Self::SpuriousDragon,
        Self::Byzantium,
        Self::Constantinople,
        Self::Petersburg,
        Self::Istanbul,
        Self::MuirGlacier,
        Self::Berlin,
        Self::London,
        Self::ArrowGlacier,
        Self::GrayGlacier,
        Self::MergeNetsplit,
        Self::Shanghai,
        Self::Cancun,
        Self::Prague,
        Self::Osaka,
        Self::Bpo1,
        Self::Bpo2,
        Self::Bpo3,
        Self::Bpo4,
        Self::Bpo5,
        Self::Amsterdam,
    ];

    /// The fork's name as go-ethereum's genesis `blobSchedule` and logs spell it
    /// (`cancun`, `bpo1`, …).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Frontier => "frontier",
            Self::Homestead => "homestead",
            Self::Dao => "dao",
            Self::Tangerine => "tangerine",
            Self::SpuriousDragon => "spuriousDragon",
            Self::Byzantium => "byzantium",
            Self::Constantinople => "constantinople",
            Self::Petersburg => "petersburg",
            Self::Istanbul => "istanbul",
            Self::MuirGlacier => "muirGlacier",
            Self::Berlin => "berlin",
            Self::London => "london",
            Self::ArrowGlacier => "arrowGlacier",
            Self::GrayGlacier => "grayGlacier",
            Self::MergeNetsplit => "mergeNetsplit",
            Self::Shanghai => "shanghai",
            Self::Cancun => "cancun",
            Self::Prague => "prague",
            Self::Osaka => "osaka",
            Self::Bpo1 => "bpo1",
            Self::Bpo2 => "bpo2",
            Self::Bpo3 => "bpo3",
            Self::Bpo4 => "bpo4",
            Self::Bpo5 => "bpo5",
            Self::Amsterdam => "amsterdam",
        }
    }
}

/// When a fork activates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// At this block number (forks before the merge).
    Block(u64),
    /// At the first block with a timestamp at or after this one (forks after the merge).
    Time(u64),
}

/// A chain's forks, terminal total difficulty and blob schedule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ForkSchedule {
    /// Each scheduled fork with its activation; a fork not listed never activates.
    activations: Vec<(Hardfork, Activation)>,
    /// The total difficulty at which the chain merged (0: proof of stake from genesis);
    /// `None`: the chain never merges (the devnet).
    pub terminal_total_difficulty: Option<U256>,
    /// Blob parameters per blob-carrying fork (Cancun, Prague, Osaka, BPO forks).
    blob_params: Vec<(Hardfork, BlobParams)>,
}

impl ForkSchedule {
    /// A schedule with every fork through London at block 0, Paris (the merge) at
    /// genesis (terminal total difficulty 0), and nothing after: add the rest with
    /// [`ForkSchedule::set`].
    pub fn merged_at_genesis() -> Self {
        let mut schedule = Self::through_london_at_genesis();
        for fork in [Hardfork::ArrowGlacier, Hardfork::GrayGlacier] {
            schedule.set(fork, Activation::Block(0));
        }
        schedule.terminal_total_difficulty = Some(U256::ZERO);
        schedule
    }

    /// Every fork through London (the DAO fork aside) at block 0, no merge: the devnet.
    pub fn through_london_at_genesis() -> Self {
        let mut schedule = Self::default();
        for fork in Hardfork::ALL {
            if fork == Hardfork::Dao {
                continue;
            }
            schedule.set(fork, Activation::Block(0));
            if fork == Hardfork::London {
                break;
            }
        }
        schedule
    }

    /// Schedules `fork` (replacing an earlier activation of it).
    pub fn set(&mut self, fork: Hardfork, activation: Activation) {
        self.activations.retain(|(f, _)| *f != fork);
        self.activations.push((fork, activation));
        self.activations.sort_by_key(|(f, _)| *f);
    }

    /// Sets the blob parameters `fork` brings (replacing earlier ones for it).
    pub fn set_blob_params(&mut self, fork: Hardfork, params: BlobParams) {
        self.blob_params.retain(|(f, _)| *f != fork);
        self.blob_params.push((fork, params));
        self.blob_params.sort_by_key(|(f, _)| *f);
    }

    /// When `fork` activates, if it is scheduled.
    pub fn activation(&self, fork: Hardfork) -> Option<Activation> {
        self.activations
            .iter()
            .find(|(f, _)| *f == fork)
            .map(|(_, a)| *a)
    }

    /// Every scheduled fork with its activation, in fork order.
    pub fn activations(&self) -> impl Iterator<Item = (Hardfork, Activation)> + '_ {
        self.activations.iter().copied()
    }

    /// Whether `fork` is active in a block with this number and timestamp.
    pub fn is_active(&self, fork: Hardfork, number: u64, timestamp: u64) -> bool {
        match self.activation(fork) {
            Some(Activation::Block(at)) => number >= at,
            Some(Activation::Time(at)) => timestamp >= at,
            None => false,
        }
    }

    /// The latest fork active in a block with this number and timestamp.
    pub fn latest_active(&self, number: u64, timestamp: u64) -> Option<Hardfork> {
        self.activations
            .iter()
            .rev()
            .find(|(f, _)| self.is_active(*f, number, timestamp))
            .map(|(f, _)| *f)
    }

    /// Whether the chain is past the merge at genesis (terminal total difficulty 0).
    pub fn merged_at_genesis_td(&self) -> bool {
        self.terminal_total_difficulty == Some(U256::ZERO)
    }

    /// The blob parameters in force at `timestamp`: those of the latest active fork that
    /// sets them. `None` before Cancun.
    pub fn blob_params_at(&self, timestamp: u64) -> Option<BlobParams> {
        self.blob_params
            .iter()
            .rev()
            .find(|(f, _)| self.is_active(*f, u64::MAX, timestamp))
            .map(|(_, p)| *p)
    }

    /// The blob parameters each fork sets, in fork order.
    pub fn blob_schedule(&self) -> impl Iterator<Item = (Hardfork, BlobParams)> + '_ {
        self.blob_params.iter().copied()
    }

    /// The block numbers of the fork id (EIP-2124): every block activation but 0,
    /// ascending, duplicates once.
    pub fn block_forks(&self) -> Vec<u64> {
        let mut blocks: Vec<u64> = self
            .activations
            .iter()
            .filter_map(|(_, a)| match a {
                Activation::Block(n) if *n > 0 => Some(*n),
                _ => None,
            })
            .collect();
        blocks.sort_unstable();
        blocks.dedup();
        blocks
    }

    /// The timestamps of the fork id (EIP-6122): every time activation after
    /// `genesis_timestamp`, ascending, duplicates once.
    pub fn time_forks(&self, genesis_timestamp: u64) -> Vec<u64> {
        let mut times: Vec<u64> = self
            .activations
            .iter()
            .filter_map(|(_, a)| match a {
                Activation::Time(t) if *t > genesis_timestamp => Some(*t),
                _ => None,
            })
            .collect();
        times.sort_unstable();
        times.dedup();
        times
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_devnet_schedule_is_london_at_genesis_without_a_merge() {
        let schedule = ForkSchedule::through_london_at_genesis();
        assert!(schedule.is_active(Hardfork::London, 0, 0));
        assert!(!schedule.is_active(Hardfork::Dao, 100, 0));
        assert!(!schedule.is_active(Hardfork::Shanghai, 100, u64::MAX));
        assert_eq!(schedule.terminal_total_difficulty, None);
        assert!(schedule.block_forks().is_empty());
        assert!(schedule.time_forks(0).is_empty());
    }

    #[test]
    fn blob_params_follow_the_latest_active_fork_that_sets_them() {
        let mut schedule = ForkSchedule::merged_at_genesis();
        schedule.set(Hardfork::Shanghai, Activation::Time(0));
        schedule.set(Hardfork::Cancun, Activation::Time(10));
        schedule.set(Hardfork::Prague, Activation::Time(20));
        schedule.set(Hardfork::Bpo1, Activation::Time(30));
        schedule.set_blob_params(Hardfork::Cancun, BlobParams::cancun());
        schedule.set_blob_params(Hardfork::Prague, BlobParams::prague());
        schedule.set_blob_params(Hardfork::Bpo1, BlobParams::bpo1());
        assert_eq!(schedule.blob_params_at(9), None);
        assert_eq!(schedule.blob_params_at(10), Some(BlobParams::cancun()));
        assert_eq!(schedule.blob_params_at(29), Some(BlobParams::prague()));
        assert_eq!(schedule.blob_params_at(30), Some(BlobParams::bpo1()));
        assert_eq!(schedule.latest_active(1, 30), Some(Hardfork::Bpo1));
        assert_eq!(schedule.time_forks(0), vec![10, 20, 30]);
        assert_eq!(schedule.time_forks(10), vec![20, 30]);
    }
}
