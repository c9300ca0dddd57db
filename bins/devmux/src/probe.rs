//! `devmux probe rlpx|p2p|discv5` and `devmux enr decode`: print what
//! [`devmux_node::probe`] learnt, as text or (`--json`) one JSON object.

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use devmux_node::probe;
use serde::Serialize;

/// What to probe.
#[derive(Subcommand, Debug)]
pub(crate) enum Probe {
    /// An RLPx node: Hello (client id, capabilities, p2p version), its eth Status if
    /// eth is shared (answered with the same Status), and a Ping's round trip
    Rlpx {
        /// The node's `enode://` URL
        enode: String,
        #[command(flatten)]
        out: ProbeArgs,
    },
    /// A stream-stack (libp2p) node: identify (agent, protocols, addresses) and a
    /// libp2p ping's round trip
    P2p {
        /// The node's multiaddr, with `/p2p/<PeerId>`
        multiaddr: String,
        #[command(flatten)]
        out: ProbeArgs,
    },
    /// A discv5 node: a PING's round trip, what the PONG says, and the record it
    /// returns for itself
    Discv5 {
        /// The node's `enr:` record
        enr: String,
        #[command(flatten)]
        out: ProbeArgs,
    },
}

/// Options every probe takes.
#[derive(Args, Debug)]
pub(crate) struct ProbeArgs {
    /// Print one JSON object instead of text
    #[arg(long)]
    json: bool,
    /// Seconds each step may take
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    timeout: u64,
}

/// `devmux enr …`.
#[derive(Subcommand, Debug)]
pub(crate) enum EnrCommand {
    /// Every key of an `enr:` record, human-readable
    Decode {
        /// The record
        enr: String,
        /// Print one JSON object instead of text
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run_probe(what: Probe) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        match what {
            Probe::Rlpx { enode, out } => {
                let seen = probe::rlpx(&enode, out.step()).await?;
                print(&seen, out.json, rlpx_text)
            }
            Probe::P2p { multiaddr, out } => {
                let seen = probe::p2p(&multiaddr, out.step()).await?;
                print(&seen, out.json, p2p_text)
            }
            Probe::Discv5 { enr, out } => {
                let seen = probe::discv5(&enr, out.step()).await?;
                print(&seen, out.json, discv5_text)
            }
        }
    })
}

pub(crate) fn run_enr(what: EnrCommand) -> anyhow::Result<()> {
    match what {
        EnrCommand::Decode { enr, json } => print(&probe::decode_enr(&enr)?, json, enr_text),
    }
}

impl ProbeArgs {
    fn step(&self) -> Duration {
        Duration::from_secs(self.timeout.max(1))
    }
}

fn print<T: Serialize>(value: &T, json: bool, text: fn(&T) -> Vec<String>) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(value)?);
    } else {
        for line in text(value) {
            println!("{line}");
        }
    }
    Ok(())
}

fn rlpx_text(p: &probe::RlpxProbe) -> Vec<String> {
    let mut lines = vec![
        format!("node id       {}", p.node_id),
        format!("address       {}", p.addr),
        format!("client        {}", p.client_id),
        format!("p2p version   {}", p.p2p_version),
        format!("capabilities  {}", p.capabilities.join(" ")),
        format!("listen port   {}", p.listen_port),
    ];
    match &p.eth {
        Some(s) => {
            lines.push(format!(
                "eth           eth/{}, network {}",
                s.version, s.network_id
            ));
            lines.push(format!("genesis       {}", s.genesis));
            lines.push(format!(
                "fork id       {} next {}",
                s.fork_hash, s.fork_next
            ));
            let number = s
                .head_number
                .map(|n| format!(" (block {n})"))
                .unwrap_or_default();
            lines.push(format!("head          {}{number}", s.head));
            if let Some(td) = &s.total_difficulty {
                lines.push(format!("total diff.   {td}"));
            }
            if let Some(e) = s.earliest {
                lines.push(format!("earliest      {e}"));
            }
        }
        None => lines.push("eth           not shared".into()),
    }
    lines.push(format!("rtt           {:.2} ms", p.rtt_ms));
    lines
}

fn p2p_text(p: &probe::P2pProbe) -> Vec<String> {
    vec![
        format!("peer id       {}", p.peer_id),
        format!("agent         {}", p.agent_version),
        format!("protocol      {}", p.protocol_version),
        format!("protocols     {}", p.protocols.join(" ")),
        format!("listen addrs  {}", p.listen_addrs.join(" ")),
        format!(
            "observed      {}",
            p.observed_addr.as_deref().unwrap_or("(not given)")
        ),
        format!("rtt           {:.2} ms", p.rtt_ms),
    ]
}

fn discv5_text(p: &probe::Discv5Probe) -> Vec<String> {
    let mut lines = vec![
        format!("address       {}", p.addr),
        format!("rtt           {:.2} ms", p.rtt_ms),
        format!("enr seq       {}", p.enr_seq),
        format!("observed      {}", p.observed),
    ];
    lines.extend(enr_text(&p.enr));
    lines
}

fn enr_text(e: &probe::EnrView) -> Vec<String> {
    let mut lines = vec![
        format!("enr           {}", e.text),
        format!("seq           {}", e.seq),
        format!("node id       {}", e.node_id),
    ];
    for entry in &e.entries {
        lines.push(format!("  {:<11} {}", entry.key, entry.value));
    }
    lines
}
