//! Hostile components and faulty backends, tried as an attacker would: each
//! test drives a guest from tests/guests/ (or a backend) that breaks one rule
//! and checks that the host contains it — with a clear error, nothing leaked,
//! nothing lost, and the next call unharmed.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use switchyard::plugin::types::*;
use switchyard::plugin::{Adapter, Cost, Error, Kind, Plugin, Reward};
use switchyard_tests::server::TestServer;
use switchyard_tests::*;

/// One request as the logging backend saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

/// A provider that logs every request it receives (method, raw path,
/// headers), echoes TRACE back with its headers as a server that honours it
/// would, and answers everything else like an OpenAI endpoint whose reply
/// quotes the request body.
async fn logging_backend() -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    async fn handle(State(seen): State<Arc<Mutex<Vec<Seen>>>>, request: Request) -> axum::response::Response {
        use axum::response::IntoResponse;
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let method = request.method().to_string();
        let path = request.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
        seen.lock().unwrap().push(Seen { method: method.clone(), path, headers: headers.clone() });
        if method == "TRACE" {
            let echoed: String = headers.iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
            return echoed.into_response();
        }
        let body = axum::body::to_bytes(request.into_body(), 1 << 20).await.unwrap_or_default();
        let mut content = String::from_utf8_lossy(&body).into_owned();
        // A provider that quotes the request's headers back (a debugging echo endpoint).
        if content.contains("echo-headers") {
            content.extend(headers.iter().map(|(k, v)| format!("\n{k}: {v}")));
        }
        axum::Json(json!({
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": content }, "finish_reason": "stop" }],
            "usage": { "prompt_tokens": 10, "completion_tokens": 5 },
        }))
        .into_response()
    }
    let app = axum::Router::new().fallback(handle).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

const KEY: &str = "sk-hostile-test-key-0123456789";
const KEY_ENV: &str = "SWITCHYARD_TEST_HOSTILE_KEY";

/// One `[[models]]` entry without retries (a refused attempt shows at once).
fn model_toml(name: &str, adapter: &str, endpoint: &str, extra: &str) -> String {
    format!(
        "[[models]]\nname = \"{name}\"\nadapter = \"{adapter}\"\nendpoint = \"{endpoint}\"\nretries = 0\n{extra}\n\
         descriptor = {{ price_in_per_mtok = 1.0, price_out_per_mtok = 1.0, latency_ms = 1, context_tokens = 8192 }}\n"
    )
}

/// A server whose model `hostile` uses the hostile adapter against `endpoint`
/// (with a key), beside `plain`, an ordinary model with a key on the same endpoint.
fn hostile_config(endpoint: &str, cost: &str, extra_models: &str) -> String {
    // SAFETY: tests in this binary only read this variable, and always set the same value.
    unsafe { std::env::set_var(KEY_ENV, KEY) };
    let key = format!("api_key_env = \"{KEY_ENV}\"");
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\napi_keys_env = \"SWITCHYARD_TEST_NO_KEYS\"\nrequest_timeout_ms = 30000\n\
         [plugins]\ndir = \"{plugins}\"\ncost = \"{cost}\"\n\
         [[policies]]\nname = \"switchyard/cheapest\"\nstrategy = \"cheapest\"\n{hostile}{plain}{extra_models}",
        plugins = repo_root().join("plugins/dist").display(),
        hostile = model_toml("hostile", &guest("hostile-adapter").display().to_string(), endpoint, &key),
        plain = model_toml("plain", "openai-chat", endpoint, &format!("remote_model = \"echo\"\n{key}")),
    )
}

fn ask(model: &str, content: &str) -> Value {
    json!({ "model": model, "messages": [{ "role": "user", "content": content }] })
}

#[tokio::test]
async fn adapters_cannot_send_the_key_off_the_pinned_endpoint() {
    let (addr, seen) = logging_backend().await;
    let server = TestServer::start(&hostile_config(&format!("http://{addr}/v1"), "token-price", "")).await;
    let outside = "outside the configured endpoint";
    for (mode, reason) in [
        ("dotdot", outside),
        ("pct-dotdot", outside),
        ("dot-pct", outside),
        ("backslash", outside),
        ("tab", outside),
        ("pct-slash", "an encoded separator"),
        ("other-port", outside),
        ("other-host", outside),
        ("userinfo", "carries credentials"),
        ("trace", "method `TRACE` is not allowed"),
    ] {
        let response = server.post("/v1/chat/completions", ask("hostile", &format!("mode:{mode}"))).await;
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{mode}: {body}");
        assert!(body.contains("model `hostile`: adapter"), "{mode}: the error names the model: {body}");
        assert!(body.contains(reason), "{mode}: refused for the right reason ({reason}): {body}");
        assert!(!body.contains(KEY), "{mode}: the key leaked: {body}");
    }
    // Nothing reached the backend at all: every attempt was refused before sending.
    let seen = seen.lock().unwrap().clone();
    assert!(seen.is_empty(), "requests escaped the checks: {seen:?}");

    // The same adapter without an attack still works, under /v1/.
    let response = server.post("/v1/chat/completions", ask("hostile", "hello")).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
}

#[tokio::test]
async fn adapters_cannot_set_connection_framing_or_credential_headers() {
    let (addr, seen) = logging_backend().await;
    let server = TestServer::start(&hostile_config(&format!("http://{addr}/v1"), "token-price", "")).await;
    let response = server.post("/v1/chat/completions", ask("hostile", "mode:headers")).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let request = &seen[0];
    assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/v1/chat/completions"));
    let header = |name: &str| -> Vec<&str> {
        request.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    };
    assert_eq!(header("authorization"), vec![format!("Bearer {KEY}").as_str()], "only the host's key");
    assert_eq!(header("host"), vec![addr.to_string().as_str()], "the real virtual host");
    assert!(header("x-api-key").is_empty() && header("proxy-authorization").is_empty());
    assert!(header("upgrade").is_empty() && header("te").is_empty() && header("transfer-encoding").is_empty());
    assert!(header("connection").iter().all(|v| !v.contains("x-smuggle")), "{:?}", header("connection"));
    assert_ne!(header("content-length"), vec!["1"], "the body's framing is the host's");
    assert_eq!(header("x-custom"), vec!["kept"], "ordinary headers still pass");
}

#[tokio::test]
async fn a_key_header_that_is_reserved_is_refused_when_the_pool_is_built() {
    let config = hostile_config("http://127.0.0.1:9/v1", "token-price", "")
        .replace("hostile-adapter.wasm", "host-key-adapter.wasm");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchyard.toml");
    std::fs::write(&path, config).unwrap();
    let err = switchyard::server::Snapshot::load(&path, &runtime()).err().expect("the config is refused");
    let message = format!("{err:#}");
    assert!(message.contains("hostile") && message.contains("Host"), "{message}");
    assert!(message.contains("reserved"), "{message}");
}

#[tokio::test]
async fn upstream_replies_that_echo_the_key_are_redacted() {
    let (addr, _seen) = logging_backend().await;
    let server = TestServer::start(&hostile_config(&format!("http://{addr}/v1"), "token-price", "")).await;
    let response = server.post("/v1/chat/completions", ask("plain", "echo-headers please")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let text = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(text.contains("authorization: Bearer [redacted]"), "the echo came back, redacted: {text}");
    assert!(!text.contains(KEY), "{text}");
}

/// A server on a runtime of its own with two workers (as `switchyard serve`
/// runs on a 2-core machine), so the test's clients and timers never share
/// its workers: a stalled worker shows up as latency, not as a paused clock.
struct OwnRuntimeServer {
    addr: SocketAddr,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OwnRuntimeServer {
    fn start(config: String) -> OwnRuntimeServer {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            let server = runtime.block_on(TestServer::start(&config));
            addr_tx.send(server.addr).unwrap();
            let _ = stopped.recv();
            drop(server);
            runtime.shutdown_timeout(Duration::from_secs(5));
        });
        OwnRuntimeServer { addr: addr_rx.recv().unwrap(), stop: Some(stop), thread: Some(thread) }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for OwnRuntimeServer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Sorted latencies of `n` sequential GETs of `/healthz`, 20 ms apart.
async fn healthz_latencies(client: &reqwest::Client, url: &str, n: usize) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let response = client.get(url).send().await.unwrap();
        assert!(response.status().is_success());
        latencies.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies.sort();
    latencies
}

/// The bound stated in README's security section: with 32 requests whose
/// adapter spins to its deadline, `/healthz` answers within 100 ms (median)
/// and 2 s (worst), and another model's requests within 2 s each, on a
/// 2-core machine. (Before guest calls moved off the async workers, the
/// median was seconds.)
const HEALTHZ_P50_BOUND: Duration = Duration::from_millis(100);
const HEALTHZ_MAX_BOUND: Duration = Duration::from_secs(2);
const OTHER_MODEL_BOUND: Duration = Duration::from_secs(2);

/// Keep `clients` requests for `model` in flight (each client sends
/// `rounds` in a row) while measuring `/healthz` and, if given, another
/// model's requests; returns (healthz latencies, other model's latencies).
async fn under_spinning_load(
    server: &OwnRuntimeServer,
    model: &str,
    clients: usize,
    rounds: usize,
    other: Option<&str>,
) -> (Vec<Duration>, Vec<Duration>) {
    let client = reqwest::Client::new();
    let url = server.url("/v1/chat/completions");
    let (body, spin_content) = (model.to_string(), if model == "hostile" { "mode:spin" } else { "hello" });
    let spinning: Vec<_> = (0..clients)
        .map(|_| {
            let (client, url, body) = (client.clone(), url.clone(), ask(&body, spin_content));
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..rounds {
                    statuses.push(client.post(&url).json(&body).send().await.unwrap().status());
                }
                statuses
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let healthz = healthz_latencies(&client, &server.url("/healthz"), 15).await;
    let mut others = Vec::new();
    if let Some(other) = other {
        for _ in 0..5 {
            let started = Instant::now();
            let response = client.post(&url).json(&ask(other, "hello")).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            others.push(started.elapsed());
        }
    }
    for task in spinning {
        for status in task.await.unwrap() {
            assert_eq!(status, StatusCode::BAD_GATEWAY, "a spinning guest is a component error (deadline)");
        }
    }
    (healthz, others)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_adapter_under_load_leaves_healthz_and_other_models_responsive() {
    let _heavy = HEAVY.lock().await;
    let (addr, _seen) = logging_backend().await;
    let server = OwnRuntimeServer::start(hostile_config(&format!("http://{addr}/v1"), "token-price", ""));
    let (healthz, other) = under_spinning_load(&server, "hostile", 32, 3, Some("plain")).await;
    let (p50, max) = (healthz[healthz.len() / 2], *healthz.last().unwrap());
    println!("spinning adapters: healthz p50 {p50:?} max {max:?}; other model {other:?}");
    assert!(p50 <= HEALTHZ_P50_BOUND && max <= HEALTHZ_MAX_BOUND, "healthz with spinning adapters: {healthz:?}");
    assert!(other.iter().all(|d| *d <= OTHER_MODEL_BOUND), "another model's requests stalled: {other:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_cost_component_does_not_stall_the_server() {
    let _heavy = HEAVY.lock().await;
    let (addr, _seen) = logging_backend().await;
    let extra = model_toml("cost-spin", "openai-chat", &format!("http://{addr}/v1"), "");
    let server = OwnRuntimeServer::start(hostile_config(&format!("http://{addr}/v1"), &hostile_cost(), &extra));
    let (healthz, _) = under_spinning_load(&server, "cost-spin", 32, 10, None).await;
    let (p50, max) = (healthz[healthz.len() / 2], *healthz.last().unwrap());
    println!("spinning cost component: healthz p50 {p50:?} max {max:?}");
    assert!(p50 <= HEALTHZ_P50_BOUND && max <= HEALTHZ_MAX_BOUND, "healthz with a spinning cost: {healthz:?}");
}

fn hostile_cost() -> String {
    guest("hostile-cost").display().to_string()
}

#[tokio::test]
async fn impossible_usage_and_broken_costs_are_errors_not_bills() {
    let (addr, _seen) = logging_backend().await;
    let endpoint = format!("http://{addr}/v1");
    let extra: String = ["cost-nan", "cost-inf", "cost-negative", "cost-huge"]
        .iter()
        .map(|name| model_toml(name, "openai-chat", &endpoint, ""))
        .collect();
    let server = TestServer::start(&hostile_config(&endpoint, &hostile_cost(), &extra)).await;

    let response = server.post("/v1/chat/completions", ask("hostile", "mode:usage-max")).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body = response.text().await.unwrap();
    assert!(body.contains("usage is impossible"), "{body}");

    for name in ["cost-nan", "cost-inf", "cost-negative", "cost-huge"] {
        let response = server.post("/v1/chat/completions", ask(name, "hello")).await;
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY, "{name}");
        let cost = response.headers().get("x-switchyard-cost").map(|v| v.to_str().unwrap().to_string());
        assert_eq!(cost, None, "{name}: no cost header on a failed call");
        let body = response.text().await.unwrap();
        assert!(body.contains("cost component") && body.contains("invalid value"), "{name}: {body}");
    }
    // A sane model on the same server is priced and answered.
    let response = server.post("/v1/chat/completions", ask("plain", "hello")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cost: f64 = response.headers()["x-switchyard-cost"].to_str().unwrap().parse().unwrap();
    assert!(cost.is_finite() && cost > 0.0);
}

#[test]
fn reward_numbers_outside_their_ranges_are_typed_errors() {
    let runtime = runtime();
    let reward = Plugin::<Reward>::load(&runtime, &guest("misbehaving-reward")).unwrap();
    for (mode, field) in
        [("nan", "total"), ("huge-total", "total"), ("inf-cost", "raw-cost"), ("f1-out-of-range", "f1")]
    {
        let err = reward.score(&scoring_input("x", &[mode]), &params(0.0)).unwrap_err();
        assert!(matches!(err, Error::InvalidOutput { .. }), "{mode}: {err}");
        assert!(err.to_string().contains(field), "{mode}: names the field: {err}");
        let batch = vec![scoring_input("x", &["behave"]), scoring_input("x", &[mode])];
        let err = reward.score_batch(&batch, &params(0.0)).unwrap_err();
        assert!(err.to_string().contains("item 1"), "{mode}: names the item: {err}");
        let mut warm = reward.warm();
        assert!(warm.score(&scoring_input("x", &[mode]), &params(0.0)).is_err());
        assert_eq!(warm.score(&scoring_input("x", &["behave"]), &params(0.0)).unwrap().total, 1.0);
    }
}

#[test]
fn oversize_results_are_refused_before_they_are_copied() {
    let runtime = runtime();
    let reward = Plugin::<Reward>::load(&runtime, &guest("misbehaving-reward")).unwrap();
    // 2,500 strings aliasing one 1 MiB buffer would be 2.5 GB on the host;
    // 600,000 empty strings are "a few bytes" to a byte count; a 20 MiB error.
    // Each is stopped by the hostcall fuel, inside wasmtime's lift (the
    // error's size is the copy budget), not by the count made after a copy.
    let budget = |kind| runtime.limits(kind).copy_budget();
    for mode in ["aliased", "empty-strings", "huge-error"] {
        let started = Instant::now();
        let err = reward.score(&scoring_input("x", &[mode]), &params(0.0)).unwrap_err();
        assert!(
            matches!(err, Error::OversizeOutput { size, .. } if size == budget(Kind::Reward)),
            "{mode}: stopped by the fuel: {err}"
        );
        assert!(started.elapsed() < Duration::from_secs(10), "{mode}: refused promptly");
    }
    assert_eq!(reward.score(&scoring_input("x", &["behave"]), &params(0.0)).unwrap().total, 1.0);

    let adapter = Plugin::<Adapter>::load(&runtime, &guest("hostile-adapter")).unwrap();
    let request = |mode: &str| ChatRequest {
        model: "m".into(),
        messages: vec![ChatMessage { role: "user".into(), content: format!("mode:{mode}") }],
        max_tokens: None,
        temperature: None,
        top_p: None,
        stop: vec![],
        streaming: false,
    };
    for mode in ["aliased-headers", "empty-headers", "huge-error"] {
        let err = adapter.build_request(&request(mode), "http://127.0.0.1:1/v1").unwrap_err();
        assert!(
            matches!(err, Error::OversizeOutput { size, .. } if size == budget(Kind::Adapter)),
            "{mode}: stopped by the fuel: {err}"
        );
        assert!(err.to_string().len() < 1024, "{mode}: the error itself is short");
    }
    assert!(adapter.build_request(&request("none"), "http://127.0.0.1:1/v1").is_ok());
}

#[test]
fn long_error_messages_are_cut_with_a_note() {
    let runtime = runtime();
    let reward = Plugin::<Reward>::load(&runtime, &guest("misbehaving-reward")).unwrap();
    let limit = runtime.limits(Kind::Reward).error_bytes;
    let Error::Rejected { error, .. } = reward.score(&scoring_input("x", &["long-error"]), &params(0.0)).unwrap_err()
    else {
        panic!("a refusal");
    };
    assert!(error.message.len() < limit + 100, "{} bytes", error.message.len());
    assert!(error.message.starts_with("é"), "cut at a character boundary");
    assert!(
        error.message.ends_with("more bytes truncated by the host]"),
        "{}",
        &error.message[error.message.len() - 60..]
    );

    let cost = Plugin::<Cost>::load(&runtime, &guest("hostile-cost")).unwrap();
    let mut model = pool()[0].clone();
    let usage = Usage { input_tokens: 1, output_tokens: 1 };
    model.name = "cost-long-error".into();
    let err = cost.cost(&model, usage, 1, &[]).unwrap_err();
    assert!(err.to_string().contains("truncated by the host"), "{err}");
    model.name = "cost-huge-error".into();
    assert!(matches!(cost.cost(&model, usage, 1, &[]).unwrap_err(), Error::OversizeOutput { .. }));
}

#[test]
fn component_files_must_be_regular_and_bounded() {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.wasm");
    std::fs::File::create(&big).unwrap().set_len(100 << 20).unwrap();
    let err = Plugin::<Reward>::load(&runtime, &big).err().unwrap();
    assert!(matches!(err, Error::FileTooLarge { .. }), "{err}");
    assert!(err.to_string().contains("big.wasm"), "{err}");

    for (path, what) in [(std::path::PathBuf::from("/dev/zero"), "device"), (dir.path().to_path_buf(), "directory")] {
        let err = Plugin::<Reward>::load(&runtime, &path).err().unwrap();
        assert!(matches!(err, Error::NotAFile { .. }), "{err}");
        assert!(err.to_string().contains(what), "{err}");
    }
    let fifo = dir.path().join("fifo.wasm");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let err = Plugin::<Reward>::load(&runtime, &fifo).err().unwrap();
    assert!(err.to_string().contains("FIFO"), "{err}");
}

#[tokio::test]
async fn garbled_success_replies_are_retried() {
    let backend = backend::start().await;
    let config = server::pool_config(&backend.url());
    let url = format!("endpoint = \"{}\"", backend.url());
    let config = format!(
        "{config}\n[[models]]\nname = \"garbled2\"\nadapter = \"openai-chat\"\n{url}\nremote_model = \"malformed\"\nretries = 2\n\
         descriptor = {{ price_in_per_mtok = 0.1, price_out_per_mtok = 0.1, latency_ms = 1, context_tokens = 8192 }}\n"
    );
    let server = TestServer::start(&config).await;
    let response = server.post("/v1/chat/completions", ask("garbled2", "hello")).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body = response.text().await.unwrap();
    assert!(body.contains("malformed reply"), "{body}");
    assert_eq!(backend.recorded.calls_to("malformed"), 3, "one attempt and two retries");
}

#[tokio::test]
async fn hostile_stream_parsers_and_echoed_keys_are_contained_in_streams() {
    let backend = backend::start().await;
    let (addr, _seen) = logging_backend().await;
    let key = format!("api_key_env = \"{KEY_ENV}\"\nremote_model = \"echo\"");
    let extra = model_toml("hostile-stream", &guest("hostile-adapter").display().to_string(), &backend.url(), &key)
        + &model_toml("plain-stream", "openai-chat", &backend.url(), &key);
    let server = TestServer::start(&hostile_config(&format!("http://{addr}/v1"), "token-price", &extra)).await;
    let stream = |model: &str, content: &str| json!({ "model": model, "stream": true, "messages": [{ "role": "user", "content": content }] });
    for (content, reason) in
        [("mode:stream-usage-max", "usage is impossible"), ("mode:stream-spin", "exceeded its deadline")]
    {
        let text = server.post("/v1/chat/completions", stream("hostile-stream", content)).await.text().await.unwrap();
        let last = text.trim_end().rsplit("\n\n").next().unwrap_or("");
        assert!(last.starts_with("event: error") && last.contains(reason), "{content}: {text}");
        assert!(!text.contains("[DONE]"), "{content}: a failed stream must not end cleanly: {text}");
    }
    // The backend streams the message back: a key in it is redacted chunk by chunk.
    let text = server
        .post("/v1/chat/completions", stream("plain-stream", &format!("say {KEY} please")))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("[redacted]") && !text.contains(KEY), "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
}
