//! Padded training batches and per-token log-probabilities.
//!
//! A sequence's `loss_mask[t]` says whether token t is one the policy wrote; position t-1
//! predicts it, so the shifted masks line up with the logits of positions 0..len-1.
//! Invariant: padding, prompt and inserted information tokens have mask 0 everywhere.
//! Sampled under a grammar, a target also carries the mask it was drawn under
//! ([`Batch::with_masks`]); [`Batch::action_logprobs`] applies it, so log-probabilities, ratios,
//! the KL and the entropy are those of the distribution the rollout sampled from.

use std::sync::Arc;

use tch::{Device, Kind, Tensor};

use crate::generate::{allow_list_bias, column_index, forbidden_bias, forbidden_bits};
use crate::model::Transformer;
use switchyard::engine::grammar::TagTokens;
use switchyard::engine::protocol_grammar::Mask;

/// Right-padded sequences.
pub struct Batch {
    /// `[batch, len]`
    pub input_ids: Tensor,
    /// `[batch, len]`, 1 on real tokens.
    pub attention_mask: Tensor,
    /// `[batch, len - 1]`: the token each position predicts.
    pub targets: Tensor,
    /// `[batch, len - 1]` float: 1 where that target was written by the policy.
    pub action_mask: Tensor,
    /// The grammar's column ids `[columns]` and, per target, the bias its logits at those
    /// columns were sampled with, `[batch, len - 1, columns]`.
    pub forbidden: Option<(Tensor, Tensor)>,
    /// The targets sampled under an allow-list ([`Mask::Only`]): (row, target position, ids).
    pub only: Vec<(i64, i64, Arc<[u32]>)>,
}

impl Batch {
    pub fn new(sequences: &[(&[i64], &[bool])], pad_id: i64, device: Device) -> Batch {
        let width = sequences.iter().map(|(t, _)| t.len()).max().unwrap_or(0).max(2);
        let (mut ids, mut attn, mut loss) = (Vec::new(), Vec::new(), Vec::new());
        for (tokens, mask) in sequences {
            let pad = width - tokens.len();
            ids.extend(tokens.iter().copied().chain(std::iter::repeat_n(pad_id, pad)));
            attn.extend(std::iter::repeat_n(1i64, tokens.len()).chain(std::iter::repeat_n(0, pad)));
            loss.extend(mask.iter().map(|&m| f32::from(u8::from(m))).chain(std::iter::repeat_n(0.0, pad)));
        }
        let shape = [sequences.len() as i64, width as i64];
        let input_ids = Tensor::from_slice(&ids).view(shape).to_device(device);
        let attention_mask = Tensor::from_slice(&attn).view(shape).to_device(device);
        let loss = Tensor::from_slice(&loss).view(shape).to_device(device);
        let n = width as i64 - 1;
        Batch {
            targets: input_ids.narrow(1, 1, n),
            action_mask: loss.narrow(1, 1, n),
            input_ids,
            attention_mask,
            forbidden: None,
            only: Vec::new(),
        }
    }

    /// Attach each sequence's per-token masks (as sampled, aligned with its tokens). Sequences
    /// sampled without constraint leave the batch unconstrained.
    pub fn with_masks(mut self, tags: &TagTokens, rows: &[&[Mask]]) -> Batch {
        if tags.has_no_tags() {
            return self;
        }
        // Token t was sampled from the logits at position t - 1.
        for (row, masks) in rows.iter().enumerate() {
            for (t, mask) in masks.iter().enumerate().skip(1) {
                if let Mask::Only(ids) = mask {
                    self.only.push((row as i64, t as i64 - 1, ids.clone()));
                }
            }
        }
        let width = self.input_ids.size()[1] as usize;
        let bits: Vec<u32> = rows
            .iter()
            .flat_map(|r| forbidden_bits(r.iter()).into_iter().chain(std::iter::repeat(0)).take(width))
            .collect();
        if bits.iter().all(|b| *b == 0) {
            return self;
        }
        let device = self.input_ids.device();
        let columns = tags.ids().len() as i64;
        let bias = forbidden_bias(tags, &bits, device).view([rows.len() as i64, width as i64, columns]);
        let n = width as i64 - 1;
        self.forbidden = Some((column_index(tags, device), bias.narrow(1, 1, n)));
        self
    }

    /// Log-probabilities of the policy-written targets of rows `start..start + size`, and
    /// (when asked) the entropy of each such position's distribution, both `[size, len - 1]`
    /// with 0 at every other position.
    ///
    /// `hidden` holds those rows' final hidden states `[size, len, hidden]`. The LM head runs
    /// at the policy-written positions only — a router writes a fifth of its tokens, and the
    /// head over a 49k vocabulary costs a quarter of a 135M model's forward pass — at
    /// `temperature`, with the bias each target was sampled under added (so the distribution
    /// is the one the rollout drew from).
    pub fn action_logprobs(
        &self,
        model: &Transformer,
        hidden: &Tensor,
        start: i64,
        size: i64,
        temperature: f64,
        with_entropy: bool,
    ) -> (Tensor, Option<Tensor>) {
        let n = self.targets.size()[1];
        let device = hidden.device();
        let mask = self.action_mask.narrow(0, start, size).reshape([-1]);
        let at = mask.nonzero().squeeze_dim(1);
        let width = hidden.size()[2];
        let h = hidden.narrow(1, 0, n).reshape([size * n, width]).index_select(0, &at);
        let mut logits = model.lm_head(&h) / temperature;
        if let Some((columns, bias)) = &self.forbidden {
            let columns_n = columns.size()[0];
            let b = bias.narrow(0, start, size).reshape([size * n, columns_n]).index_select(0, &at);
            logits = logits.index_add(1, columns, &b);
        }
        // The allow-listed targets among those positions (`at` is in row-major order).
        let positions: Vec<i64> = Vec::try_from(at.to_device(Device::Cpu)).unwrap_or_default();
        let (rows, lists): (Vec<i64>, Vec<&[u32]>) = self
            .only
            .iter()
            .filter(|(row, _, _)| (start..start + size).contains(row))
            .filter_map(|(row, t, ids)| {
                positions.binary_search(&((row - start) * n + t)).ok().map(|k| (k as i64, &ids[..]))
            })
            .unzip();
        if !rows.is_empty() {
            let bias = allow_list_bias(&lists, logits.size()[1], device);
            logits = logits.index_add(0, &Tensor::from_slice(&rows).to_device(device), &bias);
        }
        let logp = logits.log_softmax(-1, Kind::Float);
        let targets = self.targets.narrow(0, start, size).reshape([-1]).index_select(0, &at);
        let taken = logp.gather(-1, &targets.unsqueeze(-1), false).squeeze_dim(-1);
        let spread = |values: &Tensor| {
            Tensor::zeros([size * n], (Kind::Float, device)).index_copy(0, &at, values).view([size, n])
        };
        let entropy = with_entropy.then(|| spread(&-(logp.exp() * &logp).sum_dim_intlist(-1, false, Kind::Float)));
        (spread(&taken), entropy)
    }

    /// Number of policy-written target tokens.
    pub fn actions(&self) -> f64 {
        self.action_mask.sum(Kind::Float).double_value(&[])
    }
}

/// Mean of `x` over the positions where `mask` is 1.
pub fn masked_mean(x: &Tensor, mask: &Tensor) -> Tensor {
    (x * mask).sum(Kind::Float) / mask.sum(Kind::Float).clamp_min(1.0)
}

/// Mean over rows of each row's mean of `x` where `mask` is 1: every sequence weighs the
/// same, however many tokens it has (rows without masked positions count as 0).
pub fn sequence_mean(x: &Tensor, mask: &Tensor) -> Tensor {
    let per_row = (x * mask).sum_dim_intlist(-1, false, Kind::Float)
        / mask.sum_dim_intlist(-1, false, Kind::Float).clamp_min(1.0);
    per_row.mean(Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tag ids 3.. of a vocabulary of 16.
    fn tags() -> TagTokens {
        TagTokens::new(
            |t| switchyard::engine::grammar::Tag::ALL.iter().position(|x| x.text() == t).map(|i| 3 + i as u32),
            &[],
        )
    }

    /// A model whose LM head gives every token the same logit on zero hidden states.
    fn uniform_head() -> (Transformer, i64) {
        let config = crate::model::Config {
            hidden_size: 8,
            intermediate_size: 16,
            num_hidden_layers: 1,
            num_attention_heads: 2,
            num_key_value_heads: 1,
            ..crate::model::Config::tiny(16)
        };
        (Transformer::new(config, Device::Cpu).unwrap(), 8)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-5
    }

    #[test]
    fn forbidden_bits_mask_the_logits_that_sampled_each_token() {
        let tags = tags();
        let (model, width) = uniform_head();
        let tokens: [i64; 4] = [1, 2, 7, 9];
        let generated = [false, true, true, true];
        // Token 7 (the third) was sampled with column 0 (id 3) forbidden.
        let masks = [0u32, 0, 1, 0].map(Mask::Forbid);
        let batch = Batch::new(&[(&tokens, &generated)], 0, Device::Cpu).with_masks(&tags, &[&masks]);
        let hidden = Tensor::zeros([1, 4, width], (Kind::Float, Device::Cpu));
        let (logp, entropy) = batch.action_logprobs(&model, &hidden, 0, 1, 1.0, true);
        let entropy = entropy.unwrap();
        // Target position 1 predicts token 7 from 15 tokens; positions 0 and 2 from all 16.
        assert!(close(logp.double_value(&[0, 1]), -(15f64.ln())));
        assert!(close(logp.double_value(&[0, 0]), -(16f64.ln())) && close(logp.double_value(&[0, 2]), -(16f64.ln())));
        assert!(close(entropy.double_value(&[0, 1]), 15f64.ln()) && close(entropy.double_value(&[0, 2]), 16f64.ln()));
        // Without bits, no constraint.
        let plain = Batch::new(&[(&tokens, &generated)], 0, Device::Cpu).with_masks(&tags, &[&[Mask::FREE; 4]]);
        assert!(plain.forbidden.is_none() && plain.only.is_empty());
    }

    #[test]
    fn an_allow_list_leaves_only_its_tokens_at_the_position_that_sampled_with_it() {
        let tags = tags();
        let (model, width) = uniform_head();
        let tokens: [i64; 4] = [1, 2, 7, 9];
        let generated = [false, true, true, true];
        // Row 1's token 9 (its fourth) was drawn from {9, 12} only.
        let only = Mask::Only(Arc::from([9u32, 12]));
        let rows: [&[Mask]; 2] = [&[Mask::FREE; 4], &[Mask::FREE, Mask::FREE, Mask::FREE, only]];
        let batch =
            Batch::new(&[(&tokens, &generated), (&tokens, &generated)], 0, Device::Cpu).with_masks(&tags, &rows);
        let hidden = Tensor::zeros([2, 4, width], (Kind::Float, Device::Cpu));
        let (logp, _) = batch.action_logprobs(&model, &hidden, 0, 2, 1.0, false);
        // Position 2 of row 1 predicts token 9: two tokens share its mass.
        assert!(close(logp.double_value(&[1, 2]), 0.5f64.ln()));
        // Elsewhere, and in row 0, the distribution is untouched.
        assert!(close(logp.double_value(&[0, 2]), -(16f64.ln())));
        assert!(close(logp.double_value(&[1, 1]), -(16f64.ln())));
        // A mini-batch of row 1 alone sees the same.
        let (mb, _) = batch.action_logprobs(&model, &hidden.narrow(0, 1, 1), 1, 1, 1.0, false);
        assert!(close(mb.double_value(&[0, 2]), 0.5f64.ln()));
    }

    #[test]
    fn only_policy_written_targets_are_scored_and_the_rest_stay_zero() {
        let (model, width) = uniform_head();
        let tokens: [i64; 5] = [1, 2, 7, 9, 4];
        // The prompt (1, 2) and an inserted information token (9) carry no loss.
        let generated = [false, false, true, false, true];
        let batch = Batch::new(&[(&tokens, &generated), (&tokens[..3], &generated[..3])], 0, Device::Cpu);
        tch::manual_seed(5);
        let hidden = Tensor::randn([2, 5, width], (Kind::Float, Device::Cpu));
        let (logp, _) = batch.action_logprobs(&model, &hidden, 0, 2, 0.7, false);
        let full = (model.lm_head(&hidden) / 0.7).log_softmax(-1, Kind::Float);
        for (row, t) in [(0, 1), (0, 3), (1, 1)] {
            let target = tokens[t as usize + 1];
            assert!(close(logp.double_value(&[row, t]), full.double_value(&[row, t, target])), "{row} {t}");
        }
        let scored = logp.ne(0.0).sum(Kind::Int64).int64_value(&[]);
        assert_eq!(scored, 3, "prompt, information and padding targets are left at 0");
    }

    #[test]
    fn sequence_mean_weighs_rows_equally_and_token_mean_weighs_tokens() {
        // Row 0: three policy tokens of 1.0; row 1: one policy token of -1.0 (and a masked 9).
        let x = Tensor::from_slice(&[1.0f32, 1.0, 1.0, -1.0, 9.0, 0.0]).view([2, 3]);
        let m = Tensor::from_slice(&[1.0f32, 1.0, 1.0, 1.0, 0.0, 0.0]).view([2, 3]);
        assert!((masked_mean(&x, &m).double_value(&[]) - 0.5).abs() < 1e-6);
        assert!(sequence_mean(&x, &m).double_value(&[]).abs() < 1e-6);
    }
}
