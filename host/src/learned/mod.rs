//! Training the single-round learned routers (KNN and MLP) served by the
//! `learned` strategy component.
//!
//! Labels come from single-model evaluation traces (`switchyard eval --policy
//! switchyard/only/<model>` on the train split): for each question, whether
//! each model alone answered it exactly, and what it cost. Features and the
//! parameter file are the component's own
//! ([`switchyard_plugin_sdk::learned`]), so what is trained here is what is
//! served. Invariant: a question enters the training set only when every
//! model has a scored record for it.

pub mod mlp;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use switchyard_plugin_sdk::learned::Params;

use crate::eval::Record;

#[derive(Debug, thiserror::Error)]
pub enum LearnedError {
    #[error("{path}: {message}")]
    Traces { path: PathBuf, message: String },
    #[error("{0}")]
    Data(String),
}

/// Every model's outcome on one training question.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    pub id: String,
    pub question: String,
    /// Exact match of each model, in [`Labels::models`] order.
    pub em: Vec<f32>,
    /// Cost of each model's call, US dollars.
    pub cost: Vec<f32>,
}

/// The training set: models and the questions all of them were run on.
#[derive(Clone, Debug)]
pub struct Labels {
    pub models: Vec<String>,
    pub examples: Vec<Example>,
}

impl Labels {
    /// Read one single-model traces file per model; the model is the one its
    /// records called (a file whose records called several models, or none, is
    /// not a single-model run and is refused).
    pub fn from_traces(files: &[PathBuf]) -> Result<Labels, LearnedError> {
        let mut models = Vec::new();
        let mut per_model: Vec<Outcomes> = Vec::new();
        for path in files {
            let (model, outcomes) = read_single_model(path)?;
            if models.contains(&model) {
                return Err(LearnedError::Traces {
                    path: path.clone(),
                    message: format!("a second traces file of model `{model}`"),
                });
            }
            models.push(model);
            per_model.push(outcomes);
        }
        if models.is_empty() {
            return Err(LearnedError::Data("no traces files given".into()));
        }
        let examples: Vec<Example> = per_model[0]
            .iter()
            .filter_map(|(id, (question, _, _))| {
                let all: Option<Vec<(f32, f32)>> =
                    per_model.iter().map(|m| m.get(id).map(|(_, em, cost)| (*em, *cost))).collect();
                all.map(|all| Example {
                    id: id.clone(),
                    question: question.clone(),
                    em: all.iter().map(|(em, _)| *em).collect(),
                    cost: all.iter().map(|(_, c)| *c).collect(),
                })
            })
            .collect();
        if examples.is_empty() {
            return Err(LearnedError::Data(format!(
                "no question has a scored record for every model ({}); run every model on the same questions",
                models.join(", ")
            )));
        }
        Ok(Labels { models, examples })
    }

    /// Mean cost per question of each model.
    pub fn mean_cost(&self) -> Vec<f32> {
        let n = self.examples.len() as f32;
        (0..self.models.len()).map(|m| self.examples.iter().map(|e| e.cost[m]).sum::<f32>() / n).collect()
    }

    /// A KNN router: the questions' features and labels, stored whole.
    pub fn knn(&self) -> Params {
        let examples = self.examples.iter().map(|e| (e.question.as_str(), e.em.as_slice()));
        Params::knn(self.models.clone(), self.mean_cost(), examples)
    }

    /// Split off every `1/fold`-th example (by position) for validation.
    pub fn split(&self, fold: usize) -> (Labels, Labels) {
        let (mut train, mut valid) = (Vec::new(), Vec::new());
        for (i, e) in self.examples.iter().enumerate() {
            if fold > 1 && i % fold == 0 { valid.push(e.clone()) } else { train.push(e.clone()) }
        }
        (
            Labels { models: self.models.clone(), examples: train },
            Labels { models: self.models.clone(), examples: valid },
        )
    }
}

/// Per question id: the question, its exact match and its cost.
type Outcomes = BTreeMap<String, (String, f32, f32)>;

/// The model and per-question outcomes of one single-model traces file.
fn read_single_model(path: &Path) -> Result<(String, Outcomes), LearnedError> {
    let err = |message: String| LearnedError::Traces { path: path.to_path_buf(), message };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let mut model: Option<String> = None;
    let mut outcomes = BTreeMap::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let record: Record = serde_json::from_str(line).map_err(|e| err(format!("record {}: {e}", n + 1)))?;
        if record.error.is_some() {
            continue;
        }
        match record.models.as_slice() {
            // No call (e.g. the model was unreachable): nothing to learn from.
            [] => continue,
            [one] => match &model {
                None => model = Some(one.clone()),
                Some(m) if m == one => {}
                Some(m) => {
                    return Err(err(format!(
                        "record {} called `{one}`, earlier records `{m}`: not a single-model run",
                        n + 1
                    )));
                }
            },
            several => {
                return Err(err(format!("record {} called {} models: not a single-model run", n + 1, several.len())));
            }
        }
        outcomes.insert(record.id, (record.question, record.em as f32, record.cost as f32));
    }
    let model = model.ok_or_else(|| err("no scored record with a call".into()))?;
    Ok((model, outcomes))
}

/// How well a router's choices do on `labels`: mean exact match and cost of
/// the model it picks per question (no calls needed: the labels hold every
/// model's outcome).
pub fn choice_quality(params: &Params, labels: &Labels, k: usize, cost_weight: f64) -> (f64, f64) {
    let names: Vec<&str> = labels.models.iter().map(String::as_str).collect();
    let (mut em, mut cost) = (0.0, 0.0);
    for e in &labels.examples {
        let i = params.choose(&e.question, &names, k, cost_weight).expect("the labels' models are the file's");
        em += f64::from(e.em[i]);
        cost += f64::from(e.cost[i]);
    }
    let n = labels.examples.len().max(1) as f64;
    (em / n, cost / n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, question: &str, model: &str, em: f64) -> String {
        let r = Record {
            id: id.into(),
            dataset: "d".into(),
            policy: format!("only/{model}"),
            question: question.into(),
            golden_answers: vec![],
            hops: None,
            domain: None,
            answer: None,
            em,
            f1: em,
            format_ok: true,
            format_errors: vec![],
            reward: em,
            cost: 1e-5,
            calls: 1,
            models: vec![model.into()],
            latency_ms: 1,
            stop: None,
            trajectory: String::new(),
            error: None,
        };
        serde_json::to_string(&r).unwrap()
    }

    #[test]
    fn labels_join_models_on_questions_all_of_them_answered() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.jsonl");
        let b = dir.path().join("b.jsonl");
        std::fs::write(&a, [record("1", "city q", "a", 1.0), record("2", "river q", "a", 0.0)].join("\n")).unwrap();
        std::fs::write(&b, [record("2", "river q", "b", 1.0), record("3", "x", "b", 1.0)].join("\n")).unwrap();
        let labels = Labels::from_traces(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(labels.models, ["a", "b"]);
        assert_eq!(labels.examples.len(), 1);
        assert_eq!((labels.examples[0].id.as_str(), labels.examples[0].em.as_slice()), ("2", &[0.0, 1.0][..]));
        let knn = labels.knn();
        assert_eq!(choice_quality(&knn, &labels, 1, 0.0).0, 1.0);

        // Two models in one file, the same model twice, and no overlap are refused.
        std::fs::write(&b, [record("1", "city q", "a", 1.0), record("2", "river q", "b", 1.0)].join("\n")).unwrap();
        assert!(
            Labels::from_traces(std::slice::from_ref(&b)).unwrap_err().to_string().contains("not a single-model run")
        );
        assert!(Labels::from_traces(&[a.clone(), a.clone()]).unwrap_err().to_string().contains("second traces file"));
        std::fs::write(&b, record("9", "other", "b", 1.0)).unwrap();
        assert!(Labels::from_traces(&[a, b]).unwrap_err().to_string().contains("no question has a scored record"));
    }
}
