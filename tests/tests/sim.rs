//! The simulated pool served over HTTP: the same replies as in-process,
//! through the real `openai-chat` adapter and the backend pool, with
//! injected faults behaving as configured.

use std::path::Path;
use std::sync::Arc;

use switchyard::backend::{Pool, StreamItem};
use switchyard::config::Config;
use switchyard::plugin::types::{ChatMessage, ChatRequest};
use switchyard::sim::questions;
use switchyard::sim::serve::{Faults, SimConfig, spawn};
use switchyard_tests::{repo_root, runtime_with};

async fn sim(faults: Faults) -> (Arc<switchyard::sim::models::SimModels>, Arc<Pool>) {
    let config = SimConfig { faults, ..SimConfig::default() };
    let models = config.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = spawn(listener, models.clone(), &config);
    let toml = format!(
        r#"
[plugins]
dir = "{}"
[[models]]
name = "llama-3.1-70b-instruct"
adapter = "openai-chat"
endpoint = "http://{addr}/v1"
retries = 0
descriptor = {{ price_in_per_mtok = 0.88, price_out_per_mtok = 0.88, latency_ms = 1100, context_tokens = 32768 }}
"#,
        repo_root().join("plugins/dist").display()
    );
    let config = Config::parse(&toml, Path::new("sim-test.toml")).unwrap();
    let runtime = runtime_with(true, Some(repo_root().join("target/test-component-cache")));
    (models, Arc::new(Pool::from_config(&config, &runtime).unwrap()))
}

#[tokio::test]
async fn served_replies_equal_in_process_replies() {
    let (models, pool) = sim(Faults::default()).await;
    let qs = questions::generate(&models.world, 30, 4);
    let mut correct = 0;
    for q in &qs {
        let call = pool.route("llama-3.1-70b-instruct", &q.question).await;
        assert!(call.error.is_none(), "{:?}", call.error);
        let local = models
            .reply(
                "llama-3.1-70b-instruct",
                &[
                    ChatMessage {
                        role: "system".into(),
                        content: switchyard::backend::ROUTED_CALL_SYSTEM_PROMPT.into(),
                    },
                    ChatMessage { role: "user".into(), content: q.question.clone() },
                ],
            )
            .unwrap();
        assert_eq!(call.reply, local.text, "{}", q.question);
        assert_eq!(
            (call.usage.input_tokens, call.usage.output_tokens),
            (local.usage.input_tokens, local.usage.output_tokens)
        );
        assert!(call.cost > 0.0);
        if local.correct == Some(true) {
            let first = call.reply.lines().next().unwrap().trim_end_matches('.');
            assert!(q.golden_answers.iter().any(|g| g == first), "{first} vs {:?}", q.golden_answers);
            correct += 1;
        }
    }
    assert!(correct > 10, "the large model knows most of the world: {correct}/30");
}

#[tokio::test]
async fn injected_errors_truncation_and_latency() {
    let (models, pool) = sim(Faults { error_rate: 1.0, ..Faults::default() }).await;
    let q = &questions::generate(&models.world, 1, 4)[0].question;
    let call = pool.route("llama-3.1-70b-instruct", q).await;
    assert!(call.error.as_deref().unwrap().contains("503"), "{call:?}");

    let (_, pool) = sim(Faults { truncate_rate: 1.0, ..Faults::default() }).await;
    let call = pool.route("llama-3.1-70b-instruct", q).await;
    assert!(call.error.is_some(), "a truncated body is an error, not an answer: {call:?}");
    let request = ChatRequest {
        model: "llama-3.1-70b-instruct".into(),
        messages: vec![ChatMessage { role: "user".into(), content: q.clone() }],
        max_tokens: None,
        temperature: None,
        top_p: None,
        stop: vec![],
        streaming: true,
    };
    use futures_util::StreamExt;
    let items: Vec<_> = pool.stream("llama-3.1-70b-instruct", &request).await.unwrap().collect().await;
    assert!(matches!(items.last(), Some(Err(_))), "a truncated stream ends with an error");
    assert!(!items.iter().any(|i| matches!(i, Ok(StreamItem::Done { .. }))));

    let (_, pool) = sim(Faults { extra_latency_ms: 120, ..Faults::default() }).await;
    let call = pool.route("llama-3.1-70b-instruct", q).await;
    assert!(call.error.is_none() && call.latency_ms >= 120, "{call:?}");
}

#[tokio::test]
async fn the_teacher_writes_well_formed_trajectories_that_mostly_answer_right() {
    use switchyard::engine::answer_spans::Evidence;
    use switchyard::engine::protocol_grammar::{TurnRules, check_turn_text};
    use switchyard::plugin::types::{Author, CostBounds, Metric, RewardParams, ScoringInput};
    use switchyard::plugin::{Plugin, Reward};
    use switchyard::sim::embedded;
    use switchyard::sim::teacher::TeacherPolicy;

    let runtime = runtime_with(true, Some(repo_root().join("target/test-component-cache")));
    let config = embedded::start(&repo_root().join("plugins/dist"), embedded::HeldOut::Excluded).await.unwrap();
    let pool = Pool::from_config(&config, &runtime).unwrap();
    let reward = Plugin::<Reward>::load(&runtime, &repo_root().join("plugins/dist/router-r1.wasm")).unwrap();
    let world = Arc::new(switchyard::sim::world::World::generate(&Default::default()));
    let teacher = TeacherPolicy::new("teacher", world.clone());
    let params = RewardParams { alpha: 0.0, metric: Metric::ExactMatch, cost_bounds: CostBounds::Fixed((0.0, 0.03)) };
    let (mut em, mut calls, mut multi_model) = (0.0, 0, 0);
    let qs: Vec<_> =
        questions::generate(&world, 1500, 7).into_iter().filter(|q| q.split == questions::Split::Test).collect();
    for q in &qs {
        let trace = switchyard::engine::run(&config.engine, &teacher, &pool, &q.question).await.unwrap();
        let scored = reward
            .score(
                &ScoringInput { trajectory: trace.trajectory.clone(), golden_answers: q.golden_answers.clone() },
                &params,
            )
            .unwrap();
        assert_eq!(scored.format, 0.0, "{:?}\n{}", scored.format_errors, trace.text());
        // The decoding grammar forbids nothing the teacher writes (so it cannot forbid a
        // trajectory the warm-up teaches).
        // Nor, with extractive answers, does it forbid the teacher's answers: each is a span of
        // the question and the replies before it.
        let segments = &trace.trajectory.segments;
        let router_turns = segments.iter().enumerate().filter(|(_, s)| s.author == Author::Router);
        for (turn, (at, segment)) in router_turns.enumerate() {
            let final_turn = turn as u32 == config.engine.max_turns;
            if let Err(e) = switchyard::engine::grammar::check_turn(&segment.text, final_turn) {
                panic!("teacher turn {turn}: {e}\n{}", trace.text());
            }
            let rules = TurnRules {
                final_turn,
                first_turn: turn == 0,
                budget: usize::MAX,
                models: TurnRules::pool_names(&trace.trajectory.pool),
                text_rules: true,
                evidence: None,
            };
            if let Err(e) = check_turn_text(&segment.text, rules.clone()) {
                panic!("teacher turn {turn} (protocol grammar): {e}\n{}", trace.text());
            }
            let evidence = Arc::new(Evidence::of_episode(&q.question, &segments[..at]));
            if let Err(e) = check_turn_text(&segment.text, TurnRules { evidence: Some(evidence), ..rules }) {
                panic!("teacher turn {turn} (extractive answers): {e}\n{}", trace.text());
            }
        }
        em += scored.exact_match;
        calls += trace.trajectory.calls.len();
        multi_model += usize::from(trace.models_called().len() > 1);
    }
    let n = qs.len() as f64;
    assert!(n > 100.0);
    assert!(em / n > 0.85, "teacher EM {:.3}", em / n);
    assert!(
        (1.2..3.0).contains(&(calls as f64 / n)),
        "decomposes two-hop and comparison questions: {:.2} calls",
        calls as f64 / n
    );
    assert!(multi_model > 0, "escalates or combines models");
}

#[tokio::test]
async fn a_routing_blind_teacher_spreads_its_calls_and_pays_for_it_in_accuracy() {
    use std::collections::BTreeSet;
    use switchyard::plugin::types::{CostBounds, Metric, RewardParams, ScoringInput};
    use switchyard::plugin::{Plugin, Reward};
    use switchyard::sim::embedded;
    use switchyard::sim::teacher::{TeacherPolicy, TeacherRouting};

    let runtime = runtime_with(true, Some(repo_root().join("target/test-component-cache")));
    let (config, router) = embedded::in_process(&repo_root().join("plugins/dist")).unwrap();
    let pool = Pool::from_config(&config, &runtime).unwrap().with_in_process(router);
    let reward = Plugin::<Reward>::load(&runtime, &repo_root().join("plugins/dist/router-r1.wasm")).unwrap();
    let params = RewardParams { alpha: 0.0, metric: Metric::ExactMatch, cost_bounds: CostBounds::Fixed((0.0, 0.03)) };
    let world = Arc::new(switchyard::sim::world::World::generate(&Default::default()));
    let informed = TeacherPolicy::new("teacher", world.clone());
    let blind = TeacherPolicy::new("teacher", world.clone()).with_routing(TeacherRouting::Uniform, 5);
    let (mut em_informed, mut em_blind) = (0.0, 0.0);
    let (mut first_informed, mut first_blind) = (BTreeSet::new(), BTreeSet::new());
    let qs = questions::generate(&world, 200, 4);
    for q in &qs {
        let run = async |teacher: &TeacherPolicy| {
            let trace = switchyard::engine::run(&config.engine, teacher, &pool, &q.question).await.unwrap();
            let input = ScoringInput { trajectory: trace.trajectory.clone(), golden_answers: q.golden_answers.clone() };
            let scored = reward.score(&input, &params).unwrap();
            assert_eq!(scored.format, 0.0, "{:?}\n{}", scored.format_errors, trace.text());
            (trace, scored.exact_match)
        };
        let (a, em_a) = run(&informed).await;
        let (b, em_b) = run(&blind).await;
        em_informed += em_a;
        em_blind += em_b;
        first_informed.insert(a.trajectory.calls[0].model.clone());
        first_blind.insert(b.trajectory.calls[0].model.clone());
        // Same seed, same episode: the blind teacher's draws are fixed, not fresh per run.
        assert_eq!(run(&blind).await.0.text(), b.text());
    }
    let n = qs.len() as f64;
    assert_eq!(first_blind.len(), config.models.len(), "every pool model gets first calls: {first_blind:?}");
    assert!(first_informed.len() < first_blind.len(), "{first_informed:?}");
    assert!(
        em_blind / n < em_informed / n - 0.1,
        "routing matters: blind EM {:.3}, informed {:.3}",
        em_blind / n,
        em_informed / n
    );
}

#[test]
fn world_files_load_and_bad_ones_are_refused_with_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("world.toml");
    std::fs::write(
        &path,
        "[world]\nseed = 3\nentities = 400\n[serve]\nlatency_scale = 0.5\n[faults]\nerror_rate = 0.25\n",
    )
    .unwrap();
    let config = SimConfig::load(&path).unwrap();
    assert_eq!((config.world.seed, config.faults.error_rate, config.serve.latency_scale), (3, 0.25, 0.5));
    let models = config.build();
    assert!((350..=450).contains(&models.world.entities.len()), "{}", models.world.entities.len());
    assert_eq!(models.profiles().len(), 8);

    std::fs::write(&path, "[faults]\nerror_rate = 2.0\n").unwrap();
    let err = SimConfig::load(&path).unwrap_err().to_string();
    assert!(err.contains("faults.error_rate") && err.contains("world.toml"), "{err}");
    std::fs::write(&path, "[world]\nsed = 3\n").unwrap();
    let err = SimConfig::load(&path).unwrap_err().to_string();
    assert!(err.contains("unknown field `sed`"), "{err}");
}

#[tokio::test]
async fn in_process_rollouts_match_rollouts_over_http() {
    use switchyard::sim::embedded;
    use switchyard::sim::teacher::TeacherPolicy;

    let runtime = runtime_with(true, Some(repo_root().join("target/test-component-cache")));
    let plugins = repo_root().join("plugins/dist");
    let http_config = embedded::start(&plugins, embedded::HeldOut::Excluded).await.unwrap();
    let http_pool = Pool::from_config(&http_config, &runtime).unwrap();
    let (config, router) = embedded::in_process(&plugins).unwrap();
    let local_pool = Pool::from_config(&config, &runtime).unwrap().with_in_process(router);
    let world = Arc::new(switchyard::sim::world::World::generate(&Default::default()));
    let teacher = TeacherPolicy::new("teacher", world.clone());
    for q in questions::generate(&world, 40, 2) {
        let over_http = switchyard::engine::run(&config.engine, &teacher, &http_pool, &q.question).await.unwrap();
        let in_process = switchyard::engine::run(&config.engine, &teacher, &local_pool, &q.question).await.unwrap();
        assert_eq!(over_http.text(), in_process.text(), "{}", q.question);
        assert_eq!(over_http.cost, in_process.cost);
    }
}

#[tokio::test]
async fn extra_simulated_models_are_served_beside_the_pool_with_their_own_measured_descriptors() {
    use switchyard::sim::{embedded, models::default_profiles, synthetic};

    let plugins = repo_root().join("plugins/dist");
    let extra = synthetic::profiles(6, 1);
    let (mut config, router, entries) = embedded::in_process_with(&plugins, extra.clone()).unwrap();
    let listed: Vec<&str> = config.models.iter().map(|m| m.name.as_str()).collect();
    let pool: Vec<String> = default_profiles().into_iter().filter(|p| !p.held_out).map(|p| p.name).collect();
    assert_eq!(listed, pool, "the config lists the default pool only");
    assert_eq!(
        entries.iter().map(|e| e.name.clone()).collect::<Vec<_>>(),
        extra.iter().map(|p| p.name.clone()).collect::<Vec<_>>()
    );
    let mut far_apart = 0;
    for (entry, profile) in entries.iter().zip(&extra) {
        let d = &entry.descriptor;
        assert_eq!((d.price_out_per_mtok, d.size_b), (profile.price_out_per_mtok, Some(profile.size_b)));
        // Measured on 60 calibration questions per domain: the best-covered domain scores
        // above the worst-covered one when their coverage is far apart.
        let mut by_coverage: Vec<(&str, f64)> = profile.coverage.iter().map(|(d, c)| (d.name(), *c)).collect();
        by_coverage.sort_by(|a, b| a.1.total_cmp(&b.1));
        let cov = |best: bool| if best { by_coverage[by_coverage.len() - 1] } else { by_coverage[0] };
        let ((hi, c_hi), (lo, c_lo)) = (cov(true), cov(false));
        let score = |domain: &str| d.example_scores[&format!("{domain}-em")];
        if c_hi - c_lo > 0.4 {
            far_apart += 1;
            assert!(
                score(hi) > score(lo),
                "{}: {hi} {c_hi} -> {}, {lo} {c_lo} -> {}",
                profile.name,
                score(hi),
                score(lo)
            );
        }
    }
    assert!(far_apart >= 2, "only {far_apart} of {} profiles had coverage far enough apart to check", extra.len());
    // Listed in a pool, an extra model answers through the same endpoint as the others.
    config.models.extend(entries.iter().cloned());
    let runtime = runtime_with(true, Some(repo_root().join("target/test-component-cache")));
    let pool = Pool::from_config(&config, &runtime).unwrap().with_in_process(router);
    let world = switchyard::sim::world::World::generate(&Default::default());
    let models = switchyard::sim::models::SimModels::new(Arc::new(world), extra.clone());
    let q = &questions::generate(&models.world, 5, 2)[0].question;
    let user = vec![ChatMessage { role: "user".into(), content: q.clone() }];
    for p in &extra {
        let routed = pool.route(&p.name, q).await;
        assert_eq!(routed.error, None, "{}", p.name);
        assert_eq!(routed.reply, models.reply(&p.name, &user).unwrap().text, "{}", p.name);
    }
    // An extra model may not take a default model's name: it would shadow it.
    let clash = embedded::in_process_with(&plugins, vec![default_profiles()[0].clone()]).unwrap_err();
    assert!(clash.to_string().contains(&default_profiles()[0].name), "{clash}");
}
