//! The ENR file: seen records as `enr:` text lines, replaced atomically.
//!
//! A text file rather than a database: it is small (at most
//! [`DiscoveryConfig::persist_max`](crate::DiscoveryConfig::persist_max) lines), written
//! whole every few minutes, readable and editable by hand, and it leaves the node's redb
//! files (chain, peer pool) to their owners. Writes go to `<file>.tmp`, are synced and
//! renamed over the file, so a crash leaves the old or the new list, never half of one.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use tracing::debug;

use crate::Enr;

const HEADER: &str =
    "# devmux discovery: ENRs seen by this node, one per line; rewritten while it runs\n";

/// Reads the file; a missing file is an empty list. Lines that are not valid ENRs are
/// skipped (and logged): one bad line must not cost the others.
pub(crate) fn load(path: &Path) -> io::Result<Vec<Enr>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.parse::<Enr>() {
            Ok(enr) => out.push(enr),
            Err(problem) => {
                debug!(path = %path.display(), line = n + 1, %problem, "skipping bad ENR line")
            }
        }
    }
    Ok(out)
}

/// Keeps the highest `seq` per node, in first-seen order, at most `max`.
pub(crate) fn dedupe(enrs: impl IntoIterator<Item = Enr>, max: usize) -> Vec<Enr> {
    let mut index: HashMap<enr::NodeId, usize> = HashMap::new();
    let mut out: Vec<Enr> = Vec::new();
    for enr in enrs {
        match index.get(&enr.node_id()) {
            Some(&i) => {
                if enr.seq() > out[i].seq() {
                    out[i] = enr;
                }
            }
            None => {
                if out.len() < max {
                    index.insert(enr.node_id(), out.len());
                    out.push(enr);
                }
            }
        }
    }
    out
}

/// Replaces the file with `enrs`, atomically.
pub(crate) fn save(path: &Path, enrs: &[Enr]) -> io::Result<()> {
    let tmp = tmp_path(path);
    let mut text = String::from(HEADER);
    for enr in enrs {
        text.push_str(&enr.to_base64());
        text.push('\n');
    }
    {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    // Make the rename durable; best effort (not every platform can open a directory).
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(dir) = fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use enr::CombinedKey;

    fn record(secret: u8, seq: u64, port: u16) -> Enr {
        let key = CombinedKey::secp256k1_from_bytes(&mut [secret; 32]).unwrap();
        Enr::builder()
            .seq(seq)
            .ip4(std::net::Ipv4Addr::LOCALHOST)
            .udp4(port)
            .build(&key)
            .unwrap()
    }

    #[test]
    fn save_load_dedupe_and_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("discovery-enrs.txt");
        assert!(load(&path).unwrap().is_empty());

        let list = dedupe(
            [
                record(1, 1, 1000),
                record(2, 1, 2000),
                record(1, 5, 1001),
                record(3, 1, 3000),
            ],
            2,
        );
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].seq(), 5);
        assert_eq!(list[0].udp4(), Some(1001));
        save(&path, &list).unwrap();
        assert!(!tmp_path(&path).exists());

        let back = load(&path).unwrap();
        assert_eq!(back, list);

        let mut text = fs::read_to_string(&path).unwrap();
        text.push_str("enr:garbage\n\n   \nnot an enr\n");
        fs::write(&path, text).unwrap();
        assert_eq!(load(&path).unwrap(), list);
    }
}
