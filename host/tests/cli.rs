//! The plugin author's tools, run as the real binary: `plugin check`,
//! `plugin call`, and the documented template workflow (copy, change,
//! build, check, call).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn dist(name: &str) -> PathBuf {
    let path = repo().join("plugins/dist").join(format!("{name}.wasm"));
    assert!(path.exists(), "{} is missing: run scripts/setup", path.display());
    path
}

fn switchyard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .current_dir(repo())
        .env("SWITCHYARD_CACHE_DIR", repo().join("target/test-component-cache"))
        .output()
        .expect("switchyard runs")
}

fn ok(out: &Output) -> String {
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "failed: {stderr}\n{stdout}");
    stdout.into_owned()
}

fn fails(out: &Output) -> String {
    assert!(!out.status.success(), "unexpectedly succeeded: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn check_reports_world_version_exports_size_and_compile_time() {
    let out = ok(&switchyard(&["plugin", "check", dist("router-r1").to_str().unwrap()]));
    assert!(out.contains("world:        reward (switchyard:plugin@0.1.0)"), "{out}");
    assert!(out.contains("exports:      score, score-batch"), "{out}");
    assert!(out.contains("compile time:") && out.contains("size:"), "{out}");

    let json = ok(&switchyard(&["plugin", "check", "--json", dist("openai-chat").to_str().unwrap()]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["kind"], "adapter");
    assert_eq!(v["version"], "0.1.0");
    assert!(v["size_bytes"].as_u64().unwrap() > 1000);
}

#[test]
fn check_refuses_non_plugins_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("notes.wasm");
    std::fs::write(&bad, "hello").unwrap();
    let err = fails(&switchyard(&["plugin", "check", bad.to_str().unwrap()]));
    assert!(err.contains("notes") && err.contains("not a WebAssembly binary"), "{err}");
    let err = fails(&switchyard(&["plugin", "check", "/nonexistent/x.wasm"]));
    assert!(err.contains("/nonexistent/x.wasm"), "{err}");
}

#[test]
fn call_runs_each_world() {
    let cost = ok(&switchyard(&[
        "plugin",
        "call",
        dist("token-price").to_str().unwrap(),
        "--input",
        r#"{"model": {"name": "m", "price_in_per_mtok": 1.0, "price_out_per_mtok": 3.0, "latency_ms": 10, "context_tokens": 1000},
            "usage": {"input_tokens": 2000, "output_tokens": 1000}}"#,
    ]));
    let v: serde_json::Value = serde_json::from_str(&cost).unwrap();
    assert!((v["cost"].as_f64().unwrap() - 0.005).abs() < 1e-12, "{cost}");

    let request = ok(&switchyard(&[
        "plugin",
        "call",
        dist("openai-chat").to_str().unwrap(),
        "--input",
        r#"{"build_request": {"base_url": "http://127.0.0.1:9/v1",
            "request": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}}}"#,
    ]));
    let v: serde_json::Value = serde_json::from_str(&request).unwrap();
    assert_eq!(v["url"], "http://127.0.0.1:9/v1/chat/completions");
    assert_eq!(v["method"], "POST");

    let action = ok(&switchyard(&[
        "plugin",
        "call",
        dist("cheapest").to_str().unwrap(),
        "--input",
        r#"{"state": {"question": "q?", "max_turns": 4, "pool": [
            {"name": "a", "price_in_per_mtok": 1.0, "price_out_per_mtok": 1.0, "latency_ms": 1, "context_tokens": 1},
            {"name": "b", "price_in_per_mtok": 0.1, "price_out_per_mtok": 0.1, "latency_ms": 1, "context_tokens": 1}]}}"#,
    ]));
    let v: serde_json::Value = serde_json::from_str(&action).unwrap();
    assert_eq!(v["route"]["model"], "b", "{action}");
}

#[test]
fn call_reports_bad_input_and_plugin_refusals() {
    let err = fails(&switchyard(&["plugin", "call", dist("token-price").to_str().unwrap(), "--input", "{not json"]));
    assert!(err.contains("not valid JSON"), "{err}");
    let err =
        fails(&switchyard(&["plugin", "call", dist("token-price").to_str().unwrap(), "--input", r#"{"usage": {}}"#]));
    assert!(err.contains("cost world's call shape"), "{err}");
    let err = fails(&switchyard(&[
        "plugin",
        "call",
        dist("token-price").to_str().unwrap(),
        "--input",
        r#"{"model": {"name": "m", "price_in_per_mtok": 1.0, "price_out_per_mtok": 1.0, "latency_ms": 1, "context_tokens": 1},
            "usage": {"input_tokens": 1, "output_tokens": 1}, "settings": [{"name": "bogus", "value": 1.0}]}"#,
    ]));
    assert!(err.contains("token-price") && err.contains("refused"), "{err}");
}
