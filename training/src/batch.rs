//! Padded training batches and per-token log-probabilities.
//!
//! A sequence's `loss_mask[t]` says whether token t is one the policy wrote; position t-1
//! predicts it, so the shifted masks line up with the logits of positions 0..len-1.
//! Invariant: padding, prompt and inserted information tokens have mask 0 everywhere.
//! Sampled under a grammar, a target also carries the mask it was drawn under
//! ([`Batch::with_masks`]); [`Batch::constrain`] applies it, so log-probabilities, ratios,
//! the KL and the entropy are those of the distribution the rollout sampled from.

use std::sync::Arc;

use tch::{Device, Kind, Tensor};

use crate::generate::{allow_list_bias, column_index, forbidden_bias, forbidden_bits};
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

    /// The logits of positions 0..len-1 `[batch, len - 1, vocab]`, with the sampling bias added
    /// where the batch has one.
    pub fn constrain(&self, logits: &Tensor) -> Tensor {
        self.constrain_rows(logits, 0, self.targets.size()[0])
    }

    /// [`Batch::constrain`] for the logits of rows `start..start + size` (a mini-batch).
    pub fn constrain_rows(&self, logits: &Tensor, start: i64, size: i64) -> Tensor {
        let n = self.targets.size()[1];
        let logits = logits.narrow(1, 0, n);
        let logits = match &self.forbidden {
            Some((columns, bias)) => logits.index_add(2, columns, &bias.narrow(0, start, size)),
            None => logits,
        };
        let only: Vec<&(i64, i64, Arc<[u32]>)> =
            self.only.iter().filter(|(row, _, _)| (start..start + size).contains(row)).collect();
        if only.is_empty() {
            return logits;
        }
        let vocab = logits.size()[2];
        let lists: Vec<&[u32]> = only.iter().map(|(_, _, ids)| &ids[..]).collect();
        let bias = allow_list_bias(&lists, vocab, logits.device());
        let at: Vec<i64> = only.iter().map(|(row, t, _)| (row - start) * n + t).collect();
        let at = Tensor::from_slice(&at).to_device(logits.device());
        logits.reshape([size * n, vocab]).index_add(0, &at, &bias).view([size, n, vocab])
    }

    /// Number of policy-written target tokens.
    pub fn actions(&self) -> f64 {
        self.action_mask.sum(Kind::Float).double_value(&[])
    }
}

/// Log-probability of each target under `logits` `[batch, len, vocab]`, `[batch, len - 1]`.
pub fn logprobs(logits: &Tensor, targets: &Tensor) -> Tensor {
    let n = targets.size()[1];
    let logp = logits.narrow(1, 0, n).log_softmax(-1, Kind::Float);
    logp.gather(-1, &targets.unsqueeze(-1), false).squeeze_dim(-1)
}

/// [`logprobs`], and the entropy of each position's distribution.
pub fn logprobs_and_entropy(logits: &Tensor, targets: &Tensor) -> (Tensor, Tensor) {
    let n = targets.size()[1];
    let logp = logits.narrow(1, 0, n).log_softmax(-1, Kind::Float);
    let taken = logp.gather(-1, &targets.unsqueeze(-1), false).squeeze_dim(-1);
    let entropy = -(logp.exp() * &logp).sum_dim_intlist(-1, false, Kind::Float);
    (taken, entropy)
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

    #[test]
    fn forbidden_bits_mask_the_logits_that_sampled_each_token() {
        let tags = tags();
        let tokens: [i64; 4] = [1, 2, 7, 9];
        let generated = [false, true, true, true];
        // Token 2 (the third) was sampled with column 0 (id 3) forbidden.
        let masks = [0u32, 0, 1, 0].map(Mask::Forbid);
        let batch = Batch::new(&[(&tokens, &generated)], 0, Device::Cpu).with_masks(&tags, &[&masks]);
        let logits = Tensor::zeros([1, 4, 16], (Kind::Float, Device::Cpu));
        let logp = batch.constrain(&logits).log_softmax(-1, Kind::Float);
        // Target position 1 predicts token 2: id 3 has no probability there, and only there.
        assert!(logp.double_value(&[0, 1, 3]) < -1e8);
        assert!(logp.double_value(&[0, 0, 3]) > -10.0 && logp.double_value(&[0, 2, 3]) > -10.0);
        // Entropy stays finite under the mask.
        let (_, entropy) = logprobs_and_entropy(&batch.constrain(&logits), &batch.targets);
        assert!(entropy.isfinite().all().int64_value(&[]) == 1);
        // Without bits, no constraint.
        let plain = Batch::new(&[(&tokens, &generated)], 0, Device::Cpu).with_masks(&tags, &[&[Mask::FREE; 4]]);
        assert!(plain.forbidden.is_none() && plain.only.is_empty());
    }

    #[test]
    fn an_allow_list_leaves_only_its_tokens_at_the_position_that_sampled_with_it() {
        let tags = tags();
        let tokens: [i64; 4] = [1, 2, 7, 9];
        let generated = [false, true, true, true];
        // Row 1's token 9 (its fourth) was drawn from {9, 12} only.
        let only = Mask::Only(Arc::from([9u32, 12]));
        let rows: [&[Mask]; 2] = [&[Mask::FREE; 4], &[Mask::FREE, Mask::FREE, Mask::FREE, only]];
        let batch =
            Batch::new(&[(&tokens, &generated), (&tokens, &generated)], 0, Device::Cpu).with_masks(&tags, &rows);
        let logits = Tensor::zeros([2, 4, 16], (Kind::Float, Device::Cpu));
        let logp = batch.constrain(&logits).log_softmax(-1, Kind::Float);
        // Position 2 of row 1 predicts token 9: two tokens share its mass.
        assert!((logp.double_value(&[1, 2, 9]) - 0.5f64.ln()).abs() < 1e-6);
        assert!(logp.double_value(&[1, 2, 0]) < -1e8);
        // Elsewhere, and in row 0, the distribution is untouched.
        assert!((logp.double_value(&[0, 2, 9]) - (1.0f64 / 16.0).ln()).abs() < 1e-6);
        assert!((logp.double_value(&[1, 1, 9]) - (1.0f64 / 16.0).ln()).abs() < 1e-6);
        // A mini-batch of row 1 alone sees the same.
        let mb = batch.constrain_rows(&logits.narrow(0, 1, 1), 1, 1).log_softmax(-1, Kind::Float);
        assert!((mb.double_value(&[0, 2, 9]) - 0.5f64.ln()).abs() < 1e-6);
        assert!(batch.constrain_rows(&logits.narrow(0, 0, 1), 0, 1).equal(&logits.narrow(0, 0, 1).narrow(1, 0, 3)));
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
