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
fn bench_reports_fresh_and_pre_instantiated_call_latency() {
    let cost = dist("token-price");
    let input = r#"{"model": {"name": "m", "price_in_per_mtok": 1.0, "price_out_per_mtok": 3.0, "latency_ms": 10, "context_tokens": 1000},
        "usage": {"input_tokens": 2000, "output_tokens": 1000}}"#;
    let args = ["plugin", "bench", cost.to_str().unwrap(), "--input", input, "--calls", "40", "--fresh-calls", "4"];
    let out = ok(&switchyard(&[&args[..], &["--json"]].concat()));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["world"], "cost", "{out}");
    let (fresh, pre) = (&v["fresh"], &v["pre_instantiated"]);
    assert_eq!((fresh["calls"].as_u64(), pre["calls"].as_u64()), (Some(4), Some(40)), "{out}");
    for r in [fresh, pre] {
        let (p50, p99, max) =
            (r["p50_us"].as_f64().unwrap(), r["p99_us"].as_f64().unwrap(), r["max_us"].as_f64().unwrap());
        assert!(p50 > 0.0 && p50 <= p99 && p99 <= max, "{out}");
    }
    // A load (file, cache, link) costs more than a call on the loaded component.
    assert!(fresh["p50_us"].as_f64() > pre["p50_us"].as_f64(), "{out}");
    let text = ok(&switchyard(&args));
    assert!(text.contains("load + call (fresh)") && text.contains("call (pre-instantiated)"), "{text}");

    let err = fails(&switchyard(&["plugin", "bench", cost.to_str().unwrap(), "--input", r#"{"usage": {}}"#]));
    assert!(err.contains("call shape"), "{err}");
    let err = fails(&switchyard(&["plugin", "bench", cost.to_str().unwrap(), "--input", input, "--calls", "0"]));
    assert!(err.contains("--calls"), "{err}");
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

#[test]
fn score_reads_raw_trajectories_and_writes_one_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("trajectories.jsonl");
    let lines = [
        serde_json::json!({ "id": "good", "golden_answers": ["Karsk"], "trajectory":
            "<think>ask</think>\n<search>geo: What is the capital of Veloria?</search>\n\n<information>Karsk.</information>\n\n<think>ok</think>\n<answer>Karsk</answer>" }),
        serde_json::json!({ "id": "unknown-model", "golden_answers": ["Karsk"], "trajectory":
            "<think>ask</think>\n<search>gpt-9: capital?</search>\n\n<information>Error: no such model</information>\n\n<think>ok</think>\n<answer>Karsk</answer>" }),
        serde_json::json!({ "id": "wrong", "golden_answers": ["Karsk"], "trajectory": "<think>guess</think>\n<answer>Amsel</answer>" }),
        serde_json::json!({ "id": "answer-in-information", "golden_answers": ["Karsk"], "trajectory":
            "<think>ask</think>\n<search>geo: capital?</search>\n\n<information><answer>Karsk</answer></information>\n\n" }),
    ];
    std::fs::write(&input, lines.iter().map(|l| l.to_string() + "\n").collect::<String>()).unwrap();
    let out = ok(&switchyard(&["score", "--input", input.to_str().unwrap(), "--pool", "geo,echo"]));
    let rows: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 4, "{out}");
    assert_eq!(
        (rows[0]["id"].as_str(), rows[0]["em"].as_f64(), rows[0]["reward"].as_f64()),
        (Some("good"), Some(1.0), Some(1.0))
    );
    assert_eq!((rows[1]["format"].as_f64(), rows[1]["reward"].as_f64()), (Some(-1.0), Some(-1.0)), "{}", rows[1]);
    assert_eq!((rows[2]["em"].as_f64(), rows[2]["reward"].as_f64()), (Some(0.0), Some(0.0)));
    assert_eq!(
        rows[3]["answer"],
        serde_json::Value::Null,
        "an answer inside information is not the router's: {}",
        rows[3]
    );

    std::fs::write(&input, "{not json\n").unwrap();
    let err = fails(&switchyard(&["score", "--input", input.to_str().unwrap()]));
    assert!(err.contains("line 1"), "{err}");
}

#[test]
fn score_writes_every_line_and_fails_when_a_reward_is_out_of_range() {
    let guest = repo().join("tests/guests/dist/misbehaving-reward.wasm");
    assert!(guest.exists(), "{} is missing: run scripts/setup", guest.display());
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("trajectories.jsonl");
    // The misbehaving reward reads its first golden answer as what to do.
    let lines: String = ["behave", "nan", "behave"]
        .iter()
        .enumerate()
        .map(|(i, mode)| {
            serde_json::json!({ "id": i, "golden_answers": [mode], "trajectory": "<think>t</think>\n<answer>x</answer>" })
                .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(&input, lines).unwrap();
    let out = switchyard(&["score", "--input", input.to_str().unwrap(), "--reward", guest.to_str().unwrap()]);
    let err = fails(&out);
    assert!(err.contains("1 of 3 lines could not be scored"), "{err}");
    let rows: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 3, "every line is written, the failed one with its error");
    assert_eq!(rows[0]["reward"].as_f64(), Some(1.0));
    let error = rows[1]["error"].as_str().unwrap();
    assert!(error.contains("`total` must be in [-1, 1], got NaN"), "{error}");
    assert!(rows[1].get("reward").is_none(), "no silent null reward: {}", rows[1]);
    assert_eq!(rows[2]["reward"].as_f64(), Some(1.0));
}

/// GET `path` from `addr` over a raw TCP connection; returns the body.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
}

/// Start `switchyard <args>` (a serve command), return it and its address
/// (read from the first stdout line).
fn spawn_serve(args: &[&str]) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .current_dir(repo())
        .env("SWITCHYARD_CACHE_DIR", repo().join("target/test-component-cache"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut first_line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut first_line).unwrap();
    let addr = first_line.trim().strip_prefix("listening on http://").expect("prints its address").to_string();
    (child, addr)
}

#[test]
fn serve_reloads_on_sighup_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("switchyard.toml");
    let model = |name: &str| {
        format!(
            "[[models]]\nname = \"{name}\"\nadapter = \"openai-chat\"\nendpoint = \"http://127.0.0.1:9/v1\"\n\
             descriptor = {{ price_in_per_mtok = 1.0, price_out_per_mtok = 1.0, latency_ms = 1, context_tokens = 8192 }}\n"
        )
    };
    let header = format!("[plugins]\ndir = \"{}\"\n", repo().join("plugins/dist").display());
    std::fs::write(&config, format!("{header}{}", model("first"))).unwrap();
    let (mut child, addr) = spawn_serve(&["serve", "--config", config.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    assert!(http_get(&addr, "/v1/models").contains("\"first\""));

    std::fs::write(&config, format!("{header}{}{}", model("first"), model("second"))).unwrap();
    let signal = |sig: &str| Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap();
    assert!(signal("-HUP").success());
    let reloaded = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        http_get(&addr, "/v1/models").contains("\"second\"")
    });
    assert!(reloaded, "SIGHUP reloaded the config");

    std::fs::write(&config, "this is not toml [").unwrap();
    assert!(signal("-HUP").success());
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(http_get(&addr, "/v1/models").contains("\"second\""), "a broken config leaves the old one serving");

    assert!(signal("-TERM").success());
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful exit: {status:?}");
}

/// POST JSON to `addr` over a raw TCP connection; returns the body.
fn http_post(addr: &str, path: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
}

#[test]
fn serve_without_config_routes_over_the_simulated_pool() {
    let (mut child, addr) = spawn_serve(&["serve", "--listen", "127.0.0.1:0"]);

    // A question about the default world, answered through the cascade.
    let world = switchyard::sim::world::World::generate(&Default::default());
    let question = &switchyard::sim::questions::generate(&world, 1, 1)[0];
    let request = serde_json::json!({ "model": "switchyard/cascade", "messages": [{ "role": "user", "content": question.question }] });
    let body = http_post(&addr, "/v1/chat/completions", &request.to_string());
    let _ = child.kill();
    let _ = child.wait();
    let response: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{body}"));
    let calls = response["switchyard"]["trajectory"]["calls"].as_array().expect("a trajectory");
    assert!(!calls.is_empty(), "{response}");
    let profiles: Vec<String> = switchyard::sim::models::default_profiles().into_iter().map(|p| p.name).collect();
    for call in calls {
        assert!(profiles.iter().any(|p| call["model"] == p.as_str()), "{call}");
        assert!(call["error"].is_null(), "{call}");
    }
}
