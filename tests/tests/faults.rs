//! The fault load test: 10,000 pass-through requests at 64 concurrent,
//! through a real Switchyard server on loopback, to `sim serve` injecting
//! 20% HTTP 503s and 5% truncated replies on every model, with two retries
//! and a fallback model; then 1,000 streamed requests on the same setup.
//!
//! Bars: >= 99.9% of the plain requests succeed (the expected failure rate
//! with three attempts on each of two models is about 0.02%), and every
//! streamed response either completes (a usage chunk, then `[DONE]`) or ends
//! with an error event — never silently. A stream cut after its first token
//! cannot be retried (the client already has the token), so streamed
//! success is reported, not held to the plain bar.
//!
//! Bounded: a fixed number of requests, loopback only, and the whole test
//! gives up after 5 minutes. Its printed numbers are in BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use switchyard::sim::questions;
use switchyard::sim::serve::{Faults, SimConfig, spawn};
use switchyard_tests::server::TestServer;
use switchyard_tests::*;

const PLAIN: usize = 10_000;
const STREAMED: usize = 1_000;
const CONCURRENCY: usize = 64;

fn config(sim: &str) -> String {
    let model = |name: &str, fallback: &str| {
        format!(
            "[[models]]\nname = \"{name}\"\nadapter = \"openai-chat\"\nendpoint = \"{sim}\"\nretries = 2\n\
             fallback = \"{fallback}\"\n\
             descriptor = {{ price_in_per_mtok = 0.2, price_out_per_mtok = 0.2, latency_ms = 1, context_tokens = 32768 }}\n"
        )
    };
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\napi_keys_env = \"SWITCHYARD_TEST_NO_KEYS\"\nrequest_timeout_ms = 30000\n\
         [plugins]\ndir = \"{}\"\n{}{}",
        repo_root().join("plugins/dist").display(),
        model("qwen2.5-7b-instruct", "llama-3.1-8b-instruct"),
        model("llama-3.1-8b-instruct", "qwen2.5-7b-instruct"),
    )
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Ok,
    /// An HTTP error status with an OpenAI error body.
    Failed(u16),
    /// A stream that ended with an error event.
    StreamError,
    /// Anything else: a defect (a stream that just stopped, a 200 without content).
    Broken(String),
}

async fn plain(client: &reqwest::Client, url: &str, model: &str, question: &str) -> Outcome {
    let body = json!({ "model": model, "messages": [{ "role": "user", "content": question }] });
    let Ok(response) = client.post(url).json(&body).send().await else {
        return Outcome::Broken("the server dropped the connection".into());
    };
    let status = response.status().as_u16();
    let Ok(reply) = response.json::<Value>().await else {
        return Outcome::Broken(format!("HTTP {status} with a body that is not JSON"));
    };
    match (status, reply["choices"][0]["message"]["content"].as_str(), reply["error"]["message"].as_str()) {
        (200, Some(text), _) if !text.is_empty() => Outcome::Ok,
        (s, _, Some(_)) if s >= 400 => Outcome::Failed(s),
        _ => Outcome::Broken(format!("HTTP {status}: {reply}")),
    }
}

async fn streamed(client: &reqwest::Client, url: &str, model: &str, question: &str) -> Outcome {
    let body = json!({ "model": model, "stream": true, "messages": [{ "role": "user", "content": question }] });
    let Ok(response) = client.post(url).json(&body).send().await else {
        return Outcome::Broken("the server dropped the connection".into());
    };
    let status = response.status().as_u16();
    let Ok(text) = response.text().await else {
        return Outcome::Broken("the stream broke without an error event".into());
    };
    if status != 200 {
        return if text.contains("\"error\"") { Outcome::Failed(status) } else { Outcome::Broken(text) };
    }
    let events: Vec<&str> = text.split("\n\n").map(str::trim).filter(|e| !e.is_empty()).collect();
    let last = events.last().copied().unwrap_or("");
    if last.starts_with("event: error") {
        return Outcome::StreamError;
    }
    let usage_before_done =
        events.len() >= 2 && last == "data: [DONE]" && events[events.len() - 2].contains("\"usage\"");
    if usage_before_done { Outcome::Ok } else { Outcome::Broken(format!("ended with `{last}`")) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_backends_under_load_lose_nothing() {
    let _heavy = HEAVY.lock().await;
    let sim = SimConfig {
        faults: Faults { error_rate: 0.2, truncate_rate: 0.05, extra_latency_ms: 0 },
        ..SimConfig::default()
    };
    let models = sim.build();
    let questions: Arc<Vec<String>> =
        Arc::new(questions::generate(&models.world, 200, 9).into_iter().map(|q| q.question).collect());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = spawn(listener, models, &sim);
    let server = TestServer::start(&config(&format!("http://{addr}/v1"))).await;
    let url = Arc::new(server.url("/v1/chat/completions"));
    let client = reqwest::Client::builder().pool_max_idle_per_host(CONCURRENCY).build().unwrap();

    let run = async {
        let started = Instant::now();
        let outcomes: Vec<(bool, Outcome)> = futures_util::stream::iter(0..PLAIN + STREAMED)
            .map(|i| {
                let (client, url, questions) = (client.clone(), url.clone(), questions.clone());
                async move {
                    let model = if i % 2 == 0 { "qwen2.5-7b-instruct" } else { "llama-3.1-8b-instruct" };
                    let question = &questions[i % questions.len()];
                    if i < PLAIN {
                        (false, plain(&client, &url, model, question).await)
                    } else {
                        (true, streamed(&client, &url, model, question).await)
                    }
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        (outcomes, started.elapsed())
    };
    let (outcomes, elapsed) =
        tokio::time::timeout(Duration::from_secs(300), run).await.expect("the load test finished within 5 minutes");

    let count =
        |streamed: bool, f: &dyn Fn(&Outcome) -> bool| outcomes.iter().filter(|(s, o)| *s == streamed && f(o)).count();
    let plain_ok = count(false, &|o| *o == Outcome::Ok);
    let stream_ok = count(true, &|o| *o == Outcome::Ok);
    let stream_error_event = count(true, &|o| *o == Outcome::StreamError);
    let broken: Vec<&Outcome> = outcomes.iter().map(|(_, o)| o).filter(|o| matches!(o, Outcome::Broken(_))).collect();
    let failed: Vec<&Outcome> = outcomes.iter().map(|(_, o)| o).filter(|o| matches!(o, Outcome::Failed(_))).collect();
    println!(
        "fault load: {} requests at {CONCURRENCY} concurrent in {:.1} s ({:.0} req/s); plain {plain_ok}/{PLAIN} ok \
         ({:.3}%); streamed {stream_ok}/{STREAMED} complete, {stream_error_event} ended by an error event; \
         HTTP errors {failed:?}; broken {}",
        PLAIN + STREAMED,
        elapsed.as_secs_f64(),
        (PLAIN + STREAMED) as f64 / elapsed.as_secs_f64(),
        100.0 * plain_ok as f64 / PLAIN as f64,
        broken.len(),
    );
    assert!(broken.is_empty(), "responses that neither succeeded nor failed cleanly: {broken:?}");
    assert!(plain_ok * 1000 >= PLAIN * 999, "plain success {plain_ok}/{PLAIN} is under 99.9%");
    assert_eq!(stream_ok + stream_error_event + count(true, &|o| matches!(o, Outcome::Failed(_))), STREAMED);
}
