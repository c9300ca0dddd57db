//! TXT lookups behind a small trait: hickory's resolver in production, a map in unit
//! tests.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;

use super::DnsError;

/// The future a [`TxtResolver`] returns.
pub type TxtFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<String>, DnsError>> + Send + 'a>>;

/// Looks up the TXT records of a name. Each record's character-strings are joined into one
/// string (an entry longer than 255 bytes spans several); records that are not UTF-8 are
/// left out. The walker puts its own deadline around every call.
pub trait TxtResolver: Send + Sync + 'static {
    /// The TXT records of `name`, an absolute name (it ends with a dot).
    fn lookup_txt<'a>(&'a self, name: &'a str) -> TxtFuture<'a>;
}

/// At most this many TXT records of one name are looked at: a tree entry is one record.
pub const MAX_TXT_RECORDS: usize = 8;

/// [`TxtResolver`] over hickory's resolver: the system configuration
/// (`/etc/resolv.conf`), or one nameserver given by address (UDP, with TCP for
/// truncated answers).
#[derive(Clone)]
pub struct HickoryResolver {
    inner: TokioResolver,
}

impl std::fmt::Debug for HickoryResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HickoryResolver")
    }
}

impl HickoryResolver {
    /// A resolver using `nameserver` if given, the system configuration otherwise.
    /// `timeout` bounds each query hickory sends.
    pub fn new(nameserver: Option<SocketAddr>, timeout: Duration) -> Result<Self, DnsError> {
        let mut builder = match nameserver {
            Some(addr) => {
                let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                server.connections = vec![udp, tcp];
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![server]),
                    TokioRuntimeProvider::default(),
                )
            }
            None => TokioResolver::builder_tokio()
                .map_err(|e| DnsError::Resolver(format!("system DNS configuration: {e}")))?,
        };
        let opts: &mut ResolverOpts = builder.options_mut();
        opts.timeout = timeout;
        // One attempt: the walker retries a failed entry on its next round, and its own
        // deadline covers the whole lookup.
        opts.attempts = 1;
        let inner = builder
            .build()
            .map_err(|e| DnsError::Resolver(format!("building the resolver: {e}")))?;
        Ok(HickoryResolver { inner })
    }
}

impl TxtResolver for HickoryResolver {
    fn lookup_txt<'a>(&'a self, name: &'a str) -> TxtFuture<'a> {
        Box::pin(async move {
            let lookup = self
                .inner
                .lookup(name, RecordType::TXT)
                .await
                .map_err(|e| DnsError::Lookup {
                    name: name.to_owned(),
                    problem: e.to_string(),
                })?;
            let mut out = Vec::new();
            for record in lookup.answers() {
                if out.len() == MAX_TXT_RECORDS {
                    break;
                }
                if let RData::TXT(txt) = &record.data {
                    let joined: Vec<u8> = txt
                        .txt_data
                        .iter()
                        .flat_map(|s| s.iter().copied())
                        .collect();
                    if let Ok(text) = String::from_utf8(joined) {
                        out.push(text);
                    }
                }
            }
            Ok(out)
        })
    }
}

/// A fixed map of names to TXT records, for unit tests.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct MapResolver {
    pub(crate) records: std::sync::Mutex<std::collections::HashMap<String, String>>,
    pub(crate) lookups: std::sync::atomic::AtomicUsize,
}

#[cfg(test)]
impl MapResolver {
    /// Records as `(name, value)`, names without the trailing dot.
    pub(crate) fn new(records: impl IntoIterator<Item = (String, String)>) -> Self {
        let map = MapResolver::default();
        map.set(records);
        map
    }

    pub(crate) fn set(&self, records: impl IntoIterator<Item = (String, String)>) {
        let mut map = self.records.lock().unwrap_or_else(|p| p.into_inner());
        for (name, value) in records {
            map.insert(name.to_ascii_lowercase(), value);
        }
    }
}

#[cfg(test)]
impl TxtResolver for MapResolver {
    fn lookup_txt<'a>(&'a self, name: &'a str) -> TxtFuture<'a> {
        self.lookups
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key = name.trim_end_matches('.').to_ascii_lowercase();
        let found = self
            .records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        Box::pin(async move {
            found.map(|v| vec![v]).ok_or_else(|| DnsError::Lookup {
                name: name.to_owned(),
                problem: "no such name".into(),
            })
        })
    }
}
