//! One generation in progress: its prompt, the tokens chosen so far, their text, its sampler
//! and its stop conditions.
//!
//! Invariants: tokens end exactly at the stop — a stop token is kept as the last token, and
//! when a stop string is completed the token that completed it is the last (nothing is
//! sampled after a stop); the returned text is the decoding of the tokens, cut right after
//! the stop string when one ended the generation. Under a [`TurnConstraint`] the tokens the
//! protocol grammar forbids are never chosen (their logits count as -inf).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::error::GenerateError;
use super::sampler::{Sampler, Sampling};
use super::stop::{Finish, StopSet};
use super::tokenizer::{TextStream, Tokenizer};
use crate::engine::protocol_grammar::{Mask, TurnRules, TurnState, Vocabulary};

/// Decode one router turn under the protocol grammar (`crate::engine::protocol_grammar`):
/// the tag grammar alone, or with its text and budget rules, as `rules` says.
#[derive(Clone, Debug)]
pub struct TurnConstraint {
    pub vocab: Arc<Vocabulary>,
    pub rules: TurnRules,
}

/// What to generate for one prompt.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    pub sampling: Sampling,
    /// Seeds this request's sampler (unused when greedy).
    pub seed: u64,
    pub stop: StopSet,
    /// None: no constraint on the tokens.
    pub grammar: Option<TurnConstraint>,
}

/// A finished generation.
#[derive(Clone, Debug, Serialize)]
pub struct Generation {
    pub tokens: Vec<u32>,
    pub text: String,
    pub finish: Finish,
    pub prompt_tokens: usize,
    /// From submission to the first token chosen (queueing and the prompt pass included).
    pub time_to_first_token: Duration,
    /// From submission to the last token chosen.
    pub elapsed: Duration,
}

pub struct Sequence {
    pub prompt: Vec<u32>,
    pub tokens: Vec<u32>,
    stream: TextStream,
    sampler: Sampler,
    options: GenerateOptions,
    submitted: Instant,
    first_token: Option<Duration>,
    finish: Option<Finish>,
    grammar: Option<(Arc<Vocabulary>, TurnState)>,
    /// The masked copy of a row of logits, kept to avoid an allocation per token.
    masked: Vec<f32>,
}

impl Sequence {
    pub fn new(prompt: Vec<u32>, options: GenerateOptions, submitted: Instant) -> Sequence {
        Sequence {
            prompt,
            tokens: Vec::new(),
            stream: TextStream::default(),
            sampler: Sampler::new(options.sampling, options.seed),
            grammar: options.grammar.as_ref().map(|c| (c.vocab.clone(), TurnState::new(c.rules.clone()))),
            masked: Vec::new(),
            options,
            submitted,
            first_token: None,
            finish: None,
        }
    }

    /// The token to feed next.
    pub fn last_token(&self) -> u32 {
        self.tokens.last().copied().unwrap_or_else(|| self.prompt.last().copied().unwrap_or(0))
    }

    pub fn is_finished(&self) -> bool {
        self.finish.is_some()
    }

    /// Choose the next token from this sequence's row of logits; true when that ends it.
    pub fn accept(&mut self, logits: &[f32], tokenizer: &Tokenizer) -> Result<bool, GenerateError> {
        let token = match &mut self.grammar {
            Some((vocab, state)) => {
                let token = match state.mask(vocab) {
                    Mask::Forbid(0) => self.sampler.next(logits),
                    Mask::Forbid(bits) => {
                        self.masked.clear();
                        self.masked.extend_from_slice(logits);
                        for id in vocab.tags().forbidden_ids(bits) {
                            if let Some(l) = self.masked.get_mut(id as usize) {
                                *l = f32::NEG_INFINITY;
                            }
                        }
                        self.sampler.next(&self.masked)
                    }
                    Mask::Only(ids) => {
                        self.masked.clear();
                        self.masked.resize(logits.len(), f32::NEG_INFINITY);
                        for &id in ids.iter() {
                            if let (Some(m), Some(l)) = (self.masked.get_mut(id as usize), logits.get(id as usize)) {
                                *m = *l;
                            }
                        }
                        self.sampler.next(&self.masked)
                    }
                };
                state.observe(vocab, token);
                token
            }
            None => self.sampler.next(logits),
        };
        self.tokens.push(token);
        self.first_token.get_or_insert_with(|| self.submitted.elapsed());
        let stop = &self.options.stop;
        if stop.is_stop_token(token) {
            self.finish = Some(Finish::StopToken(token));
        } else if !stop.strings().is_empty() {
            let before = self.stream.push(tokenizer, token)?;
            if let Some(s) = stop.completed(self.stream.text(), before) {
                self.finish = Some(Finish::StopString(s.to_string()));
            }
        }
        if self.finish.is_none() && self.tokens.len() >= self.options.max_new_tokens {
            self.finish = Some(Finish::Length);
        }
        Ok(self.finish.is_some())
    }

    /// The result, once finished.
    pub fn generation(&self, tokenizer: &Tokenizer) -> Result<Generation, GenerateError> {
        let full = tokenizer.decode(&self.tokens)?;
        let text = match &self.finish {
            Some(Finish::StopString(_)) => self.options.stop.cut(&full).to_string(),
            _ => full,
        };
        Ok(Generation {
            tokens: self.tokens.clone(),
            text,
            finish: self.finish.clone().unwrap_or(Finish::Length),
            prompt_tokens: self.prompt.len(),
            time_to_first_token: self.first_token.unwrap_or_default(),
            elapsed: self.submitted.elapsed(),
        })
    }
}
