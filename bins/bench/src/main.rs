//! devmux-bench: devmux's stream stack and RLPx side by side with rust-libp2p
//! (tcp + noise + yamux, default settings, libp2p-stream) and raw TCP, in one
//! run on 127.0.0.1, both ends in this process.
//!
//! ```text
//! cargo run --release -p devmux-bench -- --quick            # a short run
//! cargo run --release -p devmux-bench -- --json bench.json  # the full run
//! cargo run --release -p devmux-bench -- --only admission    # under attack, beside geth
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
mod libp2p_stack;
mod mem;
mod pattern;
mod raw;
mod rlpx;
mod split;
mod stats;
mod tcp;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;
use serde::Serialize;

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
    /// admission (default: all but admission, which runs only when named).
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

const STACKS: [&str; 6] = ["devmux", "devmux-raw", "libp2p", "tcp", "rlpx", "rlpx-net"];

fn stack_title(s: &str) -> &'static str {
    match s {
        "devmux" => "devmux",
        "devmux-raw" => "devmux raw",
        "libp2p" => "rust-libp2p",
        "tcp" => "raw TCP",
        "rlpx" => "RLPx (crates/rlpx)",
        "rlpx-net" => "RLPx (Network)",
        _ => "?",
    }
}

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
    label: &'static str,
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
                    label,
                    unit,
                    higher_is_better,
                    values: BTreeMap::new(),
                })
                .collect(),
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

/// The persistent server/client pairs, one per stack.
struct Envs {
    devmux: Option<devmux::NetEnv>,
    devmux_raw: Option<devmux::RawEnv>,
    libp2p: Option<libp2p_stack::Libp2pEnv>,
    tcp: Option<tcp::TcpEnv>,
    rlpx: Option<rlpx::RlpxEnv>,
    rlpx_net: Option<rlpx::RlpxEnv>,
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
    let stacks: Vec<&str> = STACKS
        .iter()
        .copied()
        .filter(|s| wanted(&args.stacks, s))
        .collect();
    let section = |name: &str| wanted(&args.only, name) && name != "admission";
    // The admission section brings its own servers.
    let benches = args.only.is_empty() || args.only.iter().any(|s| s != "admission");
    let has = |name: &str| benches && stacks.contains(&name);

    let envs = Envs {
        devmux: if has("devmux") {
            Some(devmux::NetEnv::start().await.context("devmux")?)
        } else {
            None
        },
        devmux_raw: if has("devmux-raw") {
            Some(devmux::RawEnv::start().await.context("devmux raw")?)
        } else {
            None
        },
        libp2p: if has("libp2p") {
            Some(libp2p_stack::Libp2pEnv::start().await.context("libp2p")?)
        } else {
            None
        },
        tcp: if has("tcp") {
            Some(tcp::TcpEnv::start().await.context("tcp")?)
        } else {
            None
        },
        rlpx: if has("rlpx") {
            Some(rlpx::RlpxEnv::start().await.context("rlpx")?)
        } else {
            None
        },
        rlpx_net: if has("rlpx-net") {
            Some(rlpx::RlpxEnv::start_network().await.context("rlpx-net")?)
        } else {
            None
        },
    };

    let mut results = Results::new();
    let mut mem_reports = Vec::new();
    let started = Instant::now();
    for run in 0..plan.runs {
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
                let channel = match stack {
                    "devmux" => opt(&envs.devmux)?.echo().await,
                    "devmux-raw" => opt(&envs.devmux_raw)?.echo().await,
                    "libp2p" => opt(&envs.libp2p)?.echo().await,
                    "tcp" => opt(&envs.tcp)?.echo().await,
                    "rlpx" => opt(&envs.rlpx)?.echo().await,
                    _ => opt(&envs.rlpx_net)?.echo().await,
                }
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
            if section("thr1") {
                let cpu0 = stats::cpu_time();
                let v = deadline(async {
                    match stack {
                        "devmux" => opt(&envs.devmux)?.throughput(1, plan.thr_bytes).await,
                        "devmux-raw" => opt(&envs.devmux_raw)?.throughput(1, plan.thr_bytes).await,
                        "libp2p" => opt(&envs.libp2p)?.throughput(1, plan.thr_bytes).await,
                        "tcp" => opt(&envs.tcp)?.throughput(1, plan.thr_bytes).await,
                        "rlpx" => opt(&envs.rlpx)?.throughput(plan.thr_bytes).await,
                        _ => opt(&envs.rlpx_net)?.throughput(plan.thr_bytes).await,
                    }
                })
                .await
                .with_context(|| ctx("throughput, 1 stream"))?;
                let cpu = (stats::cpu_time() - cpu0).as_secs_f64() / (plan.thr_bytes as f64 / GIB);
                eprintln!("  {stack:<10} 1 stream   {v:>9.1} MiB/s, {cpu:.2} s CPU per GiB");
                results.push("thr1", stack, v);
                results.push("thr1_cpu", stack, cpu);
            }
            if section("thr8") && !stack.starts_with("rlpx") {
                let cpu0 = stats::cpu_time();
                let v = deadline(async {
                    match stack {
                        "devmux" => opt(&envs.devmux)?.throughput(8, plan.thr_bytes).await,
                        "devmux-raw" => opt(&envs.devmux_raw)?.throughput(8, plan.thr_bytes).await,
                        "libp2p" => opt(&envs.libp2p)?.throughput(8, plan.thr_bytes).await,
                        _ => opt(&envs.tcp)?.throughput(8, plan.thr_bytes).await,
                    }
                })
                .await
                .with_context(|| ctx("throughput, 8 streams"))?;
                let cpu = (stats::cpu_time() - cpu0).as_secs_f64() / (plan.thr_bytes as f64 / GIB);
                eprintln!("  {stack:<10} 8 streams  {v:>9.1} MiB/s, {cpu:.2} s CPU per GiB");
                results.push("thr8", stack, v);
                results.push("thr8_cpu", stack, cpu);
            }
            if section("rtt") && args.rtt_separate {
                let (w, n, size) = (plan.rtt_warmup, plan.rtt_rounds, plan.rtt_size);
                let r = deadline(async {
                    match stack {
                        "devmux" => opt(&envs.devmux)?.rtt(w, n, size).await,
                        "devmux-raw" => opt(&envs.devmux_raw)?.rtt(w, n, size).await,
                        "libp2p" => opt(&envs.libp2p)?.rtt(w, n, size).await,
                        "tcp" => opt(&envs.tcp)?.rtt(w, n, size).await,
                        "rlpx" => opt(&envs.rlpx)?.rtt(w, n, size).await,
                        _ => opt(&envs.rlpx_net)?.rtt(w, n, size).await,
                    }
                })
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
                    let r = deadline(async {
                        match stack {
                            "devmux" => opt(&envs.devmux)?.setup(par, each).await,
                            "devmux-raw" => opt(&envs.devmux_raw)?.setup(par, each).await,
                            "libp2p" => opt(&envs.libp2p)?.setup(par, each).await,
                            "tcp" => opt(&envs.tcp)?.setup(par, each).await,
                            "rlpx" => opt(&envs.rlpx)?.setup(par, each).await,
                            _ => opt(&envs.rlpx_net)?.setup(par, each).await,
                        }
                    })
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
            if section("ecies") && stack == "rlpx" {
                let env = opt(&envs.rlpx)?;
                let s = env
                    .ecies(1, plan.setup_seq)
                    .await
                    .with_context(|| ctx("ecies"))?;
                let p = env
                    .ecies(plan.setup_par, plan.setup_par_each)
                    .await
                    .with_context(|| ctx("ecies"))?;
                eprintln!(
                    "  {stack:<10} ECIES      {:>8.0} seq, {:>8.0} parallel hs/s",
                    s.rate, p.rate
                );
                results.push("ecies_seq", stack, s.rate);
                results.push("ecies_par", stack, p.rate);
                results.push("ecies_seq_p50", stack, s.p50_ms);
                results.push("ecies_par_p99", stack, p.p99_ms);
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
    if let Some(env) = envs.devmux {
        env.shutdown().await;
    }
    if let Some(env) = envs.rlpx_net {
        env.shutdown().await;
    }
    let mut machine = machine;
    machine.load_end = load_average();

    let targets = targets(&results, machine.nproc as f64);
    if results.rows.iter().any(|r| !r.values.is_empty()) {
        print_table(&results, &stacks, &plan, &machine, &targets);
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
            "admission": admission_results,
            "libp2p_setup_stream_retries": libp2p_stack::STREAM_RETRIES.load(std::sync::atomic::Ordering::Relaxed),
        });
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
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

fn opt<T>(env: &Option<T>) -> anyhow::Result<&T> {
    env.as_ref().context("stack not started")
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
    let rlpx_ceiling = (|| {
        let mib_s = floor::rlpx_ceiling_mib_s(cores, keccak?, r.median("thr1_cpu", "tcp")?);
        Some(mib_s / r.median("thr1", "libp2p")?)
    })();
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
        "RLPx session throughput / rust-libp2p stream throughput",
        0.75,
        ratio(r, "thr1", "rlpx", "libp2p"),
        rlpx_ceiling,
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
        "RLPx (Network) session throughput / rust-libp2p",
        0.75,
        ratio(r, "thr1", "rlpx-net", "libp2p"),
        rlpx_ceiling,
    );
    let mem = ratio(r, "mem", "devmux", "libp2p");
    out.push(Target {
        what: "idle memory per connection, devmux / rust-libp2p".into(),
        goal: "<= 0.75x".into(),
        value: mem,
        met: mem.map(|v| v <= 0.75),
        ceiling: None,
    });
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
        header.push_str(&format!(" {:>col_w$}", stack_title(s)));
    }
    for t in ["devmux/libp2p", "devmux/TCP", "RLPx/libp2p"] {
        header.push_str(&format!(" {t:>13}"));
    }
    println!("{header}");
    for row in &r.rows {
        if row.values.is_empty() || row.key.starts_with("floor_") {
            continue;
        }
        let mut line = format!("{:<label_w$} {:<7}", row.label, row.unit);
        for s in stacks {
            let runs = row.values.get(*s).map_or(0, Vec::len);
            line.push_str(&format!(" {:>col_w$}", cell(r.summary(row.key, s), runs)));
        }
        for (a, b) in [("devmux", "libp2p"), ("devmux", "tcp"), ("rlpx", "libp2p")] {
            let v = ratio(r, row.key, a, b).map_or("–".into(), |v| format!("{v:.2}x"));
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
    for t in targets {
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
