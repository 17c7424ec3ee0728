//! AdamW with its state in the open, so a checkpoint holds the moments and a resumed run
//! takes exactly the step it would have taken (tch's optimizer keeps its state inside
//! libtorch, out of reach of a checkpoint).
//!
//! Invariants: parameters are updated only inside `no_grad`; `step` clips the global
//! gradient norm first and reports it; the state is keyed by parameter name.

use std::collections::BTreeMap;
use std::path::Path;

use tch::{Kind, Tensor};

pub struct AdamW {
    /// (name, parameter) pairs, in a fixed order.
    params: Vec<(String, Tensor)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    pub step: i64,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl AdamW {
    pub fn new(named: BTreeMap<String, Tensor>, lr: f64, weight_decay: f64) -> AdamW {
        let params: Vec<(String, Tensor)> = named.into_iter().collect();
        let zeros = |p: &Tensor| p.zeros_like().detach();
        AdamW {
            m: params.iter().map(|(_, p)| zeros(p)).collect(),
            v: params.iter().map(|(_, p)| zeros(p)).collect(),
            params,
            step: 0,
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
        }
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }

    /// Clip the gradients' global norm to `max_norm`, apply one update, return the norm
    /// before clipping.
    pub fn step(&mut self, max_norm: f64) -> f64 {
        tch::no_grad(|| {
            let grads: Vec<Tensor> = self.params.iter().map(|(_, p)| p.grad()).collect();
            let norm = grads
                .iter()
                .filter(|g| g.defined())
                .map(|g| g.pow_tensor_scalar(2).sum(Kind::Float).double_value(&[]))
                .sum::<f64>()
                .sqrt();
            let scale = if norm > max_norm && norm.is_finite() { max_norm / (norm + 1e-6) } else { 1.0 };
            if !norm.is_finite() {
                return norm; // skip a step with a non-finite gradient rather than poison the weights
            }
            self.step += 1;
            let (b1, b2) = (self.beta1, self.beta2);
            let c1 = 1.0 - b1.powi(self.step as i32);
            let c2 = 1.0 - b2.powi(self.step as i32);
            for (i, (_, p)) in self.params.iter_mut().enumerate() {
                let g = &grads[i];
                if !g.defined() {
                    continue;
                }
                let g = g * scale;
                let _ = self.m[i].g_mul_scalar_(b1).g_add_(&(&g * (1.0 - b1)));
                let _ = self.v[i].g_mul_scalar_(b2).g_add_(&(&g * &g * (1.0 - b2)));
                let update = (&self.m[i] / c1) / ((&self.v[i] / c2).sqrt() + self.eps);
                let _ = p.g_mul_scalar_(1.0 - self.lr * self.weight_decay);
                let _ = p.g_add_(&(update * -self.lr));
            }
            norm
        })
    }

    /// Moments and step count as named tensors (`m.<name>`, `v.<name>`, `step`).
    pub fn save(&self, path: &Path) -> Result<(), tch::TchError> {
        let mut named: Vec<(String, Tensor)> = Vec::new();
        for (i, (name, _)) in self.params.iter().enumerate() {
            named.push((format!("m.{name}"), self.m[i].shallow_clone()));
            named.push((format!("v.{name}"), self.v[i].shallow_clone()));
        }
        named.push(("step".into(), Tensor::from_slice(&[self.step])));
        Tensor::write_safetensors(&named, path)
    }

    pub fn load(&mut self, path: &Path) -> anyhow::Result<()> {
        let named: BTreeMap<String, Tensor> = Tensor::read_safetensors(path)?.into_iter().collect();
        let get = |key: &str| {
            named.get(key).ok_or_else(|| anyhow::anyhow!("{}: optimizer state has no `{key}`", path.display()))
        };
        for (i, (name, _)) in self.params.iter().enumerate() {
            tch::no_grad(|| -> anyhow::Result<()> {
                self.m[i].f_copy_(get(&format!("m.{name}"))?)?;
                self.v[i].f_copy_(get(&format!("v.{name}"))?)?;
                Ok(())
            })?;
        }
        self.step = get("step")?.int64_value(&[0]);
        Ok(())
    }
}
