//! Supervised warm-up on teacher trajectories.
//!
//! The teacher (`switchyard::sim::teacher`) runs through the host's turn loop over the
//! environment's pool, so its trajectories hold real replies. Each becomes the prompt tokens
//! followed by the trajectory's segments, tokenised one segment at a time — exactly how a
//! rollout builds its tokens — with the loss only on router-written tokens: never on the
//! prompt, never on inserted information.

use std::time::Instant;

use anyhow::Context;
use futures_util::StreamExt;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::batch::{Batch, masked_mean};
use crate::checkpoint::{RunDir, State};
use crate::env::Environment;
use crate::metrics::MetricsLog;
use crate::model::Transformer;
use crate::optim::AdamW;
use crate::tokenizer::RouterTokenizer;
use switchyard::engine;
use switchyard::plugin::types::{Author, ModelDescriptor, Segment};
use switchyard::sim::questions::Question;
use switchyard::sim::teacher::{TeacherPolicy, TeacherRouting};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SftOptions {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub warmup_steps: usize,
    pub weight_decay: f64,
    pub grad_clip: f64,
    /// Train on at most this many teacher trajectories (0 = all of the train split).
    pub max_examples: usize,
    /// Skip this many of the train split's questions first (0 = none), so that a later pass
    /// trains on questions no earlier pass saw; raise `env.questions` to have more of them
    /// (the first questions generated stay the same, so earlier passes' questions come first).
    pub skip_examples: usize,
    /// Keep only trajectories the reward scores as exactly right.
    pub only_correct: bool,
    /// How the teacher routes: by the descriptors (imitating near-best routing), or uniformly
    /// at random (a protocol-only warm-up that leaves where to route to RL). With `uniform`,
    /// `only_correct` would select the lucky routes and so teach routing after all; a
    /// protocol-only warm-up turns it off.
    pub teacher_routing: TeacherRouting,
    /// The teacher's think before a call names the models that score at least .7 in the
    /// step's domain, in listing order, then the cheapest (`TeacherPolicy::reading_listing`),
    /// instead of only the one it calls; off by default, so earlier runs replay.
    pub teacher_reads_listing: bool,
    pub save_every: u64,
    /// Copy sequences added to every step (0 = none): a question, then the same question
    /// again with the loss on the repeat. A router must copy entity names from the question
    /// into its queries and from replies into its answer; a tiny model trained from scratch
    /// learns that skill (induction) far sooner from these short sequences than from the
    /// long trajectories alone.
    pub copy_batch_size: usize,
    /// Train on copy sequences only, as the whole dataset (a copy curriculum).
    pub copy_only: bool,
}

impl Default for SftOptions {
    fn default() -> Self {
        SftOptions {
            epochs: 3,
            batch_size: 16,
            lr: 1e-3,
            warmup_steps: 50,
            weight_decay: 0.01,
            grad_clip: 1.0,
            max_examples: 0,
            skip_examples: 0,
            only_correct: true,
            teacher_routing: TeacherRouting::Descriptors,
            teacher_reads_listing: false,
            save_every: 200,
            copy_batch_size: 0,
            copy_only: false,
        }
    }
}

/// One supervised sequence.
#[derive(Clone, Debug)]
pub struct Example {
    pub tokens: Vec<i64>,
    /// True on tokens the router wrote (the loss is taken on these only).
    pub loss_mask: Vec<bool>,
}

/// The train-split questions a pass trains on: `skip_examples` skipped, then at most
/// `max_examples` (0 = the rest). An empty selection is an error naming the options.
pub fn select_questions(train: Vec<Question>, opts: &SftOptions) -> anyhow::Result<Vec<Question>> {
    let available = train.len();
    let mut chosen: Vec<Question> = train.into_iter().skip(opts.skip_examples).collect();
    if opts.max_examples > 0 {
        chosen.truncate(opts.max_examples);
    }
    anyhow::ensure!(
        !chosen.is_empty(),
        "sft.skip_examples ({}) leaves none of the train split's {available} questions; raise env.questions",
        opts.skip_examples
    );
    Ok(chosen)
}

/// Tokenise a prompt and a trajectory's segments into an example.
pub fn example(tokenizer: &RouterTokenizer, prompt: &str, segments: &[Segment]) -> anyhow::Result<Example> {
    let mut tokens = tokenizer.encode(prompt)?;
    let mut loss_mask = vec![false; tokens.len()];
    for s in segments {
        let ids = tokenizer.encode(&s.text)?;
        loss_mask.extend(std::iter::repeat_n(s.author == Author::Router, ids.len()));
        tokens.extend(ids);
    }
    Ok(Example { tokens, loss_mask })
}

/// The teacher's episodes on `questions` through the host's turn loop, each with the
/// descriptors of the pool it saw: question `i` sees `env.episode_pool(seed, i)` — the whole
/// pool unless the environment asks for random subsets or descriptor noise, so a warm-up can
/// teach reading descriptors as RL episodes do. The teacher picks by the descriptors it is
/// shown. A subset pool is built when its episode starts and dropped when it ends (at most
/// 32 are alive), never all at once.
fn teacher_traces(
    env: &Environment,
    questions: &[Question],
    opts: &SftOptions,
    seed: u64,
) -> anyhow::Result<Vec<(engine::Trace, Vec<ModelDescriptor>)>> {
    let teacher = TeacherPolicy::new("switchyard/teacher", env.world.clone())
        .with_routing(opts.teacher_routing, seed)
        .reading_listing(opts.teacher_reads_listing);
    let episodes = questions.iter().enumerate().map(|(i, q)| {
        let teacher = &teacher;
        async move {
            let pool = env.episode_pool(seed, i)?;
            let trace = engine::run(&env.engine, teacher, &pool, &q.question).await.context("the teacher failed")?;
            anyhow::Ok((trace, pool.descriptors()))
        }
    });
    env.tokio.block_on(futures_util::stream::iter(episodes).buffered(32).collect::<Vec<_>>()).into_iter().collect()
}

/// Teacher trajectories for `questions`, as examples; each prompt lists the pool its episode
/// saw (see [`teacher_traces`]; `seed` picks the subsets, the noise and a routing-blind
/// teacher's draws). Reads `opts.teacher_routing`, `opts.teacher_reads_listing` and
/// `opts.only_correct`.
pub fn teacher_examples(
    env: &Environment,
    tokenizer: &RouterTokenizer,
    questions: &[Question],
    opts: &SftOptions,
    seed: u64,
) -> anyhow::Result<Vec<Example>> {
    let only_correct = opts.only_correct;
    let traces = teacher_traces(env, questions, opts, seed)?;
    let scored: Vec<_> =
        traces.iter().zip(questions).map(|((t, _), q)| (t.trajectory.clone(), q.golden_answers.clone())).collect();
    let rewards = env.score(&scored)?;
    let mut out = Vec::new();
    for (((trace, descriptors), q), r) in traces.iter().zip(questions).zip(rewards) {
        if r.format < 0.0 || (only_correct && r.exact_match < 1.0) {
            continue;
        }
        let prompt = env.prompt_text(&q.question, descriptors)?;
        out.push(example(tokenizer, &prompt, &trace.trajectory.segments)?);
    }
    Ok(out)
}

/// Copy sequences from the train split's questions and answers (see
/// [`SftOptions::copy_batch_size`]).
pub fn copy_examples(tokenizer: &RouterTokenizer, questions: &[Question]) -> anyhow::Result<Vec<Example>> {
    let mut out = Vec::with_capacity(questions.len());
    for q in questions {
        let text = format!("{} {}", q.question, q.golden_answers.first().map(String::as_str).unwrap_or(""));
        let mut tokens = tokenizer.encode(&format!("<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"))?;
        let mut loss_mask = vec![false; tokens.len()];
        let repeat = tokenizer.encode(&text)?;
        loss_mask.extend(std::iter::repeat_n(true, repeat.len()));
        tokens.extend(repeat);
        out.push(Example { tokens, loss_mask });
    }
    Ok(out)
}

/// Learning rate at `step`: linear warm-up, then cosine decay to a tenth.
pub fn learning_rate(opts: &SftOptions, step: u64, total: u64) -> f64 {
    let warm = opts.warmup_steps as f64;
    let s = step as f64;
    if s < warm {
        return opts.lr * (s + 1.0) / warm;
    }
    let progress = ((s - warm) / (total as f64 - warm).max(1.0)).min(1.0);
    opts.lr * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()))
}

/// Negative log-likelihood of the router-written tokens of a batch (the LM head runs at those
/// positions only).
pub fn sft_loss(model: &Transformer, batch: &Batch) -> tch::Tensor {
    let positions = crate::model::position_ids(&batch.attention_mask);
    let hidden = model.causal_hidden_states(&batch.input_ids, &positions);
    let rows = batch.input_ids.size()[0];
    let (logp, _) = batch.action_logprobs(model, &hidden, 0, rows, 1.0, false);
    -masked_mean(&logp, &batch.action_mask)
}

/// Train; resumes from the run's latest checkpoint when there is one.
#[allow(clippy::too_many_arguments)]
pub fn train(
    model: &Transformer,
    tokenizer: &RouterTokenizer,
    examples: &[Example],
    copies: &[Example],
    opts: &SftOptions,
    seed: u64,
    run: &RunDir,
    progress: bool,
) -> anyhow::Result<std::path::PathBuf> {
    anyhow::ensure!(!examples.is_empty(), "no supervised examples");
    let batch_size = opts.batch_size.max(1);
    let per_epoch = examples.len().div_ceil(batch_size) as u64;
    let total = per_epoch * opts.epochs as u64;
    let mut opt = AdamW::new(model.trainable(), opts.lr, opts.weight_decay);
    let mut start = 0;
    if let Some((dir, state)) = run.latest() {
        model.restore(&dir)?;
        opt.load(&dir.join("optimizer.safetensors"))?;
        start = state.step;
        tracing::info!("resuming supervised warm-up at step {start} from {}", dir.display());
    }
    let mut log = MetricsLog::open(&run.metrics_path(), start)?;
    let bar = crate::progress_bar(total, progress);
    bar.set_position(start);
    let mut last = None;
    for step in start..total {
        let epoch = step / per_epoch;
        let mut order: Vec<usize> = (0..examples.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ epoch.wrapping_mul(0x2545_F491_4F6C_DD1D)));
        let at = ((step % per_epoch) as usize) * batch_size;
        let chosen: Vec<(&[i64], &[bool])> = order[at..(at + batch_size).min(order.len())]
            .iter()
            .map(|&i| (examples[i].tokens.as_slice(), examples[i].loss_mask.as_slice()))
            .collect();
        let started = Instant::now();
        let batch = Batch::new(&chosen, tokenizer.pad_id, model.device());
        opt.lr = learning_rate(opts, step, total);
        opt.zero_grad();
        // LoRA dropout draws from torch's generator: seeded per step, so a resumed run draws
        // what an uninterrupted one would.
        tch::manual_seed((seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15)) as i64);
        model.set_training(true);
        let mut loss = sft_loss(model, &batch);
        if opts.copy_batch_size > 0 && !copies.is_empty() {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ step.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ 0xC0);
            let picked: Vec<(&[i64], &[bool])> =
                rand::seq::IndexedRandom::choose_multiple(copies, &mut rng, opts.copy_batch_size)
                    .map(|e| (e.tokens.as_slice(), e.loss_mask.as_slice()))
                    .collect();
            loss += sft_loss(model, &Batch::new(&picked, tokenizer.pad_id, model.device()));
        }
        loss.backward();
        model.set_training(false);
        let grad_norm = opt.step(opts.grad_clip);
        let loss = loss.double_value(&[]);
        let tokens = batch.attention_mask.sum(tch::Kind::Float).double_value(&[]);
        let seconds = started.elapsed().as_secs_f64();
        let record = json!({
            "step": step + 1, "epoch": epoch, "loss": loss, "lr": opt.lr, "grad_norm": grad_norm,
            "tokens_per_s": tokens / seconds, "seconds": seconds,
        });
        log.write(record.as_object().context("metrics record")?)?;
        bar.set_message(format!("loss {loss:.3}"));
        bar.inc(1);
        let done = step + 1;
        if done % opts.save_every == 0 || done == total {
            let state = State { step: done };
            let write_opt = |dir: &std::path::Path| Ok(opt.save(&dir.join("optimizer.safetensors"))?);
            last = Some(run.save(&state, model, tokenizer, &write_opt)?);
        }
    }
    bar.finish();
    let last = match last {
        Some(l) => l,
        None => run.latest().map(|(d, _)| d).context("no checkpoint was written")?,
    };
    run.publish_final(&last)
}

/// Text to train the tokenizer on: the router prompts and teacher trajectories of the train
/// split (up to 5000 questions), which hold every kind of text the router reads or writes.
pub fn corpus(env: &Environment) -> anyhow::Result<Vec<String>> {
    let questions: Vec<Question> = env.split(switchyard::sim::questions::Split::Train).into_iter().take(5000).collect();
    let mut texts = Vec::with_capacity(questions.len());
    for (q, (trace, descriptors)) in questions.iter().zip(teacher_traces(env, &questions, &SftOptions::default(), 0)?) {
        texts.push(format!("{}{}", env.prompt_text(&q.question, &descriptors)?, trace.text()));
    }
    Ok(texts)
}

/// What [`throughput`] measured.
#[derive(Clone, Copy, Debug)]
pub struct Throughput {
    /// Forward + backward tokens per second.
    pub tokens_per_s: f64,
    /// Seconds per iteration, and of that the forward pass (with the loss) and the backward pass.
    pub seconds: f64,
    pub forward_s: f64,
    pub backward_s: f64,
}

/// Forward + backward throughput of `model` on random `[batch, seq]` sequences with the loss
/// on the last `loss_fraction` of each sequence's tokens (1.0: every token; a router's own
/// tokens are a fraction of an episode), after one warm-up iteration. Runs in training mode
/// (LoRA dropout on), as a warm-up step does.
pub fn throughput(model: &Transformer, batch: i64, seq: i64, iters: usize, loss_fraction: f64) -> Throughput {
    let vocab = model.config.vocab_size;
    let ids = tch::Tensor::randint(vocab, [batch, seq], (tch::Kind::Int64, model.device()));
    let rows: Vec<Vec<i64>> = Vec::try_from(&ids).unwrap_or_default();
    let scored = ((seq as f64 * loss_fraction.clamp(0.0, 1.0)).round() as usize).max(2);
    let mask: Vec<bool> = (0..seq as usize).map(|i| i + scored >= seq as usize).collect();
    let seqs: Vec<(&[i64], &[bool])> = rows.iter().map(|r| (r.as_slice(), mask.as_slice())).collect();
    let b = Batch::new(&seqs, 0, model.device());
    // (forward, backward) seconds of one iteration; reading the loss waits for the forward.
    let run = || {
        let started = Instant::now();
        let loss = sft_loss(model, &b);
        let _ = loss.double_value(&[]);
        let forward = started.elapsed().as_secs_f64();
        loss.backward();
        (forward, started.elapsed().as_secs_f64() - forward)
    };
    model.set_training(true);
    run();
    let n = iters.max(1);
    let (mut forward_s, mut backward_s) = (0.0, 0.0);
    for _ in 0..n {
        let (f, b) = run();
        forward_s += f / n as f64;
        backward_s += b / n as f64;
    }
    model.set_training(false);
    let seconds = forward_s + backward_s;
    Throughput { tokens_per_s: (batch * seq) as f64 / seconds, seconds, forward_s, backward_s }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard::sim::questions::{self, Split};
    use switchyard::sim::world::World;

    #[test]
    fn a_later_pass_can_select_questions_no_earlier_pass_saw() {
        let world = World::generate(&Default::default());
        let texts = |qs: &[Question]| qs.iter().map(|q| q.question.clone()).collect::<Vec<_>>();
        let train = |qs: Vec<Question>| qs.into_iter().filter(|q| q.split == Split::Train).collect::<Vec<_>>();
        let fewer = questions::generate(&world, 2000, world.config.seed);
        let more = questions::generate(&world, 4000, world.config.seed);
        // Generating more questions keeps the first ones: earlier passes' questions come first.
        assert_eq!(texts(&fewer), texts(&more[..2000]));

        let earlier = select_questions(train(fewer), &SftOptions::default()).unwrap();
        let more = train(more);
        let opts = SftOptions { skip_examples: earlier.len(), max_examples: 300, ..Default::default() };
        let later = select_questions(more.clone(), &opts).unwrap();
        assert_eq!(later.len(), 300);
        let seen = texts(&earlier);
        assert!(later.iter().all(|q| !seen.contains(&q.question)), "a skipped question was selected");

        let none = SftOptions { skip_examples: more.len(), ..Default::default() };
        let err = select_questions(more, &none).unwrap_err();
        assert!(err.to_string().contains("sft.skip_examples"), "{err}");
    }
}
