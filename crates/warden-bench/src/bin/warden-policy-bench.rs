//! Measures the policy stage per call: building the variables, 5 input rules and 5 output
//! rules (filter, mask, conditional) on a 20-row result. Prints a table.

#![forbid(unsafe_code)]

use std::path::Path;
use std::time::Instant;

use clap::Parser;
use serde_json::{Value, json};
use warden_core::identity::Principal;
use warden_core::identity::{Role, Scopes};
use warden_core::pipeline::{Source, policy_variables};

#[derive(Debug, Parser)]
#[command(
    name = "warden-policy-bench",
    about = "Measure the cost of CEL policy evaluation per call (10 rules)",
    after_help = "Example:\n  warden-policy-bench --calls 20000"
)]
struct Args {
    #[arg(long, default_value_t = 20_000)]
    calls: u32,
}

const PROJECT: &str = r#"
version: 1
name: policy-bench
data: { sqlite: unused.db }
tools:
  - name: search
    description: bench
    access: read
    params:
      - { name: query, type: string }
      - { name: limit, type: integer, default: 20 }
    sql: SELECT :query, :limit
    sensitive: [annual_spend]
    policies:
      input:
        - { name: r1, condition: "args.limit > 50 && user.role != 'admin'", reason: "too many" }
        - { name: r2, condition: "user.email.endsWith('@evil.example')", reason: "blocked domain" }
        - { name: r3, condition: "size(args.query) > 80", reason: "query too long" }
        - { name: r4, condition: "!('mcp:read' in user.scopes)", reason: "no read scope" }
        - { name: r5, condition: "request.source == 'stdio' && user.role == 'guest'", reason: "no stdio for guests" }
      output:
        - { name: o1, action: filter_sensitive_fields, condition: "user.role != 'admin'" }
        - { name: o2, action: mask_fields, fields: [owner_email], condition: "user.role == 'guest'" }
        - { name: o3, action: filter_fields, fields: [internal_notes] }
        - { name: o4, action: mask_fields, fields: [contact.phone] }
        - { name: o5, action: deny, condition: "size(response.rows) > 500" }
"#;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let argv: Vec<String> = std::env::args().collect();
    println!(
        "warden-policy-bench: CEL policy stage per call, 10 rules (5 input, 5 output), 20-row result"
    );
    println!("command   {}", argv.join(" "));
    println!(
        "machine   {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| case | calls | mean µs | p50 µs | p99 µs |");
    println!("|---|---|---|---|---|");
    // Rules over user, args, tool and request only; then one output rule reads the result.
    let light = PROJECT.replace("size(response.rows) > 500", "args.limit > 1000");
    for (case, yaml) in [
        ("10 rules, none reads the result", light.as_str()),
        ("10 rules, one reads the 20-row result", PROJECT),
    ] {
        let (mean, p50, p99) = measure(yaml, args.calls)?;
        println!(
            "| {case} | {} | {mean:.1} | {p50:.1} | {p99:.1} |",
            args.calls
        );
    }
    Ok(())
}

fn measure(yaml: &str, calls: u32) -> anyhow::Result<(f64, f64, f64)> {
    let project = warden_core::project::load_str(yaml, Path::new("bench.yaml"), |_| None)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let tool = project
        .tool("search")
        .ok_or_else(|| anyhow::anyhow!("no tool"))?;
    let caller = Principal {
        user_id: "u1".into(),
        email: "mo@acme.example".into(),
        org: "acme".into(),
        role: Role::Guest,
        scopes: Scopes::READ,
        method: "oauth",
        credential: "c1".into(),
    };
    let rows: Vec<Value> = (0..20)
        .map(|i| json!({"id": format!("V-{i:03}"), "name": format!("Vendor {i}"), "owner_email": "a@x.example",
                        "annual_spend": 1000 * i, "internal_notes": "n", "contact": {"phone": "123", "name": "C"}}))
        .collect();
    let response = json!({"rows": rows, "row_count": 20, "truncated": false});
    let call_args = json!({"query": "cloud", "limit": 20}).as_object().cloned();
    let once = |out: &mut Value| -> anyhow::Result<()> {
        let mut vars = policy_variables(tool, call_args.as_ref(), Some(&caller), Source::Http);
        tool.policies
            .check_input(&vars)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        tool.policies
            .apply_output(&mut vars, out)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    };
    let mut check = response.clone();
    once(&mut check)?;
    anyhow::ensure!(
        check["rows"][0]["owner_email"] == "****" && check["rows"][0].get("annual_spend").is_none(),
        "rules did not apply"
    );
    for _ in 0..500 {
        once(&mut response.clone())?;
    }
    // Each call gets a fresh copy of the result, made outside the timed part (the real
    // pipeline owns its result); only the policy stage is timed.
    let mut samples = Vec::with_capacity(calls as usize);
    let mut timed = std::time::Duration::ZERO;
    let started = Instant::now();
    for _ in 0..calls {
        let mut out = response.clone();
        let t = Instant::now();
        once(&mut out)?;
        let e = t.elapsed();
        timed += e;
        samples.push(e.as_secs_f64() * 1e6);
        std::hint::black_box(&out);
    }
    let _ = started;
    let total = timed.as_secs_f64();
    samples.sort_by(f64::total_cmp);
    Ok((
        total * 1e6 / f64::from(calls),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
    ))
}
