//! The reference plugins, run through the host runtime exactly as the engine
//! will run them (their logic is also unit-tested natively in plugins/).

use switchyard::plugin::types::*;
use switchyard::plugin::{Adapter, Cost, Error, Plugin, Reward, Strategy};
use switchyard_tests::*;

fn reward() -> Plugin<Reward> {
    Plugin::load(&runtime(), &plugin("router-r1")).unwrap()
}

#[test]
fn router_r1_rewards_correct_well_formed_answers() {
    let r = reward().score(&scoring_input("the Amsel", &["Amsel river", "Amsel"]), &params(0.0)).unwrap();
    assert_eq!((r.format, r.exact_match, r.outcome, r.total), (0.0, 1.0, 1.0, 1.0), "{r:?}");
    assert_eq!(r.answer.as_deref(), Some("the Amsel"));
    assert!((r.raw_cost - 0.000_01).abs() < 1e-15);

    let wrong = reward().score(&scoring_input("Rhine", &["Amsel"]), &params(0.0)).unwrap();
    assert_eq!((wrong.format, wrong.total), (0.0, 0.0));
}

#[test]
fn router_r1_alpha_trades_outcome_against_cost() {
    let input = scoring_input("Amsel", &["Amsel"]);
    let totals: Vec<f64> = [0.0, 0.5, 0.9].iter().map(|&a| reward().score(&input, &params(a)).unwrap().total).collect();
    // c = 1 - sqrt(1e-5)/0.01 ~ 0.684: more alpha, more weight on the (imperfect) cost score.
    assert_eq!(totals[0], 1.0);
    assert!(totals[0] > totals[1] && totals[1] > totals[2], "{totals:?}");
    let r = reward().score(&input, &params(0.5)).unwrap();
    assert!((r.total - (0.5 + 0.5 * r.cost_score)).abs() < 1e-12, "{r:?}");
}

#[test]
fn router_r1_format_failures_override_everything() {
    let mut input = scoring_input("Amsel", &["Amsel"]);
    input.trajectory.segments[2].text = "<think>Now its river.</think>\n<search>gpt-9: Which river?</search>\n".into();
    let r = reward().score(&input, &params(0.0)).unwrap();
    assert_eq!((r.format, r.total), (-1.0, -1.0), "{r:?}");
    assert!(r.format_errors.iter().any(|e| e.contains("gpt-9")), "{:?}", r.format_errors);

    // An answer inside host-inserted information is not the router's answer.
    let mut input = scoring_input("Amsel", &["Amsel"]);
    input.trajectory.segments[3].text = "<information>&lt;answer&gt; <answer>Amsel</answer></information>\n".into();
    input.trajectory.segments[4].text = "<think>Done.</think>".into();
    let r = reward().score(&input, &params(0.0)).unwrap();
    assert_eq!(r.total, -1.0, "{r:?}");
}

#[test]
fn router_r1_batch_percentiles_do_not_depend_on_order() {
    let mut inputs: Vec<ScoringInput> = (1..=5)
        .map(|i| {
            let mut input = scoring_input("Amsel", &["Amsel"]);
            input.trajectory.calls[0].cost = i as f64 * 1e-4;
            input
        })
        .collect();
    let p =
        RewardParams { alpha: 0.5, metric: Metric::ExactMatch, cost_bounds: CostBounds::BatchPercentiles((5.0, 95.0)) };
    let forward = reward().score_batch(&inputs, &p).unwrap();
    inputs.reverse();
    let mut backward = reward().score_batch(&inputs, &p).unwrap();
    backward.reverse();
    assert_eq!(forward, backward);
    assert!(forward[0].cost_score > forward[4].cost_score, "cheaper scores higher");
}

#[test]
fn router_r1_refuses_bad_params() {
    let err = reward().score(&scoring_input("Amsel", &["Amsel"]), &params(1.5)).unwrap_err();
    match err {
        Error::Rejected { error, .. } => assert_eq!(error.kind, ErrorKind::InvalidInput, "{}", error.message),
        other => panic!("expected a refusal, got {other}"),
    }
}

#[test]
fn cost_plugins_price_calls() {
    let runtime = runtime();
    let model = &pool()[2]; // 0.9 in, 1.2 out per 1M tokens
    let usage = Usage { input_tokens: 1_000, output_tokens: 2_000 };
    let token_price = Plugin::<Cost>::load(&runtime, &plugin("token-price")).unwrap();
    let base = token_price.cost(model, usage, 1500, &[]).unwrap();
    assert!((base - (0.0009 + 0.0024)).abs() < 1e-15, "{base}");

    let latency = Plugin::<Cost>::load(&runtime, &plugin("latency-weighted")).unwrap();
    assert!((latency.cost(model, usage, 1500, &[]).unwrap() - base).abs() < 1e-15);
    let weighted = latency.cost(model, usage, 1500, &[Setting { name: "per-second".into(), value: 0.002 }]).unwrap();
    assert!((weighted - (base + 0.003)).abs() < 1e-12, "{weighted}");
    let err = latency.cost(model, usage, 1500, &[Setting { name: "per-minute".into(), value: 1.0 }]).unwrap_err();
    assert!(err.to_string().contains("per-minute"), "{err}");
}

fn chat(streaming: bool) -> ChatRequest {
    ChatRequest {
        model: "remote-id".into(),
        messages: vec![
            ChatMessage { role: "system".into(), content: "Answer briefly.".into() },
            ChatMessage { role: "user".into(), content: "Capital of Veloria?".into() },
        ],
        max_tokens: Some(64),
        temperature: Some(0.0),
        top_p: None,
        stop: vec![],
        streaming,
    }
}

#[test]
fn openai_adapter_round_trip() {
    let adapter = Plugin::<Adapter>::load(&runtime(), &plugin("openai-chat")).unwrap();
    assert_eq!(adapter.auth().unwrap(), AuthScheme::Bearer);
    let req = adapter.build_request(&chat(false), "http://127.0.0.1:8000/v1/").unwrap();
    assert_eq!(req.url, "http://127.0.0.1:8000/v1/chat/completions");
    let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body["model"], "remote-id");
    assert_eq!(body["messages"][1]["content"], "Capital of Veloria?");
    assert_eq!(body["max_tokens"], 64);

    let reply = br#"{"model":"remote-id","choices":[{"message":{"role":"assistant","content":"Karsk."},"finish_reason":"stop"}],
                     "usage":{"prompt_tokens":21,"completion_tokens":3}}"#;
    let done = adapter.parse_response(&HttpResponse { status: 200, headers: vec![], body: reply.to_vec() }).unwrap();
    assert_eq!(done.text, "Karsk.");
    assert_eq!(done.usage, Some(Usage { input_tokens: 21, output_tokens: 3 }));

    let limited = br#"{"error":{"message":"Rate limit reached","type":"rate_limit"}}"#;
    let err =
        adapter.parse_response(&HttpResponse { status: 429, headers: vec![], body: limited.to_vec() }).unwrap_err();
    assert!(err.to_string().contains("Rate limit reached"), "{err}");

    let mut warm = adapter.warm();
    let chunk = r#"{"choices":[{"delta":{"content":"Kar"},"finish_reason":null}]}"#;
    assert!(matches!(warm.parse_stream_event("", chunk).unwrap(), StreamEvent::Delta(d) if d.text == "Kar"));
    assert_eq!(warm.parse_stream_event("", "[DONE]").unwrap(), StreamEvent::Done);
    assert!(warm.parse_stream_event("", "{truncated").is_err());
}

#[test]
fn anthropic_adapter_round_trip() {
    let adapter = Plugin::<Adapter>::load(&runtime(), &plugin("anthropic-messages")).unwrap();
    assert_eq!(adapter.auth().unwrap(), AuthScheme::Header("x-api-key".into()));
    let req = adapter.build_request(&chat(true), "https://api.anthropic.com/v1").unwrap();
    assert_eq!(req.url, "https://api.anthropic.com/v1/messages");
    let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body["system"], "Answer briefly.");
    assert_eq!(body["messages"].as_array().unwrap().len(), 1);
    assert_eq!(body["stream"], true);
    assert!(req.headers.iter().any(|(k, v)| k == "anthropic-version" && v == "2023-06-01"));

    let reply = br#"{"model":"claude","content":[{"type":"text","text":"Karsk."}],"stop_reason":"end_turn",
                     "usage":{"input_tokens":30,"output_tokens":4}}"#;
    let done = adapter.parse_response(&HttpResponse { status: 200, headers: vec![], body: reply.to_vec() }).unwrap();
    assert_eq!((done.text.as_str(), done.finish_reason.as_deref()), ("Karsk.", Some("stop")));
    assert_eq!(done.usage, Some(Usage { input_tokens: 30, output_tokens: 4 }));
    let delta = r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Ka"}}"#;
    assert!(
        matches!(adapter.parse_stream_event("content_block_delta", delta).unwrap(), StreamEvent::Delta(d) if d.text == "Ka")
    );
    assert_eq!(adapter.parse_stream_event("message_stop", r#"{"type":"message_stop"}"#).unwrap(), StreamEvent::Done);
}

fn state(calls: Vec<RoutedCall>, turn: u32) -> RoutingState {
    RoutingState { question: "Which river flows through Karsk?".into(), pool: pool(), calls, turn, max_turns: 4 }
}

fn route_of(action: Action) -> String {
    match action {
        Action::Route(r) => r.model,
        Action::Answer(a) => panic!("expected a route, got answer {a:?}"),
    }
}

#[test]
fn strategies_choose_by_descriptor() {
    let runtime = runtime();
    let load = |name| Plugin::<Strategy>::load(&runtime, &plugin(name)).unwrap();
    assert_eq!(route_of(load("largest").decide(&state(vec![], 0), &[]).unwrap()), "large-reasoner");
    assert_eq!(route_of(load("cheapest").decide(&state(vec![], 0), &[]).unwrap()), "small-geo");

    let cascade = load("cascade");
    assert_eq!(route_of(cascade.decide(&state(vec![], 0), &[]).unwrap()), "small-geo");
    let refused = vec![call("small-geo", "Which river flows through Karsk?", "I don't know.", 1e-6)];
    assert_eq!(route_of(cascade.decide(&state(refused.clone(), 1), &[]).unwrap()), "mid-general");
    let mut answered = refused;
    answered.push(call("mid-general", "Which river flows through Karsk?", "The Amsel.", 1e-6));
    assert_eq!(cascade.decide(&state(answered, 2), &[]).unwrap(), Action::Answer("The Amsel.".into()));
}
