//! Multi-turn rollouts through the host's own turn loop.
//!
//! Every episode runs `switchyard::engine::run` — the loop the server runs — with a
//! [`TokenPolicy`] as its policy. The policy does not generate by itself: it hands its turn
//! to the batcher (this thread), which waits until every live episode is waiting on the
//! model, generates one turn for all of them in one batch, and hands the texts back. The
//! engine parses each turn, calls the chosen model through the pool, inserts the
//! information block and asks for the next turn (or ends the episode).
//!
//! Invariants:
//! - an episode's tokens are the prompt, then alternately the tokens the policy sampled
//!   (marked generated) and the tokenised host text the engine inserted (not generated), so
//!   decoding the tokens after the prompt gives back the trajectory text exactly;
//! - batches are formed in episode order, so a seeded rollout step is reproducible.

use std::cell::RefCell;
use std::sync::Arc;

use anyhow::Context;
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use crate::env::Environment;
use crate::generate::{Generated, PrefixCache, Sampling, TurnInput, generate, generate_sharing_prefix};
use crate::model::Transformer;
use crate::tokenizer::RouterTokenizer;
use switchyard::engine::answer_spans::Evidence;
use switchyard::engine::protocol_grammar::{Mask, TurnRules};
use switchyard::engine::{self, Episode, Policy, PolicyError, Trace};
use switchyard::plugin::types::{Author, RewardBreakdown};
use switchyard::sim::questions::Question;

/// One finished episode, ready for a policy-gradient update.
pub struct Rollout {
    pub question: Question,
    /// Prompt, then trajectory tokens.
    pub tokens: Vec<i64>,
    /// True where the policy wrote the token.
    pub generated: Vec<bool>,
    /// Per token, the mask it was sampled under ([`Mask::FREE`] for tokens the policy did not
    /// write, and everywhere without a grammar).
    pub masks: Vec<Mask>,
    pub prompt_len: usize,
    pub trace: Trace,
    pub reward: RewardBreakdown,
}

impl Rollout {
    pub fn generated_tokens(&self) -> usize {
        self.generated.iter().filter(|g| **g).count()
    }
}

/// A turn request from an episode to the batcher.
struct TurnRequest {
    episode: usize,
    /// Host text inserted since the policy's previous turn (empty on the first turn).
    host_text: String,
    final_turn: bool,
    first_turn: bool,
    /// The names and aliases of the episode's pool, for the protocol grammar.
    models: Arc<[String]>,
    /// The question and the replies so far, when the writer decodes extractive answers.
    evidence: Option<Arc<Evidence>>,
    reply: oneshot::Sender<Result<String, String>>,
}

enum Message {
    Turn(TurnRequest),
    Done(usize, Result<Trace, PolicyError>),
}

/// The policy side of one episode: forwards turns to the batcher.
pub struct TokenPolicy {
    episode: usize,
    to_batcher: mpsc::UnboundedSender<Message>,
    /// Gather each turn's evidence (see [`TurnWriter::extractive_answers`]).
    extractive_answers: bool,
}

impl Policy for TokenPolicy {
    fn name(&self) -> &str {
        "switchyard/router-r1"
    }

    fn next_turn<'a>(&'a self, episode: &'a Episode) -> BoxFuture<'a, Result<String, PolicyError>> {
        // What the host wrote after the router's last turn.
        let host_text: String = episode
            .segments
            .iter()
            .rev()
            .take_while(|s| s.author == Author::Host)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .map(|s| s.text.as_str())
            .collect();
        let (reply, answer) = oneshot::channel();
        let request = TurnRequest {
            episode: self.episode,
            host_text,
            final_turn: episode.final_turn,
            first_turn: episode.segments.is_empty(),
            models: TurnRules::pool_names(&episode.pool),
            evidence: self
                .extractive_answers
                .then(|| Arc::new(Evidence::of_episode(&episode.question, &episode.segments))),
            reply,
        };
        let sent = self.to_batcher.send(Message::Turn(request));
        Box::pin(async move {
            let error = |message: String| PolicyError { policy: self.name().to_string(), message };
            sent.map_err(|_| error("the batcher stopped".into()))?;
            answer.await.map_err(|_| error("the batcher dropped the turn".into()))?.map_err(error)
        })
    }
}

/// Writes one turn for each of a batch of token contexts.
pub trait TurnWriter {
    fn write_turns(&self, turns: &[TurnInput]) -> anyhow::Result<Vec<Generated>>;

    /// Does it decode extractive answers (so each turn needs its evidence)?
    fn extractive_answers(&self) -> bool {
        false
    }
}

/// The policy model sampling turns. The prompt prefix its episodes share is encoded once,
/// at their first turn, and its cache reused for every later turn (see
/// [`generate_sharing_prefix`]); a writer lives for one step, whose weights do not change.
pub struct ModelWriter<'a> {
    pub model: &'a Transformer,
    pub tokenizer: &'a RouterTokenizer,
    pub sampling: &'a Sampling,
    /// `None`: every turn encodes its whole context (the benchmark's anchor).
    prefix: Option<RefCell<Option<PrefixCache>>>,
}

impl<'a> ModelWriter<'a> {
    pub fn new(model: &'a Transformer, tokenizer: &'a RouterTokenizer, sampling: &'a Sampling) -> ModelWriter<'a> {
        ModelWriter { model, tokenizer, sampling, prefix: Some(RefCell::new(None)) }
    }

    /// Encode every context whole, sharing nothing (to measure what sharing saves).
    pub fn without_shared_prefix(self) -> ModelWriter<'a> {
        ModelWriter { prefix: None, ..self }
    }
}

impl TurnWriter for ModelWriter<'_> {
    fn write_turns(&self, turns: &[TurnInput]) -> anyhow::Result<Vec<Generated>> {
        match &self.prefix {
            Some(prefix) => generate_sharing_prefix(self.model, self.tokenizer, turns, self.sampling, prefix),
            None => generate(self.model, self.tokenizer, turns, self.sampling),
        }
    }

    fn extractive_answers(&self) -> bool {
        self.sampling.extractive_answers
    }
}

/// Run one episode per question with `model` writing the router's turns, and score them.
/// `seed` fixes the sampling and the episodes' pools.
pub fn rollouts(
    model: &Transformer,
    tokenizer: &RouterTokenizer,
    env: &Environment,
    questions: &[Question],
    sampling: &Sampling,
    seed: u64,
) -> anyhow::Result<Vec<Rollout>> {
    tch::manual_seed(seed as i64);
    run_episodes(&ModelWriter::new(model, tokenizer, sampling), tokenizer, env, questions, seed)
}

/// Run one episode per question with `writer` writing the router's turns, and score them.
pub fn run_episodes(
    writer: &dyn TurnWriter,
    tokenizer: &RouterTokenizer,
    env: &Environment,
    questions: &[Question],
    seed: u64,
) -> anyhow::Result<Vec<Rollout>> {
    let n = questions.len();
    let (to_batcher, mut inbox) = mpsc::unbounded_channel();
    let mut tokens = Vec::with_capacity(n);
    let mut generated = Vec::with_capacity(n);
    let mut masks: Vec<Vec<Mask>> = Vec::with_capacity(n);
    let mut prompt_lens = Vec::with_capacity(n);
    for (i, q) in questions.iter().enumerate() {
        let pool = env.episode_pool(seed, i)?;
        let prompt = env.prompt_text(&q.question, &pool.descriptors())?;
        let ids = tokenizer.encode(&prompt)?;
        prompt_lens.push(ids.len());
        generated.push(vec![false; ids.len()]);
        masks.push(vec![Mask::FREE; ids.len()]);
        tokens.push(ids);
        let policy =
            TokenPolicy { episode: i, to_batcher: to_batcher.clone(), extractive_answers: writer.extractive_answers() };
        let (engine_config, question, done) = (env.engine.clone(), q.question.clone(), to_batcher.clone());
        env.tokio.spawn(async move {
            let trace = engine::run(&engine_config, &policy, &pool, &question).await;
            let _ = done.send(Message::Done(i, trace));
        });
    }
    drop(to_batcher);

    let mut traces: Vec<Option<Trace>> = (0..n).map(|_| None).collect();
    let mut live = n;
    let mut waiting: Vec<TurnRequest> = Vec::new();
    while live > 0 {
        let message = inbox.blocking_recv().context("every episode stopped without finishing")?;
        match message {
            Message::Turn(request) => waiting.push(request),
            Message::Done(i, trace) => {
                traces[i] = Some(trace.with_context(|| format!("episode {i} ({})", questions[i].id))?);
                live -= 1;
            }
        }
        if !waiting.is_empty() && waiting.len() == live {
            waiting.sort_by_key(|r| r.episode);
            for r in &waiting {
                let host = tokenizer.encode(&r.host_text)?;
                generated[r.episode].extend(std::iter::repeat_n(false, host.len()));
                masks[r.episode].extend(std::iter::repeat_n(Mask::FREE, host.len()));
                tokens[r.episode].extend(host);
            }
            let inputs: Vec<TurnInput> = waiting
                .iter()
                .map(|r| TurnInput {
                    context: tokens[r.episode].clone(),
                    final_turn: r.final_turn,
                    first_turn: r.first_turn,
                    models: r.models.clone(),
                    evidence: r.evidence.clone(),
                })
                .collect();
            let turns = writer.write_turns(&inputs)?;
            for (r, turn) in waiting.drain(..).zip(turns) {
                anyhow::ensure!(turn.masks.is_empty() || turn.masks.len() == turn.tokens.len());
                generated[r.episode].extend(std::iter::repeat_n(true, turn.tokens.len()));
                let drawn = turn.masks.iter().cloned().chain(std::iter::repeat(Mask::FREE));
                masks[r.episode].extend(drawn.take(turn.tokens.len()));
                tokens[r.episode].extend(turn.tokens);
                let _ = r.reply.send(Ok(turn.text));
            }
        }
    }
    let traces: Vec<Trace> =
        traces.into_iter().map(|t| t.context("an episode left no trace")).collect::<Result<_, _>>()?;
    let scored: Vec<_> =
        traces.iter().zip(questions).map(|(t, q)| (t.trajectory.clone(), q.golden_answers.clone())).collect();
    let rewards = env.score(&scored)?;
    Ok(questions
        .iter()
        .cloned()
        .zip(traces)
        .zip(rewards)
        .enumerate()
        .map(|(i, ((question, trace), reward))| Rollout {
            question,
            tokens: std::mem::take(&mut tokens[i]),
            generated: std::mem::take(&mut generated[i]),
            masks: std::mem::take(&mut masks[i]),
            prompt_len: prompt_lens[i],
            trace,
            reward,
        })
        .collect())
}
