//! The figures of a run, as a table and as JSON, and the command line that reproduces it.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use reqwest::Url;
use serde_json::{Value, json};

use crate::cli::is_secret_header;
use crate::machine::{Machine, MemoryReport};

/// Latency percentiles of the OK calls, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    /// From a histogram of microseconds.
    pub fn from_micros(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Self {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Figures {
    pub tool: String,
    pub url: String,
    pub command: String,
    pub machine: Machine,
    pub sessions: u32,
    pub warmup: Duration,
    /// Calls started after the warm-up, and of them the failed ones.
    pub requests: u64,
    pub errors: u64,
    /// From the end of the warm-up until the last counted call finished.
    pub window: Duration,
    pub latency: Option<Latency>,
    pub memory: Option<MemoryReport>,
    pub first_error: Option<String>,
    pub interrupted: bool,
}

impl Figures {
    pub fn ok(&self) -> u64 {
        self.requests - self.errors
    }

    /// OK calls per second over the measured window.
    pub fn req_per_s(&self) -> f64 {
        let secs = self.window.as_secs_f64();
        if secs > 0.0 {
            self.ok() as f64 / secs
        } else {
            0.0
        }
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "warden-bench: tools/call {} over Streamable HTTP",
            self.tool
        );
        let _ = writeln!(out, "command   {}", self.command);
        let _ = writeln!(out, "machine   {}", self.machine.line());
        let _ = writeln!(
            out,
            "window    {:.2}s measured after {:.1}s warm-up{}",
            self.window.as_secs_f64(),
            self.warmup.as_secs_f64(),
            if self.interrupted {
                " (interrupted)"
            } else {
                ""
            }
        );
        if let Some(m) = &self.memory {
            let hwm = m.hwm_kib.map_or_else(|| "n/a".to_owned(), mib);
            let lost = if m.lost {
                "; the process could no longer be read (did it exit?)"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "server    VmHWM {hwm} MiB at the end, {} RSS samples{lost}",
                m.samples
            );
        }
        out.push_str("| sessions | requests | errors | req/s | p50 ms | p99 ms | max ms | server peak RSS MiB |\n");
        out.push_str("|---|---|---|---|---|---|---|---|\n");
        let (p50, p99, max) = match &self.latency {
            Some(l) => (ms(l.p50), ms(l.p99), ms(l.max)),
            None => ("n/a".to_owned(), "n/a".to_owned(), "n/a".to_owned()),
        };
        let rss = self
            .memory
            .and_then(|m| m.peak_rss_kib)
            .map_or_else(|| "n/a".to_owned(), mib);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.1} | {p50} | {p99} | {max} | {rss} |",
            self.sessions,
            self.requests,
            self.errors,
            self.req_per_s()
        );
        if let Some(e) = &self.first_error {
            let _ = writeln!(out, "first error: {e}");
        }
        out
    }

    pub fn to_json(&self) -> Value {
        let round = |v: f64| (v * 1000.0).round() / 1000.0;
        let lat = |f: fn(&Latency) -> f64| self.latency.as_ref().map(|l| round(f(l)));
        let kib_to_mib = |k: Option<u64>| k.map(|k| round(k as f64 / 1024.0));
        json!({
            "tool": self.tool,
            "url": self.url,
            "command": self.command,
            "machine": self.machine.to_json(),
            "sessions": self.sessions,
            "warmup_s": round(self.warmup.as_secs_f64()),
            "window_s": round(self.window.as_secs_f64()),
            "requests": self.requests,
            "ok": self.ok(),
            "errors": self.errors,
            "req_per_s": round(self.req_per_s()),
            "p50_ms": lat(|l| l.p50),
            "p90_ms": lat(|l| l.p90),
            "p99_ms": lat(|l| l.p99),
            "max_ms": lat(|l| l.max),
            "mean_ms": lat(|l| l.mean),
            "server_peak_rss_mib": kib_to_mib(self.memory.and_then(|m| m.peak_rss_kib)),
            "server_hwm_mib": kib_to_mib(self.memory.and_then(|m| m.hwm_kib)),
            "first_error": self.first_error,
            "interrupted": self.interrupted,
        })
    }
}

fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// The command line as typed, quoted for a POSIX shell, with credentials masked:
/// the values of secret-looking `--header`s and any password in a URL.
pub fn command_line(argv: &[String]) -> String {
    let mut out = Vec::with_capacity(argv.len());
    let mut header_value_next = false;
    for arg in argv {
        let shown = if header_value_next {
            header_value_next = false;
            mask_header(arg)
        } else if arg == "--header" || arg == "-H" {
            header_value_next = true;
            arg.clone()
        } else if let Some(h) = arg.strip_prefix("--header=") {
            format!("--header={}", mask_header(h))
        } else if let Some(h) = arg.strip_prefix("-H").filter(|h| !h.is_empty()) {
            format!("-H{}", mask_header(h))
        } else {
            mask_url_password(arg)
        };
        out.push(shell_quote(&shown));
    }
    out.join(" ")
}

fn mask_header(text: &str) -> String {
    match text.split_once(':') {
        Some((name, _)) if is_secret_header(name.trim()) => format!("{}: ***", name.trim()),
        _ => text.to_owned(),
    }
}

fn mask_url_password(arg: &str) -> String {
    let (prefix, candidate) = match arg.split_once('=') {
        Some((flag, value)) if flag.starts_with("--") => (format!("{flag}="), value),
        _ => (String::new(), arg),
    };
    if !candidate.contains("://") || !candidate.contains('@') {
        return arg.to_owned();
    }
    match Url::parse(candidate) {
        Ok(mut url) if url.password().is_some() => {
            if url.set_password(Some("***")).is_err() {
                return arg.to_owned();
            }
            format!("{prefix}{url}")
        }
        _ => arg.to_owned(),
    }
}

/// Leave plain words alone; single-quote the rest.
pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn command_line_quotes_and_masks() {
        let line = command_line(&argv(&[
            "target/release/warden-bench",
            "--url",
            "http://127.0.0.1:8080/mcp",
            "--args",
            r#"{"query":"a"}"#,
            "--header",
            "Authorization: Bearer sekrit",
            "-H",
            "X-Trace: it's",
            "--header=X-Api-Key: k",
        ]));
        assert_eq!(
            line,
            r#"target/release/warden-bench --url http://127.0.0.1:8080/mcp --args '{"query":"a"}' --header 'Authorization: ***' -H 'X-Trace: it'\''s' '--header=X-Api-Key: ***'"#
        );
        assert!(!line.contains("sekrit"));
    }

    #[test]
    fn url_passwords_are_masked() {
        let line = command_line(&argv(&[
            "warden-bench",
            "--url=http://u:pw@127.0.0.1:8080/mcp",
        ]));
        assert_eq!(line, "warden-bench '--url=http://u:***@127.0.0.1:8080/mcp'");
    }

    #[test]
    fn table_and_json() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for us in [1000, 2000, 3000, 4000, 30000] {
            h.record(us).unwrap();
        }
        let figures = Figures {
            tool: "search_vendors".into(),
            url: "http://127.0.0.1:8080/mcp".into(),
            command: "warden-bench --url http://127.0.0.1:8080/mcp".into(),
            machine: Machine {
                cores: 2,
                mem_gib: Some(23.5),
                cpu: "Test CPU".into(),
                kernel: "linux 6.1".into(),
            },
            sessions: 64,
            warmup: Duration::from_secs(2),
            requests: 6,
            errors: 1,
            window: Duration::from_secs(2),
            latency: Latency::from_micros(&h),
            memory: None,
            first_error: Some("tool error: boom".into()),
            interrupted: false,
        };
        let table = figures.table();
        assert!(
            table.contains("| 64 | 6 | 1 | 2.5 | 3.00 | 30.0 | 30.0 | n/a |"),
            "{table}"
        );
        assert!(table.contains("machine   2 cores, 23.5 GiB, Test CPU, linux 6.1"));
        let v = figures.to_json();
        assert_eq!(v["ok"], 5);
        assert_eq!(v["req_per_s"], 2.5);
        assert_eq!(v["server_peak_rss_mib"], Value::Null);
    }
}
