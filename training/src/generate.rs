//! Batched generation with the key/value cache: a left-padded batch of contexts is encoded
//! in one pass, then every row samples one token per step until it writes a stop token, a
//! stop string (which may span tokens) or runs out of new tokens.
//!
//! With [`Sampling::tag_grammar`] each row follows the protocol's tag grammar
//! (`switchyard::engine::grammar`), with [`Sampling::protocol_grammar`] also its text and budget
//! rules (`switchyard::engine::protocol_grammar`): tokens the grammar forbids get
//! [`FORBIDDEN_LOGIT`] before sampling, and each generated token records the [`Mask`] it was
//! drawn under, so the learner can score it under the distribution it was drawn from.
//!
//! Invariants: a row's tokens end exactly at its stop (a stop string completed mid-token
//! keeps that token, nothing after it); a finished row is still fed padding so shapes stay
//! fixed, and nothing it produces afterwards is kept; sampling draws from torch's global
//! generator, so a seeded call is reproducible for the same batch.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use std::cell::RefCell;
use std::sync::Arc;

use crate::model::{LayerCache, Transformer, position_ids};
use crate::tokenizer::RouterTokenizer;
use switchyard::engine::answer_spans::Evidence;
use switchyard::engine::grammar::TagTokens;
use switchyard::engine::protocol::STOP_STRINGS;
use switchyard::engine::protocol_grammar::{Mask, TurnRules, TurnState};

/// Added to a forbidden token's logit: finite, so log-softmax and entropy stay free of NaN
/// (`0 * -inf`), and far enough below any real logit that its probability is exactly 0.
pub const FORBIDDEN_LOGIT: f64 = -1e9;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sampling {
    /// 0 = greedy.
    pub temperature: f64,
    /// Nucleus sampling: keep the smallest set of tokens whose probability reaches this.
    pub top_p: f64,
    /// Cap on one turn's new tokens.
    pub max_new_tokens: usize,
    /// Constrain tag tokens to the protocol's grammar (off by default, so the runs recorded
    /// before it existed replay unchanged).
    pub tag_grammar: bool,
    /// Also the protocol grammar's text and budget rules (implies `tag_grammar`; off by
    /// default for the same reason).
    pub protocol_grammar: bool,
    /// Also extractive answers: an answer is a span of the question and the replies
    /// (`switchyard::engine::answer_spans`; implies `protocol_grammar`).
    pub extractive_answers: bool,
}

impl Sampling {
    pub fn greedy(max_new_tokens: usize) -> Sampling {
        Sampling {
            temperature: 0.0,
            top_p: 1.0,
            max_new_tokens,
            tag_grammar: false,
            protocol_grammar: false,
            extractive_answers: false,
        }
    }

    fn constrained(&self) -> bool {
        self.tag_grammar || self.text_rules()
    }

    fn text_rules(&self) -> bool {
        self.protocol_grammar || self.extractive_answers
    }
}

impl Default for Sampling {
    /// The reference's rollout setting.
    fn default() -> Self {
        Sampling {
            temperature: 1.0,
            top_p: 0.95,
            max_new_tokens: 128,
            tag_grammar: false,
            protocol_grammar: false,
            extractive_answers: false,
        }
    }
}

/// One turn to write: the context so far, and what the episode's grammar needs to know.
#[derive(Clone, Debug)]
pub struct TurnInput {
    pub context: Vec<i64>,
    /// The engine's final turn: no `<search>` may be opened.
    pub final_turn: bool,
    /// The episode's first turn: it opens with `<think>` (protocol grammar).
    pub first_turn: bool,
    /// Lower-cased names and aliases a search may call (`TurnRules::model_names`).
    pub models: Arc<[String]>,
    /// What an extractive answer may copy (used with [`Sampling::extractive_answers`]).
    pub evidence: Option<Arc<Evidence>>,
}

impl TurnInput {
    /// A turn that is neither first nor final, over no named models.
    pub fn new(context: Vec<i64>) -> TurnInput {
        TurnInput { context, final_turn: false, first_turn: false, models: Arc::from([]), evidence: None }
    }

    fn rules(&self, sampling: &Sampling) -> TurnRules {
        if !sampling.text_rules() {
            return TurnRules::tags_only(self.final_turn);
        }
        TurnRules {
            final_turn: self.final_turn,
            first_turn: self.first_turn,
            budget: sampling.max_new_tokens,
            models: self.models.clone(),
            text_rules: true,
            evidence: if sampling.extractive_answers { self.evidence.clone() } else { None },
        }
    }
}

#[derive(Clone, Debug)]
pub struct Generated {
    pub tokens: Vec<i64>,
    pub text: String,
    /// False when the row ran out of new tokens before a stop.
    pub stopped: bool,
    /// Per token, the mask its distribution was sampled under ([`Mask::FREE`] without the
    /// grammar).
    pub masks: Vec<Mask>,
}

/// Next token per row from `[batch, vocab]` logits.
pub fn sample(logits: &Tensor, sampling: &Sampling) -> Tensor {
    if sampling.temperature <= 0.0 {
        return logits.argmax(-1, false);
    }
    let probs = (logits / sampling.temperature).softmax(-1, Kind::Float);
    if sampling.top_p < 1.0 {
        let (kept, order) = nucleus(&probs, sampling.top_p);
        let pick = kept.multinomial(1, false);
        return order.gather(-1, &pick, false).squeeze_dim(-1);
    }
    probs.multinomial(1, false).squeeze_dim(-1)
}

/// Vocabularies above this size look for the nucleus among the most likely
/// [`NUCLEUS_CANDIDATES`] tokens first rather than sort every 49k-token row at every step
/// (a few percent of a 135M router's rollout time, BENCHMARKS.md); smaller ones sort whole, as
/// they always did, so runs recorded with them draw the same tokens.
const NUCLEUS_SEARCH_ABOVE: i64 = 8192;
const NUCLEUS_CANDIDATES: i64 = 1024;

/// The nucleus of each row of `probs` `[batch, vocab]`: the most likely tokens, in descending
/// order, up to the first whose preceding mass reaches `top_p` (the first always stays), with
/// the rest of the returned columns zero; and the vocabulary ids of the columns. When every
/// row's top [`NUCLEUS_CANDIDATES`] tokens hold `top_p` of its mass, the nucleus lies among
/// them and only they are returned; otherwise the whole vocabulary is sorted.
pub fn nucleus(probs: &Tensor, top_p: f64) -> (Tensor, Tensor) {
    let vocab = probs.size().last().copied().unwrap_or(0);
    let (sorted, order) = if vocab > NUCLEUS_SEARCH_ABOVE {
        let (top, ids) = probs.topk(NUCLEUS_CANDIDATES, -1, true, true);
        let covered = top.sum_dim_intlist(-1, false, Kind::Float).min().double_value(&[]) >= top_p;
        if covered { (top, ids) } else { probs.sort(-1, true) }
    } else {
        probs.sort(-1, true)
    };
    // Drop a token when the mass before it already reaches top_p (the first always stays).
    let before = sorted.cumsum(-1, Kind::Float) - &sorted;
    (sorted.masked_fill(&before.ge(top_p), 0.0), order)
}

/// Each mask's forbidden tag-column bits (0 for an [`Mask::Only`], which
/// [`allow_list_bias`] covers).
pub fn forbidden_bits<'a>(masks: impl IntoIterator<Item = &'a Mask>) -> Vec<u32> {
    masks.into_iter().map(|m| if let Mask::Forbid(bits) = m { *bits } else { 0 }).collect()
}

/// `[lists, vocab]` additive logit bias: row k forbids every token but those of `lists[k]`
/// (a [`Mask::Only`]'s ids).
pub fn allow_list_bias(lists: &[&[u32]], vocab: i64, device: tch::Device) -> Tensor {
    let width = vocab as usize;
    let mut values = vec![FORBIDDEN_LOGIT as f32; lists.len() * width];
    for (k, ids) in lists.iter().enumerate() {
        for &id in ids.iter().filter(|&&id| (id as usize) < width) {
            values[k * width + id as usize] = 0.0;
        }
    }
    Tensor::from_slice(&values).view([lists.len() as i64, vocab]).to_device(device)
}

/// `[rows, columns]` additive logit bias from each row's forbidden bits over `tags`' columns.
pub fn forbidden_bias(tags: &TagTokens, bits: &[u32], device: tch::Device) -> Tensor {
    let columns = tags.ids().len();
    let values: Vec<f32> = bits
        .iter()
        .flat_map(|b| (0..columns).map(move |i| if b & (1 << i) != 0 { FORBIDDEN_LOGIT as f32 } else { 0.0 }))
        .collect();
    Tensor::from_slice(&values).view([bits.len() as i64, columns as i64]).to_device(device)
}

/// The column ids of `tags` as an index tensor.
pub fn column_index(tags: &TagTokens, device: tch::Device) -> Tensor {
    let ids: Vec<i64> = tags.ids().into_iter().map(i64::from).collect();
    Tensor::from_slice(&ids).to_device(device)
}

/// The keys and values of a token prefix every context of a batch starts with (the router
/// prompt up to the question, within a rollout step), computed once for one row.
pub struct PrefixCache {
    tokens: Vec<i64>,
    past: Vec<LayerCache>,
}

/// Contexts share a prefix worth encoding once when it is at least this long.
const MIN_SHARED_PREFIX: usize = 16;

/// Generate a continuation of each turn's context.
pub fn generate(
    model: &Transformer,
    tokenizer: &RouterTokenizer,
    turns: &[TurnInput],
    sampling: &Sampling,
) -> anyhow::Result<Vec<Generated>> {
    generate_with(model, tokenizer, turns, sampling, None)
}

/// [`generate`], encoding the prefix all contexts share once: when `prefix` holds one the
/// contexts all start with (from an earlier turn of the same step), its cache is reused; else
/// the batch's longest common prefix is encoded for one row, kept in `prefix`, and its cache
/// repeated for every row. Each row's remaining tokens follow, left-padded between prefix and
/// suffix (the attention mask and position ids skip the padding, so every row computes what it
/// computes alone).
pub fn generate_sharing_prefix(
    model: &Transformer,
    tokenizer: &RouterTokenizer,
    turns: &[TurnInput],
    sampling: &Sampling,
    prefix: &RefCell<Option<PrefixCache>>,
) -> anyhow::Result<Vec<Generated>> {
    generate_with(model, tokenizer, turns, sampling, Some(prefix))
}

fn generate_with(
    model: &Transformer,
    tokenizer: &RouterTokenizer,
    turns: &[TurnInput],
    sampling: &Sampling,
    prefix: Option<&RefCell<Option<PrefixCache>>>,
) -> anyhow::Result<Vec<Generated>> {
    let contexts: Vec<&[i64]> = turns.iter().map(|t| t.context.as_slice()).collect();
    let batch = contexts.len();
    if batch == 0 {
        return Ok(Vec::new());
    }
    let device = model.device();
    // Every row keeps at least one token of its own, whose logits start its turn.
    let shortest = contexts.iter().map(|c| c.len()).min().unwrap_or(0);
    let common = contexts[0]
        .iter()
        .enumerate()
        .take_while(|(i, t)| contexts.iter().all(|c| c.get(*i) == Some(t)))
        .count()
        .min(shortest.saturating_sub(1));
    let shared: Option<(usize, Vec<LayerCache>)> = match prefix {
        Some(prefix) if batch > 1 && common >= MIN_SHARED_PREFIX => {
            let mut cached = prefix.borrow_mut();
            let reusable =
                cached.as_ref().is_some_and(|p| p.tokens.len() <= common && contexts[0].starts_with(&p.tokens));
            if !reusable {
                let ids = Tensor::from_slice(&contexts[0][..common]).view([1, common as i64]).to_device(device);
                let ones = Tensor::ones([1, common as i64], (Kind::Int64, device));
                let past = tch::no_grad(|| model.hidden_states(&ids, &ones, &position_ids(&ones), &[]).1);
                *cached = Some(PrefixCache { tokens: contexts[0][..common].to_vec(), past });
            }
            cached.as_ref().map(|p| {
                let rows = [batch as i64, 1, 1, 1];
                (p.tokens.len(), p.past.iter().map(|(k, v)| (k.repeat(rows), v.repeat(rows))).collect())
            })
        }
        _ => None,
    };
    let skip = shared.as_ref().map_or(0, |(n, _)| *n);
    let width = contexts.iter().map(|c| c.len() - skip).max().unwrap_or(0).max(1);
    let mut ids = Vec::with_capacity(batch * width);
    let mut mask = Vec::with_capacity(batch * (skip + width));
    for c in &contexts {
        let own = &c[skip..];
        let pad = width - own.len();
        ids.extend(std::iter::repeat_n(tokenizer.pad_id, pad).chain(own.iter().copied()));
        mask.extend(
            std::iter::repeat_n(1i64, skip).chain(std::iter::repeat_n(0, pad)).chain(std::iter::repeat_n(1, own.len())),
        );
    }
    let ids = Tensor::from_slice(&ids).view([batch as i64, width as i64]).to_device(device);
    let mut mask = Tensor::from_slice(&mask).view([batch as i64, (skip + width) as i64]).to_device(device);
    let past = shared.map(|(_, past)| past).unwrap_or_default();
    let mut rows: Vec<Generated> =
        vec![Generated { tokens: Vec::new(), text: String::new(), stopped: false, masks: Vec::new() }; batch];
    let mut done = vec![false; batch];
    let (vocab, tags) = (&*tokenizer.vocab, tokenizer.tags());
    let constrained = sampling.constrained() && !tags.has_no_tags();
    let mut states: Vec<TurnState> = turns.iter().map(|t| TurnState::new(t.rules(sampling))).collect();
    let columns = constrained.then(|| column_index(tags, device));
    tch::no_grad(|| -> anyhow::Result<()> {
        let positions = position_ids(&mask).narrow(1, skip as i64, width as i64);
        // Only the last position's logits start the turn: the LM head (a quarter of a 135M
        // model's compute per token) runs there alone.
        let (hidden, mut past) = model.hidden_states(&ids, &mask, &positions, &past);
        let mut logits = model.lm_head(&hidden.select(1, -1));
        let mut next_position = mask.sum_dim_intlist(1, false, Kind::Int64);
        for _ in 0..sampling.max_new_tokens {
            let masks: Vec<Mask> = states
                .iter()
                .zip(&done)
                .map(|(s, d)| if constrained && !d { s.mask(vocab) } else { Mask::FREE })
                .collect();
            if let Some(columns) = &columns {
                logits = logits.index_add(1, columns, &forbidden_bias(tags, &forbidden_bits(&masks), device));
                let (rows, lists): (Vec<i64>, Vec<&[u32]>) = masks
                    .iter()
                    .enumerate()
                    .filter_map(|(i, m)| if let Mask::Only(ids) = m { Some((i as i64, &ids[..])) } else { None })
                    .unzip();
                if !rows.is_empty() {
                    let bias = allow_list_bias(&lists, logits.size()[1], device);
                    logits = logits.index_add(0, &Tensor::from_slice(&rows).to_device(device), &bias);
                }
            }
            let next: Vec<i64> = Vec::try_from(sample(&logits, sampling).to_device(tch::Device::Cpu))?;
            for (row, &token) in next.iter().enumerate() {
                if done[row] {
                    continue;
                }
                let r = &mut rows[row];
                r.tokens.push(token);
                r.masks.push(masks[row].clone());
                if let Ok(t) = u32::try_from(token) {
                    states[row].observe(vocab, t);
                }
                if tokenizer.stop_ids.contains(&token) {
                    r.stopped = true;
                } else {
                    r.stopped = cut_at_stop_string(tokenizer, &mut r.tokens)?;
                    r.masks.truncate(r.tokens.len());
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

    /// A one-layer random model over `t`'s vocabulary.
    fn small_model(t: &RouterTokenizer) -> Transformer {
        let config = crate::model::Config {
            hidden_size: 16,
            intermediate_size: 32,
            num_hidden_layers: 1,
            num_attention_heads: 2,
            num_key_value_heads: 1,
            ..crate::model::Config::tiny(t.vocab_size() as i64)
        };
        Transformer::new(config, tch::Device::Cpu).unwrap()
    }

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

    /// Spread a nucleus back over the vocabulary.
    fn dense(kept: &Tensor, order: &Tensor, vocab: i64) -> Tensor {
        Tensor::zeros([kept.size()[0], vocab], (Kind::Float, tch::Device::Cpu)).scatter(-1, order, kept)
    }

    #[test]
    fn the_nucleus_found_among_the_top_candidates_is_the_whole_sorts() {
        tch::manual_seed(6);
        let vocab = 49_152;
        // Peaked rows (the nucleus is a few hundred tokens) and one flat row (it is not).
        let peaked = Tensor::randn([3, vocab], (Kind::Float, tch::Device::Cpu)) * 4.0;
        let flat = Tensor::randn([1, vocab], (Kind::Float, tch::Device::Cpu)) * 0.1;
        for (logits, searched) in [(peaked.shallow_clone(), true), (Tensor::cat(&[&peaked, &flat], 0), false)] {
            let probs = logits.softmax(-1, Kind::Float);
            let (kept, order) = nucleus(&probs, 0.95);
            assert_eq!(kept.size()[1] == NUCLEUS_CANDIDATES, searched, "searched among the candidates: {searched}");
            let (sorted, all) = probs.sort(-1, true);
            let before = sorted.cumsum(-1, Kind::Float) - &sorted;
            let whole = dense(&sorted.masked_fill(&before.ge(0.95), 0.0), &all, vocab);
            let found = dense(&kept, &order, vocab);
            let diff = (found - whole).abs().max().double_value(&[]);
            assert!(diff == 0.0, "the nuclei differ by {diff}");
        }
    }

    #[test]
    fn greedy_sampling_takes_the_argmax_and_top_p_keeps_the_head() {
        let logits = Tensor::from_slice(&[0.0f32, 5.0, 1.0, 4.9]).view([1, 4]);
        assert_eq!(sample(&logits, &Sampling::greedy(1)).int64_value(&[0]), 1);
        // With top_p tiny only the most likely token can be drawn.
        let s = Sampling { temperature: 1.0, top_p: 0.01, ..Sampling::greedy(1) };
        for _ in 0..20 {
            assert_eq!(sample(&logits, &s).int64_value(&[0]), 1);
        }
    }

    /// A one-layer random model whose tag tokens are likely, so unconstrained rows write them.
    fn tag_happy_model(t: &RouterTokenizer) -> Transformer {
        tch::manual_seed(1);
        let m = small_model(t);
        tch::no_grad(|| {
            let mut vars = m.vs.variables();
            let embed = vars.get_mut("model.embed_tokens.weight").unwrap();
            for id in t.tags().ids() {
                let _ = embed.get(i64::from(id)).f_mul_scalar_(8.0).unwrap();
            }
        });
        m
    }

    fn turns(t: &RouterTokenizer, first_turn: bool) -> Vec<TurnInput> {
        let models = TurnRules::model_names(["model-1", "model-22"]);
        (0..16)
            .map(|i| TurnInput {
                context: t.encode("ask model-1").unwrap(),
                final_turn: i % 2 == 0,
                first_turn,
                models: models.clone(),
                evidence: Some(Arc::new(Evidence::new(["Who is older, Kithsu Lorvath or Zakdru?", "1949."]))),
            })
            .collect()
    }

    /// Sampled hot from a random model, rows write forbidden tags freely; under the grammar
    /// none, and each token records the mask it was drawn under.
    #[test]
    fn the_tag_grammar_masks_forbidden_tags_and_records_the_mask() {
        let t = tokenizer();
        assert!(!t.tags().has_no_tags());
        let m = tag_happy_model(&t);
        let turns = turns(&t, false);
        let violations = |grammar: bool| {
            let s = Sampling { temperature: 1.5, top_p: 1.0, tag_grammar: grammar, ..Sampling::greedy(40) };
            tch::manual_seed(2);
            let rows = generate(&m, &t, &turns, &s).unwrap();
            let mut count = 0;
            for (row, turn) in rows.iter().zip(&turns) {
                assert_eq!(row.masks.len(), row.tokens.len());
                let mut state = switchyard::engine::grammar::TurnGrammar::new(turn.final_turn);
                for (i, &token) in row.tokens.iter().enumerate() {
                    let bits = t.tags().forbidden(&state);
                    assert_eq!(row.masks[i], Mask::Forbid(if grammar { bits } else { 0 }));
                    count += usize::from(t.tags().forbidden_ids(bits).any(|id| i64::from(id) == token));
                    t.tags().observe(&mut state, token as u32);
                }
            }
            count
        };
        assert!(violations(false) > 0, "the test needs a model that breaks the grammar unconstrained");
        assert_eq!(violations(true), 0);
    }

    /// Under the protocol grammar even a random model writes turns the grammar accepts, each
    /// ending in a complete action within the budget; each token was drawn from its mask.
    #[test]
    fn the_protocol_grammar_makes_a_random_model_write_complete_turns() {
        let t = tokenizer();
        let m = tag_happy_model(&t);
        for first_turn in [true, false] {
            let turns = turns(&t, first_turn);
            // 64 tokens: a reserve of 16 fits the longest search the test's names allow.
            let s = Sampling { temperature: 1.5, top_p: 1.0, protocol_grammar: true, ..Sampling::greedy(64) };
            tch::manual_seed(3);
            let rows = generate(&m, &t, &turns, &s).unwrap();
            for (row, turn) in rows.iter().zip(&turns) {
                assert!(row.stopped && row.tokens.len() <= 64, "{:?}", row.text);
                for (mask, &token) in row.masks.iter().zip(&row.tokens) {
                    assert!(mask.allows(t.tags(), token as u32), "{mask:?} {token}");
                }
                let rules = turn.rules(&s);
                if let Err(e) = switchyard::engine::protocol_grammar::check_turn_text(&row.text, rules) {
                    panic!("{e}: {:?}", row.text);
                }
            }
        }
    }

    /// With extractive answers a random model's every answer is a whole span of the evidence.
    #[test]
    fn extractive_answers_make_a_random_model_copy_its_answers() {
        let t = tokenizer();
        let m = tag_happy_model(&t);
        let turns = turns(&t, false);
        let s = Sampling { temperature: 1.5, top_p: 1.0, extractive_answers: true, ..Sampling::greedy(64) };
        tch::manual_seed(4);
        let rows = generate(&m, &t, &turns, &s).unwrap();
        let evidence = turns[0].evidence.clone().unwrap();
        let mut answers = 0;
        for (row, turn) in rows.iter().zip(&turns) {
            switchyard::engine::protocol_grammar::check_turn_text(&row.text, turn.rules(&s))
                .unwrap_or_else(|e| panic!("{e}: {:?}", row.text));
            if let Some((_, rest)) = row.text.split_once("<answer>") {
                let answer = rest.trim_end_matches("</answer>").trim().to_lowercase();
                assert!(evidence.holds_span(&answer), "{answer:?} in {:?}", row.text);
                answers += 1;
            }
        }
        assert!(answers >= 4, "the final turns answer: {answers}");
    }

    /// Rows sharing a long prefix decode with it encoded once, and reused on a later call,
    /// exactly as each row decodes alone.
    #[test]
    fn a_shared_prefix_encoded_once_decodes_as_each_row_alone() {
        let t = tokenizer();
        tch::manual_seed(5);
        let m = small_model(&t);
        crate::model::perturb(&m, 1.0);
        let prompt = t.encode(&"<search>model-3: question 3</search> and more text 3 ".repeat(4)).unwrap();
        assert!(prompt.len() >= MIN_SHARED_PREFIX);
        let with = |tail: &str| {
            let mut c = prompt.clone();
            c.extend(t.encode(tail).unwrap());
            TurnInput::new(c)
        };
        let turns = vec![with("ask model-1"), with("x"), with("question 7 and more")];
        let greedy = Sampling::greedy(12);
        let alone: Vec<Vec<i64>> = turns
            .iter()
            .map(|turn| generate(&m, &t, std::slice::from_ref(turn), &greedy).unwrap()[0].tokens.clone())
            .collect();
        let cache = RefCell::new(None);
        let shared = generate_sharing_prefix(&m, &t, &turns, &greedy, &cache).unwrap();
        assert_eq!(shared.iter().map(|g| g.tokens.clone()).collect::<Vec<_>>(), alone);
        let cached = cache.borrow().as_ref().map(|p| p.tokens.clone()).expect("the prefix was kept");
        assert!(cached.len() >= prompt.len() - 1 && turns.iter().all(|turn| turn.context.starts_with(&cached)));
        // A later turn of the same episodes: longer contexts, the kept prefix reused.
        let later: Vec<TurnInput> = turns
            .iter()
            .zip(&shared)
            .map(|(turn, g)| TurnInput::new(turn.context.iter().chain(&g.tokens).copied().collect()))
            .collect();
        let alone: Vec<Vec<i64>> = later
            .iter()
            .map(|turn| generate(&m, &t, std::slice::from_ref(turn), &greedy).unwrap()[0].tokens.clone())
            .collect();
        let again = generate_sharing_prefix(&m, &t, &later, &greedy, &cache).unwrap();
        assert_eq!(again.iter().map(|g| g.tokens.clone()).collect::<Vec<_>>(), alone);
        assert_eq!(cache.borrow().as_ref().map(|p| p.tokens.clone()), Some(cached), "the prefix was reused");
    }

    #[test]
    fn generation_stops_at_max_new_tokens_and_marks_unstopped_rows() {
        let t = tokenizer();
        tch::manual_seed(0);
        let m = small_model(&t);
        let turns: Vec<TurnInput> = ["ask model-1", "x"].iter().map(|c| TurnInput::new(t.encode(c).unwrap())).collect();
        let out = generate(&m, &t, &turns, &Sampling::greedy(5)).unwrap();
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
