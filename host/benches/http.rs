//! Host overhead per request over loopback: an instant local backend, the
//! switchyard server in front of it, and clients at 1 and 64 concurrency.
//! Prints p50/p99 latency and requests/s for the backend alone, a
//! pass-through call, and a strategy policy (one routed call), and the
//! added p50 (switchyard minus backend alone).
//!
//! Run: `cargo bench -p switchyard --bench http` after `scripts/setup`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::routing::post;
use serde_json::{Value, json};
use switchyard::plugin::{Runtime, RuntimeConfig};
use switchyard::server::{self, AppState, Snapshot};

async fn instant_backend() -> String {
    async fn reply(Json(body): Json<Value>) -> Json<Value> {
        Json(json!({
            "id": "x", "object": "chat.completion", "model": body["model"],
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": "Karsk." }, "finish_reason": "stop" }],
            "usage": { "prompt_tokens": 20, "completion_tokens": 2, "total_tokens": 22 },
        }))
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        async move { axum::serve(listener, axum::Router::new().route("/v1/chat/completions", post(reply))).await },
    );
    format!("http://{addr}/v1")
}

fn config(backend: &str) -> String {
    let plugins = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist");
    format!(
        r#"
[server]
api_keys_env = "SWITCHYARD_BENCH_NO_KEYS"
[plugins]
dir = "{}"
[[policies]]
name = "switchyard/cheapest"
strategy = "cheapest"
[[models]]
name = "instant"
adapter = "openai-chat"
endpoint = "{backend}"
max_concurrency = 1024
descriptor = {{ price_in_per_mtok = 0.1, price_out_per_mtok = 0.2, latency_ms = 1, context_tokens = 4096 }}
"#,
        plugins.display()
    )
}

struct Stats {
    p50: Duration,
    p99: Duration,
    rps: f64,
}

async fn measure(client: &reqwest::Client, url: &str, body: &Value, concurrency: usize, total: usize) -> Stats {
    // Warm up connections and caches.
    for _ in 0..50 {
        client.post(url).json(body).send().await.unwrap().bytes().await.unwrap();
    }
    let started = Instant::now();
    let per_worker = total / concurrency;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, body) = (client.clone(), url.to_string(), body.clone());
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(per_worker);
                for _ in 0..per_worker {
                    let t = Instant::now();
                    let response = client.post(&url).json(&body).send().await.unwrap();
                    assert!(response.status().is_success(), "{}", response.status());
                    response.bytes().await.unwrap();
                    samples.push(t.elapsed());
                }
                samples
            })
        })
        .collect();
    let mut samples = Vec::new();
    for w in workers {
        samples.extend(w.await.unwrap());
    }
    let elapsed = started.elapsed();
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    Stats { p50: at(0.5), p99: at(0.99), rps: samples.len() as f64 / elapsed.as_secs_f64() }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let backend = instant_backend().await;
        let dir = std::env::temp_dir().join(format!("switchyard-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bench.toml");
        std::fs::write(&path, config(&backend)).unwrap();
        let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
        let snapshot = Snapshot::load(&path, &runtime).unwrap();
        let state = AppState::new(snapshot, runtime.clone(), Some(path));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(server::serve(listener, state, std::future::pending()));
        let _keep = Arc::new(runtime);

        let client = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
        let ask = |model: &str| json!({ "model": model, "messages": [{ "role": "user", "content": "What is the capital of Veloria?" }] });
        let direct = format!("{backend}/chat/completions");
        let ours = format!("http://{addr}/v1/chat/completions");
        println!("{:<34} {:>5} {:>10} {:>10} {:>10} {:>14}", "path", "conc", "p50", "p99", "req/s", "added p50");
        for concurrency in [1usize, 64] {
            let total = if concurrency == 1 { 2000 } else { 6400 };
            let base = measure(&client, &direct, &ask("instant"), concurrency, total).await;
            let rows = [
                ("backend alone", base.p50, base.p99, base.rps, None),
                {
                    let s = measure(&client, &ours, &ask("instant"), concurrency, total).await;
                    ("switchyard pass-through", s.p50, s.p99, s.rps, Some(s.p50.saturating_sub(base.p50)))
                },
                {
                    let s = measure(&client, &ours, &ask("switchyard/cheapest"), concurrency, total).await;
                    ("switchyard policy (1 routed call)", s.p50, s.p99, s.rps, Some(s.p50.saturating_sub(base.p50)))
                },
            ];
            for (name, p50, p99, rps, added) in rows {
                println!(
                    "{name:<34} {concurrency:>5} {:>8.3}ms {:>8.3}ms {rps:>10.0} {:>14}",
                    p50.as_secs_f64() * 1e3,
                    p99.as_secs_f64() * 1e3,
                    added.map_or("-".to_string(), |a| format!("{:.3}ms", a.as_secs_f64() * 1e3))
                );
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
}
