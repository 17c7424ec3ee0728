//! The trained router on ONNX Runtime, end to end: a tiny router (trained tokenizer, random
//! decoder) exported by the training crate, loaded by the host's policy runtime, checked
//! against the tch decoder it was exported from, and served through the real server and CLI.
//!
//! ONNX Runtime is loaded from `ORT_DYLIB_PATH` (`.cargo/config.toml` points it at
//! `.venv/libonnxruntime.so`, which scripts/setup installs); the CLI tests run the
//! `switchyard` binary built next to this test binary.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};
use switchyard::engine::protocol::STOP_STRINGS;
use switchyard::policy::chat_template::CHATML;
use switchyard::policy::{
    ChatTemplate, Finish, GenerateOptions, Model, ModelOptions, OnnxPolicy, RouterOptions, RouterPrompt, Sampling,
    SessionOptions, StopSet,
};
use switchyard_tests::router::{self, RouterFixture, spawn_embedded, stderr_of, switchyard_binary};
use switchyard_tests::server::{TestServer, pool_config};
use switchyard_tests::{backend, pool};
use switchyard_train::generate::{Sampling as TchSampling, TurnInput, generate};
use switchyard_train::tokenizer::END_OF_TURN;

fn options(label: &str) -> ModelOptions {
    ModelOptions {
        session: SessionOptions { intra_threads: Some(1), ..SessionOptions::default() },
        label: label.into(),
        ..ModelOptions::default()
    }
}

fn load(dir: &Path) -> Model {
    Model::load(dir, &options("test-router")).unwrap_or_else(|e| panic!("{e}"))
}

fn load_error(dir: &Path) -> String {
    match Model::load(dir, &options("broken-router")) {
        Ok(_) => panic!("{} loaded, but should not", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn greedy(model: &Model, max_new_tokens: usize) -> GenerateOptions {
    GenerateOptions { max_new_tokens, sampling: Sampling::GREEDY, seed: 0, stop: model.stops(&[]), grammar: None }
}

/// The router prompt for `question` over the test pool, as training renders it.
fn router_prompt(question: &str) -> String {
    let messages = RouterPrompt::new().messages(question, &pool()).unwrap();
    ChatTemplate::new(CHATML, "", END_OF_TURN).unwrap().render(&messages, true).unwrap()
}

fn prompts() -> Vec<String> {
    vec![
        router_prompt("Which river flows through the capital of Veloria?"),
        "<search>small-geo: What is".into(),
        "Which river flows through Karsk?".into(),
    ]
}

/// tch's greedy decode of `prompt` (stopping, as the host does, on the tokenizer's stop ids
/// and the protocol's stop strings): tokens and text cut after a stop string.
fn tch_greedy(fixture: &RouterFixture, prompt: &str, max_new_tokens: usize) -> (Vec<u32>, String) {
    let (model, tokenizer) = (fixture.model(), fixture.tokenizer());
    let ids = tokenizer.encode(prompt).unwrap();
    let turn = TurnInput::new(ids);
    let out = generate(&model, &tokenizer, &[turn], &TchSampling::greedy(max_new_tokens)).unwrap().remove(0);
    let tokens = out.tokens.iter().map(|&t| t as u32).collect();
    let text = StopSet::new(vec![], STOP_STRINGS.iter().map(|s| s.to_string()).collect()).cut(&out.text).to_string();
    (tokens, text)
}

#[test]
fn greedy_decoding_matches_tch_alone_and_in_a_batch() {
    let fixture = router::shared();
    let model = load(&fixture.export);
    let expected: Vec<_> = prompts().iter().map(|p| tch_greedy(fixture, p, 40)).collect();
    assert!(expected.iter().any(|(tokens, _)| tokens.len() > 20), "the decodes are long enough to compare");

    for (prompt, (tokens, text)) in prompts().iter().zip(&expected) {
        let ids = model.tokenizer.encode(prompt).unwrap();
        let got = model.generator.generate_blocking(ids, greedy(&model, 40)).unwrap();
        assert_eq!(&got.tokens, tokens, "prompt {prompt:?}");
        assert_eq!(&got.text, text, "prompt {prompt:?}");
    }

    // All at once: the decoder batches them (left-padded, caches merged); nothing changes.
    let before = model.generator.stats();
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = prompts()
            .into_iter()
            .map(|prompt| {
                let model = &model;
                s.spawn(move || {
                    let ids = model.tokenizer.encode(&prompt).unwrap();
                    model.generator.generate_blocking(ids, greedy(model, 40)).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (got, (tokens, text)) in results.iter().zip(&expected) {
        assert_eq!(&got.tokens, tokens);
        assert_eq!(&got.text, text);
    }
    let after = model.generator.stats();
    let (steps, rows) = (after.step_passes - before.step_passes, after.step_rows - before.step_rows);
    assert!(rows > steps, "concurrent requests shared decoding steps ({rows} rows in {steps} steps)");
}

#[test]
fn stop_tokens_and_stop_strings_spanning_tokens_end_the_generation_exactly() {
    let fixture = router::shared();
    let model = load(&fixture.export);
    let ids = model.tokenizer.encode(&prompts()[0]).unwrap();
    let unstopped = GenerateOptions { stop: StopSet::new(vec![], vec![]), ..greedy(&model, 40) };
    let free = model.generator.generate_blocking(ids.clone(), unstopped.clone()).unwrap();
    assert_eq!(free.finish, Finish::Length);
    assert_eq!(free.tokens.len(), 40);
    let text = &free.text;

    // A stop id ends the generation on that token, kept.
    let stop_id = free.tokens[5];
    let first = free.tokens.iter().position(|&t| t == stop_id).unwrap();
    let options = GenerateOptions { stop: StopSet::new(vec![stop_id], vec![]), ..unstopped.clone() };
    let got = model.generator.generate_blocking(ids.clone(), options).unwrap();
    assert_eq!(got.tokens, free.tokens[..=first]);
    assert_eq!(got.finish, Finish::StopToken(stop_id));

    // A stop string made of the last character of token k and the first of token k + 1.
    let decoded: Vec<String> =
        (0..=free.tokens.len()).map(|n| model.tokenizer.decode(&free.tokens[..n]).unwrap()).collect();
    let (k, stop) = (1..free.tokens.len() - 1)
        .find_map(|k| {
            let (a, b, c) = (&decoded[k], &decoded[k + 1], &decoded[k + 2]);
            let clean = c.starts_with(b.as_str()) && b.starts_with(a.as_str()) && text.starts_with(c.as_str());
            if !clean || b.len() < a.len() + 2 || c.len() < b.len() + 2 {
                return None;
            }
            let stop = text.get(b.len() - 1..b.len() + 1)?;
            (stop.is_ascii() && text.find(stop) == Some(b.len() - 1)).then(|| (k, stop.to_string()))
        })
        .expect("the fixture's decode has a token boundary to put a stop string across");
    let options = GenerateOptions { stop: StopSet::new(vec![], vec![stop.clone()]), ..unstopped };
    let got = model.generator.generate_blocking(ids, options).unwrap();
    // Token k (0-based) ends at decoded[k + 1]; the stop string is completed by token k + 1.
    assert_eq!(got.tokens, free.tokens[..=k + 1], "stopped on the token that completed {stop:?}");
    assert_eq!(got.text, text[..decoded[k + 1].len() + 1], "cut right after {stop:?}");
    assert!(got.text.len() < decoded[k + 2].len(), "the rest of the completing token is dropped");
    assert_eq!(got.finish, Finish::StopString(stop));
}

#[test]
fn seeded_sampling_is_reproducible_whatever_runs_alongside() {
    let fixture = router::shared();
    let model = load(&fixture.export);
    let ids = model.tokenizer.encode(&prompts()[0]).unwrap();
    let sampled = |seed| GenerateOptions {
        max_new_tokens: 32,
        sampling: Sampling { temperature: 1.0, top_p: 0.95 },
        seed,
        stop: StopSet::new(vec![], vec![]),
        grammar: None,
    };
    let alone = model.generator.generate_blocking(ids.clone(), sampled(11)).unwrap();
    let again = model.generator.generate_blocking(ids.clone(), sampled(11)).unwrap();
    assert_eq!(alone.tokens, again.tokens);
    assert_eq!(alone.tokens.len(), 32);

    let crowded: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = [11u64, 12, 13]
            .into_iter()
            .map(|seed| {
                let (model, ids) = (&model, ids.clone());
                s.spawn(move || model.generator.generate_blocking(ids, sampled(seed)).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(crowded[0].tokens, alone.tokens, "same seed, same tokens, even batched with others");
    assert_ne!(crowded[1].tokens, alone.tokens, "another seed samples differently");
    let greedy_tokens = model.generator.generate_blocking(ids, greedy(&model, 32)).unwrap().tokens;
    assert_ne!(alone.tokens, greedy_tokens, "sampling is not greedy");
}

/// The fixture's grammar vocabulary: its tag and stop columns and token texts.
fn grammar_vocab(
    model: &switchyard::policy::Model,
) -> std::sync::Arc<switchyard::engine::protocol_grammar::Vocabulary> {
    std::sync::Arc::new(switchyard::policy::router::grammar_vocabulary(model, &model.stops(&[])))
}

/// Sampled freely, the random fixture writes tags the protocol forbids where it writes them;
/// under the tag grammar it never does (checked token by token against the grammar), on
/// routed and final turns alike.
#[test]
fn the_tag_grammar_keeps_sampled_turns_to_the_protocol() {
    use switchyard::engine::grammar::TurnGrammar;
    use switchyard::engine::protocol_grammar::TurnRules;
    use switchyard::policy::sequence::TurnConstraint;

    let fixture = router::shared();
    let model = load(&fixture.export);
    let vocab = grammar_vocab(&model);
    let tags = vocab.tags();
    assert!(!tags.has_no_tags(), "the fixture's tokenizer has the tags as tokens");
    let ids = model.tokenizer.encode(&prompts()[0]).unwrap();
    let violations = |grammar: bool, final_turn: bool| -> usize {
        let mut count = 0;
        for seed in 0..30 {
            let options = GenerateOptions {
                max_new_tokens: 48,
                sampling: Sampling { temperature: 1.5, top_p: 1.0 },
                seed,
                stop: StopSet::new(vec![], vec![]),
                grammar: grammar
                    .then(|| TurnConstraint { vocab: vocab.clone(), rules: TurnRules::tags_only(final_turn) }),
            };
            let generation = model.generator.generate_blocking(ids.clone(), options).unwrap();
            let mut state = TurnGrammar::new(final_turn);
            for &token in &generation.tokens {
                count += usize::from(tags.forbidden_ids(tags.forbidden(&state)).any(|id| id == token));
                tags.observe(&mut state, token);
            }
        }
        count
    };
    assert!(violations(false, false) > 0, "the test needs a model that breaks the grammar unconstrained");
    assert_eq!(violations(true, false), 0);
    assert_eq!(violations(true, true), 0);
}

/// Under the whole protocol grammar the random fixture's sampled turns all end in a complete
/// action within the budget, and the grammar's own check accepts their text; with extractive
/// answers every answer is a span of the evidence.
#[test]
fn the_protocol_grammar_makes_a_random_router_write_complete_turns() {
    use switchyard::engine::answer_spans::Evidence;
    use switchyard::engine::protocol_grammar::{TurnRules, check_turn_text};
    use switchyard::policy::sequence::TurnConstraint;

    let fixture = router::shared();
    let model = load(&fixture.export);
    let vocab = grammar_vocab(&model);
    let ids = model.tokenizer.encode(&prompts()[0]).unwrap();
    let stops = model.stops(&STOP_STRINGS);
    let evidence = std::sync::Arc::new(Evidence::new(["Who is older, Kithsu Lorvath or Zakdru?", "1949."]));
    for (final_turn, extractive) in [(false, false), (true, false), (true, true)] {
        let rules = TurnRules {
            final_turn,
            first_turn: !final_turn,
            budget: 64,
            // Names that fit in the reserve (16) spelled a character a token (see the module).
            models: TurnRules::model_names(["qwen-7b", "llama-8b"]),
            text_rules: true,
            evidence: extractive.then(|| evidence.clone()),
        };
        for seed in 0..12 {
            let options = GenerateOptions {
                max_new_tokens: 64,
                sampling: Sampling { temperature: 1.5, top_p: 1.0 },
                seed,
                stop: stops.clone(),
                grammar: Some(TurnConstraint { vocab: vocab.clone(), rules: rules.clone() }),
            };
            let generation = model.generator.generate_blocking(ids.clone(), options).unwrap();
            assert!(generation.tokens.len() <= 64);
            if let Err(e) = check_turn_text(&generation.text, rules.clone()) {
                panic!("seed {seed}, final {final_turn}: {e}: {:?}", generation.text);
            }
            if extractive {
                let answer = generation.text.split_once("<answer>").map(|(_, a)| a.replace("</answer>", ""));
                let answer = answer.unwrap_or_default().trim().to_lowercase();
                assert!(evidence.holds_span(&answer), "seed {seed}: {answer:?} is not copied: {:?}", generation.text);
            }
        }
    }
}

#[test]
fn every_malformed_or_missing_model_file_is_a_clear_error_at_load() {
    let fixture = router::shared();
    let check = |dir: &Path, file: &str, reason: &str| {
        let err = load_error(dir);
        assert!(err.contains(file) && err.contains(reason), "expected `{file}` and `{reason}` in: {err}");
    };
    let altered = |f: &dyn Fn(&Path)| {
        let dir = fixture.copy();
        f(dir.path());
        dir
    };

    check(&fixture.export.join("no-such-dir"), "no-such-dir", "not a directory");
    let dir = altered(&|d| std::fs::remove_file(d.join("model.onnx")).unwrap());
    check(dir.path(), "model.onnx", "missing");
    let dir = altered(&|d| std::fs::write(d.join("model.onnx"), b"these are not onnx bytes").unwrap());
    check(dir.path(), "model.onnx", "cannot load the graph");
    let dir = altered(&|d| std::fs::remove_file(d.join("tokenizer.json")).unwrap());
    check(dir.path(), "tokenizer.json", "missing");
    let dir = altered(&|d| std::fs::write(d.join("tokenizer.json"), "{\"model\": 1}").unwrap());
    check(dir.path(), "tokenizer.json", "not a valid tokenizer");
    let dir = altered(&|d| std::fs::write(d.join("tokenizer_config.json"), "{\"chat_template\": ").unwrap());
    check(dir.path(), "tokenizer_config.json", "invalid JSON");
    let dir = altered(&|d| {
        std::fs::write(d.join("tokenizer_config.json"), r#"{"chat_template": "{% for %}", "eos_token": "<|im_end|>"}"#)
            .unwrap()
    });
    check(dir.path(), "tokenizer_config.json", "chat_template does not compile");
    let dir = altered(&|d| std::fs::write(d.join("tokenizer_config.json"), r#"{"eos_token": 5}"#).unwrap());
    check(dir.path(), "tokenizer_config.json", "eos_token");
    let dir = altered(&|d| std::fs::write(d.join("generation_config.json"), "{eos_token_id: [1]}").unwrap());
    check(dir.path(), "generation_config.json", "invalid JSON");
    let dir =
        altered(&|d| std::fs::write(d.join("generation_config.json"), r#"{"eos_token_id": [3, 99999]}"#).unwrap());
    check(dir.path(), "generation_config.json", "99999 is not a token id");

    // The graph's interface: an input or output renamed (same length, so the protobuf stays
    // valid and only the name changes).
    let rename = |from: &str, to: &str| {
        altered(&|d| {
            let bytes = std::fs::read(d.join("model.onnx")).unwrap();
            let (from, to) = (from.as_bytes(), to.as_bytes());
            let mut out = Vec::with_capacity(bytes.len());
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i..].starts_with(from) {
                    out.extend_from_slice(to);
                    i += from.len();
                } else {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
            std::fs::write(d.join("model.onnx"), out).unwrap();
        })
    };
    let dir = rename("attention_mask", "attention_mosk");
    check(dir.path(), "model.onnx", "no input `attention_mask`");
    let dir = rename("logits", "logots");
    check(dir.path(), "model.onnx", "no output `logits`");
    let dir = rename("present.1.value", "present.1.vaxue");
    check(dir.path(), "model.onnx", "present.1.value");

    // External weights that went missing.
    let dir = router::scratch_dir();
    let model = fixture.model();
    switchyard_train::export::export_dir(&model, &[&fixture.source], dir.path(), true).unwrap();
    assert!(load(dir.path()).vocab > 0, "the external-data export loads");
    std::fs::remove_file(dir.path().join("model.onnx_data")).unwrap();
    check(dir.path(), "model.onnx", "cannot load the graph");

    // A router needs the chat template; a model without one loads, the policy does not.
    let dir = altered(&|d| std::fs::write(d.join("tokenizer_config.json"), r#"{"eos_token": "<|im_end|>"}"#).unwrap());
    assert!(load(dir.path()).chat_template.is_none());
    let err =
        OnnxPolicy::load("switchyard/router-r1", dir.path(), &RouterOptions::default()).err().unwrap().to_string();
    assert!(err.contains("tokenizer_config.json") && err.contains("chat_template"), "{err}");
}

#[test]
fn a_router_trained_on_its_own_prompt_reads_listings_with_it_wherever_it_is_exported() {
    use switchyard::policy::model_dir::ROUTER_PROMPT_FILE;
    use switchyard::policy::prompt::BY_DOMAIN_TEMPLATE;
    let fixture = router::shared();
    // A training checkpoint holding the template it was trained on: the export carries it.
    let source = router::scratch_dir();
    for entry in std::fs::read_dir(&fixture.source).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, source.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(source.path().join(ROUTER_PROMPT_FILE), BY_DOMAIN_TEMPLATE).unwrap();
    let out = router::scratch_dir();
    switchyard_train::export::export_dir(&fixture.model(), &[source.path()], out.path(), false).unwrap();
    assert_eq!(std::fs::read_to_string(out.path().join(ROUTER_PROMPT_FILE)).unwrap(), BY_DOMAIN_TEMPLATE);

    let prompt_of = |options: &RouterOptions| {
        let policy = OnnxPolicy::load("switchyard/router-r1", out.path(), options).unwrap_or_else(|e| panic!("{e}"));
        policy.prompt_text("Who won?", &pool()).unwrap()
    };
    let by_domain = "per domain (score, $, model)";
    assert!(prompt_of(&RouterOptions::default()).contains(by_domain), "the model's own template is not used");
    // A policy's configured template still wins over the model's.
    let configured = RouterOptions {
        prompt_template: Some(switchyard::policy::prompt::DEFAULT_TEMPLATE.to_string()),
        ..RouterOptions::default()
    };
    assert!(!prompt_of(&configured).contains(by_domain));
    // The shipped template when the model has none (the fixture's own export).
    let plain = OnnxPolicy::load("switchyard/router-r1", &fixture.export, &RouterOptions::default()).unwrap();
    assert!(!plain.prompt_text("Who won?", &pool()).unwrap().contains(by_domain));

    // A broken template is an error at load that names the file.
    std::fs::write(out.path().join(ROUTER_PROMPT_FILE), "{% for %}").unwrap();
    let err =
        OnnxPolicy::load("switchyard/router-r1", out.path(), &RouterOptions::default()).err().unwrap().to_string();
    assert!(err.contains(ROUTER_PROMPT_FILE) && err.contains("router prompt template"), "{err}");
}

async fn metric(server: &TestServer, line_has: &[&str]) -> f64 {
    let text = server.client.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && line_has.iter().all(|s| l.contains(s)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_chat_completion_through_the_server_is_written_by_the_router() {
    let fixture = router::shared();
    let backend = backend::start().await;
    let config = format!(
        "{}\n[[policies]]\nname = \"switchyard/router-r1\"\nonnx = \"{}\"\nthreads = 1\nmax_new_tokens = 24\n",
        pool_config(&backend.url()),
        fixture.export.display()
    );
    let server = TestServer::start(&config).await;
    let question = "What is the capital of Veloria?";
    let response = server
        .post(
            "/v1/chat/completions",
            json!({ "model": "switchyard/router-r1", "messages": [{ "role": "user", "content": question }] }),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-switchyard-policy"], "switchyard/router-r1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "switchyard/router-r1");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert!(body["choices"][0]["finish_reason"].is_string());
    assert!(body["usage"]["total_tokens"].is_u64());
    let trace = &body["switchyard"];
    assert_eq!(trace["policy"], "switchyard/router-r1");
    assert_eq!(trace["question"], question);

    // The first turn is what the exported model writes for the router prompt over this pool.
    let descriptors = server.state.snapshot().pool.descriptors();
    let messages = RouterPrompt::new().messages(question, &descriptors).unwrap();
    let prompt = ChatTemplate::new(CHATML, "", END_OF_TURN).unwrap().render(&messages, true).unwrap();
    let (_, expected) = tokio::task::spawn_blocking(move || tch_greedy(router::shared(), &prompt, 24)).await.unwrap();
    let first = &trace["trajectory"]["segments"][0];
    assert_eq!(first["author"], "router", "{trace}");
    assert_eq!(first["text"], expected.as_str(), "{trace}");

    // The policy is listed with its model directory.
    let models: Value = server.client.get(server.url("/v1/models")).send().await.unwrap().json().await.unwrap();
    let listed = models["data"].as_array().unwrap().iter().find(|m| m["id"] == "switchyard/router-r1").unwrap();
    assert_eq!(listed["switchyard"]["onnx"], fixture.export.display().to_string());
}

#[tokio::test]
async fn a_client_that_disconnects_stops_the_decoding() {
    let fixture = router::looping();
    // Only the protocol's stop strings end a turn; the greedy decode of this model runs to its
    // token budget (checked below), long after the client gives up.
    let dir = fixture.copy();
    std::fs::write(dir.path().join("generation_config.json"), r#"{"eos_token_id": [], "stop_strings": []}"#).unwrap();
    let backend = backend::start().await;
    let name = "switchyard/router-r1-cancel";
    let config = format!(
        "{}\n[[policies]]\nname = \"{name}\"\nonnx = \"{}\"\nthreads = 1\nmax_new_tokens = 1500\n",
        pool_config(&backend.url()),
        dir.path().display()
    );
    let server = TestServer::start(&config).await;
    let label = format!("model=\"{name}\"");
    let steps_metric = ["switchyard_policy_decode_steps_total", label.as_str()];

    // The client gives up once decoding is under way (not after a fixed time: on an idle
    // machine this tiny model decodes the whole budget in well under a second).
    let request = reqwest::Client::new()
        .post(server.url("/v1/chat/completions"))
        .json(
            &json!({ "model": name, "messages": [{ "role": "user", "content": "Which river flows through Karsk?" }] }),
        )
        .send();
    let client = tokio::spawn(request);
    while metric(&server, &steps_metric).await < 20.0 {
        assert!(!client.is_finished(), "the router finished before the client could give up");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    client.abort();
    let sent = client.await;
    assert!(sent.is_err_and(|e| e.is_cancelled()), "the client gave up before the router finished");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopped_at = metric(&server, &steps_metric).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(metric(&server, &steps_metric).await, stopped_at, "no decoding step after the client left");
    assert!(stopped_at > 0.0 && stopped_at < 1400.0, "it was cancelled mid-generation, at step {stopped_at}");
    let cancelled = metric(&server, &["switchyard_policy_generations_total", &label, "outcome=\"cancelled\""]).await;
    assert_eq!(cancelled, 1.0);
    assert_eq!(metric(&server, &["switchyard_policy_generations_total", &label, "outcome=\"finished\""]).await, 0.0);

    // Control: left alone, the same turn runs to its budget.
    let model = Model::load(dir.path(), &options("control")).unwrap();
    let descriptors = server.state.snapshot().pool.descriptors();
    let messages = RouterPrompt::new().messages("Which river flows through Karsk?", &descriptors).unwrap();
    let prompt = model.chat_template().unwrap().render(&messages, true).unwrap();
    let ids = model.tokenizer.encode(&prompt).unwrap();
    let options = GenerateOptions {
        stop: StopSet::new(vec![], STOP_STRINGS.iter().map(|s| s.to_string()).collect()),
        ..greedy(&model, 1500)
    };
    let done = model.generator.generate(ids, options).await.unwrap();
    assert_eq!(done.finish, Finish::Length, "{}", done.text);
}

#[tokio::test]
async fn dropping_a_generation_future_cancels_it() {
    let fixture = router::looping();
    let model = std::sync::Arc::new(load(&fixture.export));
    let ids = model.tokenizer.encode(&prompts()[2]).unwrap();
    let options = GenerateOptions { stop: StopSet::new(vec![], vec![]), ..greedy(&model, 1500) };
    let task = tokio::spawn({
        let model = model.clone();
        async move { model.generator.generate(ids, options).await }
    });
    while model.generator.stats().tokens < 20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stats = model.generator.stats();
    assert_eq!((stats.cancelled, stats.running, stats.finished), (1, 0, 0), "{stats:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(model.generator.stats().tokens, stats.tokens, "no token after the cancellation was seen");
    assert!(stats.tokens < 1400, "{stats:?}");
}

fn switchyard(args: &[&str]) -> Output {
    Command::new(switchyard_binary()).args(args).output().expect("switchyard runs")
}

fn ok(out: &Output) -> String {
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "failed: {stderr}\n{stdout}");
    stdout.into_owned()
}

#[test]
fn policy_check_reports_the_graph_and_the_generation_settings() {
    let fixture = router::shared();
    let dir = fixture.export.to_str().unwrap();
    let out = ok(&switchyard(&["policy", "check", dir]));
    for expected in [
        "input_ids",
        "past_key_values.1.value",
        "present.0.key",
        "logits",
        "dtype:          float32",
        "layers:         2",
        "kv heads:       2",
        "head dim:       8",
        "chat template:  found (tokenizer_config.json)",
        "router prompt:  the shipped one",
        "</search>",
        "</answer>",
        "device:         cpu",
    ] {
        assert!(out.contains(expected), "`{expected}` missing from:\n{out}");
    }
    let json: Value = serde_json::from_str(&ok(&switchyard(&["policy", "check", "--json", dir]))).unwrap();
    assert_eq!(
        (json["layers"].as_u64(), json["kv_heads"].as_u64(), json["head_dim"].as_u64()),
        (Some(2), Some(2), Some(8))
    );
    let tokenizer = fixture.tokenizer();
    assert_eq!(json["vocab_size"].as_u64(), Some(tokenizer.vocab_size() as u64));
    let stop_ids: Vec<i64> = json["stop_ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    assert_eq!(stop_ids, tokenizer.stop_ids);

    let broken = fixture.copy();
    std::fs::remove_file(broken.path().join("tokenizer.json")).unwrap();
    let out = switchyard(&["policy", "check", broken.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tokenizer.json") && stderr.contains("missing"), "{stderr}");

    // A model trained on its own router prompt: reported, and checked.
    let own = fixture.copy();
    let prompt_file = own.path().join("router_prompt.jinja");
    std::fs::write(&prompt_file, switchyard::policy::prompt::BY_DOMAIN_TEMPLATE).unwrap();
    let out = ok(&switchyard(&["policy", "check", own.path().to_str().unwrap()]));
    assert!(out.contains("router prompt:  the model's own (router_prompt.jinja)"), "{out}");
    std::fs::write(&prompt_file, "no user marker").unwrap();
    let out = switchyard(&["policy", "check", own.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("router_prompt.jinja"), "{stderr}");
}

#[test]
fn policy_generate_prints_the_greedy_text_and_its_timings() {
    let fixture = router::shared();
    let dir = fixture.export.to_str().unwrap();
    let prompt = "Which river flows through Karsk?";
    let (tokens, text) = tch_greedy(fixture, prompt, 12);
    // The CLI leaves out an end-of-turn token that ended the generation (the chat framing).
    let text = text.strip_suffix(END_OF_TURN).unwrap_or(&text).to_string();

    let json: Value = serde_json::from_str(&ok(&switchyard(&[
        "policy",
        "generate",
        dir,
        "--prompt",
        prompt,
        "--max-new-tokens",
        "12",
        "--json",
    ])))
    .unwrap();
    let got: Vec<u32> = json["tokens"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as u32).collect();
    assert_eq!(got, tokens);
    assert_eq!(json["text"], text.as_str());
    assert!(json["time_to_first_token_ms"].as_f64().unwrap() > 0.0, "{json}");
    assert!(json["tokens_per_second"].as_f64().unwrap() >= 0.0, "{json}");
    assert_eq!(json["prompt_tokens"].as_u64(), Some(fixture.tokenizer().encode(prompt).unwrap().len() as u64));

    let plain = ok(&switchyard(&["policy", "generate", dir, "--prompt", prompt, "--max-new-tokens", "12"]));
    assert_eq!(plain.strip_suffix('\n'), Some(text.as_str()));

    let sampled = |seed: &str| {
        let args = ["policy", "generate", dir, "--prompt", prompt, "--chat", "--temperature", "1", "--top-p", "0.9"];
        let out = ok(&switchyard(&[&args[..], &["--seed", seed, "--max-new-tokens", "16", "--json"]].concat()));
        serde_json::from_str::<Value>(&out).unwrap()["tokens"].clone()
    };
    assert_eq!(sampled("5"), sampled("5"), "seeded sampling is reproducible across runs");

    let out = switchyard(&["policy", "generate", dir, "--prompt", prompt, "--top-p", "1.5"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--top-p"));
}

#[tokio::test]
async fn the_embedded_default_serves_a_shipped_router() {
    let fixture = router::shared();
    let cwd = router::scratch_dir();
    let shipped = cwd.path().join("models/router-r1");
    std::fs::create_dir_all(&shipped).unwrap();
    for entry in std::fs::read_dir(&fixture.export).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, shipped.join(path.file_name().unwrap())).unwrap();
    }
    let (child, addr) = spawn_embedded(cwd.path());
    let client = reqwest::Client::new();
    let body =
        json!({ "model": "switchyard/router-r1", "messages": [{ "role": "user", "content": "Who founded Acme?" }] });
    let response = client.post(format!("http://{addr}/v1/chat/completions")).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["switchyard"]["policy"], "switchyard/router-r1");
    assert_eq!(body["switchyard"]["trajectory"]["segments"][0]["author"], "router", "{body}");
    let stderr = stderr_of(child);
    assert!(stderr.contains("serving the trained router switchyard/router-r1 from"), "{stderr}");
    // cheapest, largest, cascade, random, one `only/<model>` per pool model (6), teacher, router,
    // and the learned routers the checkout ships (found above the binary).
    let learned = ["knn", "mlp"]
        .iter()
        .filter(|k| switchyard_tests::repo_root().join(format!("models/learned/{k}.safetensors")).is_file())
        .count();
    // The router built on the pretrained base, when setup has exported it (found above the binary).
    let big = usize::from(switchyard_tests::repo_root().join("models/router-r1-135m/model.onnx").is_file());
    let expected = format!("{} policies", 12 + learned + big);
    assert!(stderr.contains(&expected), "strategies, baselines, teacher and router: {expected}? {stderr}");

    // Without one (unless the checkout itself ships one, found above the binary).
    if !switchyard_tests::repo_root().join("models/router-r1/model.onnx").exists() {
        let empty = router::scratch_dir();
        let (child, addr) = spawn_embedded(empty.path());
        let models: Value = client.get(format!("http://{addr}/v1/models")).send().await.unwrap().json().await.unwrap();
        assert!(!models.to_string().contains("switchyard/router-r1"), "{models}");
        let stderr = stderr_of(child);
        let expected = format!("{} policies", 11 + learned + big);
        assert!(stderr.contains("no trained router") && stderr.contains(&expected), "{stderr}");
    }
}
