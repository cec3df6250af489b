//! What the report says about the machine, and the server's memory from `/proc`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

/// Cores, memory, CPU model and kernel, as far as `/proc` tells.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cores: usize,
    pub mem_gib: Option<f64>,
    pub cpu: String,
    pub kernel: String,
}

impl Machine {
    pub fn detect() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let mem_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| kib_field(&text, "MemTotal"))
            .map(|kib| kib as f64 / (1024.0 * 1024.0));
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines().find_map(|line| {
                    let (key, value) = line.split_once(':')?;
                    let key = key.trim();
                    (key == "model name" || key == "Model" || key == "cpu model")
                        .then(|| value.split_whitespace().collect::<Vec<_>>().join(" "))
                })
            })
            .unwrap_or_else(|| "unknown CPU".to_owned());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|k| format!("Linux {}", k.trim()))
            .unwrap_or_else(|_| std::env::consts::OS.to_owned());
        Self {
            cores,
            mem_gib,
            cpu,
            kernel,
        }
    }

    pub fn line(&self) -> String {
        let mem = self
            .mem_gib
            .map_or_else(|| "? GiB".to_owned(), |g| format!("{g:.1} GiB"));
        let cores = if self.cores == 1 {
            "1 core".to_owned()
        } else {
            format!("{} cores", self.cores)
        };
        format!("{cores}, {mem}, {}, {}", self.cpu, self.kernel)
    }

    pub fn to_json(&self) -> Value {
        let mem_gib = self.mem_gib.map(|g| (g * 100.0).round() / 100.0);
        json!({ "cores": self.cores, "mem_gib": mem_gib, "cpu": self.cpu, "kernel": self.kernel })
    }
}

/// A `Name:   1234 kB` field of `/proc/meminfo` or `/proc/PID/status`, in KiB.
pub fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// VmRSS and VmHWM of a process, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub rss_kib: Option<u64>,
    pub hwm_kib: Option<u64>,
}

pub fn read_memory(pid: u32) -> std::io::Result<Memory> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(Memory {
        rss_kib: kib_field(&text, "VmRSS"),
        hwm_kib: kib_field(&text, "VmHWM"),
    })
}

/// What the sampler saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryReport {
    pub peak_rss_kib: Option<u64>,
    /// VmHWM read when sampling stopped: the process's lifetime peak.
    pub hwm_kib: Option<u64>,
    pub samples: u64,
    /// The process could not be read any more (it exited?).
    pub lost: bool,
}

/// Sample VmRSS every 100 ms until `done` is set; then read VmHWM once more.
pub async fn sample_memory(pid: u32, done: Arc<AtomicBool>) -> MemoryReport {
    let mut report = MemoryReport::default();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let finished = done.load(Ordering::Relaxed);
        match read_memory(pid) {
            Ok(m) => {
                report.samples += 1;
                if let Some(rss) = m.rss_kib {
                    report.peak_rss_kib = Some(report.peak_rss_kib.map_or(rss, |p| p.max(rss)));
                }
                if m.hwm_kib.is_some() {
                    report.hwm_kib = m.hwm_kib;
                }
            }
            Err(_) => {
                report.lost = true;
                return report;
            }
        }
        if finished {
            return report;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields() {
        let status = "Name:\twarden\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\n";
        assert_eq!(kib_field(status, "VmRSS"), Some(40960));
        assert_eq!(kib_field(status, "VmHWM"), Some(51200));
        assert_eq!(kib_field(status, "VmSwap"), None);
        assert_eq!(
            kib_field("MemTotalX: 5 kB\nMemTotal: 7 kB", "MemTotal"),
            Some(7)
        );
    }

    #[test]
    fn own_process_is_readable() {
        let m = read_memory(std::process::id()).unwrap();
        assert!(m.rss_kib.unwrap_or(0) > 0);
    }
}
