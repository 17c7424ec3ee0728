//! Behaviour of supervised and RL training: losses, masks, rollouts, resume.

use crate::common;

use switchyard::engine::protocol;
use switchyard::plugin::types::Author;
use switchyard::sim::questions::Split;
use switchyard_train::batch::Batch;
use switchyard_train::checkpoint::RunDir;
use switchyard_train::env::{EnvOptions, Environment};
use switchyard_train::generate::{Generated, Sampling, TurnInput};
use switchyard_train::optim::AdamW;
use switchyard_train::rl::{self, Algorithm, RlOptions};
use switchyard_train::rollout::{TurnWriter, run_episodes};
use switchyard_train::sft::{self, SftOptions};
use switchyard_train::tokenizer::RouterTokenizer;

#[test]
fn a_gradient_step_changes_the_weights_and_lowers_the_loss_on_a_fixed_batch() {
    let _serial = common::torch_rng();
    let env = common::env();
    let tokenizer = common::tokenizer(&env);
    let model = common::tiny_model(tokenizer.vocab_size(), 1);
    let questions: Vec<_> = env.split(Split::Train).into_iter().take(8).collect();
    let examples = sft::teacher_examples(&env, &tokenizer, &questions, &any_outcome(), 0).unwrap();
    assert!(examples.len() >= 6, "teacher produced {} examples", examples.len());
    let seqs: Vec<(&[i64], &[bool])> = examples.iter().map(|e| (e.tokens.as_slice(), e.loss_mask.as_slice())).collect();
    let batch = Batch::new(&seqs, tokenizer.pad_id, tch::Device::Cpu);
    let mut opt = AdamW::new(model.vs.variables().into_iter().collect(), 3e-3, 0.0);
    let before: Vec<f32> =
        Vec::try_from(model.vs.variables()["model.layers.0.mlp.up_proj.weight"].flatten(0, -1)).unwrap();
    let first = sft::sft_loss(&model, &batch);
    opt.zero_grad();
    first.backward();
    let norm = opt.step(1.0);
    assert!(norm.is_finite() && norm > 0.0);
    let after: Vec<f32> =
        Vec::try_from(model.vs.variables()["model.layers.0.mlp.up_proj.weight"].flatten(0, -1)).unwrap();
    assert_ne!(before, after, "the step left the weights unchanged");
    let mut last = first.double_value(&[]);
    for _ in 0..4 {
        opt.zero_grad();
        let loss = sft::sft_loss(&model, &batch);
        loss.backward();
        opt.step(1.0);
        last = loss.double_value(&[]);
    }
    let end = sft::sft_loss(&model, &batch).double_value(&[]);
    assert!(end < first.double_value(&[]) && end <= last, "loss {} -> {end}", first.double_value(&[]));
}

#[test]
fn the_loss_mask_covers_router_tokens_only_never_prompt_or_information() {
    let env = common::env();
    let tokenizer = common::tokenizer(&env);
    let q = env.split(Split::Train).into_iter().find(|q| q.hops == 2).unwrap();
    let examples = sft::teacher_examples(&env, &tokenizer, std::slice::from_ref(&q), &any_outcome(), 0).unwrap();
    let e = &examples[0];
    let prompt = tokenizer.encode(&env.prompt_text(&q.question, &env.pool().descriptors()).unwrap()).unwrap();
    assert_eq!(&e.tokens[..prompt.len()], prompt.as_slice());
    assert!(e.loss_mask[..prompt.len()].iter().all(|m| !m), "prompt tokens carry loss");
    // Decode the masked and unmasked runs: router runs hold no information block, host runs
    // are exactly information blocks.
    let mut runs: Vec<(bool, Vec<i64>)> = Vec::new();
    for (t, m) in e.tokens[prompt.len()..].iter().zip(&e.loss_mask[prompt.len()..]) {
        match runs.last_mut() {
            Some((flag, ids)) if flag == m => ids.push(*t),
            _ => runs.push((*m, vec![*t])),
        }
    }
    assert!(runs.iter().filter(|(m, _)| !m).count() >= 2, "a two-hop trajectory has two information blocks");
    for (router, ids) in runs {
        let text = tokenizer.decode(&ids).unwrap();
        if router {
            assert!(!text.contains(protocol::INFORMATION_OPEN), "router run with information: {text}");
        } else {
            assert!(
                text.trim().starts_with(protocol::INFORMATION_OPEN)
                    && text.trim().ends_with(protocol::INFORMATION_CLOSE),
                "{text}"
            );
        }
    }
}

/// Writes a fixed search on the first turn and an answer afterwards.
struct Scripted<'a> {
    tokenizer: &'a RouterTokenizer,
    model: String,
}

impl TurnWriter for Scripted<'_> {
    fn write_turns(&self, turns: &[TurnInput]) -> anyhow::Result<Vec<Generated>> {
        turns
            .iter()
            .map(|t| {
                let so_far = self.tokenizer.decode(&t.context)?;
                // The prompt itself mentions the tags: look only at the assistant's turn.
                let turn = so_far.rsplit("<|im_start|>assistant\n").next().unwrap_or("");
                let text = if turn.contains(protocol::INFORMATION_OPEN) {
                    "<think>I have it.</think>\n<answer>forty two</answer>".to_string()
                } else {
                    format!("<think>Ask.</think>\n<search>{}: Who founded Acme?</search>", self.model)
                };
                Ok(Generated { tokens: self.tokenizer.encode(&text)?, text, stopped: true, masks: Vec::new() })
            })
            .collect()
    }
}

#[test]
fn rollouts_insert_the_called_models_reply_as_unmasked_information() {
    let env = common::env();
    let tokenizer = common::tokenizer(&env);
    let model = env.pool().descriptors()[0].name.clone();
    let questions: Vec<_> = env.split(Split::Train).into_iter().take(3).collect();
    let writer = Scripted { tokenizer: &tokenizer, model: model.clone() };
    let rollouts = run_episodes(&writer, &tokenizer, &env, &questions, 5).unwrap();
    assert_eq!(rollouts.len(), 3);
    for r in &rollouts {
        assert_eq!(r.trace.trajectory.calls.len(), 1);
        assert_eq!(r.trace.trajectory.calls[0].model, model);
        let host: Vec<_> = r.trace.trajectory.segments.iter().filter(|s| s.author == Author::Host).collect();
        assert_eq!(host.len(), 1);
        // The tokens after the prompt decode to the trajectory text, and the information
        // block is exactly the tokens not written by the policy.
        let after_prompt = tokenizer.decode(&r.tokens[r.prompt_len..]).unwrap();
        assert_eq!(after_prompt, r.trace.text());
        let inserted: Vec<i64> = r.tokens[r.prompt_len..]
            .iter()
            .zip(&r.generated[r.prompt_len..])
            .filter(|(_, g)| !**g)
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(tokenizer.decode(&inserted).unwrap(), host[0].text);
        assert!(host[0].text.contains(r.trace.trajectory.calls[0].reply.lines().next().unwrap_or("")));
        assert_eq!(r.reward.format, 0.0, "{:?}", r.reward.format_errors);
        assert_eq!(r.trace.answer.as_deref(), Some("forty two"));
    }
}

/// [`Scripted`], recording the evidence each turn is handed; `extractive` says whether it asks
/// for it.
struct EvidenceSeen<'a> {
    scripted: Scripted<'a>,
    extractive: bool,
    seen: std::cell::RefCell<Vec<Option<std::sync::Arc<switchyard::engine::answer_spans::Evidence>>>>,
}

impl TurnWriter for EvidenceSeen<'_> {
    fn write_turns(&self, turns: &[TurnInput]) -> anyhow::Result<Vec<Generated>> {
        self.seen.borrow_mut().extend(turns.iter().map(|t| t.evidence.clone()));
        self.scripted.write_turns(turns)
    }

    fn extractive_answers(&self) -> bool {
        self.extractive
    }
}

/// A writer decoding extractive answers is handed each turn's evidence — the question, and
/// after a search the reply —; any other writer none (it is not gathered).
#[test]
fn rollouts_hand_a_turn_its_evidence_only_for_extractive_answers() {
    let env = common::env();
    let tokenizer = common::tokenizer(&env);
    let model = env.pool().descriptors()[0].name.clone();
    let questions: Vec<_> = env.split(Split::Train).into_iter().take(2).collect();
    for extractive in [true, false] {
        let scripted = Scripted { tokenizer: &tokenizer, model: model.clone() };
        let writer = EvidenceSeen { scripted, extractive, seen: Default::default() };
        let rollouts = run_episodes(&writer, &tokenizer, &env, &questions, 5).unwrap();
        let seen = writer.seen.into_inner();
        assert_eq!(seen.len(), 4, "a search and an answer per episode");
        if !extractive {
            assert!(seen.iter().all(Option::is_none));
            continue;
        }
        for (q, r) in questions.iter().zip(&rollouts) {
            let question = q.question.trim_end_matches('?').to_lowercase();
            let reply = r.trace.trajectory.calls[0].reply.lines().next().unwrap().trim_end_matches('.').to_lowercase();
            let holds = |span: &str| seen.iter().flatten().filter(|e| e.holds_span(span)).count();
            assert_eq!(holds(&question), 2, "both turns see the question {question:?}");
            assert!(holds(&reply) >= 1, "the answer turn sees the reply {reply:?}");
        }
    }
}

/// Well-formed rollouts of the first `n` train questions, each calling the pool's first model.
fn scripted_rollouts(
    env: &switchyard_train::env::Environment,
    tokenizer: &RouterTokenizer,
    n: usize,
) -> Vec<switchyard_train::rollout::Rollout> {
    let questions: Vec<_> = env.split(Split::Train).into_iter().take(n).collect();
    let model = env.pool().descriptors()[0].name.clone();
    run_episodes(&Scripted { tokenizer, model }, tokenizer, env, &questions, 5).unwrap()
}

/// A tiny policy and an identical frozen-to-be reference.
fn policy_and_reference(
    tokenizer: &RouterTokenizer,
) -> (switchyard_train::model::Transformer, switchyard_train::model::Transformer) {
    (common::tiny_model(tokenizer.vocab_size(), 7), common::tiny_model(tokenizer.vocab_size(), 7))
}

#[test]
fn frozen_embeddings_stay_put_while_the_blocks_learn() {
    let _serial = common::torch_rng();
    let env = common::env();
    let tokenizer = common::tokenizer(&env);
    let rollouts = scripted_rollouts(&env, &tokenizer, 4);
    let named = |m: &switchyard_train::model::Transformer| -> Vec<(String, Vec<f32>)> {
        m.vs.variables()
            .into_iter()
            .map(|(n, t)| (n, Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()))
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_iter()
            .collect()
    };
    for freeze in [true, false] {
        let (policy, reference) = policy_and_reference(&tokenizer);
        let before = named(&policy);
        let opts = RlOptions { freeze_embeddings: freeze, lr: 1e-2, ..small_rl() };
        let mut learner = rl::Learner::new(&policy, &reference, opts, &tokenizer);
        learner.update(&rollouts).unwrap();
        let after = named(&policy);
        let moved: Vec<&str> =
            before.iter().zip(&after).filter(|(b, a)| b.1 != a.1).map(|(b, _)| b.0.as_str()).collect();
        assert!(moved.iter().any(|n| n.contains("layers")), "freeze={freeze}: the blocks did not learn");
        assert_eq!(moved.iter().any(|n| n.contains("embed_tokens")), !freeze, "freeze={freeze}: moved {moved:?}");
    }
}

#[test]
fn the_learner_reads_log_probabilities_at_the_sampling_temperature() {
    let _serial = common::torch_rng();
    let env = common::env();
    let tokenizer = common::tokenizer(&env);
    let rollouts = scripted_rollouts(&env, &tokenizer, 2);
    // The entropy the learner reports is that of the distribution it differentiates; lr 0
    // keeps the weights equal across mini-batches.
    let entropy = |temperature: f64| {
        let (policy, reference) = policy_and_reference(&tokenizer);
        let sampling = Sampling { temperature, ..small_rl().sampling };
        let opts = RlOptions { lr: 0.0, sampling, ..small_rl() };
        let mut learner = rl::Learner::new(&policy, &reference, opts, &tokenizer);
        learner.update(&rollouts).unwrap()["entropy"].as_f64().unwrap()
    };
    let (cold, plain) = (entropy(0.5), entropy(1.0));
    assert!(cold < plain, "temperature 0.5 should sharpen the distribution: {cold} vs {plain}");
    assert_eq!(entropy(0.0), plain, "greedy rollouts are read at temperature 1");
}

#[test]
fn warm_up_examples_list_the_pool_their_episode_saw() {
    let options = EnvOptions { questions: 400, pool_subset_min: 2, descriptor_noise: 0.2, ..Default::default() };
    let env = Environment::new(options, None).unwrap();
    let tokenizer = common::tokenizer(&env);
    let questions: Vec<_> = env.split(Split::Train).into_iter().take(16).collect();
    let examples = sft::teacher_examples(&env, &tokenizer, &questions, &any_outcome(), 3).unwrap();
    assert!(examples.len() >= 8, "{} of 16 teacher episodes were well-formed", examples.len());
    let names: Vec<String> = env.pool().descriptors().into_iter().map(|d| d.name).collect();
    let mut sizes = std::collections::BTreeSet::new();
    for e in &examples {
        let text = tokenizer.decode(&e.tokens).unwrap();
        let (prompt, trajectory) = text.split_once("<|im_start|>assistant\n").unwrap();
        let listed: Vec<&String> = names.iter().filter(|m| prompt.contains(m.as_str())).collect();
        sizes.insert(listed.len());
        for called in switchyard_train::compare::searched_models(trajectory) {
            assert!(listed.contains(&&called), "the teacher called {called}, which its prompt does not list");
        }
    }
    assert!(sizes.len() > 1, "every prompt listed the same number of models: {sizes:?}");
    assert!(sizes.iter().all(|n| *n >= 2));
}

#[test]
fn renamed_and_copied_models_answer_as_the_models_they_are() {
    let options = EnvOptions {
        questions: 400,
        pool_subset_min: 3,
        pool_size_max: 8,
        rename_models: 1.0,
        descriptor_noise: 0.2,
        ..Default::default()
    };
    let env = Environment::new(options, None).unwrap();
    let configured: Vec<String> = env.pool().descriptors().into_iter().map(|d| d.name.to_lowercase()).collect();
    let question = &env.split(Split::Train)[0].question;
    let mut sizes = std::collections::BTreeSet::new();
    for episode in 0..12 {
        let pool = env.episode_pool(7, episode).unwrap();
        let names =
            |pool: &switchyard::backend::Pool| pool.backends().iter().map(|b| b.name().to_string()).collect::<Vec<_>>();
        assert_eq!(
            names(&pool),
            names(&env.episode_pool(7, episode).unwrap()),
            "episode {episode} is not reproducible"
        );
        sizes.insert(pool.backends().len());
        for backend in pool.backends() {
            let name = backend.name().to_string();
            assert!(!configured.contains(&name.to_lowercase()), "{name} is a configured name");
            assert!(!["palmyra-creative-122b", "llama3-chatqa-1.5-8b"].contains(&name.as_str()));
            let original = backend.config.remote_model().to_string();
            let (renamed, direct) = env
                .tokio
                .block_on(async { (pool.route(&name, question).await, env.pool().route(&original, question).await) });
            assert_eq!(renamed.error, None, "{name} ({original}) failed");
            assert_eq!((renamed.reply, renamed.usage), (direct.reply, direct.usage), "{name} is not {original}");
        }
    }
    assert!(sizes.iter().any(|n| *n > 6), "no listing was longer than the pool: {sizes:?}");
    assert!(sizes.iter().all(|n| (3..=8).contains(n)), "{sizes:?}");
}

#[test]
fn synthetic_models_are_listed_under_made_up_names_answer_as_themselves_and_get_routed_to() {
    let options = EnvOptions {
        questions: 400,
        pool_subset_min: 3,
        pool_size_max: 8,
        synthetic_models: 40,
        synthetic_per_episode: 3,
        ..Default::default()
    };
    let env = Environment::new(options, None).unwrap();
    let question = &env.split(Split::Train)[0].question;
    let prefix = switchyard::sim::synthetic::NAME_PREFIX;
    let mut counts = std::collections::BTreeSet::new();
    for episode in 0..16 {
        let pool = env.episode_pool(3, episode).unwrap();
        let synthetic: Vec<_> =
            pool.backends().iter().filter(|b| b.config.remote_model().starts_with(prefix)).collect();
        counts.insert(synthetic.len());
        for backend in synthetic {
            let name = backend.name().to_string();
            assert!(!name.starts_with(prefix), "{name}: a synthetic model is listed under its backend id");
            let id = backend.config.remote_model().to_string();
            let reply = env.tokio.block_on(pool.route(&name, question));
            assert_eq!(reply.error, None, "{name} ({id}) failed");
            // Its descriptor is its own, measured: not a copy of a pool model's.
            let scores = &backend.config.descriptor.example_scores;
            assert_eq!(scores.len(), 5, "{name}: {scores:?}");
        }
    }
    assert!(counts.contains(&0) && counts.iter().any(|n| *n >= 2), "synthetic per listing: {counts:?}");
    assert!(counts.iter().all(|n| *n <= 3), "{counts:?}");
    // The teacher reads their descriptors like any other: some of its steps go to them.
    let questions: Vec<_> = env.split(Split::Train).into_iter().take(40).collect();
    let tokenizer = common::tokenizer(&env);
    let examples = sft::teacher_examples(&env, &tokenizer, &questions, &any_outcome(), 3).unwrap();
    assert_eq!(examples.len(), questions.len(), "every teacher episode is kept, so example i is episode i");
    let called_synthetic = examples
        .iter()
        .enumerate()
        .filter(|(i, e)| {
            let pool = env.episode_pool(3, *i).unwrap();
            let text = tokenizer.decode(&e.tokens).unwrap();
            let (_, trajectory) = text.split_once("<|im_start|>assistant\n").unwrap();
            switchyard_train::compare::searched_models(trajectory).iter().any(|called| {
                pool.backends().iter().any(|b| b.name() == called && b.config.remote_model().starts_with(prefix))
            })
        })
        .count();
    assert!(called_synthetic >= 3, "the teacher called a synthetic model in {called_synthetic} of 40 episodes");
}

#[test]
fn a_minimum_of_synthetic_entries_at_least_the_listing_makes_every_listed_model_synthetic() {
    let options = EnvOptions {
        questions: 200,
        pool_subset_min: 3,
        pool_size_max: 8,
        synthetic_models: 40,
        synthetic_per_episode: 8,
        synthetic_min_per_episode: 8,
        ..Default::default()
    };
    let env = Environment::new(options, None).unwrap();
    let prefix = switchyard::sim::synthetic::NAME_PREFIX;
    let mut lengths = std::collections::BTreeSet::new();
    for episode in 0..12 {
        let pool = env.episode_pool(5, episode).unwrap();
        lengths.insert(pool.backends().len());
        for backend in pool.backends() {
            let id = backend.config.remote_model();
            assert!(id.starts_with(prefix), "episode {episode}: {} ({id}) is not synthetic", backend.name());
        }
    }
    assert!(lengths.len() > 1 && lengths.iter().all(|n| (3..=8).contains(n)), "listing lengths: {lengths:?}");
    // A minimum above the maximum is refused, naming both options.
    let bad = EnvOptions {
        synthetic_models: 4,
        synthetic_per_episode: 2,
        synthetic_min_per_episode: 3,
        ..Default::default()
    };
    let err = bad.validate().unwrap_err().to_string();
    assert!(err.contains("synthetic_min_per_episode") && err.contains("synthetic_per_episode"), "{err}");
}

/// Warm-up data options that keep every well-formed teacher trajectory, right or wrong.
fn any_outcome() -> SftOptions {
    SftOptions { only_correct: false, ..SftOptions::default() }
}

fn small_rl() -> RlOptions {
    RlOptions {
        algorithm: Algorithm::Ppo,
        steps: 2,
        questions_per_step: 3,
        mini_batch: 2,
        eval_questions: 0,
        save_every: 1,
        sampling: Sampling { max_new_tokens: 12, ..Default::default() },
        ..Default::default()
    }
}

fn weights(dir: &std::path::Path) -> Vec<u8> {
    std::fs::read(dir.join("model.safetensors")).unwrap()
}

#[test]
fn resuming_rl_reproduces_the_next_step_exactly() {
    let _serial = common::torch_rng();
    for algorithm in [Algorithm::Grpo, Algorithm::Ppo] {
        let env = common::env();
        let tokenizer = common::tokenizer(&env);
        let opts = RlOptions { algorithm, group_size: 2, ..small_rl() };
        let root = tempfile::tempdir().unwrap();
        let run_once = |name: &str| {
            let run = RunDir::open(&root.path().join(name), &opts, true).unwrap();
            let policy = common::tiny_model(tokenizer.vocab_size(), 7);
            let reference = common::tiny_model(tokenizer.vocab_size(), 7);
            rl::train(&policy, &reference, &tokenizer, &env, &opts, 3, &run, false).unwrap();
            run
        };
        let straight = run_once("straight");
        let interrupted = run_once("interrupted");
        assert_eq!(
            weights(&straight.root.join("checkpoints/step-000001")),
            weights(&interrupted.root.join("checkpoints/step-000001")),
            "{algorithm:?}: the same seed gave a different first step"
        );
        // Lose the last step, as if the process died during it, and resume.
        std::fs::remove_dir_all(interrupted.root.join("checkpoints/step-000002")).unwrap();
        let resumed = run_once("interrupted");
        let a = straight.root.join("checkpoints/step-000002");
        let b = resumed.root.join("checkpoints/step-000002");
        assert_eq!(weights(&a), weights(&b), "{algorithm:?}: the resumed step differs");
        assert_ne!(weights(&a), weights(&straight.root.join("checkpoints/step-000001")));
        let lines = std::fs::read_to_string(resumed.metrics_path()).unwrap();
        assert_eq!(lines.lines().count(), 2, "metrics hold each step once: {lines}");
    }
}

#[test]
fn resuming_supervised_warm_up_reproduces_the_next_step_exactly() {
    let _serial = common::torch_rng();
    let env = common::env();
    let tokenizer = common::tokenizer(&env);
    let questions: Vec<_> = env.split(Split::Train).into_iter().take(6).collect();
    let examples = sft::teacher_examples(&env, &tokenizer, &questions, &any_outcome(), 0).unwrap();
    let copies = sft::copy_examples(&tokenizer, &questions).unwrap();
    let opts = SftOptions {
        epochs: 1,
        batch_size: 2,
        warmup_steps: 1,
        save_every: 1,
        copy_batch_size: 2,
        ..Default::default()
    };
    let root = tempfile::tempdir().unwrap();
    let run_once = |name: &str| {
        let run = RunDir::open(&root.path().join(name), &opts, true).unwrap();
        let model = common::tiny_model(tokenizer.vocab_size(), 9);
        sft::train(&model, &tokenizer, &examples, &copies, &opts, 1, &run, false).unwrap();
        run
    };
    let straight = run_once("a");
    let steps = examples.len().div_ceil(2);
    let last = format!("checkpoints/step-{steps:06}");
    let interrupted = run_once("b");
    std::fs::remove_dir_all(interrupted.root.join(&last)).unwrap();
    let resumed = run_once("b");
    assert_eq!(weights(&straight.root.join(&last)), weights(&resumed.root.join(&last)));
    assert!(resumed.root.join("final/tokenizer_config.json").is_file());
}

#[test]
fn a_run_directory_refuses_a_different_configuration_on_resume() {
    let root = tempfile::tempdir().unwrap();
    RunDir::open(root.path(), &small_rl(), false).unwrap();
    let err = RunDir::open(root.path(), &small_rl(), false).err().unwrap().to_string();
    assert!(err.contains("--resume"), "{err}");
    let other = RlOptions { steps: 9, ..small_rl() };
    let err = RunDir::open(root.path(), &other, true).err().unwrap().to_string();
    assert!(err.contains("different configuration"), "{err}");
}
