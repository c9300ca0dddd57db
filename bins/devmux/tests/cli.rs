//! Drives the real `devmux` binary as a process: flags and config files, the admin
//! JSON-RPC, `/metrics`, `identity`, `keygen`, signals.

// Helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_devmux");

/// A running `devmux` whose stdout lines and stderr (logs) are collected by threads.
struct Proc {
    child: Child,
    /// The first stdout line: the enode URL or multiaddr.
    addr: String,
    /// Later stdout lines (`enr:…`, `rpc http://…`, `metrics http://…`).
    lines: Arc<Mutex<Vec<String>>>,
    logs: Arc<Mutex<String>>,
}

fn collect<R: Read + Send + 'static>(from: R, into: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            into.lock().unwrap().push(line);
        }
    });
}

impl Proc {
    fn start(args: &[&str]) -> Proc {
        Self::start_with_env(args, &[("RUST_LOG", "info,devmux_eth=debug")])
    }

    fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn devmux");
        let logs = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut addr = String::new();
        stdout.read_line(&mut addr).expect("address line");
        assert!(
            !addr.trim().is_empty(),
            "no address line; logs:\n{}",
            logs.lock().unwrap()
        );
        let lines = Arc::new(Mutex::new(Vec::new()));
        collect(stdout, lines.clone());
        Proc {
            child,
            addr: addr.trim().to_string(),
            lines,
            logs,
        }
    }

    /// The stdout line starting with `prefix`, waiting a little for it.
    fn line(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some(l) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.starts_with(prefix))
            {
                return l.clone();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "no stdout line starting with {prefix:?}: {:?}",
            self.lines.lock().unwrap()
        );
    }

    fn enr(&self) -> String {
        self.line("enr:")
    }

    /// `host:port` of the admin RPC.
    fn rpc(&self) -> String {
        let line = self.line("rpc http://");
        line.trim_start_matches("rpc http://").to_string()
    }

    /// `host:port` of the metrics endpoint.
    fn metrics(&self) -> String {
        let line = self.line("metrics http://");
        line.trim_start_matches("metrics http://")
            .trim_end_matches("/metrics")
            .to_string()
    }

    fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.logs.lock().unwrap().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Sends SIGINT and returns the exit code.
    fn interrupt(mut self) -> Option<i32> {
        // SAFETY: sending a signal to our own child process by its pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        None
    }
}

fn run_to_end(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run devmux");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Runs devmux expecting a refusal: non-zero exit, one line on stderr naming `needle`.
fn refused(args: &[&str], needle: &str) {
    let (code, _, err) = run_to_end(args);
    assert!(
        code.is_some() && code != Some(0),
        "{args:?} exited {code:?}: {err}"
    );
    assert!(
        err.contains(needle),
        "{args:?}: expected {needle:?} in {err:?}"
    );
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{args:?}: not one line: {err}"
    );
}

/// One HTTP/1.1 request; returns the status code and body.
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

/// A JSON-RPC call; returns the whole response object (`result` or `error`).
fn call(rpc: &str, method: &str, params: Value) -> Value {
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let (status, body) = http(rpc, "POST", "/", &request.to_string());
    assert_eq!(status, 200, "{method}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// A JSON-RPC call that must succeed; returns its result.
fn result(rpc: &str, method: &str, params: Value) -> Value {
    let response = call(rpc, method, params);
    assert!(response.get("error").is_none(), "{method}: {response}");
    response["result"].clone()
}

/// `/metrics` as text.
fn scrape(metrics: &str) -> String {
    let (status, body) = http(metrics, "GET", "/metrics", "");
    assert_eq!(status, 200, "{body}");
    body
}

/// The sum of every sample of `name` (all label sets).
fn sample_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Polls `f` until it returns true or 20 s pass.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn bad_flags_and_files_exit_nonzero_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path().join("d");
    let datadir = datadir.to_str().unwrap();
    fn with<'a>(datadir: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["--dev", "--datadir", datadir];
        args.extend_from_slice(extra);
        args
    }

    refused(&with(datadir, &["--port", "99999"]), "--port");
    refused(&with(datadir, &["--addr", "not-an-ip"]), "--addr");
    refused(&with(datadir, &["--http=localhost"]), "--http");
    refused(&with(datadir, &["--metrics", "127.0.0.1"]), "--metrics");
    refused(&with(datadir, &["--log-format", "xml"]), "human or json");
    refused(
        &with(datadir, &["--log-level", "verbose"]),
        "not a log level",
    );
    refused(&with(datadir, &["--no-such-flag"]), "--no-such-flag");
    refused(
        &with(datadir, &["--max-peers", "5", "--max-inbound", "9"]),
        "max-inbound",
    );
    refused(&with(datadir, &["--max-peers", "0"]), "max-peers");
    refused(
        &with(datadir, &["--nodekey", "/nonexistent/key"]),
        "devmux keygen",
    );
    refused(&with(datadir, &["--addr", "0.0.0.0"]), "--no-discovery");
    refused(
        &with(datadir, &["--static-peers", "/ip4/127.0.0.1/tcp/1"]),
        "enode://",
    );
    refused(
        &with(datadir, &["--servers", "rlpx,p2p", "--use-p2p-server"]),
        "conflict",
    );
    refused(
        &with(datadir, &["--servers", "tcp"]),
        "expected rlpx or p2p",
    );
    refused(
        &with(datadir, &["--p2p-port", "31000"]),
        "only when both servers run",
    );
    refused(
        &with(
            datadir,
            &[
                "--servers",
                "rlpx,p2p",
                "--port",
                "30999",
                "--p2p-port",
                "30999",
            ],
        ),
        "also RLPx's port",
    );
    refused(
        &with(datadir, &["--static-peers", "enode://1234@127.0.0.1:1"]),
        "node id",
    );
    refused(&with(datadir, &["--bootnodes", "enr:-garbage"]), "bootnode");
    refused(
        &with(
            datadir,
            &["--http", "127.0.0.1:9", "--metrics", "127.0.0.1:9"],
        ),
        "different",
    );
    // The admin methods are not served to the network unless asked for.
    refused(
        &with(datadir, &["--http", "0.0.0.0:0"]),
        "--http-allow-remote-admin",
    );
    // Sealing (WIRE.md §7.1): signers, the producer's key, and --dev-blocks (sealed by
    // dev key 0) must agree.
    let key_1 = dir.path().join("signer-1.key");
    let secret_1 = hex_encode(devmux_chain::devnet::dev_secret(1).as_slice());
    std::fs::write(&key_1, format!("{secret_1}\n")).unwrap();
    let key_1 = key_1.to_str().unwrap();
    let signer_1 = devmux_chain::devnet::dev_key(1)
        .unwrap()
        .address()
        .to_string();
    refused(
        &with(datadir, &["--dev-signers", "0x1234"]),
        "not an address",
    );
    refused(
        &with(datadir, &["--eth-recovery-rate", "0"]),
        "eth-recovery-rate",
    );
    refused(
        &with(datadir, &["--dev-signers", &signer_1, "--dev-blocks", "5"]),
        "dev-blocks are sealed by dev key 0",
    );
    refused(&with(datadir, &["--signer-key", key_1]), "--produce-blocks");
    refused(
        &with(datadir, &["--produce-blocks", "2", "--signer-key", key_1]),
        "not in dev-signers",
    );
    refused(
        &with(
            datadir,
            &["--produce-blocks", "2", "--dev-signers", &signer_1],
        ),
        "dev key 0, as no signer-key is given",
    );
    let short_key = dir.path().join("short.key");
    std::fs::write(&short_key, "abcd\n").unwrap();
    refused(
        &with(
            datadir,
            &[
                "--produce-blocks",
                "2",
                "--signer-key",
                short_key.to_str().unwrap(),
            ],
        ),
        "64 hex digits",
    );
    refused(&["--datadir", datadir], "--dev");
    // One chain: --network or --genesis, not both; a name devmux knows; devnet options
    // only on the devnet; eth versions it speaks.
    refused(
        &[
            "--datadir",
            datadir,
            "--network",
            "sepolia",
            "--genesis",
            "g.json",
        ],
        "give one",
    );
    refused(
        &["--datadir", datadir, "--network", "goerli"],
        "mainnet, sepolia, hoodi, dev",
    );
    refused(
        &[
            "--datadir",
            datadir,
            "--network",
            "hoodi",
            "--dev-blocks",
            "5",
        ],
        "devnet only",
    );
    refused(
        &["--datadir", datadir, "--dev", "--eth-versions", "65"],
        "eth/65",
    );
    refused(
        &[
            "--datadir",
            datadir,
            "--genesis",
            "/nonexistent/genesis.json",
        ],
        "genesis",
    );
    refused(&["keygen"], "--out");
    refused(&["identity", "--datadir", datadir], "devmux keygen");
    refused(&["--dev", "identity"], "identity");

    // A port in use: refused before anything starts.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    refused(
        &with(datadir, &["--port", "0", "--http", &busy_addr]),
        "admin RPC (--http)",
    );

    // Corrupt, mistyped and missing config files.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "dev = true\nport = \"thirty\"\n").unwrap();
    refused(
        &["--config", bad.to_str().unwrap(), "--datadir", datadir],
        "bad.toml",
    );
    let corrupt = dir.path().join("corrupt.toml");
    std::fs::write(&corrupt, "dev = [[[\n\u{0}garbage").unwrap();
    refused(&["--config", corrupt.to_str().unwrap()], "corrupt.toml");
    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, "dev = true\nmetric = \"127.0.0.1:1\"\n").unwrap();
    refused(&["--config", typo.to_str().unwrap()], "metric");
    refused(
        &["--config", "/nonexistent/devmux.toml"],
        "/nonexistent/devmux.toml",
    );

    // Nothing half-started: no refused start left a key or a directory behind.
    assert!(!std::path::Path::new(datadir).exists());
}

/// Every key of the config file is also a flag (the keys are the flag names).
#[test]
fn every_config_key_is_a_flag() {
    // The unknown-key error lists every key.
    let err = devmux_node::NodeConfig::from_toml_str("no-such-key = 1", "probe")
        .unwrap_err()
        .to_string();
    let keys: Vec<&str> = err
        .split("expected one of")
        .nth(1)
        .unwrap()
        .split('`')
        .skip(1)
        .step_by(2)
        .collect();
    assert!(keys.len() > 15 && keys.contains(&"datadir"), "{err}");
    let (code, help, _) = run_to_end(&["--help"]);
    assert_eq!(code, Some(0));
    for key in keys {
        assert!(
            help.contains(&format!("--{key}")),
            "--{key} is missing from:\n{help}"
        );
    }
}

#[test]
fn sigint_stops_cleanly_and_the_datadir_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path().join("n");
    let datadir = datadir.to_str().unwrap();
    let node = Proc::start(&[
        "--dev",
        "--datadir",
        datadir,
        "--port",
        "0",
        "--dev-blocks",
        "50",
    ]);
    assert!(node.addr.starts_with("enode://"), "{}", node.addr);
    assert!(node.addr.contains("@127.0.0.1:"), "{}", node.addr);
    assert!(node.enr().starts_with("enr:"));
    let first_id = node.addr.split('@').next().unwrap().to_string();
    assert_eq!(node.interrupt(), Some(0));

    // Same key and chain on restart; the file config applies, flags win.
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!("datadir = {datadir:?}\ndev = true\nport = 1\nuse-p2p-server = true\n"),
    )
    .unwrap();
    let node = Proc::start(&["--config", config.to_str().unwrap(), "--port", "0"]);
    assert!(
        node.addr.starts_with("/ip4/127.0.0.1/tcp/"),
        "{}",
        node.addr
    );
    assert!(
        node.wait_for_log("head=50", Duration::from_secs(10)),
        "{}",
        node.logs.lock().unwrap()
    );
    assert_eq!(node.interrupt(), Some(0));
    // A flag turns the file's `use-p2p-server = true` off again.
    let node = Proc::start(&[
        "--config",
        config.to_str().unwrap(),
        "--port",
        "0",
        "--use-p2p-server=false",
    ]);
    assert!(
        node.addr.starts_with(&first_id),
        "key changed across restarts"
    );
    assert_eq!(node.interrupt(), Some(0));
}

fn two_processes_exchange_status(stream_stack: bool) {
    let dir = tempfile::tempdir().unwrap();
    let a_dir = dir.path().join("a");
    let b_dir = dir.path().join("b");
    let mut common = vec!["--dev", "--port", "0", "--no-discovery"];
    if stream_stack {
        common.push("--use-p2p-server");
    }
    let mut a_args = common.clone();
    a_args.extend(["--datadir", a_dir.to_str().unwrap(), "--dev-blocks", "20"]);
    let a = Proc::start(&a_args);
    let mut b_args = common.clone();
    b_args.extend([
        "--datadir",
        b_dir.to_str().unwrap(),
        "--static-peers",
        &a.addr,
    ]);
    let b = Proc::start(&b_args);
    for (name, node) in [("a", &a), ("b", &b)] {
        assert!(
            node.wait_for_log("eth status exchanged", Duration::from_secs(20)),
            "{name} logs:\n{}",
            node.logs.lock().unwrap()
        );
    }
    assert!(
        a.logs.lock().unwrap().contains("version=eth/70")
            || a.logs.lock().unwrap().contains("version=70")
    );
    assert_eq!(b.interrupt(), Some(0));
    assert_eq!(a.interrupt(), Some(0));
}

/// A dual process (`--servers rlpx,p2p`) prints both addresses and serves an RLPx
/// process and a stream-stack process at once, each dialing the address of its stack.
#[test]
fn a_dual_process_serves_an_rlpx_process_and_a_stream_stack_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (dual_dir, r_dir, p_dir) = (path("dual"), path("r"), path("p"));
    let common = ["--dev", "--port", "0", "--no-discovery"];
    let mut args = common.to_vec();
    args.extend(["--datadir", &dual_dir, "--servers", "rlpx,p2p"]);
    let dual = Proc::start(&args);
    assert!(dual.addr.starts_with("enode://"), "{}", dual.addr);
    let multiaddr = dual.line("/ip4/127.0.0.1/tcp/");
    assert!(multiaddr.contains("/p2p/16Uiu2HA"), "{multiaddr}");
    let mut args = common.to_vec();
    args.extend(["--datadir", &r_dir, "--static-peers", &dual.addr]);
    let rlpx = Proc::start(&args);
    let mut args = common.to_vec();
    args.extend([
        "--datadir",
        &p_dir,
        "--use-p2p-server",
        "--static-peers",
        &multiaddr,
    ]);
    let p2p = Proc::start(&args);
    for (name, node) in [("rlpx", &rlpx), ("p2p", &p2p)] {
        assert!(
            node.wait_for_log("eth status exchanged", Duration::from_secs(20)),
            "{name} logs:\n{}",
            node.logs.lock().unwrap()
        );
    }
    let exchanged = || {
        dual.logs
            .lock()
            .unwrap()
            .matches("eth status exchanged")
            .count()
    };
    eventually("two eth sessions on the dual node", || exchanged() >= 2);
    assert_eq!(p2p.interrupt(), Some(0));
    assert_eq!(rlpx.interrupt(), Some(0));
    assert_eq!(dual.interrupt(), Some(0));
}

#[test]
fn two_processes_with_static_peers_exchange_status_over_rlpx() {
    two_processes_exchange_status(false);
}

#[test]
fn two_processes_with_static_peers_exchange_status_over_the_stream_stack() {
    two_processes_exchange_status(true);
}

/// A network with its own signer (WIRE.md §7.1): a producer sealing with dev key 1 and a
/// follower that names dev key 1 as the only signer, from flags; a third node left on the
/// default signer (dev key 0). The follower takes every produced block; the third node
/// refuses them all as forgeries and stays at genesis.
#[test]
fn a_network_with_its_own_signer() {
    let dir = tempfile::tempdir().unwrap();
    let key_1 = dir.path().join("signer.key");
    let secret_1 = hex_encode(devmux_chain::devnet::dev_secret(1).as_slice());
    std::fs::write(&key_1, format!("{secret_1}\n")).unwrap();
    let signer_1 = devmux_chain::devnet::dev_key(1)
        .unwrap()
        .address()
        .to_string();
    let datadir = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let common = [
        "--dev",
        "--port",
        "0",
        "--no-discovery",
        "--http",
        "127.0.0.1:0",
    ];

    let (p_dir, f_dir, d_dir) = (datadir("p"), datadir("f"), datadir("d"));
    let mut p_args = common.to_vec();
    p_args.extend([
        "--datadir",
        &p_dir,
        "--dev-signers",
        &signer_1,
        "--signer-key",
        key_1.to_str().unwrap(),
        "--produce-blocks",
        "1",
    ]);
    let producer = Proc::start(&p_args);
    let mut f_args = common.to_vec();
    f_args.extend([
        "--datadir",
        &f_dir,
        "--dev-signers",
        &signer_1,
        "--static-peers",
        &producer.addr,
    ]);
    let follower = Proc::start(&f_args);
    let mut d_args = common.to_vec();
    d_args.extend(["--datadir", &d_dir, "--static-peers", &producer.addr]);
    let default_signer = Proc::start(&d_args);

    let number = |node: &Proc| {
        let hex = result(&node.rpc(), "eth_blockNumber", json!([]));
        u64::from_str_radix(hex.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
    };
    eventually("the follower to take 3 blocks sealed by dev key 1", || {
        number(&follower) >= 3
    });
    assert!(
        default_signer.wait_for_log("not a signer", Duration::from_secs(20)),
        "the default-signer node did not refuse the seal:\n{}",
        default_signer.logs.lock().unwrap()
    );
    assert_eq!(number(&default_signer), 0);
    let head = number(&producer);
    assert!(head >= 3, "producer at {head}");
    for node in [default_signer, follower, producer] {
        assert_eq!(node.interrupt(), Some(0));
    }
}

/// A signed devnet transfer in its EIP-2718 form, and its hash.
fn devnet_transaction(nonce: u64) -> (String, String) {
    use devmux_eth::alloy_eips::eip2718::Encodable2718;
    use devmux_eth::alloy_primitives::{Address, U256};
    let devnet = devmux_chain::devnet::Devnet::new().unwrap();
    let tx = devnet.transfer(1, nonce, Address::repeat_byte(0x42), U256::from(1));
    (
        format!("0x{}", hex_encode(&tx.encoded_2718())),
        tx.tx_hash().to_string(),
    )
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Node A from a config file with RPC and metrics; node B from flags. Every RPC
/// method on A, then A adds B with `admin_addPeer` and the numbers move.
fn rpc_and_metrics(stream_stack: bool) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("a.toml");
    std::fs::write(
        &config,
        format!(
            "datadir = \"a\"\ndev = true\ndev-blocks = 20\nport = 0\nno-discovery = true\n\
             use-p2p-server = {stream_stack}\nhttp = \"127.0.0.1:0\"\nmetrics = \"127.0.0.1:0\"\n"
        ),
    )
    .unwrap();
    let a = Proc::start(&["--config", config.to_str().unwrap()]);
    let rpc = a.rpc();
    let metrics = a.metrics();
    assert!(
        dir.path().join("a").join("nodekey").exists(),
        "datadir relative to the file"
    );

    let mut b_args = vec!["--dev", "--port", "0", "--no-discovery"];
    let b_dir = dir.path().join("b");
    b_args.extend(["--datadir", b_dir.to_str().unwrap()]);
    if stream_stack {
        b_args.push("--use-p2p-server");
    }
    let b = Proc::start(&b_args);

    // admin_nodeInfo
    let info = result(&rpc, "admin_nodeInfo", json!([]));
    assert_eq!(info["addr"], a.addr.as_str(), "{info}");
    assert_eq!(info["server"], if stream_stack { "p2p" } else { "rlpx" });
    assert_eq!(info["head"]["number"], 20);
    assert_eq!(info["networkId"], 1337);
    assert!(info["enr"].is_null(), "no discovery, no ENR: {info}");
    assert!(info["enode"].as_str().unwrap().starts_with("enode://"));
    assert!(info["multiaddr"]
        .as_str()
        .unwrap()
        .ends_with(info["id"].as_str().unwrap()));
    let protocols = info["protocols"].as_array().unwrap();
    assert!(protocols.contains(&json!("/eth/68/1.0.0")), "{info}");
    assert_eq!(
        protocols.contains(&json!("/ipfs/ping/1.0.0")),
        stream_stack,
        "{info}"
    );

    // The chain and the pool.
    assert_eq!(result(&rpc, "eth_blockNumber", json!([])), "0x14");
    assert_eq!(result(&rpc, "eth_syncing", json!([])), false);
    // Blocks by number: the head's hash is admin_nodeInfo's, each links to its parent.
    let head = result(&rpc, "eth_getBlockByNumber", json!(["latest", false]));
    assert_eq!(head["number"], "0x14", "{head}");
    assert_eq!(head["hash"], info["head"]["hash"], "{head}");
    let parent = result(&rpc, "eth_getBlockByNumber", json!(["0x13", false]));
    assert_eq!(head["parentHash"], parent["hash"], "{parent}");
    assert!(parent["transactions"].is_array(), "{parent}");
    let genesis = result(&rpc, "eth_getBlockByNumber", json!(["earliest"]));
    assert_eq!(genesis["hash"], info["genesis"], "{genesis}");
    assert!(result(&rpc, "eth_getBlockByNumber", json!(["0x15", false])).is_null());
    assert_eq!(
        call(&rpc, "eth_getBlockByNumber", json!(["twenty", false]))["error"]["code"],
        -32602
    );
    let (raw, hash) = devnet_transaction(0);
    assert_eq!(
        result(&rpc, "eth_sendRawTransaction", json!([raw])),
        hash.as_str()
    );
    let again = call(&rpc, "eth_sendRawTransaction", json!([raw]));
    assert_eq!(again["error"]["code"], -32000, "{again}");
    let bad = call(&rpc, "eth_sendRawTransaction", json!(["0xnothex"]));
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
    let bad = call(&rpc, "eth_sendRawTransaction", json!(["0x02c0ffee"]));
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap()
            .contains("EIP-2718"),
        "{bad}"
    );

    // Batches: 100 calls are answered, 101 are refused whole.
    let batch = |n: usize| {
        let calls: Vec<Value> = (0..n)
            .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "net_peerCount", "params": []}))
            .collect();
        let (_, body) = http(&rpc, "POST", "/", &Value::Array(calls).to_string());
        serde_json::from_str::<Value>(&body).unwrap()
    };
    let answered = batch(100);
    let answers = answered.as_array().expect("a batch answer is an array");
    assert_eq!(answers.len(), 100);
    assert!(
        answers.iter().all(|a| a.get("result").is_some()),
        "{answered}"
    );
    let refused_batch = batch(101);
    assert!(
        refused_batch.get("error").is_some()
            && !refused_batch
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x.get("result").is_some())),
        "a batch of 101 was served: {refused_batch}"
    );

    // A request naming another host is refused (DNS rebinding).
    let mut stream = TcpStream::connect(&rpc).unwrap();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"net_peerCount","params":[]}"#;
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: evil.example\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 403"), "{response}");

    // No peers yet.
    assert_eq!(result(&rpc, "admin_peers", json!([])), json!([]));
    assert_eq!(result(&rpc, "net_peerCount", json!([])), "0x0");
    let before = scrape(&metrics);
    assert_eq!(sample_sum(&before, "devmux_peers"), 0.0, "{before}");
    assert_eq!(sample_sum(&before, "devmux_chain_head"), 20.0, "{before}");
    assert_eq!(
        sample_sum(&before, "devmux_txpool_transactions"),
        1.0,
        "{before}"
    );
    assert_eq!(
        sample_sum(&before, "devmux_connections_total"),
        0.0,
        "{before}"
    );
    assert_eq!(sample_sum(&before, "devmux_bytes_total"), 0.0, "{before}");
    assert_eq!(
        sample_sum(&before, "devmux_handshake_seconds_count"),
        0.0,
        "{before}"
    );

    // Bad peer addresses are invalid params; a refused dial is a server error.
    let bad = call(&rpc, "admin_addPeer", json!(["not an address"]));
    assert_eq!(bad["error"]["code"], -32602, "{bad}");

    // admin_addPeer: connected, visible in admin_peers, net_peerCount and /metrics.
    assert_eq!(result(&rpc, "admin_addPeer", json!([b.addr])), true);
    let peers = result(&rpc, "admin_peers", json!([]));
    let peer = &peers.as_array().unwrap()[0];
    assert_eq!(peer["direction"], "outbound", "{peer}");
    assert_eq!(peer["server"], if stream_stack { "p2p" } else { "rlpx" });
    assert!(peer["reputation"].is_i64(), "{peer}");
    assert_eq!(peer["missedPings"], 0, "{peer}");
    // No keepalive round yet (15 s): no round trip on record.
    assert!(peer["pingRttMs"].is_null(), "{peer}");
    if stream_stack {
        // B's multiaddr ends in its PeerId.
        assert_eq!(peer["id"], b.addr.rsplit('/').next().unwrap(), "{peer}");
    } else {
        let node_id = b
            .addr
            .trim_start_matches("enode://")
            .split('@')
            .next()
            .unwrap();
        assert!(
            peer["addresses"][0].as_str().unwrap().contains(node_id),
            "{peer}"
        );
    }
    eventually("the eth session", || {
        let peers = result(&rpc, "admin_peers", json!([]));
        let peer = &peers[0];
        peer["eth"]["version"] == 70
            && peer["protocols"]
                .as_array()
                .is_some_and(|p| p.contains(&json!("/eth/70/1.0.0")))
    });
    assert_eq!(result(&rpc, "net_peerCount", json!([])), "0x1");
    let after = scrape(&metrics);
    assert_eq!(sample_sum(&after, "devmux_peers"), 1.0, "{after}");
    assert_eq!(sample_sum(&after, "devmux_eth_peers"), 1.0, "{after}");
    let server = if stream_stack { "p2p" } else { "rlpx" };
    assert!(
        after.contains(&format!(
            "devmux_connections_total{{server=\"{server}\",direction=\"outbound\"}} 1"
        )),
        "{after}"
    );
    assert!(
        after.contains("devmux_peer_protocols{protocol=\"/eth/70/1.0.0\"} 1"),
        "{after}"
    );
    assert!(
        sample_sum(&after, "devmux_streams_opened_total") >= 1.0,
        "{after}"
    );
    assert_eq!(
        sample_sum(&after, "devmux_eth_handshakes_total"),
        1.0,
        "{after}"
    );
    assert!(
        after.contains("devmux_bytes_total{direction=\"in\"}")
            && sample_sum(&after, "devmux_bytes_total") > 0.0,
        "{after}"
    );
    assert_eq!(
        sample_sum(&after, "devmux_handshake_seconds_count"),
        1.0,
        "{after}"
    );
    // Per protocol and code: at least each side's Status (code 0x00) each way.
    for direction in ["in", "out"] {
        assert!(
            after.contains(&format!(
                "devmux_protocol_messages_total{{protocol=\"/eth/70/1.0.0\",direction=\"{direction}\",code=\"0x00\"}} 1"
            )),
            "{after}"
        );
    }
    assert!(
        sample_sum(&after, "devmux_protocol_bytes_total") > 0.0,
        "{after}"
    );
    assert!(
        after.contains(&format!(
            "devmux_dials_total{{server=\"{server}\",outcome=\"connected\"}} 1"
        )),
        "{after}"
    );

    // admin_removePeer: gone, and the disconnect is counted.
    let peer_id = peer["id"].as_str().unwrap().to_string();
    assert_eq!(result(&rpc, "admin_removePeer", json!([peer_id])), true);
    eventually("the peer to leave", || {
        result(&rpc, "net_peerCount", json!([])) == "0x0"
    });
    eventually("the disconnect to be counted", || {
        sample_sum(&scrape(&metrics), "devmux_disconnects_total") >= 1.0
    });
    assert_eq!(result(&rpc, "admin_removePeer", json!([peer_id])), false);
    let (status, _) = http(&metrics, "GET", "/other", "");
    assert_eq!(status, 404);

    // SIGINT: clean exit; the same datadir reopens with the same key and chain.
    assert_eq!(b.interrupt(), Some(0));
    assert_eq!(a.interrupt(), Some(0));
    let a = Proc::start(&["--config", config.to_str().unwrap()]);
    let rpc = a.rpc();
    let again = result(&rpc, "admin_nodeInfo", json!([]));
    assert_eq!(again["id"], info["id"]);
    assert_eq!(result(&rpc, "eth_blockNumber", json!([])), "0x14");
    assert_eq!(a.interrupt(), Some(0));
}

#[test]
fn rpc_and_metrics_over_rlpx() {
    rpc_and_metrics(false);
}

#[test]
fn rpc_and_metrics_over_the_stream_stack() {
    rpc_and_metrics(true);
}

#[test]
fn keygen_and_identity() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("node.key");
    let key_arg = key.to_str().unwrap();

    let (code, out, err) = run_to_end(&["keygen", "--out", key_arg]);
    assert_eq!(code, Some(0), "{err}");
    let peer_id = out
        .lines()
        .find_map(|l| l.strip_prefix("peer-id: "))
        .unwrap()
        .to_string();
    assert!(peer_id.starts_with("16Uiu2HA"), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let written = std::fs::read_to_string(&key).unwrap();
    // The address a producer with this file as --signer-key seals as.
    let mut secret = [0u8; 32];
    for (i, byte) in secret.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&written.trim()[2 * i..2 * i + 2], 16).unwrap();
    }
    let address = devmux_chain::signing::SecretKey::from_bytes(&secret.into())
        .unwrap()
        .address();
    assert!(
        out.lines().any(|l| l == format!("address: {address}")),
        "{out}"
    );
    refused(&["keygen", "--out", key_arg], "already exists");
    assert_eq!(
        std::fs::read_to_string(&key).unwrap(),
        written,
        "overwritten"
    );

    // identity: the key file's names, at the given address and ports.
    let (code, out, err) = run_to_end(&[
        "identity",
        "--nodekey",
        key_arg,
        "--port",
        "30999",
        "--discovery-port",
        "30998",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in {out}"))
            .to_string()
    };
    assert_eq!(field("peer-id"), peer_id);
    assert!(field("network").starts_with("dev (none given"), "{out}");
    let node_id = field("node-id");
    assert_eq!(
        field("enode"),
        // discport is discv4's: the discovery port + 1000; the ENR's udp is discv5's.
        format!("enode://{node_id}@127.0.0.1:30999?discport=31998")
    );
    assert_eq!(
        field("multiaddr"),
        format!("/ip4/127.0.0.1/tcp/30999/p2p/{peer_id}")
    );
    let enr: devmux_discovery::Enr = field("enr").parse().unwrap();
    assert_eq!(enr.udp4(), Some(30998));
    assert_eq!(enr.tcp4(), Some(30999));
    assert_eq!(enr.ip4(), Some(std::net::Ipv4Addr::LOCALHOST));
    assert_eq!(
        devmux_discovery::secp256k1_node_id(&enr)
            .unwrap()
            .to_string(),
        node_id
    );

    // The chain it names: sepolia's fork id at genesis (go-ethereum's forkid vectors).
    let (code, out, err) = run_to_end(&["identity", "--nodekey", key_arg, "--network", "sepolia"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("network: sepolia\n"), "{out}");
    assert!(
        out.contains("fork-id: 0xfe3366e7 next 1735371 (at genesis: no chain store yet)"),
        "{out}"
    );

    // A node started with that key has those names; identity of its datadir too.
    let datadir = dir.path().join("d");
    let node = Proc::start(&[
        "--dev",
        "--no-discovery",
        "--port",
        "0",
        "--nodekey",
        key_arg,
        "--datadir",
        datadir.to_str().unwrap(),
    ]);
    assert!(
        node.addr.starts_with(&format!("enode://{node_id}@")),
        "{}",
        node.addr
    );
    assert_eq!(node.interrupt(), Some(0));
    let other = dir.path().join("other");
    let node = Proc::start(&[
        "--dev",
        "--no-discovery",
        "--port",
        "0",
        "--use-p2p-server",
        "--datadir",
        other.to_str().unwrap(),
    ]);
    let (code, out, err) = run_to_end(&["identity", "--datadir", other.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let own_peer_id = node.addr.rsplit('/').next().unwrap();
    assert!(out.contains(&format!("peer-id: {own_peer_id}")), "{out}");
    assert_eq!(node.interrupt(), Some(0));
}

#[test]
fn log_format_json_and_log_level() {
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path().join("j");
    let node = Proc::start_with_env(
        &[
            "--dev",
            "--no-discovery",
            "--port",
            "0",
            "--log-format",
            "json",
            "--log-level",
            "info,devmux_node=debug",
            "--datadir",
            datadir.to_str().unwrap(),
        ],
        // The flag wins over RUST_LOG.
        &[("RUST_LOG", "error")],
    );
    assert!(node.wait_for_log("node started", Duration::from_secs(10)));
    let logs = node.logs.lock().unwrap().clone();
    for line in logs.lines() {
        let entry: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(entry["level"].is_string(), "{line}");
    }
    assert_eq!(node.interrupt(), Some(0));
}

/// Runs `devmux ARGS --json`, expecting success and one JSON object.
fn probe_json(args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let (code, out, err) = run_to_end(&args);
    assert_eq!(code, Some(0), "{args:?}: {err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// `devmux probe rlpx|p2p|discv5` and `devmux enr decode` against nodes started here,
/// one per server: each reports what the node is (checked against what the node
/// printed about itself), and each fails with one line and exit code 1 against a port
/// where nothing listens or where the other server runs.
#[test]
fn probes_report_what_a_node_is_and_fail_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    let rlpx = Proc::start(&[
        "--dev",
        "--port",
        "0",
        "--datadir",
        a_dir.to_str().unwrap(),
        "--dev-blocks",
        "12",
    ]);
    let p2p = Proc::start(&[
        "--dev",
        "--port",
        "0",
        "--use-p2p-server",
        "--datadir",
        b_dir.to_str().unwrap(),
    ]);

    let seen = probe_json(&["probe", "rlpx", &rlpx.addr]);
    let id = rlpx
        .addr
        .trim_start_matches("enode://")
        .split('@')
        .next()
        .unwrap();
    assert_eq!(seen["node_id"], id);
    assert!(
        seen["client_id"].as_str().unwrap().starts_with("devmux/"),
        "{seen}"
    );
    assert_eq!(seen["p2p_version"], 5);
    assert!(
        seen["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("eth/69")),
        "{seen}"
    );
    assert_eq!(seen["eth"]["version"], 70);
    assert_eq!(seen["eth"]["network_id"], 1337);
    assert_eq!(seen["eth"]["head_number"], 12);
    assert!(seen["rtt_ms"].as_f64().unwrap() > 0.0);

    let seen = probe_json(&["probe", "p2p", &p2p.addr]);
    assert_eq!(seen["peer_id"], p2p.addr.rsplit('/').next().unwrap());
    assert!(seen["agent_version"]
        .as_str()
        .unwrap()
        .starts_with("devmux/"));
    let protocols = seen["protocols"].as_array().unwrap();
    for p in ["/eth/69/1.0.0", "/ipfs/ping/1.0.0", "/ipfs/id/1.0.0"] {
        assert!(protocols.contains(&json!(p)), "{p} missing: {seen}");
    }
    assert!(seen["observed_addr"]
        .as_str()
        .unwrap()
        .starts_with("/ip4/127.0.0.1/tcp/"));

    for node in [&rlpx, &p2p] {
        let enr = node.enr();
        let seen = probe_json(&["probe", "discv5", &enr]);
        let decoded = probe_json(&["enr", "decode", &enr]);
        assert_eq!(seen["enr"]["node_id"], decoded["node_id"]);
        assert_eq!(
            seen["observed"].as_str().unwrap().split(':').next(),
            Some("127.0.0.1")
        );
        let keys: Vec<&str> = decoded["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["key"].as_str().unwrap())
            .collect();
        // WIRE.md §4: `tcp` only with RLPx, `mux` only with the stream stack.
        let carrier = if std::ptr::eq(node, &rlpx) {
            "tcp"
        } else {
            "mux"
        };
        for k in ["eth", "id", "ip", "secp256k1", "udp", carrier] {
            assert!(keys.contains(&k), "{k} missing from {decoded}");
        }
    }

    // Failures: one line, exit 1, naming the step.
    let port_of = |addr: &str| addr.rsplit(':').next().unwrap().to_string();
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nowhere = format!("enode://{id}@127.0.0.1:{free}");
    let p2p_port = p2p.addr.split('/').nth(4).unwrap().to_string();
    let wrong_server = format!("enode://{id}@127.0.0.1:{p2p_port}");
    let rlpx_as_p2p = format!(
        "/ip4/127.0.0.1/tcp/{}/p2p/{}",
        port_of(&rlpx.addr),
        p2p.addr.rsplit('/').next().unwrap()
    );
    for (args, needle) in [
        (
            vec!["probe", "rlpx", &nowhere, "--timeout", "2"],
            "TCP connect",
        ),
        (
            vec!["probe", "rlpx", &wrong_server, "--timeout", "2"],
            "ECIES handshake",
        ),
        (
            vec!["probe", "p2p", &rlpx_as_p2p, "--timeout", "2"],
            "connect",
        ),
        (vec!["enr", "decode", "enr:nope"], "invalid ENR"),
    ] {
        let (code, out, err) = run_to_end(&args);
        assert_eq!(code, Some(1), "{args:?}: {out} {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert_eq!(rlpx.interrupt(), Some(0));
    assert_eq!(p2p.interrupt(), Some(0));
}

/// The `# TYPE` names of an exposition, and the sample names it has.
fn exposition(text: &str) -> (Vec<(String, String)>, Vec<String>) {
    let types = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    let samples = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect();
    (types, samples)
}

/// `/metrics` in both formats: OpenMetrics when asked for (as Prometheus does), the
/// classic text format otherwise (what `promtool check metrics` reads; CI runs it on
/// this output). Every metric the Grafana dashboard (`testnet/grafana/devmux.json`)
/// queries is one the node exports.
#[test]
fn metrics_formats_and_the_dashboard_agree_with_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    let node = Proc::start(&[
        "--dev",
        "--port",
        "0",
        "--datadir",
        a_dir.to_str().unwrap(),
        "--metrics",
        "127.0.0.1:0",
    ]);
    // A peer, so that the per-protocol series exist.
    let peer = Proc::start(&[
        "--dev",
        "--port",
        "0",
        "--no-discovery",
        "--datadir",
        b_dir.to_str().unwrap(),
        "--static-peers",
        &node.addr,
    ]);
    assert!(peer.wait_for_log("eth status exchanged", Duration::from_secs(20)));
    let metrics = node.metrics();
    let classic = scrape(&metrics);
    let mut stream = TcpStream::connect(&metrics).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {metrics}\r\nAccept: application/openmetrics-text; version=1.0.0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.contains("application/openmetrics-text"),
        "{response}"
    );
    assert!(response.trim_end().ends_with("# EOF"), "{response}");
    assert!(!classic.contains("# EOF"));

    // OpenMetrics names a counter family without `_total`; the classic format names
    // it as its samples are named.
    let (om_types, _) = exposition(&response);
    let (classic_types, classic_samples) = exposition(&classic);
    for (name, kind) in &om_types {
        let expected = if kind == "counter" {
            format!("{name}_total")
        } else {
            name.clone()
        };
        assert!(
            classic_types
                .iter()
                .any(|(n, k)| *n == expected && k == kind),
            "{name} ({kind}) missing from the classic format"
        );
    }
    for sample in &classic_samples {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| sample.strip_suffix(s))
            .unwrap_or(sample);
        assert!(
            classic_types
                .iter()
                .any(|(n, _)| n == sample || n == family),
            "sample {sample} has no TYPE line"
        );
    }

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testnet/grafana/devmux.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut queried = std::collections::BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(i) = rest.find("devmux_") {
                let name: String = rest[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[i + name.len()..];
                queried.insert(name);
            }
        }
    }
    assert!(queried.len() >= 15, "{queried:?}");
    let families: Vec<&str> = om_types.iter().map(|(n, _)| n.as_str()).collect();
    for name in &queried {
        let family = ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        assert!(
            families.contains(&family),
            "the dashboard queries {name}, which the node does not export"
        );
    }
    assert_eq!(peer.interrupt(), Some(0));
    assert_eq!(node.interrupt(), Some(0));
}

/// `devmux_tests::rlpx_session_from`, from a test without a runtime of its own.
fn rlpx_session(
    enode: &str,
    from: std::net::IpAddr,
    capability: (&str, u32, u8),
    fault: bool,
) -> bool {
    let (name, version, count) = capability;
    let capability = devmux_rlpx::Capability::new(name, version, count);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(devmux_tests::rlpx_session_from(
            enode, from, capability, fault,
        ))
}

/// An address whose keys keep breaking the protocol is banned, and the ban survives the
/// process being killed (SIGKILL, no shutdown) and restarted; other addresses are served.
#[test]
fn an_address_ban_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path().join("n");
    let datadir = datadir.to_str().unwrap();
    let args = [
        "--dev",
        "--datadir",
        datadir,
        "--port",
        "0",
        "--no-discovery",
        "--addr",
        "127.0.77.1",
        // Sessions that end take a moment to leave: the per-address connection limit
        // is not what this measures.
        "--max-peers-per-ip",
        "50",
    ];
    let eth = ("eth", 69, 18);
    let bad: std::net::IpAddr = "127.250.77.13".parse().unwrap();
    let good: std::net::IpAddr = "127.0.78.1".parse().unwrap();
    let node = Proc::start(&args);
    let mut hellos = 0;
    for _ in 0..14 {
        hellos += usize::from(rlpx_session(&node.addr, bad, eth, true));
    }
    // The default limit is 10 faulting keys: the 11th earns the ban.
    assert_eq!(hellos, 11, "{}", node.logs.lock().unwrap());
    assert!(
        rlpx_session(&node.addr, good, eth, false),
        "an honest peer elsewhere"
    );
    // Killed outright: whatever is not on disk yet is lost.
    let mut node = node;
    // SAFETY: sending a signal to our own child process by its pid.
    unsafe { libc::kill(node.child.id() as i32, libc::SIGKILL) };
    let _ = node.child.wait();
    // `db check` reads the ban as the next start will, and finds the store whole.
    let (code, out, err) = run_to_end(&["db", "check", "--dev", "--datadir", datadir]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.starts_with("store ok: head=0 ") && out.contains(" address_bans=1 "),
        "{out}"
    );
    let missing = dir.path().join("missing");
    refused(
        &[
            "db",
            "check",
            "--dev",
            "--datadir",
            missing.to_str().unwrap(),
        ],
        "no chain store here",
    );
    let again = Proc::start(&args);
    // A running node holds the store: the check says so rather than reading under it.
    refused(
        &["db", "check", "--dev", "--datadir", datadir],
        "Database already open",
    );
    assert!(
        !rlpx_session(&again.addr, bad, eth, false),
        "the address ban was lost: {}",
        again.logs.lock().unwrap()
    );
    assert!(rlpx_session(&again.addr, good, eth, false));
    assert_eq!(again.interrupt(), Some(0));
}

/// `devmux import FILE`: a chain file in go-ethereum's export format (the devnet's
/// genesis and blocks 1..=60) goes into the data directory's chain; a node started on it
/// serves that head and reports the blocks whose receipts it still needs from peers.
/// Broken files and another network's file are refused with one line.
#[test]
fn import_reads_a_chain_file_into_the_datadir() {
    use devmux_chain::devnet::Devnet;
    use devmux_chain::ChainSpec;
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path().join("n");
    let datadir = datadir.to_str().unwrap();
    let blocks: Vec<_> = Devnet::new().unwrap().blocks(60).collect();
    let mut file = devmux_eth::alloy_rlp::encode(devmux_eth::Block {
        header: ChainSpec::devnet().genesis,
        body: Default::default(),
    });
    for b in &blocks {
        file.extend(devmux_eth::alloy_rlp::encode(devmux_eth::Block {
            header: b.header.clone(),
            body: b.body.clone(),
        }));
    }
    let path = dir.path().join("chain.rlp");
    std::fs::write(&path, &file).unwrap();
    let path = path.to_str().unwrap();

    let (code, out, err) = run_to_end(&["import", path, "--dev", "--datadir", datadir]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("61 blocks read, 60 imported, 1 known, head 60"),
        "{out}"
    );
    let (code, out, _) = run_to_end(&["import", path, "--dev", "--datadir", datadir]);
    assert_eq!(code, Some(0));
    assert!(out.contains("0 imported, 61 known"), "{out}");

    let node = Proc::start(&[
        "--dev",
        "--datadir",
        datadir,
        "--port",
        "0",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let metrics = node.metrics();
    let waiting = blocks
        .iter()
        .filter(|b| !b.body.transactions.is_empty())
        .count();
    let text = scrape(&metrics);
    assert_eq!(sample_sum(&text, "devmux_chain_head"), 60.0, "{text}");
    assert_eq!(
        sample_sum(&text, "devmux_chain_receipts_pending"),
        waiting as f64,
        "{text}"
    );
    assert_eq!(node.interrupt(), Some(0));

    // Cut inside its last block: the byte where that block starts.
    let cut = dir.path().join("cut.rlp");
    std::fs::write(&cut, &file[..file.len() - 3]).unwrap();
    let other = dir.path().join("other");
    let other = other.to_str().unwrap();
    refused(
        &["import", cut.to_str().unwrap(), "--dev", "--datadir", other],
        "chain file at byte",
    );
    // The devnet's blocks are not sepolia's.
    let sepolia = dir.path().join("sepolia");
    refused(
        &[
            "import",
            path,
            "--network",
            "sepolia",
            "--datadir",
            sepolia.to_str().unwrap(),
        ],
        "genesis block is not this network's",
    );
    refused(
        &[
            "import",
            "/nonexistent/chain.rlp",
            "--dev",
            "--datadir",
            other,
        ],
        "reading chain file",
    );
}
