//! devmux-bench: devmux's stream stack and RLPx side by side with rust-libp2p
//! (tcp + noise + yamux, default settings, libp2p-stream) and raw TCP, in one
//! run on 127.0.0.1, both ends in this process.
//!
//! ```text
//! cargo run --release -p devmux-bench -- --quick            # a short run
//! cargo run --release -p devmux-bench -- --json bench.json  # the full run
//! cargo run --release -p devmux-bench -- --only admission    # under attack, beside geth
//! cargo run --release -p devmux-bench -- --only scale --runs 3 # 10 000 peers per node
//! ```
//!
//! Every figure is a median over `--runs` runs, with min and max. Every byte a
//! throughput or round-trip test sends is checked on receipt (a deterministic
//! pattern), and a mismatch or a short count fails the run. Memory is measured
//! in a child process per stack and run.

mod admission;
mod devmux;
mod echo;
mod floor;
mod idle;
mod libp2p_stack;
mod mem;
mod pattern;
mod raw;
mod rlpx;
mod scale;
mod split;
mod stack;
mod stats;
mod tcp;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;
use serde::Serialize;

use crate::stack::Stack;
use crate::stats::{summarize, Summary};

#[derive(Parser, Debug, Clone, Serialize)]
#[command(about = "devmux vs rust-libp2p vs raw TCP (and RLPx), on loopback")]
struct Args {
    /// A short run: far less data and fewer connections and runs.
    #[arg(long)]
    quick: bool,
    /// Also write every figure (per run, medians, ratios, machine) as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Runs per figure (default 5, quick 3).
    #[arg(long)]
    runs: Option<usize>,
    /// Sections to run, comma-separated: thr1, thr8, setup, mem, rtt, ecies, floor,
    /// admission, scale (default: all but admission and scale, which run only when
    /// named).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// The go-ethereum binary for the admission section (default: `geth` on PATH,
    /// then ~/go/bin/geth; without one its column stays empty).
    #[arg(long)]
    geth: Option<PathBuf>,
    /// Admission section: servers to run, comma-separated: devmux-p2p, libp2p,
    /// devmux-rlpx, geth (default all).
    #[arg(long, value_delimiter = ',')]
    admission_servers: Vec<String>,
    /// Stacks to run, comma-separated: devmux, devmux-raw, libp2p, tcp, rlpx (default all).
    #[arg(long, value_delimiter = ',')]
    stacks: Vec<String>,
    /// Throughput bytes per test, in MiB (default 1024, quick 64).
    #[arg(long)]
    mib: Option<u64>,
    /// Idle connections in the memory test (default 1000; quick too).
    #[arg(long)]
    conns: Option<usize>,
    /// Tokio worker threads in all (default: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
    /// Run both ends on one runtime with all the threads, instead of the serving
    /// ends on a runtime of their own (half the threads each).
    #[arg(long)]
    one_runtime: bool,
    /// Measure round trips one stack after another instead of interleaved (one
    /// round trip per stack in turn).
    #[arg(long)]
    rtt_separate: bool,
    /// Scale section: connections the node holds at each step, comma-separated
    /// (default 1000,5000,10000; quick 100,500,1000).
    #[arg(long, value_delimiter = ',')]
    scale_conns: Vec<usize>,
    /// Internal: run the scale section's node in this (child) process.
    #[arg(long, hide = true)]
    scale_node: Option<String>,
    /// Internal: connections the `--scale-node` is configured to hold.
    #[arg(long, hide = true, default_value_t = 10_000)]
    scale_held: usize,
    /// Internal: run one memory measurement in this (child) process.
    #[arg(long, hide = true)]
    mem_child: Option<String>,
    /// Internal: connections for `--mem-child`.
    #[arg(long, hide = true, default_value_t = 1000)]
    mem_conns: usize,
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The column of figures that belong to no stack (floor.rs).
const FLOOR: &str = "alone";

/// Sizes of one full or quick run.
#[derive(Debug, Clone, Serialize)]
struct Plan {
    runs: usize,
    thr_bytes: u64,
    setup_seq: usize,
    setup_par: usize,
    setup_par_each: usize,
    mem_conns: usize,
    rtt_warmup: usize,
    rtt_rounds: usize,
    rtt_size: usize,
    runtimes: &'static str,
}

impl Plan {
    fn new(args: &Args) -> Self {
        let q = args.quick;
        Self {
            runs: args.runs.unwrap_or(if q { 3 } else { 5 }).max(1),
            thr_bytes: args.mib.unwrap_or(if q { 64 } else { 1024 }) * 1024 * 1024,
            setup_seq: if q { 50 } else { 200 },
            setup_par: 16,
            setup_par_each: if q { 5 } else { 25 },
            mem_conns: args.conns.unwrap_or(1000),
            rtt_warmup: if q { 200 } else { 1000 },
            rtt_rounds: if q { 2000 } else { 10_000 },
            rtt_size: 32,
            runtimes: if args.one_runtime {
                "one runtime for both ends"
            } else {
                "serving ends on their own runtime"
            },
        }
    }
}

#[derive(Debug, Serialize)]
struct Row {
    key: &'static str,
    label: String,
    unit: &'static str,
    higher_is_better: bool,
    values: BTreeMap<String, Vec<f64>>,
}

#[derive(Debug, Default, Serialize)]
struct Results {
    rows: Vec<Row>,
}

impl Results {
    fn new() -> Self {
        let defs: [(&str, &str, &str, bool); 20] = [
            (
                "thr1",
                "throughput, 1 stream (1 GiB / quick 64 MiB)",
                "MiB/s",
                true,
            ),
            (
                "thr1_cpu",
                "  CPU time per GiB, both ends, 1 stream",
                "s",
                false,
            ),
            (
                "thr8",
                "throughput, 8 streams (TCP: 8 connections)",
                "MiB/s",
                true,
            ),
            (
                "thr8_cpu",
                "  CPU time per GiB, both ends, 8 streams",
                "s",
                false,
            ),
            ("setup_seq_rate", "setup rate, sequential", "conn/s", true),
            (
                "setup_seq_cpu",
                "  CPU time per connection, both ends",
                "µs",
                false,
            ),
            (
                "setup_seq_p50",
                "  setup latency p50, sequential",
                "ms",
                false,
            ),
            (
                "setup_seq_p99",
                "  setup latency p99, sequential",
                "ms",
                false,
            ),
            (
                "setup_par_rate",
                "setup rate, 16 in parallel",
                "conn/s",
                true,
            ),
            (
                "setup_par_p50",
                "  setup latency p50, 16 parallel",
                "ms",
                false,
            ),
            (
                "setup_par_p99",
                "  setup latency p99, 16 parallel",
                "ms",
                false,
            ),
            ("mem", "idle memory per connection end", "KiB", false),
            ("rtt_p50", "round trip, 32 B, p50", "µs", false),
            ("rtt_p99", "round trip, 32 B, p99", "µs", false),
            (
                "ecies_seq",
                "RLPx ECIES handshakes, sequential",
                "hs/s",
                true,
            ),
            (
                "ecies_par",
                "RLPx ECIES handshakes, 16 parallel",
                "hs/s",
                true,
            ),
            (
                "ecies_seq_p50",
                "  ECIES handshake p50, sequential",
                "ms",
                false,
            ),
            (
                "ecies_par_p99",
                "  ECIES handshake p99, 16 parallel",
                "ms",
                false,
            ),
            (
                "floor_chacha",
                "ChaCha20-Poly1305 seal + open (ring), CPU per GiB",
                "s",
                false,
            ),
            (
                "floor_keccak",
                "keccak256 absorb (one RLPx MAC), CPU per GiB",
                "s",
                false,
            ),
        ];
        Self {
            rows: defs
                .into_iter()
                .map(|(key, label, unit, higher_is_better)| Row {
                    key,
                    label: label.to_string(),
                    unit,
                    higher_is_better,
                    values: BTreeMap::new(),
                })
                .collect(),
        }
    }

    /// Adds a row whose label is known only at run time (after the fixed ones).
    fn define(
        &mut self,
        key: &'static str,
        label: String,
        unit: &'static str,
        higher_is_better: bool,
    ) {
        if !self.rows.iter().any(|r| r.key == key) {
            self.rows.push(Row {
                key,
                label,
                unit,
                higher_is_better,
                values: BTreeMap::new(),
            });
        }
    }

    fn push(&mut self, key: &str, stack: &str, value: f64) {
        if let Some(row) = self.rows.iter_mut().find(|r| r.key == key) {
            row.values.entry(stack.to_string()).or_default().push(value);
        }
    }

    fn summary(&self, key: &str, stack: &str) -> Option<Summary> {
        let row = self.rows.iter().find(|r| r.key == key)?;
        summarize(row.values.get(stack)?)
    }

    fn median(&self, key: &str, stack: &str) -> Option<f64> {
        self.summary(key, stack).map(|s| s.median)
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // 1000 connections have 2000 ends in one process: raise the open-files limit.
    let nofile = rlimit::increase_nofile_limit(u64::MAX).context("raising RLIMIT_NOFILE")?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let runtime = |n: usize| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n.max(1))
            .enable_all()
            .build()
    };
    if let Some(stack) = &args.scale_node {
        runtime(threads)?.block_on(scale::node_child(stack, args.scale_held))?;
        std::process::exit(0);
    }
    if let Some(stack) = &args.mem_child {
        runtime(threads)?.block_on(mem::child(stack, args.mem_conns))?;
        // Don't wait for thousands of connections to wind down.
        std::process::exit(0);
    }
    let (rt, server_rt) = if args.one_runtime || threads < 2 {
        (runtime(threads)?, None)
    } else {
        let server = runtime(threads / 2)?;
        split::set_server_runtime(server.handle().clone());
        (runtime(threads - threads / 2)?, Some(server))
    };
    let result = rt.block_on(run(args, threads, nofile));
    if let Some(server) = server_rt {
        server.shutdown_background();
    }
    rt.shutdown_background();
    result
}

fn wanted(list: &[String], name: &str) -> bool {
    list.is_empty() || list.iter().any(|s| s == name)
}

async fn run(args: Args, threads: usize, nofile: u64) -> anyhow::Result<()> {
    let plan = Plan::new(&args);
    let machine = Machine::read(threads, nofile);
    eprintln!(
        "devmux-bench: {} run(s), {} MiB per throughput test, {} worker threads, load {}",
        plan.runs,
        plan.thr_bytes >> 20,
        threads,
        machine.load_start
    );
    let stacks: Vec<&str> = stack::KINDS
        .iter()
        .map(|k| k.name)
        .filter(|s| wanted(&args.stacks, s))
        .collect();
    // Sections that run only when named, and bring their own servers.
    let opt_in = |name: &str| name == "admission" || name == "scale";
    let section = |name: &str| wanted(&args.only, name) && !opt_in(name);
    let benches = args.only.is_empty() || args.only.iter().any(|s| !opt_in(s));

    // One running pair per stack the in-process sections measure.
    let mut envs: Vec<(&'static str, Box<dyn Stack>)> = Vec::new();
    if benches {
        for &name in &stacks {
            let env = (stack::kind(name)?.start)()
                .await
                .with_context(|| name.to_string())?;
            envs.push((name, env));
        }
    }
    let env = |name: &str| -> anyhow::Result<&dyn Stack> {
        envs.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, e)| e.as_ref())
            .with_context(|| format!("{name}: not started"))
    };

    let mut results = Results::new();
    let mut mem_reports = Vec::new();
    let started = Instant::now();
    for run in 0..plan.runs {
        if !benches {
            break;
        }
        // Rotate the order so no stack always runs first (or last).
        let mut order = stacks.clone();
        let n = order.len().max(1);
        order.rotate_left(run % n);
        eprintln!("run {}/{}", run + 1, plan.runs);
        if section("floor") {
            // Enough bytes for the 10 ms CPU clock to resolve 1 %, even with --quick.
            let bytes = (plan.thr_bytes / 2).max(256 << 20);
            let (chacha, keccak) = tokio::task::spawn_blocking(move || {
                anyhow::Ok((floor::chacha_seal_open(bytes)?, floor::keccak_absorb(bytes)))
            })
            .await??;
            eprintln!(
                "  floor      ChaCha20-Poly1305 seal + open {chacha:.2} s, keccak256 {keccak:.2} s CPU per GiB"
            );
            results.push("floor_chacha", FLOOR, chacha);
            results.push("floor_keccak", FLOOR, keccak);
        }
        if section("rtt") && !args.rtt_separate {
            let mut channels: Vec<Box<dyn echo::Echo>> = Vec::new();
            for &stack in &order {
                let channel = env(stack)?
                    .echo()
                    .await
                    .with_context(|| format!("{stack}: echo channel"))?;
                channels.push(channel);
            }
            // The client loop runs as a task on a worker thread, where an
            // application's handler runs (not on the thread inside `block_on`, from
            // which every wake-up of a connection task crosses threads).
            let (w, n, size) = (plan.rtt_warmup, plan.rtt_rounds, plan.rtt_size);
            let samples = deadline(async move {
                tokio::spawn(async move { echo::interleaved(&mut channels, w, n, size).await })
                    .await?
            })
            .await
            .context("round trips")?;
            for (&stack, lat) in order.iter().zip(samples) {
                let r = stats::RttResult::from_samples(lat);
                eprintln!(
                    "  {stack:<10} rtt        p50 {:.1} µs, p99 {:.1} µs (interleaved)",
                    r.p50_us, r.p99_us
                );
                results.push("rtt_p50", stack, r.p50_us);
                results.push("rtt_p99", stack, r.p99_us);
            }
        }
        for &stack in &order {
            let ctx = |what: &str| format!("{stack}: {what}");
            let env = env(stack)?;
            for (streams, key, label) in [(1, "thr1", "1 stream "), (8, "thr8", "8 streams")] {
                if !section(key) || !env.streams(streams) {
                    continue;
                }
                let cpu0 = stats::cpu_time();
                let v = deadline(env.throughput(streams, plan.thr_bytes))
                    .await
                    .with_context(|| ctx(&format!("throughput, {label}")))?;
                let cpu = (stats::cpu_time() - cpu0).as_secs_f64() / (plan.thr_bytes as f64 / GIB);
                eprintln!("  {stack:<10} {label}  {v:>9.1} MiB/s, {cpu:.2} s CPU per GiB");
                results.push(key, stack, v);
                results.push(&format!("{key}_cpu"), stack, cpu);
            }
            if section("rtt") && args.rtt_separate {
                let (w, n, size) = (plan.rtt_warmup, plan.rtt_rounds, plan.rtt_size);
                let r = deadline(env.rtt(w, n, size))
                    .await
                    .with_context(|| ctx("round trip"))?;
                eprintln!(
                    "  {stack:<10} rtt        p50 {:.1} µs, p99 {:.1} µs",
                    r.p50_us, r.p99_us
                );
                results.push("rtt_p50", stack, r.p50_us);
                results.push("rtt_p99", stack, r.p99_us);
            }
            if section("setup") {
                for (par, each, tag) in [
                    (1, plan.setup_seq, "seq"),
                    (plan.setup_par, plan.setup_par_each, "par"),
                ] {
                    let r = deadline(env.setup(par, each))
                        .await
                        .with_context(|| ctx("setup"))?;
                    eprintln!(
                        "  {stack:<10} setup {tag}  {:>8.0} conn/s, p50 {:.2} ms, p99 {:.2} ms",
                        r.rate, r.p50_ms, r.p99_ms
                    );
                    if tag == "seq" {
                        results.push("setup_seq_cpu", stack, r.cpu_us);
                    }
                    results.push(&format!("setup_{tag}_rate"), stack, r.rate);
                    results.push(&format!("setup_{tag}_p50"), stack, r.p50_ms);
                    results.push(&format!("setup_{tag}_p99"), stack, r.p99_ms);
                }
            }
            if section("ecies") {
                if let (Some(seq), Some(par)) = (
                    env.handshakes(1, plan.setup_seq),
                    env.handshakes(plan.setup_par, plan.setup_par_each),
                ) {
                    let s = seq.await.with_context(|| ctx("ecies"))?;
                    let p = par.await.with_context(|| ctx("ecies"))?;
                    eprintln!(
                        "  {stack:<10} ECIES      {:>8.0} seq, {:>8.0} parallel hs/s",
                        s.rate, p.rate
                    );
                    results.push("ecies_seq", stack, s.rate);
                    results.push("ecies_par", stack, p.rate);
                    results.push("ecies_seq_p50", stack, s.p50_ms);
                    results.push("ecies_par_p99", stack, p.p99_ms);
                }
            }
            if section("mem") {
                let r = mem::measure(stack, plan.mem_conns, threads)
                    .await
                    .with_context(|| ctx("memory"))?;
                eprintln!(
                    "  {stack:<10} memory     {:.1} KiB per connection end ({} connections)",
                    r.per_end_kib, r.connections
                );
                results.push("mem", stack, r.per_end_kib);
                mem_reports.push(r);
            }
        }
    }
    let mut scale_runs = Vec::new();
    if args.only.iter().any(|s| s == "scale") {
        let scale_plan = scale::Plan::new(args.quick, &args.scale_conns);
        let scale_stacks: Vec<&str> = scale::STACKS
            .iter()
            .copied()
            .filter(|s| wanted(&args.stacks, s))
            .collect();
        eprintln!(
            "scale: steps {:?} from {} source addresses, {:?} idle, {} legitimate connections",
            scale_plan.steps,
            scale::HOLDING_ADDRS,
            scale_plan.idle,
            scale_plan.probes
        );
        define_scale_rows(&mut results, &scale_plan);
        for run in 0..plan.runs {
            let mut order = scale_stacks.clone();
            let n = order.len().max(1);
            order.rotate_left(run % n);
            eprintln!("scale run {}/{}", run + 1, plan.runs);
            for &stack in &order {
                let r = scale::run(stack, &scale_plan, threads)
                    .await
                    .with_context(|| format!("{stack}: scale"))?;
                push_scale(&mut results, &r);
                scale_runs.push(r);
            }
        }
    }
    let mut admission_results = Vec::new();
    if args.only.iter().any(|s| s == "admission") {
        let servers: Vec<&str> = admission::SERVERS
            .iter()
            .copied()
            .filter(|s| wanted(&args.admission_servers, s))
            .collect();
        let geth = admission::find_geth(args.geth.as_deref());
        let attempts = if args.quick { 10 } else { 20 };
        eprintln!("admission: {attempts} legitimate attempts per server and condition");
        admission_results = admission::run(attempts, &servers, geth.as_deref()).await?;
    }
    let elapsed = started.elapsed();
    for (_, env) in envs {
        env.shutdown().await;
    }
    let mut machine = machine;
    machine.load_end = load_average();

    let targets = targets(&results, machine.nproc as f64);
    if results.rows.iter().any(|r| !r.values.is_empty()) {
        // The columns of the stacks that measured something.
        let shown: Vec<&str> = stacks
            .iter()
            .copied()
            .filter(|s| results.rows.iter().any(|row| row.values.contains_key(*s)))
            .collect();
        print_table(&results, &shown, &plan, &machine, &targets);
    }
    if !admission_results.is_empty() {
        println!(
            "\nmachine: {} CPUs, {}, Linux {}; {} tokio worker threads; load avg {} (start) / {} (end)",
            machine.nproc, machine.cpu, machine.kernel, machine.worker_threads, machine.load_start, machine.load_end
        );
        admission::print(&admission_results);
    }
    if let Some(path) = &args.json {
        let report = serde_json::json!({
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "machine": machine,
            "plan": plan,
            "elapsed_s": elapsed.as_secs_f64(),
            "rows": results.rows.iter().map(|row| {
                let stacks: BTreeMap<&String, serde_json::Value> = row.values.iter().map(|(s, v)| {
                    (s, serde_json::json!({ "runs": v, "summary": summarize(v) }))
                }).collect();
                serde_json::json!({
                    "key": row.key, "label": row.label.trim(), "unit": row.unit,
                    "higher_is_better": row.higher_is_better, "stacks": stacks,
                })
            }).collect::<Vec<_>>(),
            "targets": targets,
            "memory_reports": mem_reports,
            "scale_runs": scale_runs,
            "admission": admission_results,
            "libp2p_setup_stream_retries": libp2p_stack::STREAM_RETRIES.load(std::sync::atomic::Ordering::Relaxed),
        });
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Row keys of the scale section's steps, in step order.
const SCALE_MEM_KEYS: [&str; 3] = ["scale_mem_1", "scale_mem_2", "scale_mem_3"];

fn short_count(n: usize) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

fn define_scale_rows(r: &mut Results, plan: &scale::Plan) {
    let held = short_count(plan.held());
    r.define(
        "scale_rate",
        format!("scale: setup rate up to {held} held, 32 at once"),
        "conn/s",
        true,
    );
    // The last steps, if there are more than three.
    let skip = plan.steps.len().saturating_sub(SCALE_MEM_KEYS.len());
    for (key, n) in SCALE_MEM_KEYS.iter().zip(&plan.steps[skip..]) {
        r.define(
            key,
            format!("  node memory per connection, {} held", short_count(*n)),
            "KiB",
            false,
        );
    }
    r.define(
        "scale_mem_idle",
        format!("  node memory per connection, {held} held, after idling"),
        "KiB",
        false,
    );
    r.define(
        "scale_retries",
        "  held connections tried again while building up".to_string(),
        "conns",
        false,
    );
    r.define(
        "scale_fds",
        format!("  node open files, {held} held"),
        "fds",
        false,
    );
    r.define(
        "scale_cpu",
        format!("  idle node CPU, {held} held"),
        "% core",
        false,
    );
    r.define(
        "scale_switches",
        format!("  idle node context switches, {held} held"),
        "/s",
        false,
    );
    r.define(
        "scale_probe_rate",
        format!("  a new client's setup rate, {held} held"),
        "conn/s",
        true,
    );
    r.define(
        "scale_probe_p50",
        "  a new client: connect to echo, p50".to_string(),
        "ms",
        false,
    );
    r.define(
        "scale_probe_p99",
        "  a new client: connect to echo, p99".to_string(),
        "ms",
        false,
    );
}

fn push_scale(r: &mut Results, run: &scale::Run) {
    let s = run.stack.as_str();
    r.push("scale_rate", s, run.build_rate);
    r.push("scale_retries", s, run.retries as f64);
    let skip = run.steps.len().saturating_sub(SCALE_MEM_KEYS.len());
    for (key, step) in SCALE_MEM_KEYS.iter().zip(&run.steps[skip..]) {
        r.push(key, s, step.per_conn_kib);
    }
    if let Some(last) = run.steps.last() {
        r.push("scale_fds", s, last.fds as f64);
    }
    r.push("scale_cpu", s, run.idle_cpu_pct);
    r.push("scale_switches", s, run.idle_switches_per_s);
    r.push("scale_mem_idle", s, run.idle_per_conn_kib);
    r.push("scale_probe_rate", s, run.probe_rate);
    r.push("scale_probe_p50", s, run.probe_p50_ms);
    r.push("scale_probe_p99", s, run.probe_p99_ms);
}

/// Runs one measurement with a generous deadline: a stuck stack fails the run
/// instead of hanging it.
async fn deadline<T>(
    fut: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(std::time::Duration::from_secs(600), fut)
        .await
        .map_err(|_| anyhow::anyhow!("no result within 600 s"))?
}

#[derive(Debug, Clone, Serialize)]
struct Machine {
    nproc: usize,
    cpu: String,
    kernel: String,
    worker_threads: usize,
    open_files_limit: u64,
    load_start: String,
    load_end: String,
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

impl Machine {
    fn read(threads: usize, nofile: u64) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        Self {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            worker_threads: threads,
            open_files_limit: nofile,
            load_start: load_average(),
            load_end: String::new(),
        }
    }
}

#[derive(Debug, Serialize)]
struct Target {
    what: String,
    goal: String,
    value: Option<f64>,
    met: Option<bool>,
    /// The best value any implementation of the same wire format could reach
    /// on this machine (floor.rs), where the run measured it.
    ceiling: Option<f64>,
}

fn ratio(r: &Results, key: &str, a: &str, b: &str) -> Option<f64> {
    Some(r.median(key, a)? / r.median(key, b)?)
}

fn targets(r: &Results, cores: f64) -> Vec<Target> {
    let chacha = r.median("floor_chacha", FLOOR);
    let keccak = r.median("floor_keccak", FLOOR);
    let noise_ceiling = |cpu_key: &str| {
        Some(floor::noise_ceiling(
            r.median(cpu_key, "libp2p")?,
            r.median(cpu_key, "tcp")?,
            chacha?,
        ))
    };
    // How close an RLPx session comes to what the two ends' keccak MACs and the
    // kernel leave it: in throughput where the machine is otherwise idle, and in CPU
    // per GiB (the floor over the session's), which holds on a busy one too.
    let rlpx_ceiling_mib_s = (|| {
        Some(floor::rlpx_ceiling_mib_s(
            cores,
            keccak?,
            r.median("thr1_cpu", "tcp")?,
        ))
    })();
    let of_rlpx_ceiling = |stack: &str| Some(r.median("thr1", stack)? / rlpx_ceiling_mib_s?);
    let of_rlpx_cpu_floor = |stack: &str| {
        let floor = floor::rlpx_cpu_floor(keccak?, r.median("thr1_cpu", "tcp")?);
        Some(floor / r.median("thr1_cpu", stack)?)
    };
    let mut out = Vec::new();
    let mut at_least = |what: &str, goal: f64, value: Option<f64>, ceiling: Option<f64>| {
        out.push(Target {
            what: what.to_string(),
            goal: format!(">= {goal}x"),
            value,
            met: value.map(|v| v >= goal),
            ceiling,
        })
    };
    at_least(
        "stream throughput, 1 stream, devmux / rust-libp2p",
        1.5,
        ratio(r, "thr1", "devmux", "libp2p"),
        noise_ceiling("thr1_cpu"),
    );
    at_least(
        "stream throughput, 8 streams, devmux / rust-libp2p",
        1.5,
        ratio(r, "thr8", "devmux", "libp2p"),
        noise_ceiling("thr8_cpu"),
    );
    at_least(
        "setup rate, sequential, devmux / rust-libp2p",
        1.3,
        ratio(r, "setup_seq_rate", "devmux", "libp2p"),
        None,
    );
    at_least(
        "setup rate, 16 parallel, devmux / rust-libp2p",
        1.3,
        ratio(r, "setup_par_rate", "devmux", "libp2p"),
        None,
    );
    at_least(
        "RLPx setup rate, sequential, RLPx / rust-libp2p",
        2.0,
        ratio(r, "setup_seq_rate", "rlpx", "libp2p"),
        None,
    );
    at_least(
        "RLPx setup rate, 16 parallel, RLPx / rust-libp2p",
        2.0,
        ratio(r, "setup_par_rate", "rlpx", "libp2p"),
        None,
    );
    at_least(
        "RLPx session throughput / its keccak MAC ceiling here",
        0.9,
        of_rlpx_ceiling("rlpx"),
        None,
    );
    at_least(
        "RLPx session: MAC + kernel CPU floor / its CPU per GiB",
        0.9,
        of_rlpx_cpu_floor("rlpx"),
        None,
    );
    at_least(
        "RLPx (Network) setup rate, sequential / rust-libp2p",
        2.0,
        ratio(r, "setup_seq_rate", "rlpx-net", "libp2p"),
        None,
    );
    at_least(
        "RLPx (Network) setup rate, 16 parallel / rust-libp2p",
        2.0,
        ratio(r, "setup_par_rate", "rlpx-net", "libp2p"),
        None,
    );
    at_least(
        "RLPx (Network) session throughput / its keccak MAC ceiling",
        0.9,
        of_rlpx_ceiling("rlpx-net"),
        None,
    );
    at_least(
        "RLPx (Network) session: CPU floor / its CPU per GiB",
        0.9,
        of_rlpx_cpu_floor("rlpx-net"),
        None,
    );
    let mut at_most = |what: &str, goal: f64, value: Option<f64>| {
        out.push(Target {
            what: what.to_string(),
            goal: format!("<= {goal}x"),
            value,
            met: value.map(|v| v <= goal),
            ceiling: None,
        })
    };
    at_most(
        "idle memory per connection, devmux / rust-libp2p",
        0.75,
        ratio(r, "mem", "devmux", "libp2p"),
    );
    // The scale section's last step: memory per connection beside rust-libp2p's.
    if let Some(key) = SCALE_MEM_KEYS
        .iter()
        .rev()
        .find(|k| r.median(k, "devmux").is_some())
    {
        at_most(
            "node memory per connection at the last scale step, devmux / rust-libp2p",
            0.5,
            ratio(r, key, "devmux", "libp2p"),
        );
        at_most(
            "the same after two keepalive periods, devmux / rust-libp2p",
            0.5,
            ratio(r, "scale_mem_idle", "devmux", "libp2p"),
        );
    }
    for stack in ["devmux", "rlpx-net"] {
        if let Some(cpu) = r.median("scale_cpu", stack) {
            out.push(Target {
                what: format!(
                    "idle node CPU at the last scale step, {} (% of one core)",
                    stack::title(stack)
                ),
                goal: "< 5".into(),
                value: Some(cpu),
                met: Some(cpu < 5.0),
                ceiling: None,
            });
        }
    }
    let p99 = ratio(r, "rtt_p99", "devmux", "libp2p");
    out.push(Target {
        what: "round trip p99, devmux / rust-libp2p".into(),
        goal: "<= 1.0x".into(),
        value: p99,
        met: p99.map(|v| v <= 1.0),
        ceiling: None,
    });
    let p50 = r
        .median("rtt_p50", "devmux")
        .zip(r.median("rtt_p50", "tcp"))
        .map(|(d, t)| d - t);
    out.push(Target {
        what: "round trip p50, devmux minus raw TCP (µs)".into(),
        goal: "<= 10 µs".into(),
        value: p50,
        met: p50.map(|v| v <= 10.0),
        ceiling: None,
    });
    out
}

fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn cell(s: Option<Summary>, runs: usize) -> String {
    match s {
        None => "–".into(),
        Some(s) if runs == 1 => fmt_num(s.median),
        Some(s) => format!(
            "{} ({}–{})",
            fmt_num(s.median),
            fmt_num(s.min),
            fmt_num(s.max)
        ),
    }
}

fn print_table(r: &Results, stacks: &[&str], plan: &Plan, m: &Machine, targets: &[Target]) {
    println!();
    println!(
        "devmux-bench — medians of {} runs (min–max); loopback 127.0.0.1, both ends in one process",
        plan.runs
    );
    println!(
        "machine: {} CPUs, {}, Linux {}; {} tokio worker threads ({}); load avg {} (start) / {} (end)",
        m.nproc, m.cpu, m.kernel, m.worker_threads, plan.runtimes, m.load_start, m.load_end
    );
    println!();
    let label_w = 38;
    let col_w = 22;
    let mut header = format!("{:<label_w$} {:<7}", "", "unit");
    for s in stacks {
        header.push_str(&format!(" {:>col_w$}", stack::title(s)));
    }
    for t in ["devmux/libp2p", "devmux/TCP", "RLPx/libp2p"] {
        header.push_str(&format!(" {t:>13}"));
    }
    println!("{header}");
    // Where a section has no crates/rlpx column (scale), RLPx is the network's.
    let rlpx_ratio =
        |key: &str| ratio(r, key, "rlpx", "libp2p").or_else(|| ratio(r, key, "rlpx-net", "libp2p"));
    for row in &r.rows {
        if row.values.is_empty() || row.key.starts_with("floor_") {
            continue;
        }
        let mut line = format!("{:<label_w$} {:<7}", row.label, row.unit);
        for s in stacks {
            let runs = row.values.get(*s).map_or(0, Vec::len);
            line.push_str(&format!(" {:>col_w$}", cell(r.summary(row.key, s), runs)));
        }
        for v in [
            ratio(r, row.key, "devmux", "libp2p"),
            ratio(r, row.key, "devmux", "tcp"),
            rlpx_ratio(row.key),
        ] {
            let v = v.map_or("–".into(), |v| format!("{v:.2}x"));
            line.push_str(&format!(" {v:>13}"));
        }
        println!("{line}");
    }
    let floors: Vec<&Row> = r
        .rows
        .iter()
        .filter(|row| row.key.starts_with("floor_") && !row.values.is_empty())
        .collect();
    if !floors.is_empty() {
        println!();
        println!("per-byte cryptography the wire formats fix, alone on one core (floor.rs):");
        for row in floors {
            let runs = row.values.get(FLOOR).map_or(0, Vec::len);
            println!(
                "{:<label_w$} {:<7} {:>col_w$}",
                row.label,
                row.unit,
                cell(r.summary(row.key, FLOOR), runs)
            );
        }
    }
    println!();
    println!(
        "targets (ratios of the medians above; ceiling: the best any implementation of the same \
         wire format could reach here, from the floors and raw TCP's CPU per GiB):"
    );
    // Only the targets this run measured.
    for t in targets.iter().filter(|t| t.value.is_some()) {
        let verdict = match t.met {
            Some(true) => "MET    ",
            Some(false) => "NOT MET",
            None => "n/a    ",
        };
        let value = t.value.map_or("–".into(), |v| format!("{v:.2}"));
        let ceiling = t
            .ceiling
            .map_or(String::new(), |c| format!("   ceiling {c:.2}"));
        println!(
            "  {verdict} {:<58} goal {:<9} value {value}{ceiling}",
            t.what, t.goal
        );
    }
    let retries = libp2p_stack::STREAM_RETRIES.load(std::sync::atomic::Ordering::Relaxed);
    if retries > 0 {
        println!(
            "rust-libp2p: {retries} stream(s) dropped by libp2p-stream's full accept queue \
             were re-opened (setup: included in its latency; throughput: before the clock starts)."
        );
    }
    println!();
    println!(
        "devmux = Network server and Registrar request protocols (MessageStream; its setup: a \
         transport dialer with a fresh key per connection); devmux raw = transport Upgrader, \
         Listener and Connection, streams negotiated like rust-libp2p's; RLPx (crates/rlpx) = \
         EciesStream + Hello + Snappy on both ends; RLPx (Network) = the network's RLPx server \
         (throughput and round trip Network to Network by enode, setup and memory from \
         crates/rlpx dialers)."
    );
}
