//! go-ethereum genesis files: the JSON `geth init` takes, read into a [`ChainSpec`] whose
//! genesis header hashes to the hash `geth init` prints, and whose fork schedule gives
//! the fork id go-ethereum computes for the chain.
//!
//! The file is parsed with `alloy-genesis` (its `Genesis` and `ChainConfig` are this
//! format, `blobSchedule` included); devmux adds what go-ethereum does on top:
//!
//! - **The checks `geth init` makes** (`core/genesis.go`, `Genesis.Commit`, and
//!   `params.ChainConfig.CheckConfigForkOrder`): `config`, `gasLimit`, `difficulty` and
//!   `alloc` present; block number 0; forks in order, none skipped unless optional; a
//!   `blobSchedule` entry for every scheduled blob fork (Cancun, Prague, BPO1–5) with a
//!   non-zero update fraction; a clique chain's extra data long enough for a signer. The
//!   error messages use go-ethereum's words, so a file refused here is refused there.
//! - **What devmux refuses beyond that**: a fork it does not know ([`Error::UnknownFork`]:
//!   `bogotaTime`, `ubtTime`, `enableUBTAtGenesis`, a verkle time or any other unknown
//!   `…Time`/`…Block` field that is not null), since leaving it out of the schedule would
//!   give a fork id no peer of that chain has; different `eip155Block` and `eip158Block`
//!   (devmux has one Spurious Dragon fork for both, go-ethereum hashes both into the fork
//!   id); a config without `chainId` (alloy would default it to 1, mainnet's, and
//!   devmux's transaction checks depend on it); and a genesis header whose optional
//!   fields have a gap (say `excessBlobGas` before Cancun, which go-ethereum allows "for
//!   testing"): go-ethereum encodes the missing fields as empty strings, the header type
//!   devmux hashes cannot, so the hash would differ.
//! - **The genesis header as go-ethereum's `Genesis.ToBlock` builds it**
//!   ([`GenesisFile::header`]): the file's nonce, timestamp, extra data, gas limit
//!   (0 means 4 712 388, `params.GenesisGasLimit`), difficulty, mix hash, coinbase, gas
//!   used and parent hash; the base fee the file gives, whatever the fork, or 1 gwei when
//!   London is active at genesis and the file gives none; the empty withdrawals root at
//!   Shanghai; blob gas used and excess blob gas (the file's or 0) and a zero parent
//!   beacon root at Cancun; the empty requests hash at Prague; the slot number (the
//!   file's or 0) and the empty block access list hash at Amsterdam. Every timestamp fork
//!   counts only if London is active too, as go-ethereum's `IsShanghai`… require.
//! - **The state root of `alloc`** ([`state_root`]): the secure trie of RLP accounts
//!   (nonce, balance, storage root, code hash), storage slots with value 0 left out, and
//!   empty accounts kept, as go-ethereum's `hashAlloc` commits them.
//! - **The fork schedule** ([`fork_schedule`]): every fork field as a
//!   [`Hardfork`] activation, a missing `petersburgBlock` meaning Constantinople's block
//!   (go-ethereum's `IsPetersburg`), and blob parameters as go-ethereum applies them
//!   ([`fork_schedule`] says how).
//!
//! What devmux does with a chain not merged at genesis (a terminal total difficulty
//! above 0, or none): it still returns [`Consensus::ProofOfStake`]. devmux does not
//! validate proof of work (ethash seals, difficulty) or clique seals, so such a chain's
//! blocks before the merge fail the proof-of-stake header rules (difficulty 0, nonce 0)
//! and are not imported: devmux cannot sync such a chain from its genesis (the fork id,
//! which is what peering needs, is right all the same), and a chain that never merges not
//! at all. `ethash` and `clique` sections are otherwise ignored.
//!
//! ```
//! let text = r#"{
//!   "config": { "chainId": 1, "homesteadBlock": 3, "ethash": {} },
//!   "gasLimit": "0x0",
//!   "difficulty": "0x20000",
//!   "alloc": {
//!     "0x0100000000000000000000000000000000000000": {
//!       "balance": "0x1",
//!       "storage": {
//!         "0x0100000000000000000000000000000000000000000000000000000000000000":
//!         "0x0100000000000000000000000000000000000000000000000000000000000000"
//!       }
//!     }
//!   }
//! }"#;
//! let spec = devmux_chain::ChainSpec::from_genesis_json(text, "custom")?;
//! // The hash go-ethereum's core/genesis_test.go expects for this genesis.
//! assert_eq!(
//!     spec.genesis_hash(),
//!     alloy_primitives::b256!("89c99d90b79719238d2645c7642f2c9295246e80775b38cfd162b696817fbd50")
//! );
//! assert_eq!(spec.genesis.gas_limit, 4_712_388);
//! # Ok::<(), devmux_chain::Error>(())
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use alloy_consensus::{EMPTY_OMMER_ROOT_HASH, EMPTY_ROOT_HASH};
use alloy_eips::eip4844::BLOB_TX_MIN_BLOB_GASPRICE;
use alloy_eips::eip7594::MAX_BLOBS_PER_TX_FUSAKA;
use alloy_eips::eip7685::EMPTY_REQUESTS_HASH;
use alloy_eips::eip7840::{BlobParams, BLOB_BASE_COST};
use alloy_eips::eip7928::EMPTY_BLOCK_ACCESS_LIST_HASH;
use alloy_genesis::{ChainConfig, Genesis, GenesisAccount};
use alloy_primitives::{Address, Bloom, B256, B64};
use devmux_eth::Header;
use serde_json::Value;

use crate::forks::{Activation, ForkSchedule, Hardfork};
use crate::{ChainSpec, Consensus, Error};

/// The gas limit of a genesis whose file gives 0: go-ethereum's `params.GenesisGasLimit`.
pub const DEFAULT_GAS_LIMIT: u64 = 4_712_388;

/// The base fee of a genesis with London active and no base fee in the file: go-ethereum's
/// `params.InitialBaseFee`, 1 gwei.
pub const DEFAULT_BASE_FEE: u64 = 1_000_000_000;

/// Bytes of clique extra data around the signer list: 32 of vanity, 65 of seal. A clique
/// genesis shorter than that has no signer, and `geth init` refuses it.
const CLIQUE_EXTRA_MIN: usize = 32 + 65;

/// The genesis fields `geth init` requires (`gencodec:"required"`), plus `config`, which
/// `Genesis.Commit` requires. A field given as `null` counts as missing, as in Go.
const REQUIRED_FIELDS: [&str; 4] = ["config", "gasLimit", "difficulty", "alloc"];

/// Reads a go-ethereum genesis file into a [`ChainSpec`] named `name`: chain id and
/// network id from `config.chainId`, the genesis header `geth init` writes, the fork
/// schedule of `config`, [`Consensus::ProofOfStake`] (see the module docs for a chain
/// not merged at genesis), and no bootnodes or DNS lists.
pub fn parse(text: &str, name: &str) -> Result<ChainSpec, Error> {
    GenesisFile::from_json(text)?.chain_spec(name)
}

/// Reads the genesis file at `path` ([`parse`]), naming the chain after the file's stem
/// (`devnet.json` → `devnet`), or `custom` if it has none.
pub fn load(path: impl AsRef<Path>) -> Result<ChainSpec, Error> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| Error::GenesisRead {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path
        .file_stem()
        .and_then(|stem| stem.to_str())
        .filter(|stem| !stem.is_empty())
        .unwrap_or("custom");
    parse(&text, name)
}

impl ChainSpec {
    /// The chain a go-ethereum genesis file describes ([`crate::genesis::parse`]).
    pub fn from_genesis_json(text: &str, name: &str) -> Result<Self, Error> {
        parse(text, name)
    }
}

/// A go-ethereum genesis file, read but not yet checked: alloy's [`Genesis`] plus the one
/// header field alloy's type leaves out (`gasUsed`). Built-in networks fill one in from
/// constants, so that their genesis header goes through the same [`GenesisFile::header`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GenesisFile {
    /// Everything but `gasUsed`.
    pub genesis: Genesis,
    /// The genesis header's gas used (go-ethereum's `Genesis.GasUsed`; 0 in real files).
    pub gas_used: u64,
}

impl GenesisFile {
    /// Parses the JSON of a genesis file, refusing one without a field `geth init`
    /// requires.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let raw: Value = serde_json::from_str(text).map_err(Error::GenesisJson)?;
        let Value::Object(fields) = &raw else {
            return Err(Error::InvalidGenesis("not a JSON object".into()));
        };
        for field in REQUIRED_FIELDS {
            if fields.get(field).is_none_or(Value::is_null) {
                return Err(Error::InvalidGenesis(format!(
                    "missing required field '{field}' for Genesis"
                )));
            }
        }
        if let Some(config) = fields.get("config") {
            if config.get("chainId").is_none_or(Value::is_null) {
                return Err(Error::InvalidGenesis(
                    "config has no chainId (devmux does not default it)".into(),
                ));
            }
        }
        let gas_used = quantity(fields.get("gasUsed"), "gasUsed")?;
        let genesis: Genesis = serde_json::from_value(raw).map_err(Error::GenesisJson)?;
        Ok(Self { genesis, gas_used })
    }

    /// The state root of the file's `alloc` ([`state_root`]).
    pub fn state_root(&self) -> B256 {
        state_root(&self.genesis.alloc)
    }

    /// The fork schedule of the file's `config` ([`fork_schedule`]).
    pub fn fork_schedule(&self) -> Result<ForkSchedule, Error> {
        fork_schedule(&self.genesis.config)
    }

    /// The genesis header with this state root, as go-ethereum's `toBlockWithRoot`
    /// builds it (the module docs list the defaults). Refuses a block number other than
    /// 0 (`geth init` does), a clique genesis without signers, a base fee above 2^64,
    /// and a header whose optional fields would have a gap.
    pub fn header(&self, state_root: B256) -> Result<Header, Error> {
        let g = &self.genesis;
        let config = &g.config;
        let number = g.number.unwrap_or(0);
        if number != 0 {
            return Err(Error::InvalidGenesis(
                "can't commit genesis block with number > 0".into(),
            ));
        }
        if config.clique.is_some() && g.extra_data.len() < CLIQUE_EXTRA_MIN {
            return Err(Error::InvalidGenesis(
                "can't start clique chain without signers".into(),
            ));
        }
        let base_fee = g
            .base_fee_per_gas
            .map(|fee| {
                u64::try_from(fee).map_err(|_| {
                    Error::InvalidGenesis(format!("baseFeePerGas {fee} does not fit 64 bits"))
                })
            })
            .transpose()?;
        // go-ethereum's IsShanghai, IsCancun, … all require London as well.
        let london = config.london_block.is_some_and(|at| number >= at);
        let at_genesis = |time: Option<u64>| london && time.is_some_and(|t| g.timestamp >= t);
        let mut header = Header {
            parent_hash: g.parent_hash.unwrap_or_default(),
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            beneficiary: g.coinbase,
            state_root,
            transactions_root: EMPTY_ROOT_HASH,
            receipts_root: EMPTY_ROOT_HASH,
            logs_bloom: Bloom::ZERO,
            difficulty: g.difficulty,
            number,
            gas_limit: if g.gas_limit == 0 {
                DEFAULT_GAS_LIMIT
            } else {
                g.gas_limit
            },
            gas_used: self.gas_used,
            timestamp: g.timestamp,
            extra_data: g.extra_data.clone(),
            mix_hash: g.mix_hash,
            nonce: B64::new(g.nonce.to_be_bytes()),
            // Set whatever the fork, as go-ethereum does.
            base_fee_per_gas: base_fee,
            ..Default::default()
        };
        if london && header.base_fee_per_gas.is_none() {
            header.base_fee_per_gas = Some(DEFAULT_BASE_FEE);
        }
        if at_genesis(config.shanghai_time) {
            header.withdrawals_root = Some(EMPTY_ROOT_HASH);
        }
        if at_genesis(config.cancun_time) {
            // EIP-4788: the genesis has no parent, so its parent beacon root is zero.
            header.parent_beacon_block_root = Some(B256::ZERO);
            header.excess_blob_gas = Some(g.excess_blob_gas.unwrap_or(0));
            header.blob_gas_used = Some(g.blob_gas_used.unwrap_or(0));
        } else if g.excess_blob_gas.is_some() {
            // go-ethereum keeps it "for testing purposes", encoding the fields before it
            // as empty strings: a header devmux's type cannot hash the same way.
            header.excess_blob_gas = g.excess_blob_gas;
        }
        if at_genesis(config.prague_time) {
            header.requests_hash = Some(EMPTY_REQUESTS_HASH);
        }
        if at_genesis(config.amsterdam_time) {
            header.slot_number = Some(g.slot_number.unwrap_or(0));
            header.block_access_list_hash = Some(EMPTY_BLOCK_ACCESS_LIST_HASH);
        }
        refuse_gaps(&header)?;
        Ok(header)
    }

    /// The chain this file describes, named `name` ([`parse`]).
    pub fn chain_spec(&self, name: &str) -> Result<ChainSpec, Error> {
        let forks = self.fork_schedule()?;
        let genesis = self.header(self.state_root())?;
        let chain_id = self.genesis.config.chain_id;
        Ok(ChainSpec {
            name: name.to_owned(),
            chain_id,
            network_id: chain_id,
            genesis,
            forks,
            consensus: Consensus::ProofOfStake,
            bootnodes: Vec::new(),
            dns_lists: Vec::new(),
        })
    }
}

/// Parses a bare go-ethereum chain config (the `config` of a genesis file; the format of
/// go-ethereum's `params/chainspecs/*.json`), refusing what [`fork_schedule`] refuses.
pub fn parse_chain_config(text: &str) -> Result<ChainConfig, Error> {
    let raw: Value = serde_json::from_str(text).map_err(Error::GenesisJson)?;
    if raw.get("chainId").is_none_or(Value::is_null) {
        return Err(Error::InvalidGenesis(
            "config has no chainId (devmux does not default it)".into(),
        ));
    }
    let config: ChainConfig = serde_json::from_value(raw).map_err(Error::GenesisJson)?;
    fork_schedule(&config)?;
    Ok(config)
}

/// The state root of a genesis `alloc`: the secure trie (keys keccak256(address)) of RLP
/// accounts, each with its storage trie's root (keys keccak256(slot), slots holding 0
/// left out) and its code hash. Empty accounts stay in the trie, as go-ethereum's
/// `hashAlloc` commits them without deleting empty objects.
pub fn state_root(alloc: &BTreeMap<Address, GenesisAccount>) -> B256 {
    alloy_trie::root::state_root_ref_unhashed(alloc)
}

/// The fork schedule a go-ethereum chain config describes, checked as `geth init` checks
/// it (fork order, blob schedule) and refused if it names a fork devmux does not know.
///
/// Blob parameters, as go-ethereum's `eip4844.latestBlobConfig` and Osaka rules apply
/// them: each scheduled fork with a `blobSchedule` entry (`cancun`, `prague`,
/// `bpo1`…`bpo5`) brings its target, max and update fraction. Osaka brings no entry of
/// its own (go-ethereum ignores an `osaka` entry, and so does devmux) but changes two
/// rules, which devmux records as blob parameters at Osaka: at most 6 blobs per
/// transaction (EIP-7594, go-ethereum's `BlobTxMaxBlobs`), where before a transaction
/// could fill the block's maximum, and a blob base cost of 2^13 gas (EIP-7918,
/// `BlobBaseCost`). So Osaka's parameters are the entry in force before it with those two
/// changed, and every BPO fork, which go-ethereum orders after Osaka, keeps them when
/// Osaka is scheduled. These match alloy's `BlobParams::osaka()` and `bpo1()` field for
/// field on mainnet.
pub fn fork_schedule(config: &ChainConfig) -> Result<ForkSchedule, Error> {
    refuse_unknown_forks(config)?;
    check_fork_order(config)?;
    if config.eip155_block != config.eip158_block {
        return Err(Error::InvalidGenesis(format!(
            "eip155Block {:?} and eip158Block {:?} differ: devmux schedules both as one \
             fork (Spurious Dragon)",
            config.eip155_block, config.eip158_block
        )));
    }
    let mut schedule = ForkSchedule::default();
    schedule.set(Hardfork::Frontier, Activation::Block(0));
    let blocks = [
        (Hardfork::Homestead, config.homestead_block),
        (Hardfork::Dao, config.dao_fork_block),
        (Hardfork::Tangerine, config.eip150_block),
        (Hardfork::SpuriousDragon, config.eip155_block),
        (Hardfork::Byzantium, config.byzantium_block),
        (Hardfork::Constantinople, config.constantinople_block),
        // go-ethereum's IsPetersburg: no Petersburg block means Constantinople's. The
        // fork id is unchanged (a block twice counts once).
        (
            Hardfork::Petersburg,
            config.petersburg_block.or(config.constantinople_block),
        ),
        (Hardfork::Istanbul, config.istanbul_block),
        (Hardfork::MuirGlacier, config.muir_glacier_block),
        (Hardfork::Berlin, config.berlin_block),
        (Hardfork::London, config.london_block),
        (Hardfork::ArrowGlacier, config.arrow_glacier_block),
        (Hardfork::GrayGlacier, config.gray_glacier_block),
        (Hardfork::MergeNetsplit, config.merge_netsplit_block),
    ];
    for (fork, at) in blocks {
        if let Some(at) = at {
            schedule.set(fork, Activation::Block(at));
        }
    }
    for (fork, at) in time_forks(config) {
        if let Some(at) = at {
            schedule.set(fork, Activation::Time(at));
        }
    }
    schedule.terminal_total_difficulty = config.terminal_total_difficulty;

    let entry = |name: &str| config.blob_schedule.get(name);
    let osaka = config.osaka_time.is_some();
    let params = |entry: &BlobParams, osaka_rules: bool| BlobParams {
        target_blob_count: entry.target_blob_count,
        max_blob_count: entry.max_blob_count,
        update_fraction: entry.update_fraction,
        min_blob_fee: BLOB_TX_MIN_BLOB_GASPRICE,
        max_blobs_per_tx: if osaka_rules {
            MAX_BLOBS_PER_TX_FUSAKA
        } else {
            entry.max_blob_count
        },
        blob_base_cost: if osaka_rules { BLOB_BASE_COST } else { 0 },
    };
    // The entry in force when Osaka activates: the latest scheduled one before it.
    let mut before_osaka = None;
    for (fork, time, name) in [
        (Hardfork::Cancun, config.cancun_time, "cancun"),
        (Hardfork::Prague, config.prague_time, "prague"),
    ] {
        if let (Some(_), Some(entry)) = (time, entry(name)) {
            schedule.set_blob_params(fork, params(entry, false));
            before_osaka = Some(entry);
        }
    }
    if let (true, Some(entry)) = (osaka, before_osaka) {
        schedule.set_blob_params(Hardfork::Osaka, params(entry, true));
    }
    for (fork, time, name) in bpo_forks(config) {
        if let (Some(_), Some(entry)) = (time, entry(name)) {
            schedule.set_blob_params(fork, params(entry, osaka));
        }
    }
    Ok(schedule)
}

/// The timestamp forks devmux knows, with their times in `config`.
fn time_forks(config: &ChainConfig) -> [(Hardfork, Option<u64>); 10] {
    [
        (Hardfork::Shanghai, config.shanghai_time),
        (Hardfork::Cancun, config.cancun_time),
        (Hardfork::Prague, config.prague_time),
        (Hardfork::Osaka, config.osaka_time),
        (Hardfork::Bpo1, config.bpo1_time),
        (Hardfork::Bpo2, config.bpo2_time),
        (Hardfork::Bpo3, config.bpo3_time),
        (Hardfork::Bpo4, config.bpo4_time),
        (Hardfork::Bpo5, config.bpo5_time),
        (Hardfork::Amsterdam, config.amsterdam_time),
    ]
}

/// The blob-parameter-only forks, their times and their `blobSchedule` keys.
fn bpo_forks(config: &ChainConfig) -> [(Hardfork, Option<u64>, &'static str); 5] {
    [
        (Hardfork::Bpo1, config.bpo1_time, "bpo1"),
        (Hardfork::Bpo2, config.bpo2_time, "bpo2"),
        (Hardfork::Bpo3, config.bpo3_time, "bpo3"),
        (Hardfork::Bpo4, config.bpo4_time, "bpo4"),
        (Hardfork::Bpo5, config.bpo5_time, "bpo5"),
    ]
}

/// Refuses a config that schedules a fork devmux does not know: `bogotaTime`, verkle's
/// `enableUBTAtGenesis`, or any field alloy does not know whose name ends in `Time` or
/// `Block` and whose value is not null (go-ethereum's `ubtTime`, an old `verkleTime`, a
/// fork of a newer go-ethereum). go-ethereum gathers every `…Time`/`…Block` field into
/// the fork id, so such a fork cannot be left out quietly.
fn refuse_unknown_forks(config: &ChainConfig) -> Result<(), Error> {
    if config.bogota_time.is_some() {
        return Err(Error::UnknownFork {
            field: "bogotaTime".into(),
        });
    }
    for (field, value) in config.extra_fields.iter() {
        let scheduled = match field.as_str() {
            "enableUBTAtGenesis" => value.as_bool() != Some(false) && !value.is_null(),
            _ => (field.ends_with("Time") || field.ends_with("Block")) && !value.is_null(),
        };
        if scheduled {
            return Err(Error::UnknownFork {
                field: field.clone(),
            });
        }
    }
    Ok(())
}

/// go-ethereum's `ChainConfig.CheckConfigForkOrder`, on the forks devmux knows (the ones
/// it does not know were refused before): a fork may be set only if the non-optional one
/// before it is; block forks ascend, and so do time forks; every scheduled blob fork has
/// a `blobSchedule` entry, and every entry a non-zero update fraction.
fn check_fork_order(config: &ChainConfig) -> Result<(), Error> {
    use Activation::{Block, Time};
    let block = |at: Option<u64>| at.map(Block);
    let time = |at: Option<u64>| at.map(Time);
    // (name as go-ethereum spells it, activation, optional), in go-ethereum's order.
    let forks = [
        ("homesteadBlock", block(config.homestead_block), false),
        ("daoForkBlock", block(config.dao_fork_block), true),
        ("eip150Block", block(config.eip150_block), false),
        ("eip155Block", block(config.eip155_block), false),
        ("eip158Block", block(config.eip158_block), false),
        ("byzantiumBlock", block(config.byzantium_block), false),
        (
            "constantinopleBlock",
            block(config.constantinople_block),
            false,
        ),
        ("petersburgBlock", block(config.petersburg_block), false),
        ("istanbulBlock", block(config.istanbul_block), false),
        ("muirGlacierBlock", block(config.muir_glacier_block), true),
        ("berlinBlock", block(config.berlin_block), false),
        ("londonBlock", block(config.london_block), false),
        ("arrowGlacierBlock", block(config.arrow_glacier_block), true),
        ("grayGlacierBlock", block(config.gray_glacier_block), true),
        (
            "mergeNetsplitBlock",
            block(config.merge_netsplit_block),
            true,
        ),
        ("shanghaiTime", time(config.shanghai_time), false),
        ("cancunTime", time(config.cancun_time), true),
        ("pragueTime", time(config.prague_time), true),
        ("osakaTime", time(config.osaka_time), true),
        ("bpo1", time(config.bpo1_time), true),
        ("bpo2", time(config.bpo2_time), true),
        ("amsterdam", time(config.amsterdam_time), true),
        ("bpo3", time(config.bpo3_time), true),
        ("bpo4", time(config.bpo4_time), true),
        ("bpo5", time(config.bpo5_time), true),
    ];
    let describe = |at: Activation| match at {
        Block(n) => format!("block {n}"),
        Time(t) => format!("timestamp {t}"),
    };
    let mut last: Option<(&str, Option<Activation>)> = None;
    for (name, at, optional) in forks {
        if let Some((last_name, last_at)) = last {
            match (last_at, at) {
                (None, Some(at)) => {
                    return Err(Error::InvalidGenesis(format!(
                        "unsupported fork ordering: {last_name} not enabled, but {name} \
                         enabled at {}",
                        describe(at)
                    )))
                }
                (Some(previous), Some(at)) => {
                    let backwards = match (previous, at) {
                        (Block(l), Block(c)) | (Time(l), Time(c)) => l > c,
                        // A time fork may follow a block fork: no order between them.
                        _ => false,
                    };
                    if backwards {
                        return Err(Error::InvalidGenesis(format!(
                            "unsupported fork ordering: {last_name} enabled at {}, but \
                             {name} enabled at {}",
                            describe(previous),
                            describe(at)
                        )));
                    }
                }
                _ => {}
            }
        }
        if !optional || at.is_some() {
            last = Some((name, at));
        }
    }

    let blob_forks = [
        ("cancun", config.cancun_time),
        ("prague", config.prague_time),
        ("bpo1", config.bpo1_time),
        ("bpo2", config.bpo2_time),
        ("bpo3", config.bpo3_time),
        ("bpo4", config.bpo4_time),
        ("bpo5", config.bpo5_time),
    ];
    for (name, time) in blob_forks {
        match config.blob_schedule.get(name) {
            Some(entry) if entry.update_fraction == 0 => {
                return Err(Error::InvalidGenesis(format!(
                    "invalid chain configuration in blobSchedule for fork \"{name}\": update \
                     fraction must be defined and non-zero"
                )))
            }
            None if time.is_some() => {
                return Err(Error::InvalidGenesis(format!(
                    "invalid chain configuration: missing entry for fork \"{name}\" in \
                     blobSchedule"
                )))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Refuses a header with an optional field after a missing one. go-ethereum's RLP writes
/// a missing optional field before a present one as an empty string; alloy's header,
/// which devmux hashes, leaves it out, so the two hashes would differ.
fn refuse_gaps(header: &Header) -> Result<(), Error> {
    let fields = [
        ("baseFeePerGas", header.base_fee_per_gas.is_some()),
        ("withdrawalsRoot", header.withdrawals_root.is_some()),
        ("blobGasUsed", header.blob_gas_used.is_some()),
        ("excessBlobGas", header.excess_blob_gas.is_some()),
        (
            "parentBeaconBlockRoot",
            header.parent_beacon_block_root.is_some(),
        ),
        ("requestsHash", header.requests_hash.is_some()),
        (
            "blockAccessListHash",
            header.block_access_list_hash.is_some(),
        ),
        ("slotNumber", header.slot_number.is_some()),
    ];
    let mut missing = None;
    for (name, present) in fields {
        match (present, missing) {
            (false, None) => missing = Some(name),
            (true, Some(before)) => {
                return Err(Error::InvalidGenesis(format!(
                    "the genesis header would have {name} but no {before} (a fork active \
                     at genesis without the ones before it, or a field given before its \
                     fork): devmux cannot hash such a header as go-ethereum does"
                )))
            }
            _ => {}
        }
    }
    Ok(())
}

/// A 64-bit quantity as go-ethereum's `math.HexOrDecimal64` reads it: a JSON number, or
/// a string in decimal or `0x` hex. Absent or null: 0.
fn quantity(value: Option<&Value>, field: &str) -> Result<u64, Error> {
    let bad = || Error::InvalidGenesis(format!("{field} is not a 64-bit quantity"));
    match value {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n.as_u64().ok_or_else(bad),
        Some(Value::String(s)) => match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16).map_err(|_| bad()),
            None => s.parse().map_err(|_| bad()),
        },
        Some(_) => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{address, b256, U256};
    use devmux_eth::{ForkHash, ForkId, Head};

    /// `specs/test-genesis.json`: a merged chain with Shanghai, Cancun and Prague at
    /// genesis, Osaka and BPO1 later, and a small alloc (a funded account, a contract
    /// with code and storage, one slot of it 0, an account with a nonce, an empty one).
    const TEST_GENESIS: &str = include_str!("../specs/test-genesis.json");

    /// The hash `geth init specs/test-genesis.json` wrote (go-ethereum v1.17.10 logs
    /// `hash=b6fab6..a83719`; the full hash from its `Genesis.ToBlock`).
    const TEST_GENESIS_HASH: B256 =
        b256!("b6fab6aac8857f2f644da21fb329e6d17140a07ae09d385a9659a997cfa83719");

    /// A genesis with this config and alloc, and the header fields `rest` (JSON members
    /// after the leading comma).
    fn genesis_json(config: &str, rest: &str) -> String {
        format!(
            r#"{{"config": {config}, "gasLimit": "0x1c9c380", "difficulty": "0x0", "alloc": {{}}{rest}}}"#
        )
    }

    /// A merged config with every block fork at 0 and these members after them.
    fn merged(members: &str) -> String {
        format!(
            r#"{{"chainId": 7, "homesteadBlock": 0, "eip150Block": 0, "eip155Block": 0,
            "eip158Block": 0, "byzantiumBlock": 0, "constantinopleBlock": 0,
            "petersburgBlock": 0, "istanbulBlock": 0, "berlinBlock": 0, "londonBlock": 0,
            "terminalTotalDifficulty": 0{members}}}"#
        )
    }

    fn invalid(text: &str) -> String {
        match parse(text, "t") {
            Err(Error::InvalidGenesis(reason)) => reason,
            other => panic!("expected InvalidGenesis, got {other:?}"),
        }
    }

    #[test]
    fn test_genesis_hashes_as_geth_init_writes_it() {
        let spec = ChainSpec::from_genesis_json(TEST_GENESIS, "test-genesis").unwrap();
        assert_eq!(spec.genesis_hash(), TEST_GENESIS_HASH);
        assert_eq!(
            spec.genesis.state_root,
            b256!("28fba17c99b2cb020bb39d575af33d2f50e7852c77caede281f2b40821b7b6f5")
        );
        assert_eq!((spec.chain_id, spec.network_id), (20260, 20260));
        assert_eq!(spec.name, "test-genesis");
        assert_eq!(spec.consensus, Consensus::ProofOfStake);
        assert!(spec.bootnodes.is_empty() && spec.dns_lists.is_empty());
        // The defaults ToBlock fills in: base fee, and the fields of the forks active at
        // genesis (Prague activates exactly at the genesis timestamp).
        let header = &spec.genesis;
        assert_eq!(header.base_fee_per_gas, Some(DEFAULT_BASE_FEE));
        assert_eq!(header.withdrawals_root, Some(EMPTY_ROOT_HASH));
        assert_eq!(header.requests_hash, Some(EMPTY_REQUESTS_HASH));
        assert_eq!(header.slot_number, None);
    }

    /// Fork ids go-ethereum's `forkid.NewID` gives for the test genesis: Prague, at the
    /// genesis timestamp, is part of the genesis ruleset, not a fork.
    #[test]
    fn test_genesis_fork_ids_are_go_ethereums() {
        let spec = parse(TEST_GENESIS, "t").unwrap();
        for (number, timestamp, hash, next) in [
            (0, 0, 0xeb828ae1u32, 1_767_312_000),
            (0, 1_767_225_600, 0xeb828ae1, 1_767_312_000),
            (5, 1_767_311_999, 0xeb828ae1, 1_767_312_000),
            (5, 1_767_312_000, 0x32c8e721, 1_767_398_400),
            (5, 1_767_398_400, 0x822c87de, 0),
            (5, 1_800_000_000, 0x822c87de, 0),
        ] {
            let want = ForkId {
                hash: ForkHash(hash.to_be_bytes()),
                next,
            };
            assert_eq!(
                spec.fork_id(Head { number, timestamp }),
                want,
                "{number} {timestamp}"
            );
        }
    }

    #[test]
    fn test_genesis_blob_schedule() {
        let forks = parse(TEST_GENESIS, "t").unwrap().forks;
        let bpo1 = forks.blob_params_at(1_767_398_400).unwrap();
        assert_eq!(
            (
                bpo1.target_blob_count,
                bpo1.max_blob_count,
                bpo1.update_fraction
            ),
            (12, 18, 9_000_000)
        );
        assert_eq!(
            (bpo1.max_blobs_per_tx, bpo1.blob_base_cost),
            (6, BLOB_BASE_COST)
        );
        let prague = forks.blob_params_at(1_767_311_999).unwrap();
        assert_eq!(
            (
                prague.max_blob_count,
                prague.max_blobs_per_tx,
                prague.blob_base_cost
            ),
            (9, 9, 0)
        );
        let osaka = forks.blob_params_at(1_767_312_000).unwrap();
        assert_eq!(
            (
                osaka.max_blob_count,
                osaka.max_blobs_per_tx,
                osaka.blob_base_cost
            ),
            (9, 6, BLOB_BASE_COST)
        );
    }

    /// go-ethereum's `core/genesis_test.go` `customg` (hash `customghash`): Homestead at
    /// block 3, one account with a balance and a storage slot. It exercises ToBlock's
    /// gas limit default (the file's 0 becomes 4 712 388) and a pre-London header (no
    /// base fee).
    #[test]
    fn geth_genesis_test_custom_genesis() {
        let text = r#"{"config":{"chainId":1,"homesteadBlock":3,"ethash":{}},"gasLimit":"0x0",
            "difficulty":"0x20000","alloc":{"0x0100000000000000000000000000000000000000":
            {"balance":"0x1","storage":{"0x0100000000000000000000000000000000000000000000000000000000000000":
            "0x0100000000000000000000000000000000000000000000000000000000000000"}}}}"#;
        let spec = parse(text, "custom").unwrap();
        assert_eq!(
            spec.genesis_hash(),
            b256!("89c99d90b79719238d2645c7642f2c9295246e80775b38cfd162b696817fbd50")
        );
        assert_eq!(spec.genesis.gas_limit, DEFAULT_GAS_LIMIT);
        assert_eq!(spec.genesis.base_fee_per_gas, None);
        // Not merged: still proof of stake (devmux validates no proof of work).
        assert_eq!(spec.forks.terminal_total_difficulty, None);
        assert_eq!(spec.consensus, Consensus::ProofOfStake);
        assert_eq!(spec.forks.block_forks(), vec![3]);
    }

    /// Every fork through Amsterdam at genesis, with the header fields a file may give
    /// (base fee, blob gas, slot number, coinbase, mix hash, gas used, parent hash) and
    /// an `osaka` blob schedule entry, which go-ethereum ignores. Hash from go-ethereum
    /// v1.17.10 (`geth init` logs `hash=2a193b..fed201`).
    #[test]
    fn amsterdam_at_genesis_with_every_header_field() {
        let text = genesis_json(
            &merged(
                r#", "shanghaiTime": 0, "cancunTime": 0, "pragueTime": 0, "osakaTime": 0,
                "amsterdamTime": 0, "blobSchedule": {
                "cancun": {"target": 3, "max": 6, "baseFeeUpdateFraction": 3338477},
                "prague": {"target": 6, "max": 9, "baseFeeUpdateFraction": 5007716},
                "osaka": {"target": 1, "max": 2, "baseFeeUpdateFraction": 5007716}}"#,
            ),
            r#", "timestamp": "0x10", "baseFeePerGas": "0x7", "excessBlobGas": "0x60000",
            "blobGasUsed": "0x20000", "slotNumber": "0x9",
            "coinbase": "0x00000000000000000000000000000000000000aa",
            "mixHash": "0x00000000000000000000000000000000000000000000000000000000000000bb",
            "gasUsed": "0x5",
            "parentHash": "0x00000000000000000000000000000000000000000000000000000000000000cc""#,
        );
        let spec = parse(&text, "t").unwrap();
        assert_eq!(
            spec.genesis_hash(),
            b256!("2a193b588c4596b31a2406defed7032eb77f03d13a93a2a243c15a0c70fed201")
        );
        let header = &spec.genesis;
        assert_eq!(header.gas_used, 5);
        assert_eq!(header.slot_number, Some(9));
        assert_eq!(
            header.block_access_list_hash,
            Some(EMPTY_BLOCK_ACCESS_LIST_HASH)
        );
        assert_eq!(
            (header.blob_gas_used, header.excess_blob_gas),
            (Some(0x20000), Some(0x60000))
        );
        // Osaka takes Prague's numbers, not the ignored `osaka` entry's.
        let osaka = spec.forks.blob_params_at(16).unwrap();
        assert_eq!((osaka.target_blob_count, osaka.max_blob_count), (6, 9));
        assert_eq!(spec.fork_id(Head::default()).next, 0);
    }

    /// A base fee in a file before London is kept: go-ethereum's ToBlock copies it into
    /// the header whatever the fork. Hash from go-ethereum v1.17.10 (`geth init`:
    /// `hash=895fe0..64fa3d`); the balance is a decimal string, which geth reads too.
    #[test]
    fn base_fee_before_london_is_kept() {
        let text = r#"{"config":{"chainId":5,"homesteadBlock":0,"eip150Block":0,"eip155Block":0,
            "eip158Block":0,"byzantiumBlock":0,"constantinopleBlock":0,"petersburgBlock":0,
            "istanbulBlock":0,"berlinBlock":0,"londonBlock":10,"ethash":{}},"nonce":"0x2a",
            "gasLimit":"0x2fefd8","difficulty":"0x400","baseFeePerGas":"0x3b9aca00",
            "alloc":{"0x5000000000000000000000000000000000000005":{"balance":"1000"}}}"#;
        let spec = parse(text, "t").unwrap();
        assert_eq!(
            spec.genesis_hash(),
            b256!("895fe0df7aa20acda54b9b941a2faf0a1262c437b577ba7fb5c7d81a8e64fa3d")
        );
        assert_eq!(spec.genesis.base_fee_per_gas, Some(1_000_000_000));
        assert_eq!(spec.forks.block_forks(), vec![10]);
    }

    /// The same file without `petersburgBlock`: `geth init` refuses it with this message.
    #[test]
    fn forks_out_of_order_are_refused_as_geth_refuses_them() {
        let text = genesis_json(
            r#"{"chainId":5,"homesteadBlock":0,"eip150Block":0,"eip155Block":0,
            "eip158Block":0,"byzantiumBlock":0,"constantinopleBlock":0,"istanbulBlock":0}"#,
            "",
        );
        assert_eq!(
            invalid(&text),
            "unsupported fork ordering: petersburgBlock not enabled, but istanbulBlock \
             enabled at block 0"
        );
        let text = genesis_json(
            &merged(
                r#", "shanghaiTime": 10, "cancunTime": 5, "blobSchedule": {"cancun": {"target": 3, "max": 6, "baseFeeUpdateFraction": 3338477}}"#,
            ),
            "",
        );
        assert_eq!(
            invalid(&text),
            "unsupported fork ordering: shanghaiTime enabled at timestamp 10, but cancunTime \
             enabled at timestamp 5"
        );
    }

    #[test]
    fn a_blob_fork_without_its_schedule_is_refused() {
        let text = genesis_json(&merged(r#", "shanghaiTime": 0, "cancunTime": 0"#), "");
        assert_eq!(
            invalid(&text),
            "invalid chain configuration: missing entry for fork \"cancun\" in blobSchedule"
        );
        let text = genesis_json(
            &merged(
                r#", "shanghaiTime": 0, "cancunTime": 0, "blobSchedule": {"cancun":
                {"target": 3, "max": 6, "baseFeeUpdateFraction": 0}}"#,
            ),
            "",
        );
        assert!(invalid(&text).contains("update fraction must be defined and non-zero"));
    }

    #[test]
    fn unknown_forks_are_refused() {
        for (member, field) in [
            (r#", "shanghaiTime": 0, "bogotaTime": 100"#, "bogotaTime"),
            (r#", "shanghaiTime": 0, "ubtTime": 100"#, "ubtTime"),
            (r#", "shanghaiTime": 0, "verkleTime": 0"#, "verkleTime"),
            (
                r#", "shanghaiTime": 0, "enableUBTAtGenesis": true"#,
                "enableUBTAtGenesis",
            ),
            (r#", "fooBlock": 7"#, "fooBlock"),
        ] {
            match parse(&genesis_json(&merged(member), ""), "t") {
                Err(Error::UnknownFork { field: got }) => assert_eq!(got, field),
                other => panic!("{member}: expected UnknownFork, got {other:?}"),
            }
        }
        // Null means not scheduled, in go-ethereum as here; other fields are not forks.
        let text = genesis_json(
            &merged(
                r#", "shanghaiTime": 0, "ubtTime": null, "bogotaTime": null,
                "enableUBTAtGenesis": false, "chainName": "x", "depositContractAddress":
                "0x00000000219ab540356cBB839Cbe05303d7705Fa""#,
            ),
            "",
        );
        assert!(parse(&text, "t").is_ok());
    }

    #[test]
    fn missing_required_fields_are_refused() {
        for field in REQUIRED_FIELDS {
            let mut value: Value = serde_json::from_str(&genesis_json(&merged(""), "")).unwrap();
            value.as_object_mut().unwrap().remove(field);
            assert_eq!(
                invalid(&value.to_string()),
                format!("missing required field '{field}' for Genesis")
            );
            value[field] = Value::Null;
            assert!(invalid(&value.to_string()).contains(field));
        }
        let text = genesis_json(r#"{"homesteadBlock": 0}"#, "");
        assert!(invalid(&text).contains("chainId"));
        assert!(matches!(parse("{", "t"), Err(Error::GenesisJson(_))));
        assert!(matches!(parse("[]", "t"), Err(Error::InvalidGenesis(_))));
        let bad_type = genesis_json(&merged(""), r#", "nonce": [1]"#);
        assert!(matches!(parse(&bad_type, "t"), Err(Error::GenesisJson(_))));
    }

    #[test]
    fn what_geth_init_refuses_or_devmux_cannot_hash_is_refused() {
        let number = genesis_json(&merged(""), r#", "number": "0x1""#);
        assert_eq!(
            invalid(&number),
            "can't commit genesis block with number > 0"
        );
        let clique = genesis_json(&merged(r#", "clique": {"period": 5, "epoch": 30000}"#), "");
        assert_eq!(invalid(&clique), "can't start clique chain without signers");
        // Before Cancun, go-ethereum keeps excessBlobGas "for testing" and encodes the
        // fields before it as empty strings.
        let gap = genesis_json(
            &merged(r#", "shanghaiTime": 0"#),
            r#", "excessBlobGas": "0x0""#,
        );
        assert!(invalid(&gap).contains("excessBlobGas but no blobGasUsed"));
        // Prague without Cancun: a requests hash with no blob fields before it.
        let gap = genesis_json(
            &merged(
                r#", "shanghaiTime": 0, "pragueTime": 0, "blobSchedule": {"prague": {"target": 6, "max": 9, "baseFeeUpdateFraction": 5007716}}"#,
            ),
            "",
        );
        assert!(invalid(&gap).contains("requestsHash but no blobGasUsed"));
        let split = genesis_json(
            r#"{"chainId": 7, "homesteadBlock": 0, "eip150Block": 0, "eip155Block": 0, "eip158Block": 10}"#,
            "",
        );
        assert!(invalid(&split).contains("Spurious Dragon"));
    }

    /// A time fork counts at genesis only with London active, as go-ethereum's
    /// `IsShanghai` requires: Shanghai at time 0 with London at block 5 adds no
    /// withdrawals root, and the fork id still hashes the Shanghai time as a fork.
    #[test]
    fn time_forks_need_london() {
        let config = r#"{"chainId": 7, "homesteadBlock": 0, "eip150Block": 0, "eip155Block": 0,
            "eip158Block": 0, "byzantiumBlock": 0, "constantinopleBlock": 0,
            "petersburgBlock": 0, "istanbulBlock": 0, "berlinBlock": 0, "londonBlock": 5,
            "shanghaiTime": 100}"#;
        let spec = parse(&genesis_json(config, r#", "timestamp": "0x64""#), "t").unwrap();
        assert_eq!(spec.genesis.base_fee_per_gas, None);
        assert_eq!(spec.genesis.withdrawals_root, None);
        assert_eq!(spec.forks.block_forks(), vec![5]);
        // Shanghai at the genesis timestamp is dropped from the fork id, as gatherForks does.
        assert!(spec.forks.time_forks(spec.genesis.timestamp).is_empty());
    }

    /// A missing Petersburg block means Constantinople's, as go-ethereum's `IsPetersburg`.
    #[test]
    fn petersburg_defaults_to_constantinople() {
        let config = r#"{"chainId": 7, "homesteadBlock": 0, "eip150Block": 0, "eip155Block": 0,
            "eip158Block": 0, "byzantiumBlock": 0, "constantinopleBlock": 4}"#;
        let forks = parse(&genesis_json(config, ""), "t").unwrap().forks;
        assert!(forks.is_active(Hardfork::Petersburg, 4, 0));
        assert!(!forks.is_active(Hardfork::Petersburg, 3, 0));
        assert_eq!(forks.block_forks(), vec![4]);
    }

    /// The state root of an alloc, against go-ethereum's: an empty alloc is the empty
    /// trie, and zero-valued storage is left out (the contract of the test genesis with
    /// and without its zero slot has one storage root).
    #[test]
    fn state_root_drops_zero_slots_and_keeps_empty_accounts() {
        let file = GenesisFile::from_json(TEST_GENESIS).unwrap();
        assert_eq!(state_root(&BTreeMap::new()), EMPTY_ROOT_HASH);
        let mut alloc = file.genesis.alloc.clone();
        let contract = address!("2000000000000000000000000000000000000002");
        let account = alloc.get_mut(&contract).unwrap();
        account
            .storage
            .as_mut()
            .unwrap()
            .retain(|_, value| !value.is_zero());
        assert_eq!(state_root(&alloc), file.state_root());
        // An empty account is in the trie: removing it changes the root.
        let empty = address!("4000000000000000000000000000000000000004");
        assert_eq!(alloc.get(&empty).map(|a| a.balance), Some(U256::ZERO));
        alloc.remove(&empty);
        assert_ne!(state_root(&alloc), file.state_root());
    }

    #[test]
    fn load_names_the_chain_after_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mynet.json");
        std::fs::write(&path, TEST_GENESIS).unwrap();
        let spec = load(&path).unwrap();
        assert_eq!(spec.name, "mynet");
        assert_eq!(spec.genesis_hash(), TEST_GENESIS_HASH);
        let missing = dir.path().join("absent.json");
        assert!(matches!(load(&missing), Err(Error::GenesisRead { path, .. }) if path == missing));
    }

    #[test]
    fn quantities_read_as_go_ethereum_reads_them() {
        let n = |v: Value| quantity(Some(&v), "f");
        assert_eq!(n(Value::from(7)).unwrap(), 7);
        assert_eq!(n(Value::from("0x10")).unwrap(), 16);
        assert_eq!(n(Value::from("10")).unwrap(), 10);
        assert_eq!(quantity(None, "f").unwrap(), 0);
        assert!(n(Value::from("0xzz")).is_err());
        assert!(n(Value::from(-1)).is_err());
        assert!(n(Value::Bool(true)).is_err());
    }
}
