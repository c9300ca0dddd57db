//! The simulated world: seeded keys, hosts running the real network, chain, eth and
//! sync on turmoil's network, a discovery that hands out the hosts' addresses, and a
//! trace of what happened per simulated time step.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use devmux_chain::{Chain, ChainSpec, Pool, PoolConfig};
use devmux_eth::alloy_primitives::keccak256;
use devmux_eth::{protocols_for, EthConfig, EthHandler, EthPeers, EthVersion};
use devmux_network::{
    DialTarget, MessageStream, Network, NetworkConfig, NetworkEvent, NodeKey, PeerCtx, PeerId,
    PeerPoolConfig, Registrar,
};
use devmux_sync::{Producer, ProducerHandle, SyncConfig, SyncHandle, Syncer};
use futures::{Stream, StreamExt};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use turmoil::Sim;

/// The seed when `DEVMUX_SIM_SEED` is not set (CI's).
pub(crate) const DEFAULT_SEED: u64 = 0xdeb0_5eed;
/// The port every simulated node listens on (a host's extra nodes on the next ones).
pub(crate) const PORT: u16 = 30303;
/// How often the simulated discovery hands a node every other host's address.
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(5);
/// How often the producer seals a block.
pub(crate) const BLOCK_INTERVAL: Duration = Duration::from_secs(2);
/// How often the trace records every node's head and peers.
pub(crate) const SAMPLE: Duration = Duration::from_secs(1);

/// The simulation's seed: `DEVMUX_SIM_SEED` (decimal or 0x-hex), else [`DEFAULT_SEED`].
pub(crate) fn seed() -> u64 {
    let Ok(text) = std::env::var("DEVMUX_SIM_SEED") else {
        return DEFAULT_SEED;
    };
    let text = text.trim();
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.unwrap_or_else(|_| panic!("DEVMUX_SIM_SEED={text:?} is not a u64"))
}

/// Prints how to reproduce a failure when the test holding it panics.
pub(crate) struct Reproduce {
    pub(crate) seed: u64,
    pub(crate) test: &'static str,
}

impl Drop for Reproduce {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "simulation failed with seed {seed:#x}: reproduce with \
                 DEVMUX_SIM_SEED={seed:#x} cargo test -p devmux-tests --features sim --test sim -- {test} --exact",
                seed = self.seed,
                test = self.test
            );
        }
    }
}

/// 32 bytes derived from the seed for `label`.
pub(crate) fn derive(seed: u64, label: &str) -> [u8; 32] {
    let mut input = seed.to_be_bytes().to_vec();
    input.extend_from_slice(label.as_bytes());
    keccak256(input).0
}

/// The node key of `name`, derived from the seed.
pub(crate) fn node_key(seed: u64, name: &str) -> NodeKey {
    (0u32..)
        .find_map(|i| NodeKey::from_secret_bytes(&derive(seed, &format!("key/{name}/{i}"))).ok())
        .expect("some derived scalar is a valid key")
}

/// A record of the run, one line per event or sample, stamped with simulated time.
#[derive(Clone, Default)]
pub(crate) struct Trace(Rc<RefCell<Vec<String>>>);

impl Trace {
    pub(crate) fn push(&self, line: String) {
        self.0.borrow_mut().push(line);
    }

    pub(crate) fn lines(&self) -> Vec<String> {
        self.0.borrow().clone()
    }

    /// Writes the trace to `$DEVMUX_SIM_TRACE/<scenario>.trace` if that is set: what
    /// to read when a seed fails.
    pub(crate) fn save(&self, scenario: &str) {
        if let Ok(dir) = std::env::var("DEVMUX_SIM_TRACE") {
            let path = std::path::Path::new(&dir).join(format!("{scenario}.trace"));
            let _ = std::fs::create_dir_all(&dir);
            match std::fs::write(&path, self.lines().join("\n") + "\n") {
                Ok(()) => eprintln!("trace written to {}", path.display()),
                Err(e) => eprintln!("trace not written to {}: {e}", path.display()),
            }
        }
    }
}

/// Simulated milliseconds since the start, inside a host or outside.
fn now_ms(sim: Option<&Sim<'_>>) -> u128 {
    match sim {
        Some(sim) => sim.elapsed().as_millis(),
        None => turmoil::sim_elapsed().unwrap_or_default().as_millis(),
    }
}

/// What the test reads of a running node.
#[derive(Clone)]
pub(crate) struct View {
    pub(crate) net: Network,
    pub(crate) chain: Option<Chain>,
    pub(crate) eth: Option<EthPeers>,
}

/// One simulated node: who it is, where, and what it runs.
#[derive(Clone)]
pub(crate) struct NodeSpec {
    pub(crate) name: String,
    pub(crate) ip: IpAddr,
    pub(crate) port: u16,
    pub(crate) key: NodeKey,
    /// Runs chain, eth and sync (else only the network, with a session protocol that
    /// keeps connections open).
    pub(crate) chain: bool,
    pub(crate) producer: bool,
    /// Where its chain store lives (kept across a crash: the host's disk).
    pub(crate) dir: PathBuf,
    pub(crate) pool: PeerPoolConfig,
    /// The nodes its discovery hands out.
    pub(crate) discovers: Vec<String>,
}

impl NodeSpec {
    pub(crate) fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }

    pub(crate) fn target(&self) -> DialTarget {
        DialTarget {
            peer: self.key.peer_id(),
            addr: format!(
                "/ip4/{}/tcp/{}/p2p/{}",
                self.ip,
                self.port,
                self.key.peer_id()
            ),
        }
    }
}

/// The world of one scenario: the nodes, their views, the trace, the seed.
pub(crate) struct World {
    pub(crate) seed: u64,
    pub(crate) specs: BTreeMap<String, NodeSpec>,
    pub(crate) views: Rc<RefCell<BTreeMap<String, View>>>,
    pub(crate) trace: Trace,
    pub(crate) names: Arc<BTreeMap<PeerId, String>>,
    /// The stores' parent folder (on tmpfs when there is one: commits fsync).
    _dir: tempfile::TempDir,
    dir: PathBuf,
}

impl World {
    pub(crate) fn new(seed: u64) -> Self {
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .expect("a temp folder");
        let path = dir.path().to_path_buf();
        Self {
            seed,
            specs: BTreeMap::new(),
            views: Rc::default(),
            trace: Trace::default(),
            names: Arc::default(),
            _dir: dir,
            dir: path,
        }
    }

    /// Adds a node spec (hosts are made by [`World::host`]).
    pub(crate) fn node(&mut self, name: &str, ip: IpAddr, port: u16, chain: bool) -> &mut NodeSpec {
        let key = node_key(self.seed, name);
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).expect("a store folder");
        let names = Arc::make_mut(&mut self.names);
        names.insert(key.peer_id(), name.to_string());
        self.specs.insert(
            name.to_string(),
            NodeSpec {
                name: name.to_string(),
                ip,
                port,
                key,
                chain,
                producer: false,
                dir,
                pool: PeerPoolConfig::default(),
                discovers: Vec::new(),
            },
        );
        self.specs.get_mut(name).expect("just inserted")
    }

    /// Registers a turmoil host at `ip` running the nodes `names` (several on one
    /// address: one host, several identities).
    pub(crate) fn host(&self, sim: &mut Sim<'_>, ip: IpAddr, names: &[&str]) {
        let specs: Vec<NodeSpec> = names.iter().map(|n| self.specs[*n].clone()).collect();
        let targets: BTreeMap<String, DialTarget> = self
            .specs
            .iter()
            .map(|(n, s)| (n.clone(), s.target()))
            .collect();
        let (views, trace, names, seed) = (
            self.views.clone(),
            self.trace.clone(),
            self.names.clone(),
            self.seed,
        );
        sim.host(ip, move || {
            let specs = specs.clone();
            let targets = targets.clone();
            let (views, trace, names) = (views.clone(), trace.clone(), names.clone());
            async move {
                let mut nodes = Vec::new();
                for spec in specs {
                    let discovery: Vec<DialTarget> =
                        spec.discovers.iter().map(|n| targets[n].clone()).collect();
                    nodes.push(start_node(seed, spec, discovery, &views, &trace).await?);
                }
                // Each node's peer events, in the order the host saw them. The nodes'
                // handles live as long as this future: a crash drops them with it.
                let mut streams = futures::stream::select_all(nodes.iter().map(|node| {
                    let name = node.name.clone();
                    let events = tokio_stream_of(node.net.events());
                    events.map(move |e| (name.clone(), e)).boxed_local()
                }));
                while let Some((name, event)) = streams.next().await {
                    if let Some(line) = describe(&event, &names) {
                        trace.push(format!("{} {name} {line}", now_ms(None)));
                    }
                }
                drop(nodes);
                Ok(())
            }
        });
    }

    /// Steps `sim` until `until` of simulated time, sampling every [`SAMPLE`] into the
    /// trace and calling `check` after each sample.
    pub(crate) fn run_until(
        &self,
        sim: &mut Sim<'_>,
        until: Duration,
        mut check: impl FnMut(&Self, &Sim<'_>),
    ) {
        while sim.elapsed() < until {
            let before = sim.elapsed().as_millis() / SAMPLE.as_millis();
            sim.step()
                .unwrap_or_else(|e| panic!("seed {:#x}: simulation failed: {e}", self.seed));
            let after = sim.elapsed().as_millis() / SAMPLE.as_millis();
            if after != before {
                self.sample(sim);
                check(self, sim);
            }
        }
    }

    /// Records every running node's head and peers.
    fn sample(&self, sim: &Sim<'_>) {
        let t = now_ms(Some(sim));
        for (name, view) in self.views.borrow().iter() {
            let mut peers: Vec<String> = view
                .net
                .peers()
                .iter()
                .map(|p| self.name_of(&p.peer_id))
                .collect();
            peers.sort();
            let head = view
                .chain
                .as_ref()
                .map(|c| {
                    let h = c.head();
                    format!(" head={}:{}", h.number, &h.hash.to_string()[..10])
                })
                .unwrap_or_default();
            self.trace
                .push(format!("{t} {name}{head} peers=[{}]", peers.join(",")));
        }
    }

    pub(crate) fn name_of(&self, peer: &PeerId) -> String {
        self.names
            .get(peer)
            .cloned()
            .unwrap_or_else(|| peer.to_string())
    }

    pub(crate) fn view(&self, name: &str) -> Option<View> {
        self.views.borrow().get(name).cloned()
    }

    /// The head number of `name`, if it runs.
    pub(crate) fn head(&self, name: &str) -> Option<u64> {
        self.view(name)?.chain.map(|c| c.head().number)
    }

    /// Forgets `name`'s view (its handles would keep the crashed host's store open).
    pub(crate) fn forget(&self, name: &str) {
        self.views.borrow_mut().remove(name);
    }
}

/// The simulation, seeded: turmoil's randomness (message latencies) from `seed`.
pub(crate) fn sim<'a>(seed: u64) -> Sim<'a> {
    init_logs();
    // Blocking work inline and the sync's peer choices seeded: see devmux-chain's
    // `blocking` module. Every host runs on this thread.
    devmux_chain::blocking::run_inline(true);
    devmux_sync::seed_rng(Some(seed));
    turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(Duration::from_secs(3600))
        .tick_duration(Duration::from_millis(1))
        .build()
}

/// Gives every link between `new` and the other hosts a latency of its own, 1–40 ms,
/// drawn from the seed: a topology of near and far hosts. Fixed per link rather than
/// per message: turmoil draws a message's latency from one generator in send order, and
/// the order in which a node writes to different peers comes from hash maps (every
/// `HashMap` of the crates has its own random keys), which would make the draws land on
/// other messages in every run.
pub(crate) fn set_latencies(sim: &Sim<'_>, seed: u64, new: &[IpAddr], all: &[IpAddr]) {
    for a in new {
        for b in all {
            if a == b {
                continue;
            }
            let (lo, hi) = if a < b { (a, b) } else { (b, a) };
            let bytes = derive(seed, &format!("latency/{lo}/{hi}"));
            let ms = 1 + u64::from(bytes[0]) % 40;
            sim.set_link_latency(*a, *b, Duration::from_millis(ms));
        }
    }
}

fn tokio_stream_of(
    rx: tokio::sync::broadcast::Receiver<NetworkEvent>,
) -> impl Stream<Item = NetworkEvent> {
    futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(e) => return Some((e, rx)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

fn describe(event: &NetworkEvent, names: &BTreeMap<PeerId, String>) -> Option<String> {
    let name = |p: &PeerId| names.get(p).cloned().unwrap_or_else(|| p.to_string());
    match event {
        NetworkEvent::PeerConnected {
            peer, direction, ..
        } => Some(format!("connected {} {direction}", name(peer))),
        NetworkEvent::PeerDisconnected {
            peer,
            reason,
            by_remote,
        } => Some(format!(
            "disconnected {} {reason:?} by_remote={by_remote}",
            name(peer)
        )),
        _ => None,
    }
}

/// The simulated discovery: every [`DISCOVERY_INTERVAL`], `targets` in an order drawn
/// from the node's own seeded generator, as discv5 would keep re-offering live records.
fn discovery(
    seed: u64,
    name: &str,
    targets: Vec<DialTarget>,
) -> impl Stream<Item = DialTarget> + Send + Unpin + 'static {
    let rng = StdRng::from_seed(derive(seed, &format!("discovery/{name}")));
    let rounds = futures::stream::unfold(
        (rng, targets, true),
        |(mut rng, targets, first)| async move {
            if !first {
                tokio::time::sleep(DISCOVERY_INTERVAL).await;
            }
            let mut round = targets.clone();
            round.shuffle(&mut rng);
            Some((futures::stream::iter(round), (rng, targets, false)))
        },
    );
    Box::pin(rounds.flatten())
}

fn sync_config() -> SyncConfig {
    SyncConfig::default()
        .with_request_timeout(Duration::from_secs(3))
        .with_poll_interval(Duration::from_millis(500))
}

/// A session that stays open until the peer closes it: keeps a chain-less node's
/// connections from idling out.
async fn hold(_peer: PeerCtx, mut stream: MessageStream) -> Result<(), devmux_network::Error> {
    while let Some(msg) = stream.next().await {
        msg?;
    }
    Ok(())
}

/// A node running in a host: the handles that keep it running.
struct Running {
    name: String,
    net: Network,
    _sync: Option<SyncHandle>,
    _producer: Option<ProducerHandle>,
}

async fn start_node(
    seed: u64,
    spec: NodeSpec,
    discovered: Vec<DialTarget>,
    views: &Rc<RefCell<BTreeMap<String, View>>>,
    trace: &Trace,
) -> Result<Running, Box<dyn std::error::Error>> {
    let config = NetworkConfig {
        use_p2p_server: true,
        listen_addr: spec.addr(),
        pool: spec.pool.clone(),
        ..NetworkConfig::default()
    };
    let mut registrar = Registrar::new();
    let (chain, eth, sync) = if spec.chain {
        let chain = Chain::open_async(spec.dir.join("chain.redb"), ChainSpec::devnet()).await?;
        // What the store held when the software (re)started: a crash must not lose it.
        trace.push(format!(
            "{} {} started head={}",
            now_ms(None),
            spec.name,
            chain.head().number
        ));
        let pool = Pool::new(PoolConfig::devnet());
        let eth_config = EthConfig::default().with_announce_pool_on_connect(false);
        let (handler, eth) = EthHandler::new(chain.clone(), pool.clone(), eth_config);
        registrar.session(protocols_for(&EthVersion::ALL), handler)?;
        let sync = Syncer::spawn(chain.clone(), pool, eth.clone(), sync_config());
        (Some(chain), Some(eth), Some(sync))
    } else {
        registrar.session(
            vec![devmux_network::SessionProtocol::new("/sim/hold/1.0.0", 1)?],
            hold,
        )?;
        trace.push(format!("{} {} started", now_ms(None), spec.name));
        (None, None, None)
    };
    let net = Network::start_simulated(config, spec.key.clone(), registrar).await?;
    let producer = match (&sync, spec.producer) {
        (Some(sync), true) => {
            let producer = Producer::new(sync, devmux_chain::devnet::dev_key(0)?)?;
            Some(producer.spawn(BLOCK_INTERVAL))
        }
        (None, true) => return Err("a producer needs a chain".into()),
        _ => None,
    };
    net.run_dialer(discovery(seed, &spec.name, discovered));
    views.borrow_mut().insert(
        spec.name.clone(),
        View {
            net: net.clone(),
            chain,
            eth,
        },
    );
    Ok(Running {
        name: spec.name,
        net,
        _sync: sync,
        _producer: producer,
    })
}

/// With `DEVMUX_SIM_LOG` set (an env filter, e.g. `debug`), logs to stderr stamped with
/// simulated time: two runs' logs diff line by line.
fn init_logs() {
    struct SimTime;
    impl tracing_subscriber::fmt::time::FormatTime for SimTime {
        fn format_time(
            &self,
            w: &mut tracing_subscriber::fmt::format::Writer<'_>,
        ) -> std::fmt::Result {
            let t = turmoil::sim_elapsed().unwrap_or_default();
            write!(w, "{:>10.3}", t.as_secs_f64())
        }
    }
    if let Ok(filter) = std::env::var("DEVMUX_SIM_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_timer(SimTime)
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .try_init();
    }
}
