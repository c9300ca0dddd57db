//! `--processes`: every node its own OS process (this example with `--child`), and the
//! parent that starts them and reads what they print.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use devmux_node::Node;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::{carrier_name, node_config, produce, unix_micros, Args, Measured, Progress};

/// How often a child looks at its peers and head: the resolution of its timestamps.
const POLL: Duration = Duration::from_millis(5);

/// One node: runs until its stdin closes.
pub(crate) async fn child(args: Args) -> anyhow::Result<()> {
    let datadir = args.datadir.context("--child needs --datadir")?;
    let config = node_config(
        args.index,
        args.stream_stack,
        args.lookup_secs,
        &datadir,
        args.bootnode.as_deref(),
    );
    let node = Node::start(config).await?;
    println!("enr {}", node.enr().unwrap_or_default());
    let mut commands = BufReader::new(tokio::io::stdin()).lines();
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (mut peers, mut head) = (usize::MAX, u64::MAX);
    loop {
        tokio::select! {
            command = commands.next_line() => match command {
                Ok(Some(line)) if line.trim() == "produce" => {
                    let at = unix_micros();
                    let number = produce(&node).await?;
                    println!("produced {number} {at}");
                }
                Ok(Some(_)) => {}
                // The parent closed our stdin, or is gone.
                Ok(None) | Err(_) => break,
            },
            _ = tick.tick() => {
                let now = unix_micros();
                let count = node.network().peers().len();
                if count != peers {
                    peers = count;
                    println!("peers {count} {now}");
                }
                let number = node.chain().head().number;
                if number != head {
                    head = number;
                    println!("head {number} {now}");
                }
            }
        }
    }
    node.stop().await;
    Ok(())
}

/// A line a child printed, or its end.
#[derive(Debug)]
enum Line {
    Enr(String),
    Peers(usize, u64),
    Head(u64, u64),
    Produced(u64, u64),
    Gone,
}

fn parse(line: &str) -> Option<Line> {
    let mut words = line.split_whitespace();
    let kind = words.next()?;
    if kind == "enr" {
        return Some(Line::Enr(words.next()?.to_string()));
    }
    let a: u64 = words.next()?.parse().ok()?;
    let at: u64 = words.next()?.parse().ok()?;
    match kind {
        "peers" => Some(Line::Peers(usize::try_from(a).ok()?, at)),
        "head" => Some(Line::Head(a, at)),
        "produced" => Some(Line::Produced(a, at)),
        _ => None,
    }
}

/// The running children; dropping it kills any still running.
struct Network {
    children: Vec<Child>,
    stdins: Vec<Option<ChildStdin>>,
    lines: mpsc::UnboundedReceiver<(usize, Line)>,
    sender: mpsc::UnboundedSender<(usize, Line)>,
}

impl Network {
    fn spawn(
        &mut self,
        i: usize,
        (stream_stack, lookup_secs): (bool, u64),
        dir: &std::path::Path,
        bootnode: Option<&str>,
    ) -> anyhow::Result<()> {
        let mut command = Command::new(std::env::current_exe()?);
        command
            .arg("--child")
            .arg("--index")
            .arg(i.to_string())
            .arg("--lookup-secs")
            .arg(lookup_secs.to_string())
            .arg("--datadir")
            .arg(dir.join(format!("n{i}")))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if stream_stack {
            command.arg("--stream-stack");
        }
        if let Some(enr) = bootnode {
            command.arg("--bootnode").arg(enr);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting node {i}"))?;
        let stdout = child.stdout.take().context("child stdout")?;
        self.stdins.push(child.stdin.take());
        self.children.push(child);
        let sender = self.sender.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(line) = parse(&line) {
                    let _ = sender.send((i, line));
                }
            }
            let _ = sender.send((i, Line::Gone));
        });
        Ok(())
    }

    /// The next line before `deadline` (`None` past it); a child that exits is an error.
    async fn next(&mut self, deadline: Instant) -> anyhow::Result<Option<(usize, Line)>> {
        match tokio::time::timeout_at(deadline.into(), self.lines.recv()).await {
            Err(_) => Ok(None),
            Ok(None) => bail!("every child is gone"),
            Ok(Some((i, Line::Gone))) => bail!("node {i} exited (its stderr says why)"),
            Ok(Some(line)) => Ok(Some(line)),
        }
    }

    /// Closes every child's stdin (each stops its node) and waits up to 20 s for them.
    async fn stop(mut self) {
        self.stdins.clear();
        let deadline = Instant::now() + Duration::from_secs(20);
        for child in &mut self.children {
            let _ = tokio::time::timeout_at(deadline.into(), child.wait()).await;
        }
    }
}

/// One `--processes` run of `n` nodes.
pub(crate) async fn run(
    n: usize,
    stream_stack: bool,
    lookup_secs: u64,
    timeout: Duration,
) -> anyhow::Result<Measured> {
    let dir = tempfile::tempdir()?;
    let (sender, lines) = mpsc::unbounded_channel();
    let mut net = Network {
        children: Vec::with_capacity(n),
        stdins: Vec::with_capacity(n),
        lines,
        sender,
    };
    let started = Instant::now();
    let started_us = unix_micros();
    let deadline = started + timeout;
    net.spawn(0, (stream_stack, lookup_secs), dir.path(), None)?;
    let mut peers = vec![0usize; n];
    let mut heads: Vec<Vec<(u64, u64)>> = vec![Vec::new(); n];
    let enr = loop {
        match net.next(deadline).await? {
            None => bail!("the bootnode printed no ENR"),
            Some((_, Line::Enr(enr))) => break enr,
            Some((i, Line::Peers(count, _))) => peers[i] = count,
            Some((i, Line::Head(number, at))) => heads[i].push((number, at)),
            Some(_) => {}
        }
    };
    for i in 1..n {
        net.spawn(i, (stream_stack, lookup_secs), dir.path(), Some(&enr))?;
    }
    let booted = started.elapsed();
    let want = (n - 1).min(8);
    let mut measured = Measured::default();
    let mut progress = Progress::new();
    while let Some((i, line)) = net.next(deadline).await? {
        match line {
            Line::Peers(count, at) => {
                peers[i] = count;
                if peers.iter().all(|&c| c >= want) {
                    measured.peered = Some(Duration::from_micros(at.saturating_sub(started_us)));
                    break;
                }
            }
            Line::Head(number, at) => heads[i].push((number, at)),
            _ => {}
        }
        progress.report(|| {
            format!(
                "{n} nodes ({}): {} of {n} at ≥ {want} peers, fewest {}",
                carrier_name(stream_stack),
                peers.iter().filter(|&&c| c >= want).count(),
                peers.iter().min().copied().unwrap_or(0),
            )
        });
    }
    if measured.peered.is_some() {
        let producer = net.stdins[n - 1].as_mut().context("producer's stdin")?;
        producer.write_all(b"produce\n").await?;
        producer.flush().await?;
        let deadline = Instant::now() + timeout;
        let mut produced = None;
        let mut progress = Progress::new();
        loop {
            if let Some((number, at)) = produced {
                let reached: Option<Vec<u64>> = heads
                    .iter()
                    .map(|h| h.iter().find(|(n, _)| *n >= number).map(|&(_, t)| t))
                    .collect();
                if let Some(last) = reached.and_then(|r| r.into_iter().max()) {
                    measured.block = Some(Duration::from_micros(last.saturating_sub(at)));
                    break;
                }
                progress.report(|| {
                    let behind = heads
                        .iter()
                        .filter(|h| h.iter().all(|(n, _)| *n < number))
                        .count();
                    format!("block {number}: {behind} of {n} nodes without it")
                });
            }
            match net.next(deadline).await? {
                None => break,
                Some((_, Line::Produced(number, at))) => produced = Some((number, at)),
                Some((i, Line::Head(number, at))) => heads[i].push((number, at)),
                Some((i, Line::Peers(count, _))) => peers[i] = count,
                Some(_) => {}
            }
        }
    }
    let stopping = Instant::now();
    net.stop().await;
    eprintln!(
        "  {n} processes ({}): started in {booted:.1?}, stopped in {:.1?}; {measured:?}",
        carrier_name(stream_stack),
        stopping.elapsed()
    );
    Ok(measured)
}
