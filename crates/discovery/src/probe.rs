//! Probes for operators (`devmux probe discv5`, `devmux enr decode`): a discv5 PING to
//! one node and the record it returns for itself, and an `enr:` record spelled out key
//! by key.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use alloy_rlp::{Decodable, Header};
use discv5::{ConfigBuilder, Discv5, ListenConfig};
use enr::CombinedKey;
use serde::Serialize;

use crate::{Enr, Error, ETH_ENR_KEY, MUX_ENR_KEY};

/// An ENR, key by key.
#[derive(Clone, Debug, Serialize)]
pub struct EnrView {
    /// The record's text form.
    pub text: String,
    /// Its sequence number.
    pub seq: u64,
    /// Its node id (keccak256 of the public key), hex.
    pub node_id: String,
    /// Every key in the record, in the record's (sorted) order.
    pub entries: Vec<EnrEntry>,
}

/// One key of an ENR and its value, decoded where the key is known.
#[derive(Clone, Debug, Serialize)]
pub struct EnrEntry {
    /// The key.
    pub key: String,
    /// The value: an address, a port, a fork id, or the raw RLP in hex.
    pub value: String,
}

/// What a discv5 PING and a FINDNODE at distance 0 learnt.
#[derive(Clone, Debug, Serialize)]
pub struct Discv5Probe {
    /// The UDP address probed.
    pub addr: SocketAddr,
    /// Round trip of a PING once the session exists, in milliseconds.
    pub rtt_ms: f64,
    /// The ENR sequence number the PONG states.
    pub enr_seq: u64,
    /// Our address as the node saw it.
    pub observed: SocketAddr,
    /// The record the node returned for itself (may be newer than the one probed).
    pub enr: EnrView,
}

/// Parses `text` (`enr:…`) and lists its keys.
pub fn decode_enr(text: &str) -> Result<EnrView, Error> {
    let enr: Enr = text.trim().parse().map_err(|problem| Error::InvalidEnr {
        text: text.chars().take(40).collect(),
        problem,
    })?;
    Ok(view(&enr))
}

pub(crate) fn view(enr: &Enr) -> EnrView {
    let entries = enr
        .iter()
        .map(|(key, rlp)| {
            let key = String::from_utf8_lossy(key).into_owned();
            let value = describe(&key, rlp).unwrap_or_else(|| format!("0x{}", hex::encode(rlp)));
            EnrEntry { key, value }
        })
        .collect();
    EnrView {
        text: enr.to_base64(),
        seq: enr.seq(),
        node_id: format!("0x{}", hex::encode(enr.node_id().raw())),
        entries,
    }
}

/// The value of a known key, readable; `None` for a key we do not know or a value that
/// does not decode as that key's (then the raw RLP is shown).
fn describe(key: &str, rlp: &[u8]) -> Option<String> {
    let bytes = || {
        let mut buf = rlp;
        let header = Header::decode(&mut buf).ok()?;
        (!header.list && buf.len() == header.payload_length).then_some(buf)
    };
    match key {
        "id" => Some(String::from_utf8_lossy(bytes()?).into_owned()),
        "secp256k1" => Some(format!("0x{}", hex::encode(bytes()?))),
        "ip" => Some(Ipv4Addr::from(<[u8; 4]>::try_from(bytes()?).ok()?).to_string()),
        "ip6" => Some(Ipv6Addr::from(<[u8; 16]>::try_from(bytes()?).ok()?).to_string()),
        "udp" | "tcp" | "udp6" | "tcp6" | MUX_ENR_KEY => {
            Some(u16::decode(&mut &rlp[..]).ok()?.to_string())
        }
        ETH_ENR_KEY => {
            let fork = crate::decode_enr_value(rlp).ok()?;
            Some(format!(
                "fork hash 0x{}, next {}",
                hex::encode(fork.hash.0),
                fork.next
            ))
        }
        _ => None,
    }
}

/// PINGs the node of `enr` (twice: the first sets up the session), then asks it for its
/// own record; each step within `timeout`.
pub async fn discv5(enr: &str, timeout: Duration) -> Result<Discv5Probe, Error> {
    let target: Enr = enr.trim().parse().map_err(|problem| Error::InvalidEnr {
        text: enr.chars().take(40).collect(),
        problem,
    })?;
    let addr = match (target.udp4_socket(), target.udp6_socket()) {
        (Some(v4), _) => SocketAddr::V4(v4),
        (None, Some(v6)) => SocketAddr::V6(v6),
        (None, None) => return Err(Error::Rejected("the record has no UDP address")),
    };
    let listen = match addr {
        SocketAddr::V4(_) => ListenConfig::Ipv4 {
            ip: Ipv4Addr::UNSPECIFIED,
            port: 0,
        },
        SocketAddr::V6(_) => ListenConfig::Ipv6 {
            ip: Ipv6Addr::UNSPECIFIED,
            port: 0,
        },
    };
    let key = CombinedKey::generate_secp256k1();
    let local = enr::Enr::builder()
        .build(&key)
        .map_err(|e| Error::LocalEnr(e.to_string()))?;
    let mut config = ConfigBuilder::new(listen);
    config
        .request_timeout(timeout)
        .auto_nat_listen_duration(None);
    let mut service =
        Discv5::new(local, key, config.build()).map_err(|e| Error::Discv5(e.to_string()))?;
    service
        .start()
        .await
        .map_err(|e| Error::Discv5(e.to_string()))?;
    let within = |what: &'static str, e: String| Error::Discv5(format!("{what}: {e}"));
    let result = async {
        let ping = || async {
            tokio::time::timeout(timeout, service.send_ping(target.clone()))
                .await
                .map_err(|_| within("PING", format!("no PONG within {timeout:?}")))?
                .map_err(|e| within("PING", e.to_string()))
        };
        ping().await?;
        let sent = Instant::now();
        let pong = ping().await?;
        let rtt = sent.elapsed();
        let records = tokio::time::timeout(
            timeout,
            service.find_node_designated_peer(target.clone(), vec![0]),
        )
        .await
        .map_err(|_| within("FINDNODE", format!("no NODES within {timeout:?}")))?
        .map_err(|e| within("FINDNODE", e.to_string()))?;
        let own = records
            .into_iter()
            .find(|r| r.node_id() == target.node_id())
            .ok_or_else(|| within("FINDNODE", "the node did not return its own record".into()))?;
        Ok(Discv5Probe {
            addr,
            rtt_ms: rtt.as_secs_f64() * 1e3,
            enr_seq: pong.enr_seq,
            observed: SocketAddr::new(pong.ip, pong.port),
            enr: view(&own),
        })
    }
    .await;
    service.shutdown();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_key_is_spelled_out() {
        let key = CombinedKey::secp256k1_from_bytes(&mut [1u8; 32]).unwrap();
        let enr = enr::Enr::builder()
            .ip4(Ipv4Addr::new(127, 0, 0, 1))
            .udp4(30303)
            .tcp4(30304)
            .add_value(MUX_ENR_KEY, &31303u16)
            .add_value(
                ETH_ENR_KEY,
                &crate::eth_entry::enr_value(crate::ForkId {
                    hash: crate::ForkHash([0xfc, 0x64, 0xec, 0x04]),
                    next: 1_150_000,
                }),
            )
            .add_value("zzz", &vec![1u8, 2, 3])
            .build(&key)
            .unwrap();
        let view = decode_enr(&enr.to_base64()).unwrap();
        let get = |k: &str| {
            view.entries
                .iter()
                .find(|e| e.key == k)
                .map(|e| e.value.clone())
                .unwrap_or_default()
        };
        assert_eq!(get("id"), "v4");
        assert_eq!(get("ip"), "127.0.0.1");
        assert_eq!(
            (get("udp"), get("tcp"), get("mux")),
            ("30303".into(), "30304".into(), "31303".into())
        );
        assert_eq!(get("eth"), "fork hash 0xfc64ec04, next 1150000");
        assert!(get("secp256k1").starts_with("0x02") || get("secp256k1").starts_with("0x03"));
        assert_eq!(get("zzz"), "0xc3010203", "unknown keys as raw RLP");
        assert_eq!(
            view.node_id,
            format!("0x{}", hex::encode(enr.node_id().raw()))
        );
        assert!(decode_enr("enr:not-a-record").is_err());
    }
}
