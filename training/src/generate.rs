//! Batched generation with the key/value cache: a left-padded batch of contexts is encoded
//! in one pass, then every row samples one token per step until it writes a stop token, a
//! stop string (which may span tokens) or runs out of new tokens.
//!
//! Invariants: a row's tokens end exactly at its stop (a stop string completed mid-token
//! keeps that token, nothing after it); a finished row is still fed padding so shapes stay
//! fixed, and nothing it produces afterwards is kept; sampling draws from torch's global
//! generator, so a seeded call is reproducible for the same batch.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::model::{Transformer, position_ids};
use crate::tokenizer::RouterTokenizer;
use switchyard::engine::protocol::STOP_STRINGS;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sampling {
    /// 0 = greedy.
    pub temperature: f64,
    /// Nucleus sampling: keep the smallest set of tokens whose probability reaches this.
    pub top_p: f64,
    /// Cap on one turn's new tokens.
    pub max_new_tokens: usize,
}

impl Sampling {
    pub fn greedy(max_new_tokens: usize) -> Sampling {
        Sampling { temperature: 0.0, top_p: 1.0, max_new_tokens }
    }
}

impl Default for Sampling {
    /// The reference's rollout setting.
    fn default() -> Self {
        Sampling { temperature: 1.0, top_p: 0.95, max_new_tokens: 128 }
    }
}

#[derive(Clone, Debug)]
pub struct Generated {
    pub tokens: Vec<i64>,
    pub text: String,
    /// False when the row ran out of new tokens before a stop.
    pub stopped: bool,
}

/// Next token per row from `[batch, vocab]` logits.
pub fn sample(logits: &Tensor, sampling: &Sampling) -> Tensor {
    if sampling.temperature <= 0.0 {
        return logits.argmax(-1, false);
    }
    let probs = (logits / sampling.temperature).softmax(-1, Kind::Float);
    if sampling.top_p < 1.0 {
        let (sorted, order) = probs.sort(-1, true);
        // Drop a token when the mass before it already reaches top_p (the first always stays).
        let before = sorted.cumsum(-1, Kind::Float) - &sorted;
        let kept = sorted.masked_fill(&before.ge(sampling.top_p), 0.0);
        let pick = kept.multinomial(1, false);
        return order.gather(-1, &pick, false).squeeze_dim(-1);
    }
    probs.multinomial(1, false).squeeze_dim(-1)
}

/// Generate a continuation of each context.
pub fn generate(
    model: &Transformer,
    tokenizer: &RouterTokenizer,
    contexts: &[Vec<i64>],
    sampling: &Sampling,
) -> anyhow::Result<Vec<Generated>> {
    let batch = contexts.len();
    if batch == 0 {
        return Ok(Vec::new());
    }
    let device = model.device();
    let width = contexts.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let mut ids = Vec::with_capacity(batch * width);
    let mut mask = Vec::with_capacity(batch * width);
    for c in contexts {
        let pad = width - c.len();
        ids.extend(std::iter::repeat_n(tokenizer.pad_id, pad).chain(c.iter().copied()));
        mask.extend(std::iter::repeat_n(0i64, pad).chain(std::iter::repeat_n(1, c.len())));
    }
    let shape = [batch as i64, width as i64];
    let ids = Tensor::from_slice(&ids).view(shape).to_device(device);
    let mut mask = Tensor::from_slice(&mask).view(shape).to_device(device);
    let mut rows: Vec<Generated> = vec![Generated { tokens: Vec::new(), text: String::new(), stopped: false }; batch];
    let mut done = vec![false; batch];
    tch::no_grad(|| -> anyhow::Result<()> {
        let out = model.forward(&ids, &mask, &position_ids(&mask), &[]);
        let mut past = out.present;
        let mut logits = out.logits.select(1, -1);
        let mut next_position = mask.sum_dim_intlist(1, false, Kind::Int64);
        for _ in 0..sampling.max_new_tokens {
            let next: Vec<i64> = Vec::try_from(sample(&logits, sampling).to_device(tch::Device::Cpu))?;
            for (row, &token) in next.iter().enumerate() {
                if done[row] {
                    continue;
                }
                let r = &mut rows[row];
                r.tokens.push(token);
                if tokenizer.stop_ids.contains(&token) {
                    r.stopped = true;
                } else {
                    r.stopped = cut_at_stop_string(tokenizer, &mut r.tokens)?;
                }
                done[row] = r.stopped;
            }
            if done.iter().all(|d| *d) {
                break;
            }
            let fed: Vec<i64> = next.iter().zip(&done).map(|(&t, &d)| if d { tokenizer.pad_id } else { t }).collect();
            let fed = Tensor::from_slice(&fed).view([batch as i64, 1]).to_device(device);
            mask = Tensor::cat(&[&mask, &Tensor::ones([batch as i64, 1], (Kind::Int64, device))], 1);
            let out = model.forward(&fed, &mask, &next_position.unsqueeze(1), &past);
            next_position += 1;
            past = out.present;
            logits = out.logits.select(1, 0);
        }
        Ok(())
    })?;
    for r in &mut rows {
        r.text = tokenizer.decode(&r.tokens)?;
    }
    Ok(rows)
}

/// When the decoded tokens contain a stop string, drop the tokens after the one that
/// completed it and return true.
fn cut_at_stop_string(tokenizer: &RouterTokenizer, tokens: &mut Vec<i64>) -> anyhow::Result<bool> {
    let has_stop = |t: &str| STOP_STRINGS.iter().any(|s| t.contains(s));
    // Only the tail can newly complete a stop string: look at enough tokens to hold one.
    let tail_from = tokens.len().saturating_sub(16);
    if !has_stop(&tokenizer.decode(&tokens[tail_from..])?) {
        return Ok(false);
    }
    for end in 1..=tokens.len() {
        if has_stop(&tokenizer.decode(&tokens[..end])?) {
            tokens.truncate(end);
            break;
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer() -> RouterTokenizer {
        let texts = (0..50).map(|i| format!("<search>model-{i}: question {i}</search> and more text {i}"));
        RouterTokenizer::train(texts, 300).unwrap()
    }

    #[test]
    fn a_stop_string_spanning_tokens_cuts_after_the_token_that_completes_it() {
        let t = tokenizer();
        // Spelled out in pieces, "</search>" is several tokens, not the tag token.
        let mut tokens = t.encode("ask </sea").unwrap();
        let head = tokens.len();
        tokens.extend(t.encode("rch> trailing words").unwrap());
        assert!(!tokens.contains(&t.id("</search>").unwrap()));
        // Feed one token at a time, as generation does.
        let mut fed = Vec::new();
        let mut stopped_at = None;
        for (i, &tok) in tokens.iter().enumerate() {
            fed.push(tok);
            if cut_at_stop_string(&t, &mut fed).unwrap() {
                stopped_at = Some(i);
                break;
            }
        }
        let i = stopped_at.expect("the stop string was not seen");
        assert!(i >= head, "stopped before the stop string was complete");
        let text = t.decode(&fed).unwrap();
        assert!(text.ends_with("</search>") || text.contains("</search>"), "{text}");
        assert!(!text.contains("trailing"), "{text}");
    }

    #[test]
    fn greedy_sampling_takes_the_argmax_and_top_p_keeps_the_head() {
        let logits = Tensor::from_slice(&[0.0f32, 5.0, 1.0, 4.9]).view([1, 4]);
        assert_eq!(sample(&logits, &Sampling::greedy(1)).int64_value(&[0]), 1);
        // With top_p tiny only the most likely token can be drawn.
        let s = Sampling { temperature: 1.0, top_p: 0.01, max_new_tokens: 1 };
        for _ in 0..20 {
            assert_eq!(sample(&logits, &s).int64_value(&[0]), 1);
        }
    }

    #[test]
    fn generation_stops_at_max_new_tokens_and_marks_unstopped_rows() {
        let t = tokenizer();
        tch::manual_seed(0);
        let config = crate::model::Config {
            hidden_size: 16,
            intermediate_size: 32,
            num_hidden_layers: 1,
            num_attention_heads: 2,
            num_key_value_heads: 1,
            ..crate::model::Config::tiny(t.vocab_size() as i64)
        };
        let m = Transformer::new(config, tch::Device::Cpu).unwrap();
        let contexts = vec![t.encode("ask model-1").unwrap(), t.encode("x").unwrap()];
        let out = generate(&m, &t, &contexts, &Sampling::greedy(5)).unwrap();
        for row in &out {
            assert!(row.tokens.len() <= 5);
            assert_eq!(
                row.stopped,
                row.tokens.last().is_some_and(|x| t.stop_ids.contains(x)) || row.text.contains("</")
            );
            assert_eq!(t.decode(&row.tokens).unwrap(), row.text);
        }
    }
}
