//! Percentiles and medians, and what /proc says of a process: CPU time, RSS.

use std::time::Duration;

use anyhow::Context as _;

/// The `p`-th percentile (0–100, nearest rank) of `samples` (sorted here).
pub(crate) fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// Median, minimum and maximum of a row's per-run values.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub(crate) struct Summary {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

pub(crate) fn summarize(values: &[f64]) -> Option<Summary> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Summary {
        median,
        min: v[0],
        max: v[n - 1],
    })
}

/// Setup latency figures of one batch of connections.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SetupResult {
    /// Connections completed per second of wall time.
    pub(crate) rate: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    /// Process CPU time per connection, both ends, in µs.
    pub(crate) cpu_us: f64,
}

impl SetupResult {
    pub(crate) fn from_samples((mut lat, wall, cpu): (Vec<Duration>, Duration, Duration)) -> Self {
        let n = lat.len();
        Self {
            cpu_us: cpu.as_secs_f64() * 1e6 / n.max(1) as f64,
            rate: n as f64 / wall.as_secs_f64(),
            p50_ms: percentile(&mut lat, 50.0).as_secs_f64() * 1e3,
            p99_ms: percentile(&mut lat, 99.0).as_secs_f64() * 1e3,
        }
    }
}

/// Round-trip figures.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RttResult {
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
}

impl RttResult {
    pub(crate) fn from_samples(mut lat: Vec<Duration>) -> Self {
        Self {
            p50_us: percentile(&mut lat, 50.0).as_secs_f64() * 1e6,
            p99_us: percentile(&mut lat, 99.0).as_secs_f64() * 1e6,
        }
    }
}

/// Resident set size in bytes (`VmRSS` of /proc/self/status).
pub(crate) fn rss_bytes() -> anyhow::Result<u64> {
    process_rss_bytes("self")
}

/// Resident set size of process `pid` ("self" or a number), in bytes.
pub(crate) fn process_rss_bytes(pid: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS in /proc/PID/status")?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .context("malformed VmRSS")?
        .parse()?;
    Ok(kib * 1024)
}

/// CPU time (user + system) this process has used, from /proc/self/stat.
/// Resolution: one clock tick (10 ms).
pub(crate) fn cpu_time() -> Duration {
    process_cpu_time("self")
}

/// CPU time (user + system, all threads, live and ended) of process `pid` ("self"
/// or a number), from /proc/PID/stat.
pub(crate) fn process_cpu_time(pid: &str) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the command name (which may hold spaces) start at field 3.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the ')'.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// MiB per second for `bytes` in `elapsed`.
pub(crate) fn mib_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_medians() {
        let mut v: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(percentile(&mut v, 50.0), Duration::from_micros(50));
        assert_eq!(percentile(&mut v, 99.0), Duration::from_micros(99));
        let s = summarize(&[3.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 10.0));
    }
}
