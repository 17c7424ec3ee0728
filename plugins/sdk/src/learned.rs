//! Single-round learned routers — the KNN and MLP baselines of the evaluation:
//! question features, the parameter file, prediction and the choice of a model.
//!
//! The host's trainer (`switchyard learned train`) fits parameters from
//! single-model evaluation traces and writes them with [`Params::to_bytes`];
//! the `knn` and `mlp` strategy components read them with
//! [`Params::from_bytes`] and featurise questions with the same [`features`],
//! so training and serving cannot drift apart.
//!
//! The parameter file is safetensors: tensors by name (below) and metadata
//! `router` (`knn` or `mlp`), `features` ([`FEATURES`]), `models` (a JSON
//! array of pool model names, the label order). Bytes come from configuration,
//! so [`Params::from_bytes`] checks every shape, index and number: a bad file
//! is an error, never a panic.
//!
//! - KNN: `indptr` (U32, N+1), `indices` (U32, nnz), `values` (F32, nnz) — the
//!   training questions' sparse features, row by row — and `labels` (F32,
//!   N x M), each model's exact match on each question.
//! - MLP: `w1` (F32, D x H), `b1` (H), `w2` (H x M), `b2` (M); a ReLU hidden
//!   layer and one sigmoid output per model (the probability it answers).
//! - Both: `cost` (F32, M), each model's mean cost per training question in
//!   US dollars.

use alloc::borrow::ToOwned;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use safetensors::tensor::{Dtype, TensorView};

/// Name and version of the featuriser; a file written for another is refused.
pub const FEATURES: &str = "hashed-ngrams-v1";
/// Buckets of the hashed word unigrams and bigrams.
pub const FEATURE_DIM: usize = 4096;

/// The sparse, L2-normalised features of a question: lower-cased word
/// unigrams and bigrams hashed (FNV-1a) into [`FEATURE_DIM`] buckets. Sorted
/// by bucket, no duplicates; empty for a question without words.
pub fn features(question: &str) -> Vec<(u32, f32)> {
    let lower = question.to_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let mut counts: BTreeMap<u32, f32> = BTreeMap::new();
    let mut add = |parts: &[&str]| {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for (i, part) in parts.iter().enumerate() {
            // A separator byte no word contains keeps ("ab","c") apart from ("a","bc").
            for b in (if i == 0 { "" } else { " " }).bytes().chain(part.bytes()) {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        *counts.entry((h % FEATURE_DIM as u64) as u32).or_insert(0.0) += 1.0;
    };
    for (i, w) in words.iter().enumerate() {
        add(&[w]);
        if i + 1 < words.len() {
            add(&[w, words[i + 1]]);
        }
    }
    let norm = libm::sqrtf(counts.values().map(|c| c * c).sum::<f32>());
    counts.into_iter().map(|(i, c)| (i, c / norm)).collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Knn,
    Mlp,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Knn => "knn",
            Kind::Mlp => "mlp",
        }
    }
}

/// The learned part of each kind of router.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    Knn { indptr: Vec<u32>, indices: Vec<u32>, values: Vec<f32>, labels: Vec<f32> },
    Mlp { hidden: usize, w1: Vec<f32>, b1: Vec<f32>, w2: Vec<f32>, b2: Vec<f32> },
}

/// A parameter file, decoded and checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Pool model names: the order of labels, outputs and `cost`.
    pub models: Vec<String>,
    /// Mean cost per training question of each model, US dollars.
    pub cost: Vec<f32>,
    pub body: Body,
}

fn le_bytes_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn le_bytes_u32(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl Params {
    /// A KNN router over `examples`: each training question with every model's exact match
    /// (in `models` order), featurised and stored whole.
    pub fn knn<'a>(
        models: Vec<String>,
        cost: Vec<f32>,
        examples: impl IntoIterator<Item = (&'a str, &'a [f32])>,
    ) -> Params {
        let mut indptr = vec![0u32];
        let (mut indices, mut values, mut labels) = (Vec::new(), Vec::new(), Vec::new());
        for (question, em) in examples {
            for (i, v) in features(question) {
                indices.push(i);
                values.push(v);
            }
            indptr.push(indices.len() as u32);
            labels.extend_from_slice(em);
        }
        Params { models, cost, body: Body::Knn { indptr, indices, values, labels } }
    }

    pub fn kind(&self) -> Kind {
        match self.body {
            Body::Knn { .. } => Kind::Knn,
            Body::Mlp { .. } => Kind::Mlp,
        }
    }

    /// Encode as a safetensors file (see the module docs).
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let m = self.models.len();
        let mut tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> =
            vec![("cost", Dtype::F32, vec![m], le_bytes_f32(&self.cost))];
        match &self.body {
            Body::Knn { indptr, indices, values, labels } => {
                tensors.push(("indptr", Dtype::U32, vec![indptr.len()], le_bytes_u32(indptr)));
                tensors.push(("indices", Dtype::U32, vec![indices.len()], le_bytes_u32(indices)));
                tensors.push(("values", Dtype::F32, vec![values.len()], le_bytes_f32(values)));
                tensors.push(("labels", Dtype::F32, vec![labels.len() / m.max(1), m], le_bytes_f32(labels)));
            }
            Body::Mlp { hidden, w1, b1, w2, b2 } => {
                tensors.push(("w1", Dtype::F32, vec![FEATURE_DIM, *hidden], le_bytes_f32(w1)));
                tensors.push(("b1", Dtype::F32, vec![*hidden], le_bytes_f32(b1)));
                tensors.push(("w2", Dtype::F32, vec![*hidden, m], le_bytes_f32(w2)));
                tensors.push(("b2", Dtype::F32, vec![m], le_bytes_f32(b2)));
            }
        }
        let views = tensors
            .iter()
            .map(|(name, dtype, shape, data)| {
                TensorView::new(*dtype, shape.clone(), data).map(|v| (*name, v)).map_err(|e| format!("`{name}`: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut metadata = alloc::collections::BTreeMap::new();
        metadata.insert("router".to_string(), self.kind().as_str().to_string());
        metadata.insert("features".to_string(), FEATURES.to_string());
        metadata.insert("models".to_string(), serde_json::to_string(&self.models).map_err(|e| e.to_string())?);
        safetensors::serialize(views, Some(metadata.into_iter().collect())).map_err(|e| e.to_string())
    }

    /// Decode and check a parameter file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Params, String> {
        let (_, header) =
            safetensors::SafeTensors::read_metadata(bytes).map_err(|e| format!("not a safetensors file: {e}"))?;
        let tensors =
            safetensors::SafeTensors::deserialize(bytes).map_err(|e| format!("not a safetensors file: {e}"))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let get = |key: &str| meta.get(key).map(String::as_str).ok_or_else(|| format!("metadata `{key}` is missing"));
        let features = get("features")?;
        if features != FEATURES {
            return Err(format!("made with features `{features}`; this router computes `{FEATURES}`"));
        }
        let models: Vec<String> = serde_json::from_str(get("models")?)
            .map_err(|e| format!("metadata `models` is not a list of names: {e}"))?;
        let m = models.len();
        if m == 0 {
            return Err("metadata `models` names no model".to_owned());
        }
        let tensor = |name: &str, dtype: Dtype, shape: &[Option<usize>]| -> Result<(Vec<usize>, Vec<u8>), String> {
            let t = tensors.tensor(name).map_err(|_| format!("tensor `{name}` is missing"))?;
            if t.dtype() != dtype {
                return Err(format!("tensor `{name}` is {:?}, expected {dtype:?}", t.dtype()));
            }
            let ok =
                t.shape().len() == shape.len() && t.shape().iter().zip(shape).all(|(a, b)| b.is_none_or(|b| *a == b));
            if !ok {
                return Err(format!("tensor `{name}` has shape {:?}, expected {shape:?}", t.shape()));
            }
            Ok((t.shape().to_vec(), t.data().to_vec()))
        };
        let f32s = |name: &str, shape: &[Option<usize>]| -> Result<(Vec<usize>, Vec<f32>), String> {
            let (shape, data) = tensor(name, Dtype::F32, shape)?;
            let v: Vec<f32> = data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            if v.iter().any(|x| !x.is_finite()) {
                return Err(format!("tensor `{name}` holds a non-finite number"));
            }
            Ok((shape, v))
        };
        let u32s = |name: &str| -> Result<Vec<u32>, String> {
            let (_, data) = tensor(name, Dtype::U32, &[None])?;
            Ok(data.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        };
        let (_, cost) = f32s("cost", &[Some(m)])?;
        if cost.iter().any(|c| *c < 0.0) {
            return Err("tensor `cost` holds a negative cost".to_owned());
        }
        let body = match get("router")? {
            "knn" => {
                let indptr = u32s("indptr")?;
                let indices = u32s("indices")?;
                let (_, values) = f32s("values", &[Some(indices.len())])?;
                let (_, labels) = f32s("labels", &[indptr.len().checked_sub(1), Some(m)])?;
                let rows_ok = indptr.first() == Some(&0)
                    && indptr.windows(2).all(|w| w[0] <= w[1])
                    && indptr.last().is_some_and(|&e| e as usize == indices.len());
                if !rows_ok {
                    return Err("tensor `indptr` does not delimit `indices` (must start at 0, rise, end at nnz)".into());
                }
                if indices.iter().any(|&i| i as usize >= FEATURE_DIM) {
                    return Err(format!("tensor `indices` holds a feature index >= {FEATURE_DIM}"));
                }
                if indptr.len() < 2 {
                    return Err("a KNN file needs at least one training question".to_owned());
                }
                Body::Knn { indptr, indices, values, labels }
            }
            "mlp" => {
                let (shape, w1) = f32s("w1", &[Some(FEATURE_DIM), None])?;
                let hidden = shape[1];
                let (_, b1) = f32s("b1", &[Some(hidden)])?;
                let (_, w2) = f32s("w2", &[Some(hidden), Some(m)])?;
                let (_, b2) = f32s("b2", &[Some(m)])?;
                Body::Mlp { hidden, w1, b1, w2, b2 }
            }
            other => return Err(format!("metadata `router` is `{other}`, expected `knn` or `mlp`")),
        };
        Ok(Params { models, cost, body })
    }

    /// Each model's predicted exact match on a question with features `x`, in
    /// [`Params::models`] order. `k` (KNN only) is the number of neighbours.
    pub fn predict(&self, x: &[(u32, f32)], k: usize) -> Vec<f32> {
        let m = self.models.len();
        match &self.body {
            Body::Knn { indptr, indices, values, labels } => {
                let mut dense = vec![0.0f32; FEATURE_DIM];
                for &(i, v) in x {
                    dense[i as usize] = v;
                }
                let mut sims: Vec<(f32, usize)> = indptr
                    .windows(2)
                    .enumerate()
                    .map(|(row, w)| {
                        let (a, b) = (w[0] as usize, w[1] as usize);
                        let s = indices[a..b].iter().zip(&values[a..b]).map(|(&i, v)| dense[i as usize] * v).sum();
                        (s, row)
                    })
                    .collect();
                // Most similar first; ties by row so the choice is deterministic.
                sims.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                let mut out = vec![0.0f32; m];
                // A decoded file has at least one row; one built in memory may not.
                if sims.is_empty() {
                    return out;
                }
                let k = k.clamp(1, sims.len());
                for &(_, row) in &sims[..k] {
                    for (o, l) in out.iter_mut().zip(&labels[row * m..(row + 1) * m]) {
                        *o += l / k as f32;
                    }
                }
                out
            }
            Body::Mlp { hidden, w1, b1, w2, b2 } => {
                let h = *hidden;
                let mut z = b1.clone();
                for &(i, v) in x {
                    for (zj, w) in z.iter_mut().zip(&w1[i as usize * h..(i as usize + 1) * h]) {
                        *zj += v * w;
                    }
                }
                let mut out = b2.clone();
                for (j, zj) in z.iter().enumerate() {
                    let a = zj.max(0.0);
                    for (o, w) in out.iter_mut().zip(&w2[j * m..(j + 1) * m]) {
                        *o += a * w;
                    }
                }
                out.iter().map(|o| 1.0 / (1.0 + libm::expf(-o))).collect()
            }
        }
    }

    /// The position in `pool` (model names) of the model to ask: highest
    /// predicted exact match minus `cost_weight` times its cost relative to
    /// the dearest candidate; ties go to the cheaper model, then the earlier
    /// one. Only models both in the pool and in the file are candidates.
    pub fn choose(&self, question: &str, pool: &[&str], k: usize, cost_weight: f64) -> Result<usize, String> {
        let predicted = self.predict(&features(question), k);
        let candidates: Vec<(usize, usize)> = pool
            .iter()
            .enumerate()
            .filter_map(|(p, name)| self.models.iter().position(|m| m == name).map(|i| (p, i)))
            .collect();
        if candidates.is_empty() {
            return Err(format!(
                "none of the parameter file's models ({}) is in the pool ({})",
                self.models.join(", "),
                pool.join(", ")
            ));
        }
        let dearest = candidates.iter().map(|&(_, i)| self.cost[i]).fold(0.0f32, f32::max);
        let score = |i: usize| {
            let relative = if dearest > 0.0 { f64::from(self.cost[i] / dearest) } else { 0.0 };
            f64::from(predicted[i]) - cost_weight * relative
        };
        let best = candidates.iter().copied().max_by(|&(pa, a), &(pb, b)| {
            score(a).total_cmp(&score(b)).then(self.cost[b].total_cmp(&self.cost[a])).then(pb.cmp(&pa))
        });
        Ok(best.map(|(p, _)| p).expect("candidates is not empty"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn knn() -> Params {
        // Two training questions: "city" ones go to model a, "river" ones to b.
        let examples: [(&str, &[f32]); 2] =
            [("In which city was Ann born?", &[1.0, 0.0]), ("How long is the Tor river?", &[0.0, 1.0])];
        Params::knn(vec!["a".into(), "b".into()], vec![1e-5, 5e-5], examples)
    }

    #[test]
    fn features_are_normalised_sorted_and_case_blind() {
        let f = features("Who wrote Dune? who WROTE dune");
        assert!(f.windows(2).all(|w| w[0].0 < w[1].0));
        let norm: f32 = f.iter().map(|(_, v)| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-5);
        assert_eq!(f, features("who wrote dune who wrote dune"));
        assert!(features("?!").is_empty());
        assert_ne!(features("ab c"), features("a bc"));
    }

    #[test]
    fn an_empty_knn_predicts_nothing_rather_than_panicking() {
        let empty = Params::knn(vec!["a".into()], vec![0.0], []);
        assert_eq!(empty.predict(&features("q"), 10), vec![0.0]);
        assert_eq!(empty.choose("q", &["a"], 10, 0.0), Ok(0));
        // Such a file is refused when read back.
        assert!(Params::from_bytes(&empty.to_bytes().unwrap()).is_err());
    }

    #[test]
    fn knn_round_trips_and_picks_the_neighbours_model() {
        let p = knn();
        let back = Params::from_bytes(&p.to_bytes().unwrap()).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.choose("In which city was Bob born?", &["a", "b"], 1, 0.0), Ok(0));
        assert_eq!(back.choose("How long is the Ylo river?", &["a", "b"], 1, 0.0), Ok(1));
        // Pool order does not matter; only the names do.
        assert_eq!(back.choose("How long is the Ylo river?", &["b", "x", "a"], 1, 0.0), Ok(0));
        // A large cost weight prefers the cheaper model.
        assert_eq!(back.choose("How long is the Ylo river?", &["a", "b"], 1, 5.0), Ok(0));
        let err = back.choose("q", &["x"], 1, 0.0).unwrap_err();
        assert!(err.contains("(a, b)") && err.contains("(x)"), "{err}");
    }

    #[test]
    fn mlp_round_trips_and_predicts_probabilities() {
        let h = 3;
        let mut w1 = vec![0.0; FEATURE_DIM * h];
        // Every feature pushes hidden unit 0; unit 0 favours model b.
        for i in 0..FEATURE_DIM {
            w1[i * h] = 1.0;
        }
        let p = Params {
            models: vec!["a".into(), "b".into()],
            cost: vec![1e-5, 5e-5],
            body: Body::Mlp {
                hidden: h,
                w1,
                b1: vec![0.0; h],
                w2: vec![-4.0, 4.0, 0.0, 0.0, 0.0, 0.0],
                b2: vec![0.0; 2],
            },
        };
        let back = Params::from_bytes(&p.to_bytes().unwrap()).unwrap();
        assert_eq!(back, p);
        let y = back.predict(&features("anything at all"), 0);
        assert!(y[1] > 0.9 && y[0] < 0.1 && y.iter().all(|v| (0.0..=1.0).contains(v)), "{y:?}");
        assert_eq!(back.choose("anything at all", &["a", "b"], 0, 0.0), Ok(1));
    }

    #[test]
    fn bad_files_are_errors() {
        assert!(Params::from_bytes(b"not safetensors").unwrap_err().contains("not a safetensors file"));
        assert!(Params::from_bytes(&[]).is_err());
        let mut p = knn();
        if let Body::Knn { indices, .. } = &mut p.body {
            indices[0] = FEATURE_DIM as u32;
        }
        assert!(Params::from_bytes(&p.to_bytes().unwrap()).unwrap_err().contains("feature index"));
        let mut p = knn();
        p.cost[0] = f32::NAN;
        assert!(Params::from_bytes(&p.to_bytes().unwrap()).unwrap_err().contains("non-finite"));
        let mut p = knn();
        p.models.push("c".into());
        assert!(p.to_bytes().unwrap_err().contains("`cost`"));
        let mut p = knn();
        if let Body::Knn { indptr, .. } = &mut p.body {
            indptr[1] = 1_000;
        }
        assert!(Params::from_bytes(&p.to_bytes().unwrap()).unwrap_err().contains("indptr"));
        // Truncated bytes of a good file.
        let good = knn().to_bytes().unwrap();
        assert!(Params::from_bytes(&good[..good.len() - 3]).is_err());
    }
}
