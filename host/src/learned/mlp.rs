//! The MLP router's training: one ReLU hidden layer over the sparse question
//! features, one sigmoid output per model (will this model answer exactly?),
//! binary cross-entropy, Adam, mini-batches. Small enough (4096 x hidden
//! weights) that plain loops train it in seconds; the forward pass must match
//! [`Params::predict`], which a test checks.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use switchyard_plugin_sdk::learned::{Body, FEATURE_DIM, Params, features};

use super::Labels;

#[derive(Clone, Debug)]
pub struct MlpOptions {
    pub hidden: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f32,
    /// L2 penalty on the weights (not the biases).
    pub weight_decay: f32,
    pub seed: u64,
}

impl Default for MlpOptions {
    fn default() -> Self {
        MlpOptions { hidden: 64, epochs: 8, batch_size: 32, lr: 3e-3, weight_decay: 1e-5, seed: 0 }
    }
}

/// Adam's state for one parameter tensor.
struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Adam {
    fn new(n: usize) -> Self {
        Adam { m: vec![0.0; n], v: vec![0.0; n] }
    }

    fn step(&mut self, w: &mut [f32], g: &[f32], lr: f32, t: i32, decay: f32) {
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
        for i in 0..w.len() {
            let gi = g[i] + decay * w[i];
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * gi;
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * gi * gi;
            w[i] -= lr * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + eps);
        }
    }
}

/// Mean binary cross-entropy of `params` on `labels`.
pub fn loss(params: &Params, labels: &Labels) -> f64 {
    let mut total = 0.0;
    let mut n = 0usize;
    for e in &labels.examples {
        let p = params.predict(&features(&e.question), 0);
        for (p, y) in p.iter().zip(&e.em) {
            let p = f64::from(*p).clamp(1e-7, 1.0 - 1e-7);
            total -= f64::from(*y) * p.ln() + (1.0 - f64::from(*y)) * (1.0 - p).ln();
            n += 1;
        }
    }
    total / n.max(1) as f64
}

/// Train an MLP router on `labels`; `on_epoch(epoch, params)` after each epoch.
pub fn train(labels: &Labels, opts: &MlpOptions, mut on_epoch: impl FnMut(usize, &Params)) -> Params {
    let (d, h, m) = (FEATURE_DIM, opts.hidden.max(1), labels.models.len());
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    // He-style initialisation for the ReLU layer; the inputs are unit-norm and sparse.
    let mut w1: Vec<f32> = (0..d * h).map(|_| rng.random_range(-1.0..1.0) * (6.0 / h as f32).sqrt() * 0.5).collect();
    let mut b1 = vec![0.0f32; h];
    let mut w2: Vec<f32> = (0..h * m).map(|_| rng.random_range(-1.0..1.0) * (1.0 / h as f32).sqrt()).collect();
    // Start each output at its model's base rate.
    let mut b2: Vec<f32> = (0..m)
        .map(|j| {
            let rate = labels.examples.iter().map(|e| e.em[j]).sum::<f32>() / labels.examples.len().max(1) as f32;
            let r = rate.clamp(0.01, 0.99);
            (r / (1.0 - r)).ln()
        })
        .collect();
    let inputs: Vec<Vec<(u32, f32)>> = labels.examples.iter().map(|e| features(&e.question)).collect();
    let (mut a1, mut a2, mut a3, mut a4) = (Adam::new(d * h), Adam::new(h), Adam::new(h * m), Adam::new(m));
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    let mut t = 0;
    let params = |w1: &[f32], b1: &[f32], w2: &[f32], b2: &[f32]| Params {
        models: labels.models.clone(),
        cost: labels.mean_cost(),
        body: Body::Mlp { hidden: h, w1: w1.to_vec(), b1: b1.to_vec(), w2: w2.to_vec(), b2: b2.to_vec() },
    };
    for epoch in 0..opts.epochs {
        order.shuffle(&mut rng);
        for batch in order.chunks(opts.batch_size.max(1)) {
            let (mut g1, mut gb1, mut g2, mut gb2) = (vec![0.0; d * h], vec![0.0; h], vec![0.0; h * m], vec![0.0; m]);
            let scale = 1.0 / (batch.len() * m) as f32;
            for &i in batch {
                let x = &inputs[i];
                let mut z = b1.clone();
                for &(f, v) in x {
                    for (zj, w) in z.iter_mut().zip(&w1[f as usize * h..(f as usize + 1) * h]) {
                        *zj += v * w;
                    }
                }
                let a: Vec<f32> = z.iter().map(|v| v.max(0.0)).collect();
                // d(BCE)/d(logit) = p - y.
                let dout: Vec<f32> = (0..m)
                    .map(|k| {
                        let logit = b2[k] + (0..h).map(|j| a[j] * w2[j * m + k]).sum::<f32>();
                        let p = 1.0 / (1.0 + (-logit).exp());
                        (p - labels.examples[i].em[k]) * scale
                    })
                    .collect();
                for k in 0..m {
                    gb2[k] += dout[k];
                }
                for j in 0..h {
                    let mut da = 0.0;
                    for k in 0..m {
                        g2[j * m + k] += a[j] * dout[k];
                        da += w2[j * m + k] * dout[k];
                    }
                    if z[j] > 0.0 {
                        gb1[j] += da;
                        for &(f, v) in x {
                            g1[f as usize * h + j] += v * da;
                        }
                    }
                }
            }
            t += 1;
            a1.step(&mut w1, &g1, opts.lr, t, opts.weight_decay);
            a2.step(&mut b1, &gb1, opts.lr, t, 0.0);
            a3.step(&mut w2, &g2, opts.lr, t, opts.weight_decay);
            a4.step(&mut b2, &gb2, opts.lr, t, 0.0);
        }
        on_epoch(epoch, &params(&w1, &b1, &w2, &b2));
    }
    params(&w1, &b1, &w2, &b2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learned::Example;

    /// "city" questions are answered only by model a, "river" ones only by b.
    fn labels() -> Labels {
        let examples = (0..40)
            .map(|i| {
                let city = i % 2 == 0;
                let question =
                    if city { format!("In which city was Person{i} born?") } else { format!("How long is River{i}?") };
                Example {
                    id: i.to_string(),
                    question,
                    em: if city { vec![1.0, 0.0] } else { vec![0.0, 1.0] },
                    cost: vec![1e-5, 2e-5],
                }
            })
            .collect();
        Labels { models: vec!["a".into(), "b".into()], examples }
    }

    #[test]
    fn training_lowers_the_loss_and_learns_the_split() {
        let labels = labels();
        let opts = MlpOptions { hidden: 8, epochs: 30, batch_size: 8, lr: 1e-2, ..MlpOptions::default() };
        let mut losses = Vec::new();
        let params = train(&labels, &opts, |_, p| losses.push(loss(p, &labels)));
        assert!(losses.last().unwrap() < &(losses[0] * 0.5), "{losses:?}");
        // Unseen names, the same kinds of question.
        assert_eq!(params.choose("In which city was Zed born?", &["a", "b"], 0, 0.0), Ok(0));
        assert_eq!(params.choose("How long is Nile?", &["a", "b"], 0, 0.0), Ok(1));
        // What is served decodes to what was trained.
        assert_eq!(Params::from_bytes(&params.to_bytes().unwrap()).unwrap(), params);
    }

    #[test]
    fn training_is_deterministic_for_a_seed() {
        let labels = labels();
        let opts = MlpOptions { hidden: 4, epochs: 2, ..MlpOptions::default() };
        assert_eq!(train(&labels, &opts, |_, _| {}), train(&labels, &opts, |_, _| {}));
    }
}
