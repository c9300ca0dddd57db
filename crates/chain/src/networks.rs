//! The public networks devmux joins, mainnet, sepolia and hoodi, with the devnet, by
//! name ([`by_name`], [`NAMES`]).
//!
//! Each network's fork schedule is go-ethereum's own: its `params/chainspecs/*.json`,
//! copied into `crates/chain/specs/` and read with the same parser as a genesis file's
//! `config` ([`crate::genesis::parse_chain_config`], [`crate::genesis::fork_schedule`]),
//! so that a schedule edited upstream is copied, not retyped. Their genesis allocs are
//! large (mainnet's has about 8 900 accounts) and add nothing a peer checks, so they are
//! not embedded: the genesis header is built by go-ethereum's rules
//! ([`crate::genesis::GenesisFile::header`]) from the fields of its
//! `core/genesis.go` `Default*GenesisBlock` and the alloc's known state root, and the
//! tests check it hashes to the published genesis hash.
//!
//! Bootnodes and DNS lists are data from go-ethereum's `params/bootnodes.go`; nothing in
//! this crate contacts them.
//!
//! ```
//! use devmux_chain::{networks, ChainSpec};
//!
//! let mainnet = ChainSpec::mainnet();
//! assert_eq!(mainnet.genesis_hash(), networks::MAINNET_GENESIS_HASH);
//! assert_eq!(networks::by_name("hoodi").map(|spec| spec.network_id), Some(560_048));
//! assert!(networks::by_name("goerli").is_none());
//! ```

use alloy_genesis::Genesis;
use alloy_primitives::{b256, Bytes, B256, U256};

use crate::genesis::{parse_chain_config, GenesisFile};
use crate::{ChainSpec, Error};

/// The devnet's name (WIRE.md §7): `--network dev`, or `--dev`.
pub const DEV: &str = "dev";

/// The names [`by_name`] knows.
pub const NAMES: [&str; 4] = ["mainnet", "sepolia", "hoodi", DEV];

/// The chain spec called `name` (one of [`NAMES`]), or `None` for another name.
pub fn by_name(name: &str) -> Option<ChainSpec> {
    match name {
        "mainnet" => Some(ChainSpec::mainnet()),
        "sepolia" => Some(ChainSpec::sepolia()),
        "hoodi" => Some(ChainSpec::hoodi()),
        DEV => Some(ChainSpec::devnet()),
        _ => None,
    }
}

/// Mainnet's genesis hash (go-ethereum's `params.MainnetGenesisHash`).
pub const MAINNET_GENESIS_HASH: B256 =
    b256!("d4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3");
/// Sepolia's genesis hash (go-ethereum's `params.SepoliaGenesisHash`).
pub const SEPOLIA_GENESIS_HASH: B256 =
    b256!("25a5cc106eea7138acab33231d7160d69cb777ee0c2c553fcddf5138993e6dd9");
/// Hoodi's genesis hash (go-ethereum's `params.HoodiGenesisHash`).
pub const HOODI_GENESIS_HASH: B256 =
    b256!("bbe312868b376a3001692a646dd2d7d1e4406380dfd86b98aa8a34d1557c971b");

/// The key that signs go-ethereum's public DNS node lists (EIP-1459), as its
/// `params.KnownDNSNetwork` prefixes every list URL.
pub const DNS_LIST_KEY: &str = "AKA3AM6LPBYEUDMVNU3BSVQJ5AD45Y7YPOHJLEF6W26QOE4VTUDPE";

/// A public network's data: everything its [`ChainSpec`] is built from.
struct Network {
    name: &'static str,
    /// go-ethereum's `params/chainspecs/<name>.json`.
    config: &'static str,
    /// The network id (eth Status); equal to the chain id on all three.
    network_id: u64,
    /// Header fields of go-ethereum's `Default*GenesisBlock`.
    nonce: u64,
    extra_data: &'static [u8],
    gas_limit: u64,
    difficulty: u64,
    timestamp: u64,
    /// The state root of the genesis alloc (not embedded).
    state_root: B256,
    bootnodes: &'static [&'static str],
}

/// Mainnet (`core.DefaultGenesisBlock`).
const MAINNET: Network = Network {
    name: "mainnet",
    config: include_str!("../specs/mainnet.json"),
    network_id: 1,
    nonce: 66,
    extra_data: &[
        0x11, 0xbb, 0xe8, 0xdb, 0x4e, 0x34, 0x7b, 0x4e, 0x8c, 0x93, 0x7c, 0x1c, 0x83, 0x70, 0xe4,
        0xb5, 0xed, 0x33, 0xad, 0xb3, 0xdb, 0x69, 0xcb, 0xdb, 0x7a, 0x38, 0xe1, 0xe5, 0x0b, 0x1b,
        0x82, 0xfa,
    ],
    gas_limit: 5000,
    difficulty: 17_179_869_184,
    timestamp: 0,
    state_root: b256!("d7f8974fb5ac78d9ac099b9ad5018bedc2ce0a72dad1827a1709da30580f0544"),
    bootnodes: MAINNET_BOOTNODES,
};

/// Sepolia (`core.DefaultSepoliaGenesisBlock`).
const SEPOLIA: Network = Network {
    name: "sepolia",
    config: include_str!("../specs/sepolia.json"),
    network_id: 11_155_111,
    nonce: 0,
    extra_data: b"Sepolia, Athens, Attica, Greece!",
    gas_limit: 0x1c9_c380,
    difficulty: 0x20000,
    timestamp: 1_633_267_481,
    state_root: b256!("5eb6e371a698b8d68f665192350ffcecbbbf322916f4b51bd79bb6887da3f494"),
    bootnodes: SEPOLIA_BOOTNODES,
};

/// Hoodi (`core.DefaultHoodiGenesisBlock`).
const HOODI: Network = Network {
    name: "hoodi",
    config: include_str!("../specs/hoodi.json"),
    network_id: 560_048,
    nonce: 0x1234,
    extra_data: b"",
    gas_limit: 0x225_5100,
    difficulty: 1,
    timestamp: 1_742_212_800,
    state_root: b256!("da87d7f5f91c51508791bbcbd4aa5baf04917830b86985eeb9ad3d5bfb657576"),
    bootnodes: HOODI_BOOTNODES,
};

impl Network {
    /// The spec, or why the embedded data does not make one.
    fn spec(&self) -> Result<ChainSpec, Error> {
        let file = GenesisFile {
            genesis: Genesis {
                config: parse_chain_config(self.config)?,
                nonce: self.nonce,
                timestamp: self.timestamp,
                extra_data: Bytes::from_static(self.extra_data),
                gas_limit: self.gas_limit,
                difficulty: U256::from(self.difficulty),
                ..Default::default()
            },
            gas_used: 0,
        };
        let mut bootnodes: Vec<String> = self.bootnodes.iter().map(|s| (*s).to_owned()).collect();
        for enr in V5_BOOTNODES {
            if !self.bootnodes.contains(enr) {
                bootnodes.push((*enr).to_owned());
            }
        }
        Ok(ChainSpec {
            name: self.name.to_owned(),
            chain_id: file.genesis.config.chain_id,
            network_id: self.network_id,
            genesis: file.header(self.state_root)?,
            forks: file.fork_schedule()?,
            consensus: crate::Consensus::ProofOfStake,
            bootnodes,
            // go-ethereum's KnownDNSNetwork(genesis, "all"), for eth and snap alike.
            dns_lists: vec![format!(
                "enrtree://{DNS_LIST_KEY}@all.{}.ethdisco.net",
                self.name
            )],
        })
    }

    /// The spec. The data it is built from is embedded and checked by this module's
    /// tests (parses, hashes to the published genesis hash), so the panic below is
    /// unreachable in a build whose tests pass; a broken edit of the data fails the
    /// tests, not a node.
    fn builtin(&self) -> ChainSpec {
        match self.spec() {
            Ok(spec) => spec,
            Err(e) => panic!("built-in {} chain spec is broken: {e}", self.name),
        }
    }
}

impl ChainSpec {
    /// Ethereum mainnet: chain and network id 1, merged at total difficulty 5.875·10^22,
    /// forks through BPO2. Its blocks before the merge are proof of work, which devmux
    /// does not validate, so they fail its header rules (see [`crate::genesis`]).
    pub fn mainnet() -> Self {
        MAINNET.builtin()
    }

    /// Sepolia, the application test network: chain and network id 11155111.
    pub fn sepolia() -> Self {
        SEPOLIA.builtin()
    }

    /// Hoodi, the validator test network: chain and network id 560048, proof of stake
    /// from genesis.
    pub fn hoodi() -> Self {
        HOODI.builtin()
    }
}

/// Mainnet bootnodes: go-ethereum's `params.MainnetBootnodes`, in its order.
pub const MAINNET_BOOTNODES: &[&str] = &[
    // EF NodeOps bootnodes
    // nodeops-bootnode-dcl1-01
    "enr:-KG4QCF1Mj32xpKHjinNb6ocCtMZG6IR_tyF5dkio5Hkek7zVbT6MM5eJwhjJFdiksQl51T33IRgryE0XLXiy1QOqsUBgmlkgnY0gmlwhNRj2kKDaXA2kCoAHKALAA0CAAAAAAAAAF6Jc2VjcDI1NmsxoQLKlnQYuhZRBTA8-7cz37kr_KuA1lAJ1eXxWMjp5fLJB4N1ZHCCTreEdWRwNoJOtw",
    // nodeops-bootnode-sfo3-01
    "enr:-KG4QMHihBfLI_tpXLWmfTi28HItJa4wDADDAaVjkfSELAb0BajqVWXM2GEMds5J63SCkpDRlqct5E8ftfQi4U93pigBgmlkgnY0gmlwhIHUpj2DaXA2kCYEqIAABAHQAAAAA2GdUACJc2VjcDI1NmsxoQLeQmW8OMuoUIoUImNW-r9IC4jaiAwZ2knfV4BqWyQvKoN1ZHCCdl-EdWRwNoJ2Xw",
    // nodeops-bootnode-blr1-01
    "enr:-KG4QKsHcKQvIX8UPbJgw2cIEP_9EislF1srNGdYom4dcSsobt-92iEDNkHTt9dcdKXHaDMVbCM8QQ4V1RP8HcExLDsBgmlkgnY0gmlwhJB-_BiDaXA2kCQAYYABAADQAAAAAYEgYAGJc2VjcDI1NmsxoQILdc6UClD5s_N8-hYhIGQtFqRYR3Qxf9qgLQ7sj4qvEYN1ZHCCdl-EdWRwNoJ2Xw",
    // nodeops-bootnode-ash-01
    "enr:-KG4QFplptv1jVEhFeNNxRN7qe5p9rAGGlMeNnmGvUJV23W4Kr8hmiSzdWjZZHFqwi7nOuQrM32VO6uHBORXOdLG98gBgmlkgnY0gmlwhLKc14yDaXA2kCoBBP8A9DxKAAAAAAAAAAGJc2VjcDI1NmsxoQMBRycp4yiHbGzOqZPPMmuKGslp1NpOrFf_predLYM4-oN1ZHCCdl-EdWRwNoJ2Xw",
    // nodeops-bootnode-sin-01
    "enr:-KG4QGY74qTrst5NbQDAMIF8B7jEC8CMBSo6C5Ljea5I4PxYV1VSYdsGUqqIBlOYRBfwhl6YpEyvvvZOqNCa4dvmSXgBgmlkgnY0gmlwhAXfXlGDaXA2kCoBBP8C8BytAAAAAAAAAAGJc2VjcDI1NmsxoQIMlJp7yNcblauYicEeSBpHQzFAk9Wg3lhx3ie9gpTohIN1ZHCCdl-EdWRwNoJ2Xw",
    // Legacy EF bootnodes, being phased out in favour of the ones above.
    // bootnode-aws-ap-southeast-1-001
    "enode://d860a01f9722d78051619d1e2351aba3f43f943f6f00718d1b9baa4101932a1f5011f16bb2b1bb35db20d6fe28fa0bf09636d26a87d31de9ec6203eeedb1f666@18.138.108.67:30303",
    // bootnode-aws-us-east-1-001
    "enode://22a8232c3abc76a16ae9d6c3b164f98775fe226f0917b0ca871128a74a8e9630b458460865bab457221f1d448dd9791d24c4e5d88786180ac185df813a68d4de@3.209.45.79:30303",
    // bootnode-hetzner-hel
    "enode://2b252ab6a1d0f971d9722cb839a42cb81db019ba44c08754628ab4a823487071b5695317c8ccd085219c3a03af063495b2f1da8d18218da2d6a82981b45e6ffc@65.108.70.101:30303",
    // bootnode-hetzner-fsn
    "enode://4aeb4ab6c14b23e2c4cfdce879c04b0748a20d8e9b59e25ded2a08143e265c6c25936e74cbc8e641e3312ca288673d91f2f93f8e277de3cfa444ecdaaf982052@157.90.35.166:30303",
];

/// Sepolia bootnodes: go-ethereum's `params.SepoliaBootnodes`, in its order.
pub const SEPOLIA_BOOTNODES: &[&str] = &[
    // EF NodeOps bootnodes
    // nodeops-bootnode-dcl1-01
    "enr:-KG4QHn1Os72NN5Z44Ehf9CHPmN490GBphTFirfk33pFuWnkY9UNrQMfHkuCw6a-ykeRhGKrPL5ppMXiZQchgPrCDJQBgmlkgnY0gmlwhNRj2kKDaXA2kCoAHKALAA0CAAAAAAAAAF6Jc2VjcDI1NmsxoQJK_ye9jx9mela-ME_Kt5e017Ywv3hYH_5rwNhIUrtzNoN1ZHCCTriEdWRwNoJOuA",
    // nodeops-bootnode-sfo3-01
    "enr:-KG4QCpiRltiyX7LgozCkQ8XBrcDzejBXbE7YRUQFmIEgv46SC8B4CJLcOO3O2bH-_u-B242GTzO_hQPhv3rpyvAHXMBgmlkgnY0gmlwhIHUpj2DaXA2kCYEqIAABAHQAAAAA2GdUACJc2VjcDI1NmsxoQNmVWXve5c0uvsn_agjTKQ8pR6gl9DynZyTQNruBDfJ4YN1ZHCCdsOEdWRwNoJ2ww",
    // nodeops-bootnode-blr1-01
    "enr:-KG4QJUWvc8qvCUr7x-qCFWee6HPLgmRUfVn-M_yqXD-sjSoAalKCV3NgUhmlqozjTJIj_nPr7J_uT8WJwbWiIx3Cv4BgmlkgnY0gmlwhJB-_BiDaXA2kCQAYYABAADQAAAAAYEgYAGJc2VjcDI1NmsxoQKOQetrA-97TELUzuGegVD1_cHKKNnjOmJ9CYdeSTor7YN1ZHCCdsOEdWRwNoJ2ww",
    // nodeops-bootnode-ash-01
    "enr:-KG4QIBsIiST0JBBvgSNxvHQOeH5PkRgWeufahVXYQQWj7GLYPFDsviuQ6qU-3Xx4qnARaZiI-qqVRyw_2qqmOKRY1UBgmlkgnY0gmlwhLKc14yDaXA2kCoBBP8A9DxKAAAAAAAAAAGJc2VjcDI1NmsxoQKx4n3wy0KtwnuZCHmlxMmc4b0VvfC4Ka_f3sUPvjUq1oN1ZHCCdsOEdWRwNoJ2ww",
    // nodeops-bootnode-sin-01
    "enr:-KG4QPM5C6wuTxu5yk4jkI9Mm64iSUKMPNt8y8kmoFzOlYrnYV4SBeZK7UiS4YWrkX4y2FD9_eH7xiPGvLQ-nXoXIcYBgmlkgnY0gmlwhAXfXlGDaXA2kCoBBP8C8BytAAAAAAAAAAGJc2VjcDI1NmsxoQIC3FMD8Si9DIBVofsSbJkpvXTUAfyi8q66XXQgjRhUsIN1ZHCCdsOEdWRwNoJ2ww",
    // Legacy EF bootnodes, being phased out in favour of the ones above.
    // sepolia-bootnode-1-nyc3
    "enode://4e5e92199ee224a01932a377160aa432f31d0b351f84ab413a8e0a42f4f36476f8fb1cbe914af0d9aef0d51665c214cf653c651c4bbd9d5550a934f241f1682b@138.197.51.181:30303",
    // sepolia-bootnode-1-sfo3
    "enode://143e11fb766781d22d92a2e33f8f104cddae4411a122295ed1fdb6638de96a6ce65f5b7c964ba3763bba27961738fef7d3ecc739268f3e5e771fb4c87b6234ba@146.190.1.103:30303",
    // sepolia-bootnode-1-syd1
    "enode://8b61dc2d06c3f96fddcbebb0efb29d60d3598650275dc469c22229d3e5620369b0d3dedafd929835fe7f489618f19f456fe7c0df572bf2d914a9f4e006f783a9@170.64.250.88:30303",
    // sepolia-bootnode-1-blr1
    "enode://10d62eff032205fcef19497f35ca8477bea0eadfff6d769a147e895d8b2b8f8ae6341630c645c30f5df6e67547c03494ced3d9c5764e8622a26587b083b028e8@139.59.49.206:30303",
    // sepolia-bootnode-1-ams3
    "enode://9e9492e2e8836114cc75f5b929784f4f46c324ad01daf87d956f98b3b6c5fcba95524d6e5cf9861dc96a2c8a171ea7105bb554a197455058de185fa870970c7c@138.68.123.152:30303",
];

/// Hoodi bootnodes: go-ethereum's `params.HoodiBootnodes`, in its order.
pub const HOODI_BOOTNODES: &[&str] = &[
    // EF NodeOps bootnodes
    // nodeops-bootnode-dcl1-01
    "enr:-KG4QHqPRT-PQyT1l2-DzAJ4WiSGWDbLvzqV8umrSRmBVvzfaYAIjswgIY3S4iZFBtOGGdFeUXh5uaFXI4FdN4ib-S0BgmlkgnY0gmlwhNRj2kKDaXA2kCoAHKALAA0CAAAAAAAAAF6Jc2VjcDI1NmsxoQNwurkRdfm7zrv78VVkT0bAPtRO9JJ9gW42Abpf0y96JIN1ZHCCTrmEdWRwNoJOuQ",
    // nodeops-bootnode-sfo3-01
    "enr:-KG4QO3rOpovULG1tqfd5prt30FBF_0_dbh6z13W1CS94yZvObO3BDatF6v_5p0Fol4ayvf32rtLy9IoeIrllRNO6mEBgmlkgnY0gmlwhIHUpj2DaXA2kCYEqIAABAHQAAAAA2GdUACJc2VjcDI1NmsxoQKv1QQH20VixQSfOvSJdDoktzLLpq8hleYiBb5ZrmRaoIN1ZHCCdyeEdWRwNoJ3Jw",
    // nodeops-bootnode-blr1-01
    "enr:-KG4QK3lmOaDQ5f-OLtwBQDwZZwORygbjDKbSWR79YFuQBQMbdStUfUKBucPPB8BW2mIZPcAHmsKan6HK9_CLv1ntfsBgmlkgnY0gmlwhJB-_BiDaXA2kCQAYYABAADQAAAAAYEgYAGJc2VjcDI1NmsxoQL3h68BwVT7D-gnmNXHLKgePyp4l5ikdqbJPaesuz9YAIN1ZHCCdyeEdWRwNoJ3Jw",
    // nodeops-bootnode-ash-01
    "enr:-KG4QC1VbcxVmJVOBrQFyaTshr7kGgI8_IgGhkXMlPGQN6ijWpc72mLFR9qx6islo-bcG5gcfJDBA85Pjjk3zXdhsckBgmlkgnY0gmlwhLKc14yDaXA2kCoBBP8A9DxKAAAAAAAAAAGJc2VjcDI1NmsxoQJxxADpm6ox6R2Op72lhQ7xQ7nalLB0E9vUwchMS1_EdIN1ZHCCdyeEdWRwNoJ3Jw",
    // nodeops-bootnode-sin-01
    "enr:-KG4QACXfYMzVZrG5YGEM6JoAyALZrmSG_0rtTtRQK3Z7q3TUYgb1gqEbyXfA07HpqJq9i4ZaG1EmRwgZbwNFIa9M8gBgmlkgnY0gmlwhAXfXlGDaXA2kCoBBP8C8BytAAAAAAAAAAGJc2VjcDI1NmsxoQOBqr1yI_NF5xO381XMdmgLqOw6ewmPEAZVpGfkBJETWIN1ZHCCdyeEdWRwNoJ3Jw",
    // Legacy EF bootnodes, being phased out in favour of the ones above.
    "enode://2112dd3839dd752813d4df7f40936f06829fc54c0e051a93967c26e5f5d27d99d886b57b4ffcc3c475e930ec9e79c56ef1dbb7d86ca5ee83a9d2ccf36e5c240c@134.209.138.84:30303",
    "enode://60203fcb3524e07c5df60a14ae1c9c5b24023ea5d47463dfae051d2c9f3219f309657537576090ca0ae641f73d419f53d8e8000d7a464319d4784acd7d2abc41@209.38.124.160:30303",
    "enode://8ae4a48101b2299597341263da0deb47cc38aa4d3ef4b7430b897d49bfa10eb1ccfe1655679b1ed46928ef177fbf21b86837bd724400196c508427a6f41602cd@134.199.184.23:30303",
];

/// discv5 bootnodes: go-ethereum's `params.V5Bootnodes`, which it uses for discv5 on every
/// network (the discv5 table is shared by all chains; most of these are consensus-layer
/// nodes).
pub const V5_BOOTNODES: &[&str] = &[
    // Teku team's bootnode
    // 4.157.240.54 | azure-us-east-virginia
    "enr:-KG4QMOEswP62yzDjSwWS4YEjtTZ5PO6r65CPqYBkgTTkrpaedQ8uEUo1uMALtJIvb2w_WWEVmg5yt1UAuK1ftxUU7QDhGV0aDKQu6TalgMAAAD__________4JpZIJ2NIJpcIQEnfA2iXNlY3AyNTZrMaEDfol8oLr6XJ7FsdAYE7lpJhKMls4G_v6qQOGKJUWGb_uDdGNwgiMog3VkcIIjKA",
    // 4.196.214.4 | azure-au-east-sydney
    "enr:-KG4QF4B5WrlFcRhUU6dZETwY5ZzAXnA0vGC__L1Kdw602nDZwXSTs5RFXFIFUnbQJmhNGVU6OIX7KVrCSTODsz1tK4DhGV0aDKQu6TalgMAAAD__________4JpZIJ2NIJpcIQExNYEiXNlY3AyNTZrMaECQmM9vp7KhaXhI-nqL_R0ovULLCFSFTa9CPPSdb1zPX6DdGNwgiMog3VkcIIjKA",
    // Prylab team's bootnodes
    // 18.223.219.100 | aws-us-east-2-ohio
    "enr:-Ku4QImhMc1z8yCiNJ1TyUxdcfNucje3BGwEHzodEZUan8PherEo4sF7pPHPSIB1NNuSg5fZy7qFsjmUKs2ea1Whi0EBh2F0dG5ldHOIAAAAAAAAAACEZXRoMpD1pf1CAAAAAP__________gmlkgnY0gmlwhBLf22SJc2VjcDI1NmsxoQOVphkDqal4QzPMksc5wnpuC3gvSC8AfbFOnZY_On34wIN1ZHCCIyg",
    // 18.223.219.100 | aws-us-east-2-ohio
    "enr:-Ku4QP2xDnEtUXIjzJ_DhlCRN9SN99RYQPJL92TMlSv7U5C1YnYLjwOQHgZIUXw6c-BvRg2Yc2QsZxxoS_pPRVe0yK8Bh2F0dG5ldHOIAAAAAAAAAACEZXRoMpD1pf1CAAAAAP__________gmlkgnY0gmlwhBLf22SJc2VjcDI1NmsxoQMeFF5GrS7UZpAH2Ly84aLK-TyvH-dRo0JM1i8yygH50YN1ZHCCJxA",
    // 18.223.219.100 | aws-us-east-2-ohio
    "enr:-Ku4QPp9z1W4tAO8Ber_NQierYaOStqhDqQdOPY3bB3jDgkjcbk6YrEnVYIiCBbTxuar3CzS528d2iE7TdJsrL-dEKoBh2F0dG5ldHOIAAAAAAAAAACEZXRoMpD1pf1CAAAAAP__________gmlkgnY0gmlwhBLf22SJc2VjcDI1NmsxoQMw5fqqkw2hHC4F5HZZDPsNmPdB1Gi8JPQK7pRc9XHh-oN1ZHCCKvg",
    // Lighthouse team's bootnodes
    // 172.105.173.25 | linode-au-sydney
    "enr:-Le4QPUXJS2BTORXxyx2Ia-9ae4YqA_JWX3ssj4E_J-3z1A-HmFGrU8BpvpqhNabayXeOZ2Nq_sbeDgtzMJpLLnXFgAChGV0aDKQtTA_KgEAAAAAIgEAAAAAAIJpZIJ2NIJpcISsaa0Zg2lwNpAkAIkHAAAAAPA8kv_-awoTiXNlY3AyNTZrMaEDHAD2JKYevx89W0CcFJFiskdcEzkH_Wdv9iW42qLK79ODdWRwgiMohHVkcDaCI4I",
    // 139.162.196.49 | linode-uk-london
    "enr:-Le4QLHZDSvkLfqgEo8IWGG96h6mxwe_PsggC20CL3neLBjfXLGAQFOPSltZ7oP6ol54OvaNqO02Rnvb8YmDR274uq8ChGV0aDKQtTA_KgEAAAAAIgEAAAAAAIJpZIJ2NIJpcISLosQxg2lwNpAqAX4AAAAAAPA8kv_-ax65iXNlY3AyNTZrMaEDBJj7_dLFACaxBfaI8KZTh_SSJUjhyAyfshimvSqo22WDdWRwgiMohHVkcDaCI4I",
    // 139.99.217.220 | ovh-au-sydney
    "enr:-Le4QH6LQrusDbAHPjU_HcKOuMeXfdEB5NJyXgHWFadfHgiySqeDyusQMvfphdYWOzuSZO9Uq2AMRJR5O4ip7OvVma8BhGV0aDKQtTA_KgEAAAAAIgEAAAAAAIJpZIJ2NIJpcISLY9ncg2lwNpAkAh8AgQIBAAAAAAAAAAmXiXNlY3AyNTZrMaECDYCZTZEksF-kmgPholqgVt8IXr-8L7Nu7YrZ7HUpgxmDdWRwgiMohHVkcDaCI4I",
    // 139.99.78.39 | ovh-singapore
    "enr:-Le4QIqLuWybHNONr933Lk0dcMmAB5WgvGKRyDihy1wHDIVlNuuztX62W51voT4I8qD34GcTEOTmag1bcdZ_8aaT4NUBhGV0aDKQtTA_KgEAAAAAIgEAAAAAAIJpZIJ2NIJpcISLY04ng2lwNpAkAh8AgAIBAAAAAAAAAA-fiXNlY3AyNTZrMaEDscnRV6n1m-D9ID5UsURk0jsoKNXt1TIrj8uKOGW6iluDdWRwgiMohHVkcDaCI4I",
    // EF NodeOps bootnodes
    // 212.99.218.66 | colo-dcl1
    "enr:-KG4QCF1Mj32xpKHjinNb6ocCtMZG6IR_tyF5dkio5Hkek7zVbT6MM5eJwhjJFdiksQl51T33IRgryE0XLXiy1QOqsUBgmlkgnY0gmlwhNRj2kKDaXA2kCoAHKALAA0CAAAAAAAAAF6Jc2VjcDI1NmsxoQLKlnQYuhZRBTA8-7cz37kr_KuA1lAJ1eXxWMjp5fLJB4N1ZHCCTreEdWRwNoJOtw",
    // 129.212.166.61 | digitalocean-sfo3
    "enr:-KG4QMHihBfLI_tpXLWmfTi28HItJa4wDADDAaVjkfSELAb0BajqVWXM2GEMds5J63SCkpDRlqct5E8ftfQi4U93pigBgmlkgnY0gmlwhIHUpj2DaXA2kCYEqIAABAHQAAAAA2GdUACJc2VjcDI1NmsxoQLeQmW8OMuoUIoUImNW-r9IC4jaiAwZ2knfV4BqWyQvKoN1ZHCCdl-EdWRwNoJ2Xw",
    // 144.126.252.24 | digitalocean-blr1
    "enr:-KG4QKsHcKQvIX8UPbJgw2cIEP_9EislF1srNGdYom4dcSsobt-92iEDNkHTt9dcdKXHaDMVbCM8QQ4V1RP8HcExLDsBgmlkgnY0gmlwhJB-_BiDaXA2kCQAYYABAADQAAAAAYEgYAGJc2VjcDI1NmsxoQILdc6UClD5s_N8-hYhIGQtFqRYR3Qxf9qgLQ7sj4qvEYN1ZHCCdl-EdWRwNoJ2Xw",
    // 178.156.215.140 | hetzner-ash
    "enr:-KG4QFplptv1jVEhFeNNxRN7qe5p9rAGGlMeNnmGvUJV23W4Kr8hmiSzdWjZZHFqwi7nOuQrM32VO6uHBORXOdLG98gBgmlkgnY0gmlwhLKc14yDaXA2kCoBBP8A9DxKAAAAAAAAAAGJc2VjcDI1NmsxoQMBRycp4yiHbGzOqZPPMmuKGslp1NpOrFf_predLYM4-oN1ZHCCdl-EdWRwNoJ2Xw",
    // 5.223.94.81 | hetzner-sin
    "enr:-KG4QGY74qTrst5NbQDAMIF8B7jEC8CMBSo6C5Ljea5I4PxYV1VSYdsGUqqIBlOYRBfwhl6YpEyvvvZOqNCa4dvmSXgBgmlkgnY0gmlwhAXfXlGDaXA2kCoBBP8C8BytAAAAAAAAAAGJc2VjcDI1NmsxoQIMlJp7yNcblauYicEeSBpHQzFAk9Wg3lhx3ie9gpTohIN1ZHCCdl-EdWRwNoJ2Xw",
    // Legacy EF bootnodes, being phased out in favour of the ones above.
    // 3.17.30.69 | aws-us-east-2-ohio
    "enr:-Ku4QHqVeJ8PPICcWk1vSn_XcSkjOkNiTg6Fmii5j6vUQgvzMc9L1goFnLKgXqBJspJjIsB91LTOleFmyWWrFVATGngBh2F0dG5ldHOIAAAAAAAAAACEZXRoMpC1MD8qAAAAAP__________gmlkgnY0gmlwhAMRHkWJc2VjcDI1NmsxoQKLVXFOhp2uX6jeT0DvvDpPcU8FWMjQdR4wMuORMhpX24N1ZHCCIyg",
    // 18.216.248.220 | aws-us-east-2-ohio
    "enr:-Ku4QG-2_Md3sZIAUebGYT6g0SMskIml77l6yR-M_JXc-UdNHCmHQeOiMLbylPejyJsdAPsTHJyjJB2sYGDLe0dn8uYBh2F0dG5ldHOIAAAAAAAAAACEZXRoMpC1MD8qAAAAAP__________gmlkgnY0gmlwhBLY-NyJc2VjcDI1NmsxoQORcM6e19T1T9gi7jxEZjk_sjVLGFscUNqAY9obgZaxbIN1ZHCCIyg",
    // 54.178.44.198 | aws-ap-northeast-1-tokyo
    "enr:-Ku4QPn5eVhcoF1opaFEvg1b6JNFD2rqVkHQ8HApOKK61OIcIXD127bKWgAtbwI7pnxx6cDyk_nI88TrZKQaGMZj0q0Bh2F0dG5ldHOIAAAAAAAAAACEZXRoMpC1MD8qAAAAAP__________gmlkgnY0gmlwhDayLMaJc2VjcDI1NmsxoQK2sBOLGcUb4AwuYzFuAVCaNHA-dy24UuEKkeFNgCVCsIN1ZHCCIyg",
    // 54.65.172.253 | aws-ap-northeast-1-tokyo
    "enr:-Ku4QEWzdnVtXc2Q0ZVigfCGggOVB2Vc1ZCPEc6j21NIFLODSJbvNaef1g4PxhPwl_3kax86YPheFUSLXPRs98vvYsoBh2F0dG5ldHOIAAAAAAAAAACEZXRoMpC1MD8qAAAAAP__________gmlkgnY0gmlwhDZBrP2Jc2VjcDI1NmsxoQM6jr8Rb1ktLEsVcKAPa08wCsKUmvoQ8khiOl_SLozf9IN1ZHCCIyg",
    // Nimbus team's bootnodes
    // 3.120.104.18 | aws-eu-central-1-frankfurt
    "enr:-LK4QA8FfhaAjlb_BXsXxSfiysR7R52Nhi9JBt4F8SPssu8hdE1BXQQEtVDC3qStCW60LSO7hEsVHv5zm8_6Vnjhcn0Bh2F0dG5ldHOIAAAAAAAAAACEZXRoMpC1MD8qAAAAAP__________gmlkgnY0gmlwhAN4aBKJc2VjcDI1NmsxoQJerDhsJ-KxZ8sHySMOCmTO6sHM3iCFQ6VMvLTe948MyYN0Y3CCI4yDdWRwgiOM",
    // 3.64.117.223 | aws-eu-central-1-frankfurt
    "enr:-LK4QKWrXTpV9T78hNG6s8AM6IO4XH9kFT91uZtFg1GcsJ6dKovDOr1jtAAFPnS2lvNltkOGA9k29BUN7lFh_sjuc9QBh2F0dG5ldHOIAAAAAAAAAACEZXRoMpC1MD8qAAAAAP__________gmlkgnY0gmlwhANAdd-Jc2VjcDI1NmsxoQLQa6ai7y9PMN5hpLe5HmiJSlYzMuzP7ZhwRiwHvqNXdoN0Y3CCI4yDdWRwgiOM",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forks::{Activation, ForkSchedule, Hardfork};
    use alloy_eips::eip7840::BlobParams;
    use devmux_eth::{ForkHash, ForkId, Head};

    /// go-ethereum v1.17.10 `core/forkid/forkid_test.go`, `TestCreation`, mainnet: (head
    /// number, head time, fork hash, next).
    const MAINNET_FORK_IDS: [(u64, u64, u32, u64); 38] = [
        (0, 0, 0xfc64ec04, 1150000),                    // Unsynced
        (1149999, 0, 0xfc64ec04, 1150000),              // Last Frontier block
        (1150000, 0, 0x97c2c34c, 1920000),              // First Homestead block
        (1919999, 0, 0x97c2c34c, 1920000),              // Last Homestead block
        (1920000, 0, 0x91d1f948, 2463000),              // First DAO block
        (2462999, 0, 0x91d1f948, 2463000),              // Last DAO block
        (2463000, 0, 0x7a64da13, 2675000),              // First Tangerine block
        (2674999, 0, 0x7a64da13, 2675000),              // Last Tangerine block
        (2675000, 0, 0x3edd5b10, 4370000),              // First Spurious block
        (4369999, 0, 0x3edd5b10, 4370000),              // Last Spurious block
        (4370000, 0, 0xa00bc324, 7280000),              // First Byzantium block
        (7279999, 0, 0xa00bc324, 7280000),              // Last Byzantium block
        (7280000, 0, 0x668db0af, 9069000), // First and last Constantinople, first Petersburg block
        (9068999, 0, 0x668db0af, 9069000), // Last Petersburg block
        (9069000, 0, 0x879d6e30, 9200000), // First Istanbul and first Muir Glacier block
        (9199999, 0, 0x879d6e30, 9200000), // Last Istanbul and first Muir Glacier block
        (9200000, 0, 0xe029e991, 12244000), // First Muir Glacier block
        (12243999, 0, 0xe029e991, 12244000), // Last Muir Glacier block
        (12244000, 0, 0x0eb440f6, 12965000), // First Berlin block
        (12964999, 0, 0x0eb440f6, 12965000), // Last Berlin block
        (12965000, 0, 0xb715077d, 13773000), // First London block
        (13772999, 0, 0xb715077d, 13773000), // Last London block
        (13773000, 0, 0x20c327fc, 15050000), // First Arrow Glacier block
        (15049999, 0, 0x20c327fc, 15050000), // Last Arrow Glacier block
        (15050000, 0, 0xf0afd0e3, 1681338455), // First Gray Glacier block
        (20000000, 1681338454, 0xf0afd0e3, 1681338455), // Last Gray Glacier block
        (20000000, 1681338455, 0xdce96c2d, 1710338135), // First Shanghai block
        (30000000, 1710338134, 0xdce96c2d, 1710338135), // Last Shanghai block
        (30000000, 1710338135, 0x9f3d2254, 1746612311), // First Cancun block
        (30000000, 1746022486, 0x9f3d2254, 1746612311), // Last Cancun block
        (30000000, 1746612311, 0xc376cf8b, 1764798551), // First Prague block
        (30000000, 1764798550, 0xc376cf8b, 1764798551), // Last Prague block
        (30000000, 1764798551, 0x5167e2a6, 1765290071), // First Osaka block
        (30000000, 1765290070, 0x5167e2a6, 1765290071), // Last Osaka block
        (30000000, 1765290071, 0xcba2a1c0, 1767747671), // First BPO1 block
        (30000000, 1767747670, 0xcba2a1c0, 1767747671), // Last BPO1 block
        (30000000, 1767747671, 0x07c9462e, 0), // First BPO2 block
        (50000000, 2000000000, 0x07c9462e, 0), // Future BPO2 block
    ];
    /// go-ethereum v1.17.10 `core/forkid/forkid_test.go`, `TestCreation`, sepolia: (head
    /// number, head time, fork hash, next).
    const SEPOLIA_FORK_IDS: [(u64, u64, u32, u64); 18] = [
        (0, 0, 0xfe3366e7, 1735371), // Unsynced, last Frontier, Homestead, Tangerine, Spurious, Byzantium, Constantinople, Petersburg, Istanbul, Berlin and first London block
        (1735370, 0, 0xfe3366e7, 1735371), // Last London block
        (1735371, 0, 0xb96cbd13, 1677557088), // First MergeNetsplit block
        (1735372, 1677557087, 0xb96cbd13, 1677557088), // Last MergeNetsplit block
        (1735372, 1677557088, 0xf7f9bc08, 1706655072), // First Shanghai block
        (1735372, 1706655071, 0xf7f9bc08, 1706655072), // Last Shanghai block
        (1735372, 1706655072, 0x88cf81d9, 1741159776), // First Cancun block
        (1735372, 1741159775, 0x88cf81d9, 1741159776), // Last Cancun block
        (1735372, 1741159776, 0xed88b5fd, 1760427360), // First Prague block
        (1735372, 1760427359, 0xed88b5fd, 1760427360), // Last Prague block
        (1735372, 1760427360, 0xe2ae4999, 1761017184), // First Osaka block
        (1735372, 1761017183, 0xe2ae4999, 1761017184), // Last Osaka block
        (1735372, 1761017184, 0x56078a1e, 1761607008), // First BPO1 block
        (1735372, 1761607007, 0x56078a1e, 1761607008), // Last BPO1 block
        (1735372, 1761607008, 0x268956b6, 1791294816), // First BPO2 block
        (1735372, 1791294815, 0x268956b6, 1791294816), // Last BPO2 block
        (1735372, 1791294816, 0x6c1d9423, 0), // First Amsterdam block
        (1735372, 2000000000, 0x6c1d9423, 0), // Future Amsterdam block
    ];
    /// go-ethereum v1.17.10 `core/forkid/forkid_test.go`, `TestCreation`, hoodi: (head
    /// number, head time, fork hash, next).
    const HOODI_FORK_IDS: [(u64, u64, u32, u64); 10] = [
        (0, 0, 0xbef71d30, 1742999832), // Unsynced, last Frontier, Homestead, Tangerine, Spurious, Byzantium, Constantinople, Petersburg, Istanbul, Berlin, London, Paris, Shanghai, Cancun block
        (123, 1742999831, 0xbef71d30, 1742999832), // Last Cancun block
        (123, 1742999832, 0x0929e24e, 1761677592), // First Prague block
        (123, 1761677591, 0x0929e24e, 1761677592), // Last Prague block
        (123, 1761677592, 0xe7e0e7ff, 1762365720), // First Osaka block
        (123, 1762365719, 0xe7e0e7ff, 1762365720), // Last Osaka block
        (123, 1762365720, 0x3893353e, 1762955544), // First BPO1 block
        (123, 1762955543, 0x3893353e, 1762955544), // Last BPO1 block
        (123, 1762955544, 0x23aa1351, 0), // First BPO2 block
        (123, 2000000000, 0x23aa1351, 0), // Future BPO2 block
    ];

    fn check_fork_ids(spec: &ChainSpec, vectors: &[(u64, u64, u32, u64)]) {
        for &(number, timestamp, hash, next) in vectors {
            let want = ForkId {
                hash: ForkHash(hash.to_be_bytes()),
                next,
            };
            assert_eq!(
                spec.fork_id(Head { number, timestamp }),
                want,
                "{} at block {number}, time {timestamp}",
                spec.name
            );
        }
    }

    #[test]
    fn mainnet_fork_ids_are_go_ethereums() {
        check_fork_ids(&ChainSpec::mainnet(), &MAINNET_FORK_IDS);
    }

    #[test]
    fn sepolia_fork_ids_are_go_ethereums() {
        check_fork_ids(&ChainSpec::sepolia(), &SEPOLIA_FORK_IDS);
    }

    #[test]
    fn hoodi_fork_ids_are_go_ethereums() {
        check_fork_ids(&ChainSpec::hoodi(), &HOODI_FORK_IDS);
    }

    /// EIP-2124's own mainnet table, written when Petersburg was the last fork known:
    /// mainnet's schedule cut after Petersburg must give it row for row.
    #[test]
    fn eip_2124_mainnet_table() {
        let mainnet = ChainSpec::mainnet();
        let mut forks = ForkSchedule::default();
        for (fork, at) in mainnet.forks.activations() {
            if fork <= Hardfork::Petersburg {
                forks.set(fork, at);
            }
        }
        let spec = ChainSpec { forks, ..mainnet };
        check_fork_ids(
            &spec,
            &[
                (0, 0, 0xfc64ec04, 1150000),       // Unsynced
                (1149999, 0, 0xfc64ec04, 1150000), // Last Frontier block
                (1150000, 0, 0x97c2c34c, 1920000), // First Homestead block
                (1919999, 0, 0x97c2c34c, 1920000), // Last Homestead block
                (1920000, 0, 0x91d1f948, 2463000), // First DAO block
                (2462999, 0, 0x91d1f948, 2463000), // Last DAO block
                (2463000, 0, 0x7a64da13, 2675000), // First Tangerine block
                (2674999, 0, 0x7a64da13, 2675000), // Last Tangerine block
                (2675000, 0, 0x3edd5b10, 4370000), // First Spurious block
                (4369999, 0, 0x3edd5b10, 4370000), // Last Spurious block
                (4370000, 0, 0xa00bc324, 7280000), // First Byzantium block
                (7279999, 0, 0xa00bc324, 7280000), // Last Byzantium block
                (7280000, 0, 0x668db0af, 0),       // First Constantinople/Petersburg block
                (7987396, 0, 0x668db0af, 0),       // Last Petersburg block
            ],
        );
    }

    #[test]
    fn genesis_headers_hash_to_the_published_hashes() {
        assert_eq!(ChainSpec::mainnet().genesis_hash(), MAINNET_GENESIS_HASH);
        assert_eq!(ChainSpec::sepolia().genesis_hash(), SEPOLIA_GENESIS_HASH);
        assert_eq!(ChainSpec::hoodi().genesis_hash(), HOODI_GENESIS_HASH);
    }

    /// The header fields go-ethereum's ToBlock derives from the forks active at genesis:
    /// mainnet has none after Frontier, sepolia has London (so a 1 gwei base fee), hoodi
    /// has Shanghai and Cancun but not Prague.
    #[test]
    fn genesis_headers_carry_the_fields_of_the_forks_at_genesis() {
        let mainnet = ChainSpec::mainnet().genesis;
        assert_eq!(mainnet.base_fee_per_gas, None);
        assert_eq!(
            mainnet.nonce,
            alloy_primitives::B64::from(66u64.to_be_bytes())
        );
        let sepolia = ChainSpec::sepolia().genesis;
        assert_eq!(sepolia.base_fee_per_gas, Some(1_000_000_000));
        assert_eq!(sepolia.withdrawals_root, None);
        let hoodi = ChainSpec::hoodi().genesis;
        assert_eq!(hoodi.base_fee_per_gas, Some(1_000_000_000));
        assert_eq!(
            hoodi.withdrawals_root,
            Some(alloy_consensus::EMPTY_ROOT_HASH)
        );
        assert_eq!(hoodi.blob_gas_used, Some(0));
        assert_eq!(hoodi.excess_blob_gas, Some(0));
        assert_eq!(hoodi.parent_beacon_block_root, Some(B256::ZERO));
        assert_eq!(hoodi.requests_hash, None);
    }

    #[test]
    fn ids_and_merge() {
        let mainnet = ChainSpec::mainnet();
        assert_eq!((mainnet.chain_id, mainnet.network_id), (1, 1));
        assert_eq!(
            mainnet.forks.terminal_total_difficulty,
            Some(U256::from(58_750_000_000_000_000_000_000u128))
        );
        let sepolia = ChainSpec::sepolia();
        assert_eq!(
            (sepolia.chain_id, sepolia.network_id),
            (11_155_111, 11_155_111)
        );
        assert_eq!(
            sepolia.forks.terminal_total_difficulty,
            Some(U256::from(17_000_000_000_000_000u64))
        );
        let hoodi = ChainSpec::hoodi();
        assert_eq!((hoodi.chain_id, hoodi.network_id), (560_048, 560_048));
        assert!(hoodi.forks.merged_at_genesis_td());
        for spec in [mainnet, sepolia, hoodi] {
            assert_eq!(spec.consensus, crate::Consensus::ProofOfStake);
        }
    }

    /// Mainnet's schedule from geth's JSON, fork by fork, and the blob parameters: alloy
    /// defines each mainnet fork's `BlobParams` independently of go-ethereum's JSON, so
    /// agreeing with it checks both the numbers and how devmux applies Osaka's rules
    /// (6 blobs per transaction, a blob base cost) from Osaka on.
    #[test]
    fn mainnet_schedule_and_blob_parameters() {
        let forks = ChainSpec::mainnet().forks;
        assert_eq!(
            forks.activation(Hardfork::Dao),
            Some(Activation::Block(1_920_000))
        );
        assert_eq!(
            forks.activation(Hardfork::SpuriousDragon),
            Some(Activation::Block(2_675_000))
        );
        assert_eq!(
            forks.activation(Hardfork::GrayGlacier),
            Some(Activation::Block(15_050_000))
        );
        assert_eq!(forks.activation(Hardfork::MergeNetsplit), None);
        assert_eq!(
            forks.activation(Hardfork::Bpo2),
            Some(Activation::Time(1_767_747_671))
        );
        assert_eq!(forks.activation(Hardfork::Amsterdam), None);
        let schedule: Vec<_> = forks.blob_schedule().collect();
        assert_eq!(
            schedule,
            vec![
                (Hardfork::Cancun, BlobParams::cancun()),
                (Hardfork::Prague, BlobParams::prague()),
                (Hardfork::Osaka, BlobParams::osaka()),
                (Hardfork::Bpo1, BlobParams::bpo1()),
                (Hardfork::Bpo2, BlobParams::bpo2()),
            ]
        );
        assert_eq!(forks.blob_params_at(1_710_338_134), None);
        assert_eq!(
            forks.blob_params_at(1_764_798_551),
            Some(BlobParams::osaka())
        );
        assert_eq!(
            forks.blob_params_at(1_764_798_550),
            Some(BlobParams::prague())
        );
        assert_eq!(
            forks.latest_active(30_000_000, 2_000_000_000),
            Some(Hardfork::Bpo2)
        );
    }

    /// Sepolia schedules Amsterdam (go-ethereum v1.17.10), whose fork id row the vectors
    /// check; Amsterdam brings no blob parameters of its own.
    #[test]
    fn sepolia_schedules_amsterdam_with_bpo2_blobs() {
        let forks = ChainSpec::sepolia().forks;
        assert_eq!(
            forks.activation(Hardfork::Amsterdam),
            Some(Activation::Time(1_791_294_816))
        );
        assert_eq!(
            forks.activation(Hardfork::MergeNetsplit),
            Some(Activation::Block(1_735_371))
        );
        assert_eq!(
            forks.blob_params_at(1_791_294_816),
            Some(BlobParams::bpo2())
        );
    }

    #[test]
    fn by_name_round_trips() {
        for name in NAMES {
            let spec = by_name(name).unwrap_or_else(|| panic!("{name} is built in"));
            assert_eq!(spec.name, name);
        }
        assert_eq!(by_name("dev"), Some(ChainSpec::devnet()));
        assert_eq!(by_name("mainnet"), Some(ChainSpec::mainnet()));
        assert_eq!(by_name("Mainnet"), None);
        assert_eq!(by_name("goerli"), None);
        assert_eq!(by_name(""), None);
        let hashes: std::collections::HashSet<_> = NAMES
            .iter()
            .filter_map(|name| by_name(name))
            .map(|spec| spec.genesis_hash())
            .collect();
        assert_eq!(hashes.len(), NAMES.len());
    }

    #[test]
    fn dns_lists_are_go_ethereums() {
        assert_eq!(
            ChainSpec::mainnet().dns_lists,
            vec!["enrtree://AKA3AM6LPBYEUDMVNU3BSVQJ5AD45Y7YPOHJLEF6W26QOE4VTUDPE@all.mainnet.ethdisco.net"]
        );
        assert_eq!(
            ChainSpec::sepolia().dns_lists,
            vec!["enrtree://AKA3AM6LPBYEUDMVNU3BSVQJ5AD45Y7YPOHJLEF6W26QOE4VTUDPE@all.sepolia.ethdisco.net"]
        );
        assert_eq!(
            ChainSpec::hoodi().dns_lists,
            vec!["enrtree://AKA3AM6LPBYEUDMVNU3BSVQJ5AD45Y7YPOHJLEF6W26QOE4VTUDPE@all.hoodi.ethdisco.net"]
        );
    }

    /// Every bootnode is a well-formed record: an `enode://` URL with a valid secp256k1
    /// key, an IP and a port, or an `enr:` record whose signature verifies. A copying
    /// error in the data fails here; nothing is contacted.
    #[test]
    fn bootnodes_are_well_formed() {
        type Enr = enr::Enr<k256::ecdsa::SigningKey>;
        for spec in [
            ChainSpec::mainnet(),
            ChainSpec::sepolia(),
            ChainSpec::hoodi(),
        ] {
            assert!(spec.bootnodes.iter().any(|b| b.starts_with("enode://")));
            let mut seen = std::collections::HashSet::new();
            for bootnode in &spec.bootnodes {
                assert!(seen.insert(bootnode), "{}: {bootnode} twice", spec.name);
                if let Some(url) = bootnode.strip_prefix("enode://") {
                    let (key, addr) = url.split_once('@').unwrap();
                    let mut point = vec![4u8];
                    point.extend(alloy_primitives::hex::decode(key).unwrap());
                    assert!(
                        k256::PublicKey::from_sec1_bytes(&point).is_ok(),
                        "{bootnode}"
                    );
                    addr.parse::<std::net::SocketAddr>().unwrap();
                } else {
                    let enr: Enr = bootnode
                        .parse()
                        .unwrap_or_else(|e| panic!("{bootnode}: {e}"));
                    assert!(enr.udp4().is_some() || enr.udp6().is_some(), "{bootnode}");
                }
            }
            for enr in V5_BOOTNODES {
                assert!(spec.bootnodes.iter().any(|b| b == enr));
            }
        }
        assert_eq!(
            ChainSpec::sepolia().bootnodes[..SEPOLIA_BOOTNODES.len()],
            *SEPOLIA_BOOTNODES
        );
    }
}
