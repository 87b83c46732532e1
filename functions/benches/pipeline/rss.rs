//! Memory readings: a process's resident set size now, and this process's peak over a stretch.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio_util::sync::CancellationToken;

/// The `VmRSS` line of a `/proc/<pid>/status` text, in KiB.
fn vm_rss_kib(status: &str) -> Option<f64> {
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// This process's resident set size now, in MiB (0 where `/proc` cannot tell).
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    vm_rss_kib(&status).unwrap_or(0.0) / 1024.0
}

/// Another process's resident set size now, in MiB; panics where `/proc` cannot tell, since a
/// child that is gone has no reading worth reporting.
pub fn rss_mib_of(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    vm_rss_kib(&status).unwrap() / 1024.0
}

/// Samples the process's RSS every 20 ms until stopped; returns the peak.
pub struct PeakRss {
    peak_kib: Arc<AtomicU64>,
    stop: CancellationToken,
}

impl PeakRss {
    /// Starts sampling.
    pub fn start() -> PeakRss {
        let (peak_kib, stop) = (Arc::new(AtomicU64::new(0)), CancellationToken::new());
        let (peak, token) = (peak_kib.clone(), stop.clone());
        tokio::spawn(async move {
            while !token.is_cancelled() {
                peak.fetch_max((rss_mib() * 1024.0) as u64, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        PeakRss { peak_kib, stop }
    }

    /// Stops sampling; the peak seen, in MiB.
    pub fn stop(self) -> f64 {
        self.stop.cancel();
        self.peak_kib.load(Ordering::Relaxed) as f64 / 1024.0
    }
}
