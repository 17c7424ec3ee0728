//! Choosing the next token from a row of logits: greedy, or sampling with temperature and
//! nucleus (top-p) truncation from a seeded generator.
//!
//! Invariants: greedy picks the first index of the largest logit (NaN counts as smallest),
//! as torch's `argmax` does; a sampler's choices are a pure function of (seed, logits seen),
//! so a seeded request is reproducible whatever else the decoder is running; the nucleus
//! rule is the training crate's: a token is dropped when the probability mass ranked before
//! it already reaches `top_p` (the most likely token always stays).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// 0 = greedy.
    pub temperature: f32,
    /// Nucleus mass in (0, 1]; 1 keeps every token.
    pub top_p: f32,
}

impl Sampling {
    pub const GREEDY: Sampling = Sampling { temperature: 0.0, top_p: 1.0 };

    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0
    }
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling::GREEDY
    }
}

pub struct Sampler {
    sampling: Sampling,
    rng: ChaCha8Rng,
    /// Scratch for sorting, kept to avoid an allocation per token.
    order: Vec<(f64, u32)>,
}

impl Sampler {
    pub fn new(sampling: Sampling, seed: u64) -> Sampler {
        Sampler { sampling, rng: ChaCha8Rng::seed_from_u64(seed), order: Vec::new() }
    }

    pub fn next(&mut self, logits: &[f32]) -> u32 {
        if self.sampling.is_greedy() {
            return argmax(logits);
        }
        let t = f64::from(self.sampling.temperature);
        let max = logits.iter().copied().filter(|l| !l.is_nan()).fold(f32::NEG_INFINITY, f32::max);
        if !max.is_finite() {
            return argmax(logits);
        }
        let weight = |l: f32| if l.is_nan() { 0.0 } else { ((f64::from(l) - f64::from(max)) / t).exp() };
        let top_p = f64::from(self.sampling.top_p);
        if top_p >= 1.0 {
            let total: f64 = logits.iter().map(|&l| weight(l)).sum();
            let mut u = self.rng.random::<f64>() * total;
            for (i, &l) in logits.iter().enumerate() {
                u -= weight(l);
                if u < 0.0 {
                    return i as u32;
                }
            }
            return argmax(logits);
        }
        self.order.clear();
        self.order.extend(logits.iter().enumerate().map(|(i, &l)| (weight(l), i as u32)));
        // Most likely first; ties by index so the order (hence the draw) is deterministic.
        self.order.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let total: f64 = self.order.iter().map(|(w, _)| w).sum();
        let mut before = 0.0;
        let mut kept = 0;
        for &(w, _) in &self.order {
            if kept > 0 && before >= top_p * total {
                break;
            }
            before += w;
            kept += 1;
        }
        let mut u = self.rng.random::<f64>() * before;
        for &(w, i) in &self.order[..kept] {
            u -= w;
            if u < 0.0 {
                return i;
            }
        }
        self.order[0].1
    }
}

fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] || (logits[best].is_nan() && !l.is_nan()) {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_largest() {
        let mut s = Sampler::new(Sampling::GREEDY, 0);
        assert_eq!(s.next(&[0.0, 5.0, 1.0, 5.0]), 1);
        assert_eq!(s.next(&[f32::NAN, -1.0, -2.0]), 1);
    }

    #[test]
    fn a_tiny_nucleus_keeps_only_the_head() {
        let mut s = Sampler::new(Sampling { temperature: 1.0, top_p: 0.01 }, 3);
        for _ in 0..50 {
            assert_eq!(s.next(&[0.0, 5.0, 1.0, 4.9]), 1);
        }
    }

    #[test]
    fn seeded_sampling_is_reproducible_and_follows_the_distribution() {
        let logits = [1.0f32, 0.0, 2.0, -1.0];
        let draw = |seed| {
            let mut s = Sampler::new(Sampling { temperature: 1.0, top_p: 1.0 }, seed);
            (0..2000).map(|_| s.next(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let counts = draw(7).iter().fold([0usize; 4], |mut c, &t| {
            c[t as usize] += 1;
            c
        });
        // softmax([1, 0, 2, -1]) = [.237, .087, .644, .032]
        assert!((counts[2] as f64 / 2000.0 - 0.644).abs() < 0.05, "{counts:?}");
        assert!((counts[0] as f64 / 2000.0 - 0.237).abs() < 0.05, "{counts:?}");
    }

    #[test]
    fn top_p_drops_the_tail() {
        // Probabilities ~ [.644, .237, .087, .032]: top_p .85 keeps the first two (.644 < .85,
        // then .881 >= .85 stops).
        let mut s = Sampler::new(Sampling { temperature: 1.0, top_p: 0.85 }, 11);
        for _ in 0..500 {
            assert!(matches!(s.next(&[2.0, 1.0, 0.0, -1.0]), 0 | 1));
        }
    }
}
