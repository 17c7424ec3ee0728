//! Many concurrent generations on one ONNX Runtime session: a decoder thread batches them.
//!
//! `Session::run` takes `&mut self` in ort rc.15, so one thread owns the session. Requests
//! reach it over a channel; it keeps a [`Cohort`] of running sequences and loops:
//! 1. take new requests; drop requests and sequences whose caller is gone (a dropped
//!    `generate` future closes its reply channel — that is how a disconnecting client
//!    cancels its decoding);
//! 2. admit waiting requests up to `max_batch` running sequences (and a bound on the prompt
//!    pass's logits): one left-padded prompt pass for all of them, first tokens chosen, then
//!    their caches are merged into the cohort (re-padded to the longest row);
//! 3. one decoding step for the whole cohort: one token per sequence in one pass; finished
//!    sequences reply and leave at the next merge.
//!
//! Invariants: a sequence's tokens do not depend on which others share its passes (padding is
//! masked, positions count real tokens, each request samples from its own seeded generator);
//! a cancelled sequence is never stepped again after the loop sees its caller gone (at most
//! one pass later); a failed pass fails the requests in it, not the decoder; the thread exits
//! once the last [`Generator`] handle is dropped and its sequences are done.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::cohort::Cohort;
use super::decoder::{Decoder, Pass};
use super::error::{GenerateError, LoadError};
use super::sequence::{GenerateOptions, Generation, Sequence};
use super::tokenizer::Tokenizer;

/// Default cap on sequences decoded together.
pub const DEFAULT_MAX_BATCH: usize = 32;

/// Cap on one prompt pass's logits: a real vocabulary (150k tokens) makes them 0.6 MB per
/// prompt position.
const PREFILL_LOGITS_BYTES: usize = 512 << 20;

/// A handle to the decoder thread; clones share it.
#[derive(Clone)]
pub struct Generator {
    shared: Arc<Shared>,
}

struct Shared {
    jobs: mpsc::UnboundedSender<Job>,
    counters: Arc<Counters>,
    model: String,
    vocab: usize,
    max_positions: Option<usize>,
}

struct Job {
    prompt: Vec<u32>,
    options: GenerateOptions,
    submitted: Instant,
    reply: oneshot::Sender<Result<Generation, GenerateError>>,
}

#[derive(Default)]
struct Counters {
    prefill_passes: AtomicU64,
    step_passes: AtomicU64,
    step_rows: AtomicU64,
    tokens: AtomicU64,
    finished: AtomicU64,
    cancelled: AtomicU64,
    failed: AtomicU64,
    running: AtomicUsize,
    waiting: AtomicUsize,
}

/// Counters since the generator started.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct GeneratorStats {
    /// Prompt passes (each admits one or more requests).
    pub prefill_passes: u64,
    /// Decoding steps (one token for each running sequence).
    pub step_passes: u64,
    /// Sum of the steps' batch sizes (`step_rows / step_passes` is the mean batch).
    pub step_rows: u64,
    /// Tokens chosen, first tokens included.
    pub tokens: u64,
    pub finished: u64,
    /// Requests whose caller went away before they finished.
    pub cancelled: u64,
    pub failed: u64,
    /// Sequences in the cohort now.
    pub running: usize,
    /// Requests waiting for room in the cohort now.
    pub waiting: usize,
}

impl Generator {
    /// Start the decoder thread. `label` names the model in logs and metrics.
    pub fn start(
        decoder: Decoder,
        tokenizer: Arc<Tokenizer>,
        max_batch: usize,
        max_positions: Option<usize>,
        label: &str,
    ) -> Result<Generator, LoadError> {
        let (jobs, inbox) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let shared =
            Shared { jobs, counters: counters.clone(), model: label.to_string(), vocab: decoder.vocab, max_positions };
        let model = decoder.model.clone();
        let worker = Worker {
            shape: (decoder.signature.kv_heads, decoder.signature.head_dim),
            decoder,
            tokenizer,
            inbox,
            counters,
            max_batch: max_batch.max(1),
            label: label.to_string(),
            cohort: Cohort::empty(),
            rows: Vec::new(),
            waiting: VecDeque::new(),
        };
        std::thread::Builder::new()
            .name("switchyard-decoder".into())
            .spawn(move || worker.run())
            .map_err(|e| LoadError::file(model, format!("cannot start the decoder thread: {e}")))?;
        Ok(Generator { shared: Arc::new(shared) })
    }

    /// Generate a continuation of `prompt`. Dropping the future cancels the generation.
    pub async fn generate(&self, prompt: Vec<u32>, options: GenerateOptions) -> Result<Generation, GenerateError> {
        let answer = self.submit(prompt, options)?;
        answer.await.map_err(|_| self.stopped())?
    }

    /// `generate` for callers outside an async runtime (the CLI, benchmarks).
    pub fn generate_blocking(&self, prompt: Vec<u32>, options: GenerateOptions) -> Result<Generation, GenerateError> {
        let answer = self.submit(prompt, options)?;
        answer.blocking_recv().map_err(|_| self.stopped())?
    }

    pub fn stats(&self) -> GeneratorStats {
        let c = &self.shared.counters;
        GeneratorStats {
            prefill_passes: c.prefill_passes.load(Ordering::Relaxed),
            step_passes: c.step_passes.load(Ordering::Relaxed),
            step_rows: c.step_rows.load(Ordering::Relaxed),
            tokens: c.tokens.load(Ordering::Relaxed),
            finished: c.finished.load(Ordering::Relaxed),
            cancelled: c.cancelled.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            running: c.running.load(Ordering::Relaxed),
            waiting: c.waiting.load(Ordering::Relaxed),
        }
    }

    fn stopped(&self) -> GenerateError {
        GenerateError::Stopped { model: self.shared.model.clone() }
    }

    fn submit(
        &self,
        prompt: Vec<u32>,
        mut options: GenerateOptions,
    ) -> Result<oneshot::Receiver<Result<Generation, GenerateError>>, GenerateError> {
        if prompt.is_empty() {
            return Err(GenerateError::EmptyPrompt);
        }
        let vocab = self.shared.vocab;
        if let Some(&id) = prompt.iter().find(|&&id| id as usize >= vocab) {
            return Err(GenerateError::TokenOutOfRange { id, vocab });
        }
        if let Some(max) = self.shared.max_positions {
            if prompt.len() >= max {
                return Err(GenerateError::ContextFull { prompt: prompt.len(), max });
            }
            options.max_new_tokens = options.max_new_tokens.min(max - prompt.len());
        }
        options.max_new_tokens = options.max_new_tokens.max(1);
        let (reply, answer) = oneshot::channel();
        self.shared.counters.waiting.fetch_add(1, Ordering::Relaxed);
        self.shared.jobs.send(Job { prompt, options, submitted: Instant::now(), reply }).map_err(|_| self.stopped())?;
        Ok(answer)
    }
}

struct Row {
    sequence: Sequence,
    /// None once the row has replied (finished or failed).
    reply: Option<oneshot::Sender<Result<Generation, GenerateError>>>,
}

impl Row {
    /// Still generating for a caller that is still waiting.
    fn live(&self) -> bool {
        self.reply.as_ref().is_some_and(|r| !r.is_closed())
    }

    /// The caller went away before the row finished.
    fn abandoned(&self) -> bool {
        self.reply.as_ref().is_some_and(|r| r.is_closed())
    }
}

struct Worker {
    decoder: Decoder,
    tokenizer: Arc<Tokenizer>,
    inbox: mpsc::UnboundedReceiver<Job>,
    counters: Arc<Counters>,
    max_batch: usize,
    label: String,
    /// `(kv_heads, head_dim)`.
    shape: (usize, usize),
    cohort: Cohort,
    /// The cohort's sequences, row for row.
    rows: Vec<Row>,
    waiting: VecDeque<Job>,
}

impl Worker {
    fn run(mut self) {
        loop {
            if self.rows.is_empty() && self.waiting.is_empty() {
                match self.inbox.blocking_recv() {
                    Some(job) => self.waiting.push_back(job),
                    // Every handle is gone.
                    None => return,
                }
            }
            while let Ok(job) = self.inbox.try_recv() {
                self.waiting.push_back(job);
            }
            self.regroup();
            if !self.rows.is_empty() {
                self.step();
            }
            self.counters.running.store(self.rows.len(), Ordering::Relaxed);
            self.counters.waiting.store(self.waiting.len(), Ordering::Relaxed);
        }
    }

    fn count_cancelled(&self, n: usize) {
        if n > 0 {
            self.counters.cancelled.fetch_add(n as u64, Ordering::Relaxed);
            self.outcome("cancelled", n);
            tracing::debug!(model = %self.label, cancelled = n, "callers went away; their decoding stopped");
        }
    }

    fn outcome(&self, outcome: &'static str, n: usize) {
        metrics::counter!("switchyard_policy_generations_total", "model" => self.label.clone(), "outcome" => outcome)
            .increment(n as u64);
    }

    /// Drop finished and abandoned rows, admit waiting requests, and merge the caches.
    fn regroup(&mut self) {
        let before = self.waiting.len();
        self.waiting.retain(|job| !job.reply.is_closed());
        self.count_cancelled(before - self.waiting.len());
        self.count_cancelled(self.rows.iter().filter(|r| r.abandoned()).count());

        let keep: Vec<usize> = (0..self.rows.len()).filter(|&r| self.rows[r].live()).collect();
        let admitted = self.admissible(self.max_batch.saturating_sub(keep.len()));
        let admitted: Vec<Job> = self.waiting.drain(..admitted).collect();
        let (fresh, fresh_rows) =
            if admitted.is_empty() { (Cohort::empty(), Vec::new()) } else { self.prefill(admitted) };
        let fresh_keep: Vec<usize> = (0..fresh_rows.len()).filter(|&r| fresh_rows[r].live()).collect();
        if keep.len() == self.rows.len() && fresh_keep.is_empty() {
            return;
        }

        let picks: Vec<(usize, usize)> =
            keep.iter().map(|&r| (0, r)).chain(fresh_keep.iter().map(|&r| (1, r))).collect();
        let old = std::mem::replace(&mut self.cohort, Cohort::empty());
        let mut sources: [Vec<Option<Row>>; 2] = [
            std::mem::take(&mut self.rows).into_iter().map(Some).collect(),
            fresh_rows.into_iter().map(Some).collect(),
        ];
        let rows: Vec<Row> = picks.iter().filter_map(|&(s, r)| sources[s][r].take()).collect();
        match Cohort::gather(vec![old, fresh], &picks, self.shape) {
            Ok(cohort) => {
                self.cohort = cohort;
                self.rows = rows;
            }
            Err(reason) => self.fail(rows, &format!("merging caches: {reason}")),
        }
    }

    /// How many waiting requests one prompt pass admits: at most `room`, and no more than
    /// keep the pass's logits (`[batch, longest prompt, vocab]` floats: the graph returns every
    /// position's) within [`PREFILL_LOGITS_BYTES`] — but always one, so nothing waits forever.
    fn admissible(&self, room: usize) -> usize {
        let mut width = 0;
        let mut n = 0;
        for job in self.waiting.iter().take(room) {
            width = width.max(job.prompt.len());
            if n > 0 && (n + 1) * width * self.decoder.vocab * 4 > PREFILL_LOGITS_BYTES {
                break;
            }
            n += 1;
        }
        n
    }

    /// One prompt pass for `jobs`, left-padded to the longest; chooses each first token.
    fn prefill(&mut self, jobs: Vec<Job>) -> (Cohort, Vec<Row>) {
        let width = jobs.iter().map(|j| j.prompt.len()).max().unwrap_or(0);
        let batch = jobs.len();
        let mut ids = Vec::with_capacity(batch * width);
        let mut mask = Vec::with_capacity(batch * width);
        let mut positions = Vec::with_capacity(batch * width);
        let mut pads = Vec::with_capacity(batch);
        for job in &jobs {
            let pad = width - job.prompt.len();
            pads.push(pad);
            // Padding is masked; its id and position only need to be valid.
            ids.extend(std::iter::repeat_n(0, pad).chain(job.prompt.iter().map(|&t| i64::from(t))));
            mask.extend(std::iter::repeat_n(0, pad).chain(std::iter::repeat_n(1, job.prompt.len())));
            positions.extend(std::iter::repeat_n(0, pad).chain(0..job.prompt.len() as i64));
        }
        let mut rows: Vec<Row> = jobs
            .into_iter()
            .map(|j| Row { sequence: Sequence::new(j.prompt, j.options, j.submitted), reply: Some(j.reply) })
            .collect();
        let pass =
            Pass { batch, seq: width, input_ids: &ids, attention_mask: &mask, position_ids: &positions, past: None };
        self.counters.prefill_passes.fetch_add(1, Ordering::Relaxed);
        match self.decoder.run(pass) {
            Ok(out) => {
                self.choose(&mut rows, &out.logits);
                (Cohort { len: width, pads, caches: Some(out.present) }, rows)
            }
            Err(reason) => {
                self.fail(rows, &reason);
                (Cohort::empty(), Vec::new())
            }
        }
    }

    /// One token for every running sequence.
    fn step(&mut self) {
        let ids: Vec<i64> = self.rows.iter().map(|r| i64::from(r.sequence.last_token())).collect();
        let (mask, positions) = self.cohort.step_inputs();
        let pass = Pass {
            batch: self.rows.len(),
            seq: 1,
            input_ids: &ids,
            attention_mask: &mask,
            position_ids: &positions,
            past: self.cohort.caches.as_ref(),
        };
        self.counters.step_passes.fetch_add(1, Ordering::Relaxed);
        self.counters.step_rows.fetch_add(self.rows.len() as u64, Ordering::Relaxed);
        metrics::counter!("switchyard_policy_decode_steps_total", "model" => self.label.clone()).increment(1);
        match self.decoder.run(pass) {
            Ok(out) => {
                self.cohort.advance(out.present);
                let mut rows = std::mem::take(&mut self.rows);
                self.choose(&mut rows, &out.logits);
                self.rows = rows;
            }
            Err(reason) => {
                self.cohort = Cohort::empty();
                let rows = std::mem::take(&mut self.rows);
                self.fail(rows, &reason);
            }
        }
    }

    /// Each row chooses its token from its logits; a row that finishes replies now and
    /// leaves the cohort at the next regroup.
    fn choose(&self, rows: &mut [Row], logits: &[f32]) {
        let vocab = self.decoder.vocab;
        for (i, row) in rows.iter_mut().enumerate() {
            let result = match row.sequence.accept(&logits[i * vocab..(i + 1) * vocab], &self.tokenizer) {
                Ok(false) => continue,
                Ok(true) => row.sequence.generation(&self.tokenizer),
                Err(e) => Err(e),
            };
            let (counter, outcome) = match &result {
                Ok(_) => (&self.counters.finished, "finished"),
                Err(_) => (&self.counters.failed, "failed"),
            };
            counter.fetch_add(1, Ordering::Relaxed);
            self.outcome(outcome, 1);
            if let Some(reply) = row.reply.take() {
                let _ = reply.send(result);
            }
        }
        self.counters.tokens.fetch_add(rows.len() as u64, Ordering::Relaxed);
        metrics::counter!("switchyard_policy_tokens_total", "model" => self.label.clone()).increment(rows.len() as u64);
    }

    fn fail(&self, rows: Vec<Row>, reason: &str) {
        tracing::warn!(model = %self.label, "a decoding pass failed: {reason}");
        for reply in rows.into_iter().filter_map(|r| r.reply) {
            self.counters.failed.fetch_add(1, Ordering::Relaxed);
            self.outcome("failed", 1);
            let _ = reply.send(Err(GenerateError::Run { model: self.label.clone(), reason: reason.to_string() }));
        }
    }
}
