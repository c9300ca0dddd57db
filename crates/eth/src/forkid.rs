//! The fork identifier of EIP-2124, with the timestamp forks of EIP-6122.
//!
//! A [`ForkId`] is `[FORK_HASH, FORK_NEXT]`: the CRC32 of the genesis hash and every
//! fork already passed, and the next fork we know of (0 if none). Peers exchange it in
//! Status and in the ENR `eth` entry; [`ForkFilter::validate`] decides whether a remote
//! one is compatible with our chain.
//!
//! The checksums and the rules are `alloy-eip2124`'s (reth's); this module gives them
//! the shape devmux uses: a head of number and timestamp, fork schedules as two lists,
//! [`ForkFilter::fork_id_at`] and [`ForkFilter::validate_at`] for a head other than the
//! filter's own (a node's Status carries its head's fork id, and the ENR is judged at
//! ours), and an error without the ids in it. The tests below hold it to EIP-2124's and
//! EIP-6122's tables and to go-ethereum's `core/forkid` cases.

use alloy_eip2124::ForkFilterKey;
use alloy_primitives::B256;

pub use alloy_eip2124::{ForkHash, ForkId};

/// Why a remote fork id was rejected (EIP-2124 rule 4, with go-ethereum's names).
/// Either way the peer is on a chain we cannot follow together: the eth handler
/// disconnects it with `SubprotocolError` (as go-ethereum does), without a penalty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ForkIdError {
    /// The remote is on a fork we passed but announces a different next fork: its
    /// software is out of date.
    #[error("remote fork id is stale (remote needs a software update)")]
    RemoteStale,
    /// The remote is on a fork we do not know, or announces a fork we already passed
    /// without it: we are on different chains, or ours needs an update.
    #[error("remote fork id is incompatible with ours (different chain or local is stale)")]
    LocalIncompatibleOrStale,
}

impl From<alloy_eip2124::ValidationError> for ForkIdError {
    fn from(e: alloy_eip2124::ValidationError) -> Self {
        match e {
            alloy_eip2124::ValidationError::RemoteStale { .. } => Self::RemoteStale,
            alloy_eip2124::ValidationError::LocalIncompatibleOrStale { .. } => {
                Self::LocalIncompatibleOrStale
            }
        }
    }
}

/// A chain head as the fork rules see it: its block number and timestamp.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Head {
    /// Block number.
    pub number: u64,
    /// Block timestamp.
    pub timestamp: u64,
}

impl From<Head> for alloy_eip2124::Head {
    fn from(head: Head) -> Self {
        Self {
            number: head.number,
            timestamp: head.timestamp,
            ..Default::default()
        }
    }
}

/// Our fork schedule plus our head: computes our [`ForkId`] and validates remote ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForkFilter {
    inner: alloy_eip2124::ForkFilter,
    head: Head,
}

impl ForkFilter {
    /// A filter for the chain with this genesis and fork schedule, at head `head`.
    ///
    /// Forks at block 0, and timestamp forks at or before the genesis timestamp, are
    /// part of the genesis ruleset and not forks (EIP-2124: "a non-Frontier ruleset in
    /// genesis is NOT considered a fork"); duplicates count once.
    pub fn new(
        genesis_hash: B256,
        genesis_timestamp: u64,
        block_forks: impl IntoIterator<Item = u64>,
        time_forks: impl IntoIterator<Item = u64>,
        head: Head,
    ) -> Self {
        let forks = block_forks
            .into_iter()
            .map(ForkFilterKey::Block)
            .chain(time_forks.into_iter().map(ForkFilterKey::Time));
        Self {
            inner: alloy_eip2124::ForkFilter::new(
                head.into(),
                genesis_hash,
                genesis_timestamp,
                forks,
            ),
            head,
        }
    }

    /// The head the filter currently judges by.
    pub const fn head(&self) -> Head {
        self.head
    }

    /// Moves the head (call it when the chain head changes).
    pub fn set_head(&mut self, head: Head) {
        self.inner.set_head(head.into());
        self.head = head;
    }

    /// Our fork id at the current head.
    pub fn current(&self) -> ForkId {
        self.inner.current()
    }

    /// Our fork id at `head`.
    pub fn fork_id_at(&self, head: Head) -> ForkId {
        self.at(head).current()
    }

    /// Validates a remote fork id against ours at the current head.
    pub fn validate(&self, remote: ForkId) -> Result<(), ForkIdError> {
        self.inner.validate(remote).map_err(ForkIdError::from)
    }

    /// Validates a remote fork id against ours at `head`, by the rules of EIP-2124
    /// (with rule 1a as go-ethereum applies it) and EIP-6122.
    pub fn validate_at(&self, head: Head, remote: ForkId) -> Result<(), ForkIdError> {
        self.at(head).validate(remote).map_err(ForkIdError::from)
    }

    /// The filter moved to `head`. A clone: a schedule is a few dozen forks, and a
    /// remote fork id is validated once per Status or ENR.
    fn at(&self, head: Head) -> alloy_eip2124::ForkFilter {
        if head == self.head {
            return self.inner.clone();
        }
        let mut moved = self.inner.clone();
        moved.set_head(head.into());
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{b256, hex};

    /// Mainnet genesis hash (block 0).
    const MAINNET: B256 = b256!("d4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3");
    /// Mainnet block forks through Petersburg, the cap of EIP-2124's tables: Homestead,
    /// DAO, Tangerine, Spurious, Byzantium, Constantinople and Petersburg (same block).
    const MAINNET_TO_PETERSBURG: [u64; 7] = [
        1_150_000, 1_920_000, 2_463_000, 2_675_000, 4_370_000, 7_280_000, 7_280_000,
    ];
    /// Mainnet block forks through Gray Glacier: the above plus Istanbul, Muir Glacier,
    /// Berlin, London, Arrow Glacier, Gray Glacier.
    const MAINNET_TO_GRAY_GLACIER: [u64; 12] = [
        1_150_000, 1_920_000, 2_463_000, 2_675_000, 4_370_000, 7_280_000, 9_069_000, 9_200_000,
        12_244_000, 12_965_000, 13_773_000, 15_050_000,
    ];

    fn id(hash: u32, next: u64) -> ForkId {
        ForkId {
            hash: ForkHash(hash.to_be_bytes()),
            next,
        }
    }

    fn head(number: u64, timestamp: u64) -> Head {
        Head { number, timestamp }
    }

    fn filter(genesis: B256, blocks: &[u64], times: &[u64]) -> ForkFilter {
        ForkFilter::new(
            genesis,
            0,
            blocks.iter().copied(),
            times.iter().copied(),
            Head::default(),
        )
    }

    /// EIP-2124 "Test Cases", first table: every fork id mainnet, Ropsten, Rinkeby and
    /// Görli advertise given the Petersburg fork cap.
    #[test]
    fn eip2124_creation() {
        let mainnet = filter(MAINNET, &MAINNET_TO_PETERSBURG, &[]);
        for (n, want) in [
            (0, id(0xfc64ec04, 1150000)),
            (1149999, id(0xfc64ec04, 1150000)),
            (1150000, id(0x97c2c34c, 1920000)),
            (1919999, id(0x97c2c34c, 1920000)),
            (1920000, id(0x91d1f948, 2463000)),
            (2462999, id(0x91d1f948, 2463000)),
            (2463000, id(0x7a64da13, 2675000)),
            (2674999, id(0x7a64da13, 2675000)),
            (2675000, id(0x3edd5b10, 4370000)),
            (4369999, id(0x3edd5b10, 4370000)),
            (4370000, id(0xa00bc324, 7280000)),
            (7279999, id(0xa00bc324, 7280000)),
            (7280000, id(0x668db0af, 0)),
            (7987396, id(0x668db0af, 0)),
        ] {
            assert_eq!(mainnet.fork_id_at(head(n, 0)), want, "mainnet head {n}");
        }

        // Ropsten: Homestead and Tangerine at 0, Spurious (EIP-155/158) at 10, Byzantium
        // 1700000, Constantinople 4230000, Petersburg 4939394.
        let ropsten = filter(
            b256!("41941023680923e0fe4d74a34bdac8141f2540e3ae90623718e47d66d1ca4a2d"),
            &[0, 0, 10, 10, 1_700_000, 4_230_000, 4_939_394],
            &[],
        );
        for (n, want) in [
            (0, id(0x30c7ddbc, 10)),
            (9, id(0x30c7ddbc, 10)),
            (10, id(0x63760190, 1700000)),
            (1699999, id(0x63760190, 1700000)),
            (1700000, id(0x3ea159c7, 4230000)),
            (4229999, id(0x3ea159c7, 4230000)),
            (4230000, id(0x97b544f3, 4939394)),
            (4939393, id(0x97b544f3, 4939394)),
            (4939394, id(0xd6e2149b, 0)),
            (5822692, id(0xd6e2149b, 0)),
        ] {
            assert_eq!(ropsten.fork_id_at(head(n, 0)), want, "ropsten head {n}");
        }

        // Rinkeby: Homestead 1, Tangerine 2, Spurious 3, Byzantium 1035301,
        // Constantinople 3660663, Petersburg 4321234.
        let rinkeby = filter(
            b256!("6341fd3daf94b748c72ced5a5b26028f2474f5f00d824504e4fa37a75767e177"),
            &[1, 2, 3, 3, 1_035_301, 3_660_663, 4_321_234],
            &[],
        );
        for (n, want) in [
            (0, id(0x3b8e0691, 1)),
            (1, id(0x60949295, 2)),
            (2, id(0x8bde40dd, 3)),
            (3, id(0xcb3a64bb, 1035301)),
            (1035300, id(0xcb3a64bb, 1035301)),
            (1035301, id(0x8d748b57, 3660663)),
            (3660662, id(0x8d748b57, 3660663)),
            (3660663, id(0xe49cab14, 4321234)),
            (4321233, id(0xe49cab14, 4321234)),
            (4321234, id(0xafec6b27, 0)),
            (4586649, id(0xafec6b27, 0)),
        ] {
            assert_eq!(rinkeby.fork_id_at(head(n, 0)), want, "rinkeby head {n}");
        }

        // Görli: every fork through Petersburg in genesis.
        let goerli = filter(
            b256!("bf7e331f7f7c1dd2e05159666b3bf8bc7a8a3a9eb1d518969eab529dd9b88c1a"),
            &[0, 0, 0, 0, 0, 0, 0],
            &[],
        );
        assert_eq!(goerli.fork_id_at(head(0, 0)), id(0xa3f5ab08, 0));
        assert_eq!(goerli.fork_id_at(head(795329, 0)), id(0xa3f5ab08, 0));
    }

    /// EIP-2124 "Test Cases", second table: a mainnet node (Petersburg cap) validating
    /// remote fork ids.
    #[test]
    fn eip2124_validation() {
        use ForkIdError::*;
        let f = filter(MAINNET, &MAINNET_TO_PETERSBURG, &[]);
        let cases: [(u64, ForkId, Result<(), ForkIdError>); 13] = [
            (7987396, id(0x668db0af, 0), Ok(())),
            (7987396, id(0x668db0af, u64::MAX), Ok(())),
            (7279999, id(0xa00bc324, 0), Ok(())),
            (7279999, id(0xa00bc324, 7280000), Ok(())),
            (7279999, id(0xa00bc324, u64::MAX), Ok(())),
            // The EIP lists this case as `Ok` under rule 1 as first written; rule 1a,
            // added later to go-ethereum's reference implementation (and kept in its test
            // suite with the hash corrected to Byzantium's 0xa00bc324), rejects a remote
            // that announces an already-passed block (7280000 <= 7987396) as its next fork.
            (
                7987396,
                id(0x668db0af, 7280000),
                Err(LocalIncompatibleOrStale),
            ),
            (7987396, id(0x3edd5b10, 4370000), Ok(())),
            (7279999, id(0x668db0af, 0), Ok(())),
            (4369999, id(0xa00bc324, 0), Ok(())),
            (7987396, id(0xa00bc324, 0), Err(RemoteStale)),
            (7987396, id(0x5cddc0e1, 0), Err(LocalIncompatibleOrStale)),
            (7279999, id(0x5cddc0e1, 0), Err(LocalIncompatibleOrStale)),
            (7987396, id(0xafec6b27, 0), Err(LocalIncompatibleOrStale)),
        ];
        for (i, (n, remote, want)) in cases.into_iter().enumerate() {
            assert_eq!(f.validate_at(head(n, 0), remote), want, "case {i}");
        }
        // go-ethereum's corrected form of the case above.
        assert_eq!(
            f.validate_at(head(7987396, 0), id(0xa00bc324, 7280000)),
            Ok(())
        );
    }

    /// EIP-2124 RLP encoding cases.
    #[test]
    fn eip2124_encoding() {
        for (fid, want) in [
            (id(0, 0), &hex!("c6840000000080")[..]),
            (
                id(0xdeadbeef, 0xBADDCAFE),
                &hex!("ca84deadbeef84baddcafe")[..],
            ),
            (
                id(u32::MAX, u64::MAX),
                &hex!("ce84ffffffff88ffffffffffffffff")[..],
            ),
        ] {
            assert_eq!(alloy_rlp::encode(fid), want);
            assert_eq!(alloy_rlp::decode_exact::<ForkId>(want).unwrap(), fid);
        }
    }

    /// EIP-6122 "Test Cases": mainnet with a merge netsplit at block 18000000 and
    /// withdrawals at time 1668000000.
    fn eip6122_filter() -> ForkFilter {
        let mut blocks = MAINNET_TO_GRAY_GLACIER.to_vec();
        blocks.push(18_000_000);
        filter(MAINNET, &blocks, &[1_668_000_000])
    }

    #[test]
    fn eip6122_creation() {
        let f = eip6122_filter();
        for (n, t, want) in [
            (0, 0, id(0xfc64ec04, 1150000)),
            (1149999, 0, id(0xfc64ec04, 1150000)),
            (1150000, 0, id(0x97c2c34c, 1920000)),
            (1919999, 0, id(0x97c2c34c, 1920000)),
            (1920000, 0, id(0x91d1f948, 2463000)),
            (2462999, 0, id(0x91d1f948, 2463000)),
            (2463000, 0, id(0x7a64da13, 2675000)),
            (2674999, 0, id(0x7a64da13, 2675000)),
            (2675000, 0, id(0x3edd5b10, 4370000)),
            (4369999, 0, id(0x3edd5b10, 4370000)),
            (4370000, 0, id(0xa00bc324, 7280000)),
            (7279999, 0, id(0xa00bc324, 7280000)),
            (7280000, 0, id(0x668db0af, 9069000)),
            (9068999, 0, id(0x668db0af, 9069000)),
            (9069000, 0, id(0x879d6e30, 9200000)),
            (9199999, 0, id(0x879d6e30, 9200000)),
            (9200000, 0, id(0xe029e991, 12244000)),
            (12243999, 0, id(0xe029e991, 12244000)),
            (12244000, 0, id(0x0eb440f6, 12965000)),
            (12964999, 0, id(0x0eb440f6, 12965000)),
            (12965000, 0, id(0xb715077d, 13773000)),
            (13772999, 0, id(0xb715077d, 13773000)),
            (13773000, 0, id(0x20c327fc, 15050000)),
            (15049999, 0, id(0x20c327fc, 15050000)),
            (15050000, 0, id(0xf0afd0e3, 18000000)),
            (18000000, 0, id(0x4fb8a872, 1668000000)),
            (20000000, 0, id(0x4fb8a872, 1668000000)),
            (20000000, 1668000000, id(0xc1fdf181, 0)),
            (20000000, 2668000000, id(0xc1fdf181, 0)),
        ] {
            assert_eq!(f.fork_id_at(head(n, t)), want, "head ({n}, {t})");
        }
        // The EIP's worked example: a time fork at 1668000000 on top of Homestead.
        let homestead = ForkHash::from(MAINNET) + 1_150_000u64;
        assert_eq!(
            homestead + 1_668_000_000u64,
            ForkHash(0xcb37b2eeu32.to_be_bytes())
        );
    }

    #[test]
    fn eip6122_validation() {
        use ForkIdError::*;
        let f = eip6122_filter();
        let cases: [(u64, u64, ForkId, Result<(), ForkIdError>); 16] = [
            (20000000, 1668000001, id(0xc1fdf181, 0), Ok(())),
            (20000000, 1668000001, id(0xc1fdf181, u64::MAX), Ok(())),
            (7279999, 1667999999, id(0xa00bc324, 0), Ok(())),
            (7279999, 1667999999, id(0xa00bc324, 7280000), Ok(())),
            (7279999, 1667999999, id(0xa00bc324, u64::MAX), Ok(())),
            (20000000, 1668000000, id(0xa00bc324, 7280000), Ok(())),
            (20000000, 1668000001, id(0xa00bc324, 7280000), Ok(())),
            (20000000, 1668000001, id(0x3edd5b10, 4370000), Ok(())),
            (7279999, 1667999999, id(0x668db0af, 0), Ok(())),
            (4369999, 1667999999, id(0xa00bc324, 0), Ok(())),
            (20000000, 1668000001, id(0xa00bc324, 0), Err(RemoteStale)),
            (
                20000000,
                1668000001,
                id(0x5cddc0e1, 0),
                Err(LocalIncompatibleOrStale),
            ),
            (
                20000000,
                1668000001,
                id(0x5cddc0e1, 0),
                Err(LocalIncompatibleOrStale),
            ),
            (
                20000000,
                1668000001,
                id(0xafec6b27, 0),
                Err(LocalIncompatibleOrStale),
            ),
            (
                88888888,
                1668000001,
                id(0xf0afd0e3, 88888888),
                Err(RemoteStale),
            ),
            (
                20000000,
                1668000001,
                id(0xa00bc324, 7279999),
                Err(RemoteStale),
            ),
        ];
        for (i, (n, t, remote, want)) in cases.into_iter().enumerate() {
            assert_eq!(f.validate_at(head(n, t), remote), want, "case {i}");
        }
    }

    /// Today's mainnet schedule, from go-ethereum's `core/forkid/forkid_test.go`
    /// (`TestCreation`, `TestValidation`): Gray Glacier by block, then Shanghai, Cancun,
    /// Prague, Osaka, BPO1 and BPO2 by timestamp.
    fn mainnet_today() -> ForkFilter {
        filter(
            MAINNET,
            &MAINNET_TO_GRAY_GLACIER,
            &[
                1681338455, 1710338135, 1746612311, 1764798551, 1765290071, 1767747671,
            ],
        )
    }

    #[test]
    fn mainnet_timestamp_forks() {
        let f = mainnet_today();
        for (n, t, want) in [
            (15050000, 0, id(0xf0afd0e3, 1681338455)),
            (20000000, 1681338454, id(0xf0afd0e3, 1681338455)),
            (20000000, 1681338455, id(0xdce96c2d, 1710338135)),
            (30000000, 1710338134, id(0xdce96c2d, 1710338135)),
            (30000000, 1710338135, id(0x9f3d2254, 1746612311)),
            (30000000, 1746022486, id(0x9f3d2254, 1746612311)),
            (30000000, 1746612311, id(0xc376cf8b, 1764798551)),
            (30000000, 1764798550, id(0xc376cf8b, 1764798551)),
            (30000000, 1764798551, id(0x5167e2a6, 1765290071)),
            (30000000, 1765290070, id(0x5167e2a6, 1765290071)),
            (30000000, 1765290071, id(0xcba2a1c0, 1767747671)),
            (30000000, 1767747670, id(0xcba2a1c0, 1767747671)),
            (30000000, 1767747671, id(0x07c9462e, 0)),
            (50000000, 2000000000, id(0x07c9462e, 0)),
        ] {
            assert_eq!(f.fork_id_at(head(n, t)), want, "head ({n}, {t})");
        }

        use ForkIdError::*;
        let stale = |h: u32| u32::from_be_bytes((ForkHash(h.to_be_bytes()) + u64::MAX).0);
        let cases = [
            // Block to timestamp transition.
            (15050000, 0, id(0xf0afd0e3, 0), Ok(())),
            (15050000, 0, id(0xf0afd0e3, 1681338455), Ok(())),
            (15050000, 0, id(0xf0afd0e3, u64::MAX), Ok(())),
            (20000000, 1681338455, id(0xf0afd0e3, 1681338455), Ok(())),
            (20123456, 1681338456, id(0xf0afd0e3, 1681338455), Ok(())),
            (20000000, 1681338455, id(0x20c327fc, 15050000), Ok(())),
            (15050000, 0, id(0xdce96c2d, 0), Ok(())),
            (13773000, 0, id(0xf0afd0e3, 0), Ok(())),
            (20000000, 1681338455, id(0xf0afd0e3, 0), Err(RemoteStale)),
            (
                15050000,
                0,
                id(stale(0xf0afd0e3), 0),
                Err(LocalIncompatibleOrStale),
            ),
            (
                15050000,
                0,
                id(stale(0xdce96c2d), 0),
                Err(LocalIncompatibleOrStale),
            ),
            (
                888888888,
                1660000000,
                id(0xf0afd0e3, 1660000000),
                Err(LocalIncompatibleOrStale),
            ),
            (
                19999999,
                1667999999,
                id(0xf0afd0e3, 1667999999),
                Err(LocalIncompatibleOrStale),
            ),
            // Timestamp based.
            (20000000, 1681338455, id(0xdce96c2d, 0), Ok(())),
            (20000000, 1681338455, id(0xdce96c2d, u64::MAX), Ok(())),
            (20000000, 1668000000, id(0xdce96c2d, 0), Ok(())),
            (20000000, 1668000000, id(0xdce96c2d, 1710338135), Ok(())),
            (20000000, 1668000000, id(0xdce96c2d, u64::MAX), Ok(())),
            (21000000, 1710338135, id(0xdce96c2d, 1710338135), Ok(())),
            (21123456, 1710338136, id(0xdce96c2d, 1710338135), Ok(())),
            (0, 0, id(0x3edd5b10, 1710338135), Ok(())),
            (21000000, 1700000000, id(0x9f3d2254, 0), Ok(())),
            (21000000, 1678000000, id(0xc376cf8b, 0), Ok(())),
            (21000000, 1710338135, id(0xdce96c2d, 0), Err(RemoteStale)),
            (
                20000000,
                1681338455,
                id(stale(0xdce96c2d), 0),
                Err(LocalIncompatibleOrStale),
            ),
            (
                20000000,
                1668000000,
                id(stale(0x9f3d2254), 0),
                Err(LocalIncompatibleOrStale),
            ),
            (
                20000000,
                1681338455,
                id(0x12345678, 0),
                Err(LocalIncompatibleOrStale),
            ),
            (
                88888888,
                8888888888,
                id(0x07c9462e, 8888888888),
                Err(LocalIncompatibleOrStale),
            ),
            (
                20999999,
                1699999999,
                id(0x71147644, 1700000000),
                Err(LocalIncompatibleOrStale),
            ),
        ];
        for (i, (n, t, remote, want)) in cases.into_iter().enumerate() {
            assert_eq!(f.validate_at(head(n, t), remote), want, "case {i}");
        }
    }

    /// go-ethereum `TestValidation`, "block based tests": mainnet through Gray Glacier
    /// without its timestamp forks.
    #[test]
    fn mainnet_block_only_validation() {
        use ForkIdError::*;
        let f = filter(MAINNET, &MAINNET_TO_GRAY_GLACIER, &[]);
        let cases = [
            (15050000, id(0xf0afd0e3, 0), Ok(())),
            (15050000, id(0xf0afd0e3, u64::MAX), Ok(())),
            (7279999, id(0xa00bc324, 0), Ok(())),
            (7279999, id(0xa00bc324, 7280000), Ok(())),
            (7279999, id(0xa00bc324, u64::MAX), Ok(())),
            (7280000, id(0xa00bc324, 7280000), Ok(())),
            (7987396, id(0xa00bc324, 7280000), Ok(())),
            (7987396, id(0x3edd5b10, 4370000), Ok(())),
            (7279999, id(0x668db0af, 0), Ok(())),
            (4369999, id(0xa00bc324, 0), Ok(())),
            (7987396, id(0xa00bc324, 0), Err(RemoteStale)),
            (7987396, id(0x5cddc0e1, 0), Err(LocalIncompatibleOrStale)),
            (7279999, id(0x5cddc0e1, 0), Err(LocalIncompatibleOrStale)),
            (7987396, id(0xafec6b27, 0), Err(LocalIncompatibleOrStale)),
            (
                88888888,
                id(0xf0afd0e3, 88888888),
                Err(LocalIncompatibleOrStale),
            ),
            (
                7279999,
                id(0xa00bc324, 7279999),
                Err(LocalIncompatibleOrStale),
            ),
        ];
        for (i, (n, remote, want)) in cases.into_iter().enumerate() {
            assert_eq!(f.validate_at(head(n, 0), remote), want, "case {i}");
        }
    }

    /// go-ethereum `TestTimeBasedForkInGenesis`: time forks at or before the genesis
    /// timestamp are part of genesis.
    #[test]
    fn time_fork_in_genesis() {
        let time = 1_690_475_657;
        let genesis = B256::repeat_byte(7);
        let base = ForkHash::from(genesis);
        for (shanghai, cancun) in [(time - 1, time + 1), (time, time + 1), (time + 1, time + 2)] {
            let f = ForkFilter::new(genesis, time, [0; 3], [shanghai, cancun], head(0, time));
            assert_eq!(
                f.current(),
                ForkId {
                    hash: base,
                    next: time + 1
                }
            );
        }
    }

    #[test]
    fn set_head_moves_fork_id() {
        let mut f = filter(MAINNET, &MAINNET_TO_PETERSBURG, &[]);
        assert_eq!(f.current(), id(0xfc64ec04, 1150000));
        f.set_head(head(7280000, 0));
        assert_eq!(f.current(), id(0x668db0af, 0));
        assert_eq!(f.validate(id(0xa00bc324, 7280000)), Ok(()));
    }
}
