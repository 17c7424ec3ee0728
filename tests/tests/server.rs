//! The server end to end over real loopback HTTP: policies through the
//! engine, pass-through calls, streaming, backend failures, auth, every
//! class of bad input, metrics, reload under traffic, no cross-talk.

use serde_json::{Value, json};
use switchyard_tests::backend;
use switchyard_tests::server::{TestServer, pool_config};

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")))
}

fn ask(model: &str, question: &str) -> Value {
    json!({ "model": model, "messages": [{ "role": "system", "content": "Be brief." }, { "role": "user", "content": question }] })
}

#[tokio::test]
async fn a_policy_routes_through_the_engine_and_reports_its_trace() {
    let backend = backend::start().await;
    let server = TestServer::start(&pool_config(&backend.url())).await;
    let response =
        server.post("/v1/chat/completions", ask("switchyard/largest", "What is the capital of Veloria?")).await;
    let headers = response.headers().clone();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["content"], "Karsk.");
    assert_eq!(headers["x-switchyard-models"], "claude-geo");
    assert_eq!(headers["x-switchyard-calls"], "1");
    let trace = &body["switchyard"];
    assert_eq!(trace["stop"], "answered");
    assert_eq!(trace["trajectory"]["calls"][0]["model"], "claude-geo");
    let cost = trace["cost"].as_f64().unwrap();
    // 3 $/M in, 15 $/M out, usage as the backend reported it.
    let usage = &trace["trajectory"]["calls"][0]["usage"];
    let expected = usage["input_tokens"].as_f64().unwrap() * 3e-6 + usage["output_tokens"].as_f64().unwrap() * 15e-6;
    assert!((cost - expected).abs() < 1e-12, "{cost} vs {expected}");
    assert!(body["usage"]["total_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn cascade_escalates_past_a_model_that_cannot_answer() {
    let backend = backend::start().await;
    let server = TestServer::start(&pool_config(&backend.url())).await;
    let (status, body) = json_of(
        server.post("/v1/chat/completions", ask("switchyard/cascade", "Which river flows through Karsk?")).await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let calls: Vec<&str> = body["switchyard"]["trajectory"]["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["model"].as_str().unwrap())
        .collect();
    assert_eq!(calls, ["tiny", "geo"]);
    assert_eq!(body["choices"][0]["message"]["content"], "The Amsel.");
}

#[tokio::test]
async fn route_endpoint_returns_the_trace_and_scores_it() {
    let backend = backend::start().await;
    let server = TestServer::start(&pool_config(&backend.url())).await;
    let (status, body) = json_of(
        server
            .post(
                "/v1/route",
                json!({ "question": "What is the capital of Veloria?", "policy": "switchyard/largest", "golden_answers": ["Karsk"] }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["text"].as_str().unwrap().contains("<search>claude-geo: What is the capital of Veloria?</search>"));
    assert_eq!(body["reward"]["exact_match"], 1.0, "{body}");
    assert_eq!(body["reward"]["format"], 0.0, "{body}");
}

#[tokio::test]
async fn credentials_are_injected_by_the_host_per_model() {
    let backend = backend::start().await;
    // SAFETY: tests in this binary touch only these variables, set before any request reads them.
    unsafe {
        std::env::set_var("SWITCHYARD_TEST_GEO_KEY", "sk-geo-123");
        std::env::set_var("SWITCHYARD_TEST_ANTHROPIC_KEY", "sk-ant-456");
    }
    let server = TestServer::start(&pool_config(&backend.url())).await;
    let (status, _) =
        json_of(server.post("/v1/chat/completions", ask("geo", "What is the capital of Veloria?")).await).await;
    assert_eq!(status, 200);
    let (status, body) =
        json_of(server.post("/v1/chat/completions", ask("claude-geo", "What is the capital of Veloria?")).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "Karsk.");
    let requests = backend.recorded.requests.lock().unwrap().clone();
    assert!(requests.contains(&("knows-geo".into(), Some("Bearer sk-geo-123".into()))), "{requests:?}");
    assert!(requests.contains(&("knows-geo".into(), Some("sk-ant-456".into()))), "{requests:?}");
}

#[tokio::test]
async fn pass_through_streaming_ends_with_usage_and_done() {
    let backend = backend::start().await;
    let server = TestServer::start(&pool_config(&backend.url())).await;
    let mut request = ask("echo", "one two three");
    request["stream"] = json!(true);
    let response = server.post("/v1/chat/completions", request).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let text = response.text().await.unwrap();
    let data: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert_eq!(*data.last().unwrap(), "[DONE]", "{text}");
    let chunks: Vec<Value> = data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    let content: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(content, "echo: one two three");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"].as_array().unwrap().len(), 0);
    assert!(usage["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{usage}");
}

#[tokio::test]
async fn policy_streaming_also_ends_with_usage_and_done() {
    let backend = backend::start().await;
    let server = TestServer::start(&pool_config(&backend.url())).await;
    let mut request = ask("switchyard/largest", "What is the capital of Veloria?");
    request["stream"] = json!(true);
    let text = server.post("/v1/chat/completions", request).await.text().await.unwrap();
    let data: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert_eq!(*data.last().unwrap(), "[DONE]");
    assert!(text.contains("Karsk."));
    let usage: Value = serde_json::from_str(data[data.len() - 2]).unwrap();
    assert!(usage["usage"].is_object() && usage["switchyard"]["trajectory"].is_object(), "{usage}");
}

fn with_model(config: &str, name: &str, remote: &str, extra: &str) -> String {
    let url = config.lines().find(|l| l.starts_with("endpoint")).unwrap().to_string();
    format!(
        "{config}\n[[models]]\nname = \"{name}\"\nadapter = \"openai-chat\"\n{url}\nremote_model = \"{remote}\"\n{extra}\n\
         descriptor = {{ price_in_per_mtok = 0.1, price_out_per_mtok = 0.1, latency_ms = 1, context_tokens = 8192 }}\n"
    )
}

#[tokio::test]
async fn a_stream_cut_after_the_first_token_ends_with_an_error_event() {
    let backend = backend::start().await;
    let server =
        TestServer::start(&with_model(&pool_config(&backend.url()), "cutter", "cut-stream", "retries = 0")).await;
    let mut request = ask("cutter", "a b c d e f");
    request["stream"] = json!(true);
    let text = server.post("/v1/chat/completions", request).await.text().await.unwrap();
    assert!(text.contains("event: error"), "{text}");
    assert!(!text.contains("[DONE]"), "a broken stream must not end cleanly: {text}");
    assert!(text.contains("echo:"), "the tokens before the cut were delivered: {text}");
}

#[tokio::test]
async fn a_stream_failing_before_its_first_token_falls_back() {
    let backend = backend::start().await;
    let config =
        with_model(&pool_config(&backend.url()), "streamer", "fail-stream", "retries = 1\nfallback = \"echo\"");
    let server = TestServer::start(&config).await;
    let mut request = ask("streamer", "hello there");
    request["stream"] = json!(true);
    let text = server.post("/v1/chat/completions", request).await.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(text.contains("\"model\":\"echo\""), "the fallback answered: {text}");
    assert_eq!(backend.recorded.calls_to("fail-stream"), 2, "one try and one retry before the fallback");
}

#[tokio::test]
async fn retries_on_5xx_and_429_with_backoff() {
    let backend = backend::start().await;
    let config = with_model(&pool_config(&backend.url()), "flaky", "flaky-2", "retries = 2");
    let config = with_model(&config, "limited", "limited", "retries = 1");
    let server = TestServer::start(&config).await;
    let (status, body) = json_of(server.post("/v1/chat/completions", ask("flaky", "hi")).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["switchyard"]["attempts"], 3);
    let (status, body) = json_of(server.post("/v1/chat/completions", ask("limited", "hi")).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["switchyard"]["attempts"], 2);
}

#[tokio::test]
async fn timeouts_errors_and_malformed_replies_are_clear_errors_or_fall_back() {
    let backend = backend::start().await;
    let config = with_model(&pool_config(&backend.url()), "sleepy", "slow-3000", "timeout_ms = 200\nretries = 0");
    let config =
        with_model(&config, "sleepy-backed", "slow-3000", "timeout_ms = 200\nretries = 0\nfallback = \"echo\"");
    let config = with_model(&config, "broken", "error-500", "retries = 1");
    let config = with_model(&config, "garbled", "malformed", "retries = 0");
    let server = TestServer::start(&config).await;

    let (status, body) = json_of(server.post("/v1/chat/completions", ask("sleepy", "hi")).await).await;
    assert_eq!(status, 504, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("timed out"), "{body}");

    let (status, body) = json_of(server.post("/v1/chat/completions", ask("sleepy-backed", "hi")).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], "echo");

    let (status, body) = json_of(server.post("/v1/chat/completions", ask("broken", "hi")).await).await;
    assert_eq!(status, 502, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("backend exploded"), "{body}");

    let (status, body) = json_of(server.post("/v1/chat/completions", ask("garbled", "hi")).await).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["type"], "upstream_error");
}

#[tokio::test]
async fn a_failed_routed_call_is_shown_to_the_router_not_fatal() {
    let backend = backend::start().await;
    // `broken` is the largest model, so `largest` routes to it.
    let config = with_model(&pool_config(&backend.url()), "broken", "error-500", "retries = 0")
        .replace("latency_ms = 1, context_tokens = 8192 }", "latency_ms = 1, context_tokens = 8192, size_b = 400.0 }");
    let server = TestServer::start(&config).await;
    let (status, body) =
        json_of(server.post("/v1/route", json!({ "question": "hi?", "policy": "switchyard/largest" })).await).await;
    assert_eq!(status, 200, "{body}");
    let call = &body["trace"]["trajectory"]["calls"][0];
    assert_eq!(call["model"], "broken");
    assert!(call["error"].as_str().unwrap().contains("500"), "{call}");
    assert!(body["text"].as_str().unwrap().contains("<information>Error:"), "{body}");
}

#[tokio::test]
async fn every_bad_input_gets_an_openai_error_with_the_right_status() {
    let backend = backend::start().await;
    let server = TestServer::start(&pool_config(&backend.url())).await;
    let url = server.url("/v1/chat/completions");
    let raw = |body: &'static str, content_type: &'static str| {
        server.client.post(&url).header("content-type", content_type).body(body).send()
    };
    let cases: Vec<(reqwest::Response, u16, &str)> = vec![
        (raw("{\"model\": ", "application/json").await.unwrap(), 400, "Malformed JSON"),
        (raw("{\"messages\": []}", "application/json").await.unwrap(), 400, "model"),
        (raw("{\"model\": \"echo\", \"messages\": 5}", "application/json").await.unwrap(), 400, "messages"),
        (raw("{\"model\": \"echo\"}", "text/plain").await.unwrap(), 400, "Content-Type"),
        (server.post("/v1/chat/completions", ask("gpt-nonexistent", "hi")).await, 404, "gpt-nonexistent"),
        (server.post("/v1/chat/completions", json!({ "model": "echo", "messages": [] })).await, 400, "messages"),
        (
            server
                .post(
                    "/v1/chat/completions",
                    json!({ "model": "switchyard/cheapest", "messages": [{ "role": "system", "content": "x" }] }),
                )
                .await,
            400,
            "user message",
        ),
        (
            server
                .post(
                    "/v1/chat/completions",
                    json!({ "model": "echo", "messages": [{ "role": "wizard", "content": "x" }] }),
                )
                .await,
            400,
            "wizard",
        ),
        (server.post("/v1/chat/completions", ask("echo", &"x".repeat(70_000))).await, 413, "65536"),
        (server.post("/v1/route", json!({ "question": "" })).await, 400, "question"),
        (server.post("/v1/route", json!({ "question": "q", "policy": "nope" })).await, 404, "nope"),
        (server.client.get(server.url("/v2/nothing")).send().await.unwrap(), 404, "No such route"),
    ];
    for (response, want, needle) in cases {
        let (status, body) = json_of(response).await;
        assert_eq!(status, want, "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "`{needle}` not in {message}");
        assert!(body["error"]["type"].is_string());
    }
    // Nothing was lost or changed: the server still serves.
    let (status, _) = json_of(server.post("/v1/chat/completions", ask("echo", "still there?")).await).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn api_keys_are_required_when_configured() {
    let backend = backend::start().await;
    // SAFETY: only this test reads this variable.
    unsafe { std::env::set_var("SWITCHYARD_TEST_KEYS_A", "key-one, key-two") };
    let config = pool_config(&backend.url()).replace("SWITCHYARD_TEST_NO_KEYS", "SWITCHYARD_TEST_KEYS_A");
    let server = TestServer::start(&config).await;
    let send = |key: Option<&str>| {
        let mut r = server.client.post(server.url("/v1/chat/completions")).json(&ask("echo", "hi"));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r.send()
    };
    assert_eq!(send(None).await.unwrap().status(), 401);
    let (status, body) = json_of(send(Some("key-three")).await.unwrap()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_api_key")));
    assert_eq!(send(Some("key-two")).await.unwrap().status(), 200);
    assert_eq!(server.client.get(server.url("/healthz")).send().await.unwrap().status(), 200, "health stays open");
}

#[tokio::test]
async fn models_health_and_metrics() {
    let backend = backend::start().await;
    let server = TestServer::start(&pool_config(&backend.url())).await;
    let (status, body) = json_of(server.client.get(server.url("/v1/models")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = body["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "switchyard/cheapest",
            "switchyard/largest",
            "switchyard/cascade",
            "tiny",
            "geo",
            "echo",
            "taggy",
            "claude-geo"
        ]
    );
    let geo = body["data"].as_array().unwrap().iter().find(|m| m["id"] == "geo").unwrap();
    assert_eq!(geo["switchyard"]["descriptor"]["price_out_per_mtok"], 0.4);

    server.post("/v1/chat/completions", ask("switchyard/cheapest", "What is the capital of Veloria?")).await;
    let (status, health) = json_of(server.client.get(server.url("/healthz")).send().await.unwrap()).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    let metrics = server.client.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for needle in [
        "switchyard_requests_total{route=\"/v1/chat/completions\",status=\"200\"}",
        "switchyard_request_duration_seconds_bucket",
        "switchyard_routed_calls_total{model=\"tiny\",policy=\"switchyard/cheapest\"}",
        "switchyard_tokens_total",
        "switchyard_cost_microdollars_total",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from\n{metrics}");
    }
}

#[tokio::test]
async fn concurrent_requests_do_not_cross_talk() {
    let backend = backend::start().await;
    let server = std::sync::Arc::new(TestServer::start(&pool_config(&backend.url())).await);
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let server = server.clone();
            tokio::spawn(async move {
                let model = if i % 2 == 0 { "echo" } else { "switchyard/cheapest" };
                let question = format!("question number {i}");
                let (status, body) = json_of(server.post("/v1/chat/completions", ask(model, &question)).await).await;
                (i, model, status, body)
            })
        })
        .collect();
    for task in tasks {
        let (i, model, status, body) = task.await.unwrap();
        assert_eq!(status, 200, "{body}");
        let content = body["choices"][0]["message"]["content"].as_str().unwrap();
        if model == "echo" {
            assert_eq!(content, format!("echo: question number {i}"));
        } else {
            let calls = body["switchyard"]["trajectory"]["calls"].as_array().unwrap();
            assert_eq!(calls[0]["query"], format!("question number {i}"), "{body}");
        }
    }
}

#[tokio::test]
async fn reload_swaps_the_pool_and_keeps_serving_on_a_broken_config() {
    let backend = backend::start().await;
    // SAFETY: only this test reads this variable.
    unsafe { std::env::set_var("SWITCHYARD_TEST_ADMIN_KEY", "admin-secret") };
    let config = pool_config(&backend.url());
    let server = std::sync::Arc::new(TestServer::start(&config).await);
    let reload = |key: &'static str| server.client.post(server.url("/admin/reload")).bearer_auth(key).send();
    assert_eq!(reload("wrong").await.unwrap().status(), 401);

    // Traffic during the reloads: every request must succeed.
    let traffic = {
        let server = server.clone();
        tokio::spawn(async move {
            for i in 0..40 {
                let (status, body) =
                    json_of(server.post("/v1/chat/completions", ask("switchyard/cheapest", &format!("q{i}"))).await)
                        .await;
                assert_eq!(status, 200, "{body}");
            }
        })
    };

    std::fs::write(&server.config_path, with_model(&config, "newcomer", "echo", "")).unwrap();
    let (status, body) = json_of(reload("admin-secret").await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["models"].as_array().unwrap().iter().any(|m| m == "newcomer"));
    let (status, _) = json_of(server.post("/v1/chat/completions", ask("newcomer", "hi")).await).await;
    assert_eq!(status, 200);

    std::fs::write(&server.config_path, config.replace("adapter = \"openai-chat\"", "adapter = \"missing-adapter\""))
        .unwrap();
    let (status, body) = json_of(reload("admin-secret").await.unwrap()).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("missing-adapter"), "{body}");
    let (status, _) = json_of(server.post("/v1/chat/completions", ask("newcomer", "hi")).await).await;
    assert_eq!(status, 200, "the previous configuration still serves");
    traffic.await.unwrap();
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let backend = backend::start().await;
    let config = with_model(&pool_config(&backend.url()), "sleepy", "slow-500", "");
    let mut server = TestServer::start(&config).await;
    let request = server.client.post(server.url("/v1/chat/completions")).json(&ask("sleepy", "hi")).send();
    let in_flight = tokio::spawn(request);
    // Shut down once the request is in flight (the backend has it).
    while backend.recorded.calls_to("slow-500") == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    server.shutdown();
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    server.finished.take().unwrap().await.unwrap().unwrap();
}

#[tokio::test]
async fn the_cost_component_defines_what_a_call_costs() {
    let backend = backend::start().await;
    // A model that takes at least 20 ms, so there is latency to charge.
    let config = with_model(&pool_config(&backend.url()), "slowish", "slow-20", "");
    let token_priced = TestServer::start(&config).await;
    let latency_priced = TestServer::start(
        &config
            .replace("cost = \"token-price\"", "cost = \"latency-weighted\"\ncost_settings = { per-second = 100.0 }"),
    )
    .await;
    let cost = |body: &Value| body["switchyard"]["cost"].as_f64().unwrap();
    let (_, a) = json_of(token_priced.post("/v1/chat/completions", ask("slowish", "hi")).await).await;
    let (_, b) = json_of(latency_priced.post("/v1/chat/completions", ask("slowish", "hi")).await).await;
    assert!(cost(&b) > cost(&a), "latency is charged: {} vs {}", cost(&b), cost(&a));
}

#[tokio::test]
async fn the_per_model_concurrency_limit_queues_requests() {
    let backend = backend::start().await;
    let config = with_model(&pool_config(&backend.url()), "single", "slow-300", "max_concurrency = 1");
    let server = std::sync::Arc::new(TestServer::start(&config).await);
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let server = server.clone();
            tokio::spawn(async move { server.post("/v1/chat/completions", ask("single", "hi")).await.status() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert!(started.elapsed() >= std::time::Duration::from_millis(900), "one at a time: {:?}", started.elapsed());
}

#[tokio::test]
async fn plugin_errors_are_counted_by_type() {
    let backend = backend::start().await;
    let config = with_model(&pool_config(&backend.url()), "garbled", "malformed", "retries = 0");
    let server = TestServer::start(&config).await;
    server.post("/v1/chat/completions", ask("garbled", "hi")).await;
    let metrics = server.client.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("switchyard_plugin_errors_total{type=\"rejected\",kind=\"adapter\",plugin=\"openai-chat\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn anthropic_streams_pass_through_with_merged_usage() {
    let backend = backend::start().await;
    let server = TestServer::start(&pool_config(&backend.url())).await;
    let mut request = ask("claude-geo", "What is the capital of Veloria?");
    request["stream"] = json!(true);
    let text = server.post("/v1/chat/completions", request).await.text().await.unwrap();
    let data: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert_eq!(*data.last().unwrap(), "[DONE]", "{text}");
    let chunks: Vec<Value> = data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    let content: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(content, "Karsk.");
    let usage = &chunks.last().unwrap()["usage"];
    // Input from message_start, output from message_delta: both kept.
    assert!(
        usage["prompt_tokens"].as_u64().unwrap() > 10 && usage["completion_tokens"].as_u64().unwrap() >= 1,
        "{usage}"
    );
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "stop"), "{text}");
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_its_episode() {
    let backend = backend::start().await;
    // The cheapest model is slow and then refuses, so the cascade would go
    // on to `tiny` (remote `knows-nothing`) — unless the episode was cancelled.
    let config = with_model(&pool_config(&backend.url()), "sluggish", "slow-refuse-600", "")
        .replace("latency_ms = 1, context_tokens = 8192 }", "latency_ms = 1, context_tokens = 8192, size_b = 0.5 }")
        .replace(
            "price_in_per_mtok = 0.1, price_out_per_mtok = 0.1, latency_ms = 1",
            "price_in_per_mtok = 0.001, price_out_per_mtok = 0.001, latency_ms = 1",
        );
    let server = TestServer::start(&config).await;
    let impatient = reqwest::Client::builder().timeout(std::time::Duration::from_millis(200)).build().unwrap();
    let sent =
        impatient.post(server.url("/v1/chat/completions")).json(&ask("switchyard/cascade", "anything?")).send().await;
    assert!(sent.is_err(), "the client gave up");
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(backend.recorded.calls_to("slow-refuse-600"), 1);
    assert_eq!(backend.recorded.calls_to("knows-nothing"), 0, "the cancelled episode made no further calls");

    // Control: a patient client sees the cascade go on to the next model.
    let (status, _) = json_of(server.post("/v1/chat/completions", ask("switchyard/cascade", "anything?")).await).await;
    assert_eq!(status, 200);
    assert!(backend.recorded.calls_to("knows-nothing") >= 1);
}
