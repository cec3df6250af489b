//! Command-line options and their parsers.

use std::time::Duration;

use clap::Parser;
use reqwest::Url;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{Map, Value};

const AFTER_HELP: &str = "\
Examples:
  # 64 sessions for 10 s after a 2 s warm-up, sampling the server's memory
  warden-bench --url http://127.0.0.1:8080/mcp --sessions 64 --duration 10s \\
      --pid $(pgrep -f 'warden demo')

  # exactly 100000 measured calls, with tool arguments and a bearer token
  warden-bench --url http://127.0.0.1:8080/mcp --requests 100000 \\
      --tool search_vendors --args '{\"query\":\"a\"}' --header 'Authorization: Bearer x'

  # one session, no warm-up; the figures also as one line of JSON at the end
  warden-bench --url http://127.0.0.1:8080/mcp --sessions 1 --warmup 0s --json

Each session initializes over Streamable HTTP (MCP 2025-11-25), then calls the tool in a
loop, one call in flight per session. Calls that start during the warm-up are not counted.
A call is OK when its JSON-RPC response has a result whose isError is not true; req/s and
the latency percentiles cover OK calls only. The table goes to stdout, progress to stderr.
Durations take ms, s, m or h (10s, 500ms, 1.5m); a bare number means seconds.
Exit status: 0 after a run with at least one OK call; 1 when setup fails or every counted
call fails; 130 when stopped with Ctrl-C (the figures so far are still printed).";

/// Load generator for MCP `tools/call` over Streamable HTTP.
#[derive(Debug, Parser)]
#[command(name = "warden-bench", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// MCP endpoint of the running server (Streamable HTTP, plain http://).
    #[arg(long, value_name = "URL")]
    pub url: Url,

    /// Concurrent MCP sessions, each with one call in flight.
    #[arg(long, default_value_t = 64, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub sessions: u32,

    /// How long to measure, after the warm-up.
    #[arg(long, default_value = "10s", value_name = "TIME",
          value_parser = parse_positive_duration, conflicts_with = "requests")]
    pub duration: Duration,

    /// Measure this many calls (across all sessions) instead of a fixed time.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,

    /// Calls during this first period are made but not counted.
    #[arg(long, default_value = "2s", value_name = "TIME", value_parser = parse_duration)]
    pub warmup: Duration,

    /// Tool to call.
    #[arg(long, default_value = "search_vendors", value_name = "NAME")]
    pub tool: String,

    /// Tool arguments, a JSON object.
    #[arg(long, default_value = "{}", value_name = "JSON", value_parser = parse_tool_args)]
    pub args: Map<String, Value>,

    /// Server process id: sample its VmRSS every 100 ms and report the peak.
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,

    /// Extra request header, e.g. 'Authorization: Bearer x' (repeatable).
    #[arg(long = "header", short = 'H', value_name = "'NAME: VALUE'", value_parser = parse_header)]
    pub headers: Vec<(HeaderName, HeaderValue)>,

    /// Give up on one HTTP request after this long (counts as an error).
    #[arg(long, default_value = "30s", value_name = "TIME", value_parser = parse_positive_duration)]
    pub timeout: Duration,

    /// Worker threads for the load generator [default: number of cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,

    /// Also print the figures as one line of JSON after the table.
    #[arg(long)]
    pub json: bool,

    /// No per-second progress on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// `10s`, `500ms`, `1.5m`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a duration; try 10s, 500ms or 2m"))?;
    let secs = match unit.trim() {
        "" | "s" | "sec" | "secs" => number,
        "ms" => number / 1000.0,
        "m" | "min" | "mins" => number * 60.0,
        "h" => number * 3600.0,
        other => {
            return Err(format!(
                "unknown unit '{other}' in '{text}'; use ms, s, m or h"
            ));
        }
    };
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("'{text}' is not a duration that fits; try 10s, 500ms or 2m"))
}

fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d.is_zero() {
        return Err("must be more than zero".to_owned());
    }
    Ok(d)
}

fn parse_tool_args(text: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("tool arguments must be a JSON object, e.g. '{\"query\":\"a\"}'".to_owned()),
        Err(e) => Err(format!(
            "not valid JSON ({e}); quote it for the shell, e.g. '{{\"query\":\"a\"}}'"
        )),
    }
}

/// `Name: value`. Values of credential-like headers are marked sensitive.
pub fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("'{text}' is not a header; write it as 'Name: value'"))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("'{}' is not a valid header name", name.trim()))?;
    let mut value = HeaderValue::from_str(value.trim())
        .map_err(|_| format!("the value of header '{name}' has invalid characters"))?;
    if is_secret_header(name.as_str()) {
        value.set_sensitive(true);
    }
    Ok((name, value))
}

/// Headers whose values must not be echoed in the report.
pub fn is_secret_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "authorization",
        "cookie",
        "token",
        "secret",
        "key",
        "auth",
        "password",
        "session",
    ]
    .iter()
    .any(|w| n.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("10d").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_positive_duration("0s").is_err());
    }

    #[test]
    fn tool_args_must_be_an_object() {
        assert!(parse_tool_args(r#"{"query":"a"}"#).is_ok());
        assert!(parse_tool_args("[1]").is_err());
        assert!(parse_tool_args("{query}").is_err());
    }

    #[test]
    fn headers() {
        let (n, v) = parse_header("Authorization: Bearer x").unwrap();
        assert_eq!(n, "authorization");
        assert_eq!(v, "Bearer x");
        assert!(v.is_sensitive());
        let (_, v) = parse_header("X-Trace:abc").unwrap();
        assert!(!v.is_sensitive());
        assert!(parse_header("no colon").is_err());
    }

    #[test]
    fn requests_conflicts_with_explicit_duration_only() {
        let base = ["warden-bench", "--url", "http://127.0.0.1:8080/mcp"];
        let ok = Cli::try_parse_from(base.iter().chain(&["--requests", "10"])).unwrap();
        assert_eq!(ok.requests, Some(10));
        assert!(
            Cli::try_parse_from(base.iter().chain(&["--requests", "10", "--duration", "5s"]))
                .is_err()
        );
        let defaults = Cli::try_parse_from(base).unwrap();
        assert_eq!(defaults.sessions, 64);
        assert_eq!(defaults.duration, Duration::from_secs(10));
        assert_eq!(defaults.warmup, Duration::from_secs(2));
        assert_eq!(defaults.tool, "search_vendors");
        assert!(defaults.args.is_empty());
    }
}
