//! Drives the real `devmux` binary as a process.

// Helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_devmux");

/// A running `devmux` whose stderr (logs) is collected by a thread.
struct Proc {
    child: Child,
    addr: String,
    logs: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Proc {
    fn start(args: &[&str]) -> Proc {
        let mut child = Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn devmux");
        let logs = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
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
        Proc {
            child,
            addr: addr.trim().to_string(),
            logs,
        }
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

fn run_to_end(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(BIN).args(args).output().expect("run devmux");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn bad_flags_and_files_exit_nonzero_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path().join("d");
    let datadir = datadir.to_str().unwrap();

    let (code, err) = run_to_end(&["--dev", "--port", "99999", "--datadir", datadir]);
    assert_ne!(code, Some(0));
    assert!(err.contains("--port"), "{err}");

    let (code, err) = run_to_end(&["--dev", "--addr", "not-an-ip", "--datadir", datadir]);
    assert_ne!(code, Some(0));
    assert!(err.contains("--addr"), "{err}");

    let (code, err) = run_to_end(&["--datadir", datadir]);
    assert_ne!(code, Some(0));
    assert!(err.contains("--dev"), "{err}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "dev = true\nport = \"thirty\"\n").unwrap();
    let (code, err) = run_to_end(&["--config", bad.to_str().unwrap(), "--datadir", datadir]);
    assert_ne!(code, Some(0));
    assert!(
        err.contains("bad.toml") && err.lines().count() == 1,
        "{err}"
    );

    let (code, err) = run_to_end(&["--config", "/nonexistent/devmux.toml"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("/nonexistent/devmux.toml"), "{err}");

    let (code, err) = run_to_end(&[
        "--dev",
        "--datadir",
        datadir,
        "--static-peers",
        "/ip4/127.0.0.1/tcp/1",
    ]);
    assert_ne!(code, Some(0));
    assert!(err.contains("enode://"), "{err}");
    // Nothing half-started: a refused start leaves no key behind.
    assert!(!std::path::Path::new(datadir).join("nodekey").exists());
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
    let node = Proc::start(&["--dev", "--datadir", datadir, "--port", "0"]);
    assert!(
        node.addr.starts_with(&first_id),
        "key changed across restarts"
    );
    assert_eq!(node.interrupt(), Some(0));
}
