//! Reinforcement learning on multi-turn rollouts: PPO with a value head and GAE (the
//! reference setting), and GRPO (group-relative advantages, no critic).
//!
//! One step: sample questions (GRPO: each `group_size` times) -> roll out through the host's
//! turn loop -> score with the reward component -> old and reference log-probabilities (and
//! values) without gradients -> advantages -> clipped policy-gradient updates over
//! mini-batches.
//!
//! Invariants:
//! - only policy-written tokens carry loss, KL, entropy, value loss and advantages: prompt and
//!   inserted information tokens are masked out of all of them (ours; the reference lets
//!   information into the critic);
//! - log-probabilities (old, new, reference) are taken at the sampling temperature, the
//!   distribution the rollouts came from;
//! - PPO puts the KL penalty into the per-token reward (as the reference does); GRPO adds it to
//!   the loss (k3 estimator);
//! - everything random in a step is seeded by (seed, step), so a resumed run takes the same
//!   next step as an uninterrupted one;
//! - a LoRA policy trains its adapter only, without dropout (the ratio compares the same
//!   network before and after the update); the reference is the starting policy.

use std::time::Instant;

use anyhow::Context;
use rand::SeedableRng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tch::{Kind, Tensor, nn};

use crate::batch::{Batch, masked_mean, sequence_mean};
use crate::checkpoint::{RunDir, State};
use crate::env::Environment;
use crate::generate::Sampling;
use crate::metrics::MetricsLog;
use crate::model::{Transformer, position_ids};
use crate::optim::AdamW;
use crate::rollout::{Rollout, rollouts};
use crate::tokenizer::RouterTokenizer;
use switchyard::engine::grammar::TagTokens;
use switchyard::engine::protocol_grammar::Mask;
use switchyard::sim::questions::{Question, Split};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Ppo,
    Grpo,
}

/// How the per-token policy loss, entropy and KL terms are averaged over a mini-batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregation {
    /// Over all policy-written tokens (the reference): long rollouts weigh more.
    #[default]
    Token,
    /// Per rollout first, then over rollouts: a 300-token malformed rollout moves the policy
    /// no more than a 100-token good one.
    Sequence,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RlOptions {
    pub algorithm: Algorithm,
    pub steps: u64,
    /// Distinct questions per step.
    pub questions_per_step: usize,
    /// Rollouts per question (GRPO's group; PPO uses 1).
    pub group_size: usize,
    pub mini_batch: usize,
    pub epochs: usize,
    pub lr: f64,
    pub value_lr: f64,
    pub clip: f64,
    pub kl_coef: f64,
    pub entropy_coef: f64,
    pub value_coef: f64,
    pub grad_clip: f64,
    pub gamma: f64,
    pub lambda: f64,
    pub aggregation: Aggregation,
    /// Keep the (tied) token embeddings as the warm-up left them. Adam scales every
    /// parameter's step to the learning rate whatever its gradient, so the rows of rare tokens
    /// (the pieces of made-up names the router copies) take full-size steps on the noise of a
    /// few rollouts; frozen, RL moves only the transformer blocks and norms.
    pub freeze_embeddings: bool,
    pub sampling: Sampling,
    /// Greedy evaluation on this many dev questions every `eval_every` steps (0 = never).
    pub eval_questions: usize,
    pub eval_every: u64,
    pub save_every: u64,
}

impl Default for RlOptions {
    fn default() -> Self {
        RlOptions {
            algorithm: Algorithm::Ppo,
            steps: 100,
            questions_per_step: 32,
            group_size: 1,
            mini_batch: 16,
            epochs: 1,
            lr: 2e-5,
            value_lr: 1e-3,
            clip: 0.2,
            kl_coef: 0.001,
            entropy_coef: 0.001,
            value_coef: 0.5,
            grad_clip: 1.0,
            gamma: 1.0,
            lambda: 1.0,
            aggregation: Aggregation::Token,
            freeze_embeddings: false,
            sampling: Sampling::default(),
            eval_questions: 200,
            eval_every: 25,
            save_every: 25,
        }
    }
}

/// A scalar value estimate per position, read from the policy's final hidden states
/// (detached: the value loss trains the head only).
pub struct ValueHead {
    pub vs: nn::VarStore,
    head: nn::Linear,
}

impl ValueHead {
    /// Starts at zero: a randomly initialised head on the trunk's unnormalised features
    /// predicted values of +-2 for rewards in [-1, 1], and for the 40 steps of a run its errors,
    /// not the rewards, set the advantages (value loss 5.0 -> 1.2).
    pub fn new(hidden: i64, device: tch::Device) -> ValueHead {
        let vs = nn::VarStore::new(device);
        let zero = nn::LinearConfig { ws_init: nn::Init::Const(0.0), bs_init: Some(nn::Init::Const(0.0)), bias: true };
        let head = nn::linear(vs.root() / "value_head", hidden, 1, zero);
        ValueHead { vs, head }
    }

    pub fn forward(&self, hidden: &Tensor) -> Tensor {
        use tch::nn::Module;
        self.head.forward(hidden).squeeze_dim(-1)
    }
}

/// Advantages and returns by GAE over the policy-written positions of each row (the time
/// axis skips prompt and information tokens). All inputs `[rows][positions]`.
pub fn gae(
    rewards: &[Vec<f32>],
    values: &[Vec<f32>],
    mask: &[Vec<f32>],
    gamma: f64,
    lambda: f64,
) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut advantages = Vec::with_capacity(rewards.len());
    let mut returns = Vec::with_capacity(rewards.len());
    for ((r, v), m) in rewards.iter().zip(values).zip(mask) {
        let mut adv = vec![0f32; r.len()];
        let (mut next_value, mut running) = (0f64, 0f64);
        for t in (0..r.len()).rev() {
            if m[t] == 0.0 {
                continue;
            }
            let delta = f64::from(r[t]) + gamma * next_value - f64::from(v[t]);
            running = delta + gamma * lambda * running;
            adv[t] = running as f32;
            next_value = f64::from(v[t]);
        }
        returns.push(adv.iter().zip(v).zip(m).map(|((a, v), m)| if *m > 0.0 { a + v } else { 0.0 }).collect());
        advantages.push(adv);
    }
    (advantages, returns)
}

/// GRPO advantages: each rollout's reward against its group's mean, over the group's
/// standard deviation.
pub fn group_advantages(rewards: &[f64], group_size: usize) -> Vec<f64> {
    let g = group_size.max(1);
    rewards
        .chunks(g)
        .flat_map(|group| {
            let mean = group.iter().sum::<f64>() / group.len() as f64;
            let var = group.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / group.len() as f64;
            group.iter().map(move |r| (r - mean) / (var.sqrt() + 1e-6)).collect::<Vec<_>>()
        })
        .collect()
}

fn rows(t: &Tensor) -> anyhow::Result<Vec<Vec<f32>>> {
    Ok(Vec::<Vec<f32>>::try_from(t.to_device(tch::Device::Cpu).to_kind(Kind::Float))?)
}

/// Questions for `step`: a seeded sample of the train split, each repeated `group_size` times.
pub fn step_questions(train: &[Question], opts: &RlOptions, seed: u64, step: u64) -> Vec<Question> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let group = if opts.algorithm == Algorithm::Grpo { opts.group_size.max(1) } else { 1 };
    train
        .choose_multiple(&mut rng, opts.questions_per_step)
        .flat_map(|q| std::iter::repeat_n(q.clone(), group))
        .collect()
}

/// Summary numbers of a set of rollouts, with `prefix` on each key.
pub fn summarise(rollouts: &[Rollout], prefix: &str) -> Map<String, Value> {
    let n = rollouts.len().max(1) as f64;
    let mean = |f: &dyn Fn(&Rollout) -> f64| rollouts.iter().map(f).sum::<f64>() / n;
    let mut m = Map::new();
    m.insert(format!("{prefix}reward"), json!(mean(&|r| r.reward.total)));
    m.insert(format!("{prefix}em"), json!(mean(&|r| r.reward.exact_match)));
    m.insert(format!("{prefix}format_failure_rate"), json!(mean(&|r| f64::from(u8::from(r.reward.format < 0.0)))));
    m.insert(format!("{prefix}cost"), json!(mean(&|r| r.trace.cost)));
    m.insert(format!("{prefix}calls"), json!(mean(&|r| r.trace.trajectory.calls.len() as f64)));
    m.insert(format!("{prefix}response_tokens"), json!(mean(&|r| r.generated_tokens() as f64)));
    m
}

/// Greedy rollouts on the first `n` questions of `split`. Runs watch themselves on the dev
/// split, so that picking a checkpoint by its numbers leaves the test split unseen.
pub fn evaluate(
    model: &Transformer,
    tokenizer: &RouterTokenizer,
    env: &Environment,
    split: Split,
    n: usize,
    sampling: &Sampling,
) -> anyhow::Result<Vec<Rollout>> {
    // Greedy, with the rollouts' turn budget and grammar.
    let greedy = Sampling { temperature: 0.0, top_p: 1.0, ..sampling.clone() };
    let questions: Vec<Question> = env.split(split).into_iter().take(n).collect();
    let mut all = Vec::new();
    for chunk in questions.chunks(64) {
        all.extend(rollouts(model, tokenizer, env, chunk, &greedy, 0)?);
    }
    Ok(all)
}

/// The learner: policy, frozen reference, value head, optimisers.
pub struct Learner<'a> {
    pub policy: &'a Transformer,
    pub reference: &'a Transformer,
    pub value: ValueHead,
    policy_opt: AdamW,
    value_opt: AdamW,
    pub opts: RlOptions,
    pad_id: i64,
    /// The tokenizer's grammar columns, to score rollouts sampled under the tag grammar.
    tags: TagTokens,
}

impl<'a> Learner<'a> {
    pub fn new(
        policy: &'a Transformer,
        reference: &'a Transformer,
        opts: RlOptions,
        tokenizer: &RouterTokenizer,
    ) -> Learner<'a> {
        let (pad_id, tags) = (tokenizer.pad_id, tokenizer.tags().clone());
        let value = ValueHead::new(policy.config.hidden_size, policy.device());
        let trainable = policy
            .trainable()
            .into_iter()
            .filter(|(name, tensor)| {
                let frozen = opts.freeze_embeddings && name.contains("embed_tokens");
                if frozen {
                    // No gradient is kept for it either (nothing would clear it).
                    let _ = tensor.set_requires_grad(false);
                }
                !frozen
            })
            .collect();
        let policy_opt = AdamW::new(trainable, opts.lr, 0.0);
        let value_opt = AdamW::new(value.vs.variables().into_iter().collect(), opts.value_lr, 0.0);
        Learner { policy, reference, value, policy_opt, value_opt, opts, pad_id, tags }
    }

    pub fn save_extra(&self, dir: &std::path::Path) -> anyhow::Result<()> {
        self.policy_opt.save(&dir.join("optimizer.safetensors"))?;
        self.value_opt.save(&dir.join("value_optimizer.safetensors"))?;
        self.value.vs.save(dir.join("value_head.safetensors"))?;
        Ok(())
    }

    pub fn load_extra(&mut self, dir: &std::path::Path) -> anyhow::Result<()> {
        self.policy_opt.load(&dir.join("optimizer.safetensors"))?;
        self.value_opt.load(&dir.join("value_optimizer.safetensors"))?;
        self.value.vs.load(dir.join("value_head.safetensors"))?;
        Ok(())
    }

    /// One policy-gradient update on `rollouts`; returns its metrics.
    pub fn update(&mut self, rollouts: &[Rollout]) -> anyhow::Result<Map<String, Value>> {
        let o = self.opts.clone();
        let device = self.policy.device();
        let seqs: Vec<(&[i64], &[bool])> =
            rollouts.iter().map(|r| (r.tokens.as_slice(), r.generated.as_slice())).collect();
        let masks: Vec<&[Mask]> = rollouts.iter().map(|r| r.masks.as_slice()).collect();
        let batch = Batch::new(&seqs, self.pad_id, device).with_masks(&self.tags, &masks);
        let positions = position_ids(&batch.attention_mask);
        let len = batch.targets.size()[1];
        // Log-probabilities under the distribution the rollouts were sampled from: the logits
        // over the sampling temperature (greedy decoding is the same at any temperature), so
        // the ratio PPO clips compares like with like.
        let temperature = if o.sampling.temperature > 0.0 { o.sampling.temperature } else { 1.0 };
        // Old and reference log-probabilities and old values, without gradients.
        let rows_n = batch.input_ids.size()[0];
        let (old_logp, ref_logp, old_values) = tch::no_grad(|| {
            // Right-padded rows: causal attention needs no mask (see `causal_hidden_states`).
            let hidden = self.policy.causal_hidden_states(&batch.input_ids, &positions);
            let (old, _) = batch.action_logprobs(self.policy, &hidden, 0, rows_n, temperature, false);
            let values = self.value.forward(&hidden.narrow(1, 0, len).to_kind(Kind::Float));
            let reference = self.reference.causal_hidden_states(&batch.input_ids, &positions);
            let (refp, _) = batch.action_logprobs(self.reference, &reference, 0, rows_n, temperature, false);
            (old, refp, values)
        });
        let mask = &batch.action_mask;
        let kl_tokens = (&old_logp - &ref_logp) * mask;
        let rewards: Vec<f64> = rollouts.iter().map(|r| r.reward.total).collect();
        let advantages = match o.algorithm {
            Algorithm::Ppo => {
                let mask_rows = rows(mask)?;
                let mut token_rewards = rows(&(&kl_tokens * -o.kl_coef))?;
                // The sequence's reward lands on its last policy-written token.
                for (i, row) in token_rewards.iter_mut().enumerate() {
                    if let Some(t) = mask_rows[i].iter().rposition(|m| *m > 0.0) {
                        row[t] += rewards[i] as f32;
                    }
                }
                let (adv, ret) = gae(&token_rewards, &rows(&old_values)?, &mask_rows, o.gamma, o.lambda);
                let adv = Tensor::from_slice2(&adv).to_device(device);
                let ret = Tensor::from_slice2(&ret).to_device(device);
                // Whiten over policy-written tokens only.
                let mean = masked_mean(&adv, mask);
                let var = masked_mean(&(&adv - &mean).square(), mask);
                (((adv - mean) / (var.sqrt() + 1e-8)) * mask, Some(ret))
            }
            Algorithm::Grpo => {
                let a = group_advantages(&rewards, o.group_size);
                let a: Vec<f32> = a.iter().map(|x| *x as f32).collect();
                (Tensor::from_slice(&a).to_device(device).unsqueeze(1) * mask, None)
            }
        };
        let (advantages, returns) = advantages;

        let n = rollouts.len() as i64;
        let mb = (o.mini_batch.max(1) as i64).min(n);
        let mean = |x: &Tensor, m: &Tensor| match o.aggregation {
            Aggregation::Token => masked_mean(x, m),
            Aggregation::Sequence => sequence_mean(x, m),
        };
        let (mut pg_sum, mut vl_sum, mut ent_sum, mut clip_sum, mut gn_sum, mut updates) =
            (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        for _ in 0..o.epochs.max(1) {
            let mut start = 0;
            while start < n {
                let size = mb.min(n - start);
                let pick = |t: &Tensor| t.narrow(0, start, size);
                let m = pick(mask);
                let hidden = self.policy.causal_hidden_states(&pick(&batch.input_ids), &pick(&positions));
                let (logp, entropy) = batch.action_logprobs(self.policy, &hidden, start, size, temperature, true);
                let entropy = entropy.unwrap_or_else(|| logp.zeros_like());
                let ratio = (&logp - pick(&old_logp)).exp();
                let adv = pick(&advantages);
                let unclipped = &ratio * &adv;
                let clipped = ratio.clamp(1.0 - o.clip, 1.0 + o.clip) * &adv;
                let pg = mean(&-unclipped.minimum(&clipped), &m);
                let ent = mean(&entropy, &m);
                let mut loss = &pg - &ent * o.entropy_coef;
                if o.algorithm == Algorithm::Grpo {
                    // k3 estimator of KL(policy || reference), always >= 0.
                    let d = pick(&ref_logp) - &logp;
                    let k3 = d.exp() - &d - 1.0;
                    loss += mean(&k3, &m) * o.kl_coef;
                }
                let mut value_loss = 0.0;
                if let Some(ret) = &returns {
                    // The critic reads the policy's features but does not train them: value
                    // regression through the shared trunk degraded the language model.
                    let v = self.value.forward(&hidden.detach().narrow(1, 0, len).to_kind(Kind::Float));
                    let old_v = pick(&old_values);
                    let v_clipped = &old_v + (&v - &old_v).clamp(-o.clip, o.clip);
                    let r = pick(ret);
                    let vl = masked_mean(&(&v - &r).square().maximum(&(&v_clipped - &r).square()), &m) * 0.5;
                    value_loss = vl.double_value(&[]);
                    loss += vl * o.value_coef;
                }
                self.policy_opt.zero_grad();
                self.value_opt.zero_grad();
                loss.backward();
                gn_sum += self.policy_opt.step(o.grad_clip);
                if returns.is_some() {
                    self.value_opt.step(o.grad_clip);
                }
                let clip_frac = masked_mean(&(&ratio - 1.0).abs().gt(o.clip).to_kind(Kind::Float), &m);
                pg_sum += pg.double_value(&[]);
                vl_sum += value_loss;
                ent_sum += ent.double_value(&[]);
                clip_sum += clip_frac.double_value(&[]);
                updates += 1.0;
                start += size;
            }
        }
        let mut m = Map::new();
        m.insert("kl".into(), json!(masked_mean(&kl_tokens, mask).double_value(&[])));
        m.insert("policy_loss".into(), json!(pg_sum / updates));
        m.insert("value_loss".into(), json!(vl_sum / updates));
        m.insert("entropy".into(), json!(ent_sum / updates));
        m.insert("clip_fraction".into(), json!(clip_sum / updates));
        m.insert("grad_norm".into(), json!(gn_sum / updates));
        m.insert("policy_tokens".into(), json!(batch.actions()));
        Ok(m)
    }
}

/// Run RL training; resumes from the run's latest checkpoint when there is one.
#[allow(clippy::too_many_arguments)]
pub fn train(
    policy: &Transformer,
    reference: &Transformer,
    tokenizer: &RouterTokenizer,
    env: &Environment,
    opts: &RlOptions,
    seed: u64,
    run: &RunDir,
    progress: bool,
) -> anyhow::Result<std::path::PathBuf> {
    let mut learner = Learner::new(policy, reference, opts.clone(), tokenizer);
    let mut start = 0;
    if let Some((dir, state)) = run.latest() {
        policy.restore(&dir)?;
        learner.load_extra(&dir)?;
        start = state.step;
        tracing::info!("resuming RL at step {start} from {}", dir.display());
    }
    let train = env.split(Split::Train);
    anyhow::ensure!(!train.is_empty(), "the train split is empty");
    let mut log = MetricsLog::open(&run.metrics_path(), start)?;
    let bar = crate::progress_bar(opts.steps, progress);
    bar.set_position(start);
    if start == 0 && opts.eval_questions > 0 {
        let eval = evaluate(policy, tokenizer, env, Split::Dev, opts.eval_questions, &opts.sampling)?;
        let mut record = summarise(&eval, "eval_");
        record.insert("step".into(), json!(0));
        log.write(&record)?;
    }
    let mut last = None;
    for step in start..opts.steps {
        let started = Instant::now();
        let questions = step_questions(&train, opts, seed, step);
        let batch = rollouts(policy, tokenizer, env, &questions, &opts.sampling, seed ^ (step + 1))
            .with_context(|| format!("rollouts of step {}", step + 1))?;
        let rollout_s = started.elapsed().as_secs_f64();
        let mut record = summarise(&batch, "");
        let update_started = Instant::now();
        record.extend(learner.update(&batch)?);
        let update_s = update_started.elapsed().as_secs_f64();
        let done = step + 1;
        record.insert("step".into(), json!(done));
        record.insert("rollout_s".into(), json!(rollout_s));
        record.insert("update_s".into(), json!(update_s));
        if opts.eval_questions > 0 && (done % opts.eval_every == 0 || done == opts.steps) {
            let eval = evaluate(policy, tokenizer, env, Split::Dev, opts.eval_questions, &opts.sampling)?;
            record.extend(summarise(&eval, "eval_"));
        }
        bar.set_message(format!(
            "reward {:.3} em {:.3}",
            record["reward"].as_f64().unwrap_or(0.0),
            record["em"].as_f64().unwrap_or(0.0)
        ));
        log.write(&record)?;
        bar.inc(1);
        if done % opts.save_every == 0 || done == opts.steps {
            let save = |dir: &std::path::Path| learner.save_extra(dir);
            last = Some(run.save(&State { step: done }, policy, tokenizer, &save)?);
        }
    }
    bar.finish();
    let last = match last {
        Some(l) => l,
        None => run.latest().map(|(d, _)| d).context("no checkpoint was written")?,
    };
    run.publish_final(&last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gae_with_unit_discounts_is_return_minus_value_over_policy_tokens_only() {
        // Positions 1 and 3 are policy-written; 2 is information.
        let rewards = vec![vec![0.0, -0.1, 9.0, 1.0]];
        let values = vec![vec![5.0, 0.5, 7.0, 0.25]];
        let mask = vec![vec![0.0, 1.0, 0.0, 1.0]];
        let (adv, ret) = gae(&rewards, &values, &mask, 1.0, 1.0);
        // Return from position 1: -0.1 + 1.0 (the information's reward and value are ignored).
        assert!((adv[0][1] - (0.9 - 0.5)).abs() < 1e-6);
        assert!((adv[0][3] - (1.0 - 0.25)).abs() < 1e-6);
        assert_eq!(adv[0][0], 0.0);
        assert_eq!(adv[0][2], 0.0);
        assert!((ret[0][1] - 0.9).abs() < 1e-6 && ret[0][2] == 0.0);
    }

    #[test]
    fn a_fresh_value_head_predicts_zero_and_learns() {
        let head = ValueHead::new(8, tch::Device::Cpu);
        let hidden = Tensor::randn([2, 3, 8], (Kind::Float, tch::Device::Cpu)) * 10.0;
        assert_eq!(head.forward(&hidden).abs().max().double_value(&[]), 0.0);
        let mut opt = AdamW::new(head.vs.variables().into_iter().collect(), 1e-2, 0.0);
        opt.zero_grad();
        (head.forward(&hidden) - 1.0).square().mean(Kind::Float).backward();
        opt.step(1.0);
        assert!(head.forward(&hidden).abs().max().double_value(&[]) > 0.0, "zero weights still get gradients");
    }

    #[test]
    fn group_advantages_are_centred_and_scaled_per_group() {
        let a = group_advantages(&[1.0, 0.0, 1.0, 0.0, -1.0, -1.0], 2);
        assert!((a[0] - 1.0).abs() < 1e-5 && (a[1] + 1.0).abs() < 1e-5);
        assert_eq!(&a[4..], &[0.0, 0.0], "a group with equal rewards has no advantage");
    }
}
