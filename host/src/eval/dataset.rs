//! Evaluation datasets: JSONL in the FlashRAG layout, one question per line:
//! `{"id", "question", "golden_answers": [...], "metadata"?: {...}}`. The
//! simulated world's export (`switchyard sim export`) writes the same fields
//! with `hops`, `domain` and `kind` at the top level; both are read.
//!
//! Invariant: a loaded dataset has non-empty questions, at least one gold
//! answer each, and unique ids (resuming keys on them).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// One question to evaluate.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub id: String,
    /// The dataset it came from (the file stem unless the line names one).
    pub dataset: String,
    pub question: String,
    pub golden_answers: Vec<String>,
    /// Reasoning hops, when the dataset says (1 = single fact).
    pub hops: Option<u8>,
    pub domain: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: {message}")]
    Line { path: PathBuf, line: usize, message: String },
    #[error("{path}: no questions")]
    Empty { path: PathBuf },
}

#[derive(Deserialize)]
struct Line {
    id: Value,
    question: String,
    golden_answers: Vec<String>,
    #[serde(default)]
    dataset: Option<String>,
    #[serde(default)]
    hops: Option<u8>,
    #[serde(default)]
    domain: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
}

/// Read every question of `path`.
pub fn load(path: &Path) -> Result<Vec<Item>, DatasetError> {
    let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Io { path: path.into(), source })?;
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "dataset".into());
    let mut seen = BTreeSet::new();
    let mut items = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let err = |message: String| DatasetError::Line { path: path.into(), line: n + 1, message };
        if raw.trim().is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(raw).map_err(|e| err(e.to_string()))?;
        let id = match &line.id {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => return Err(err(format!("`id` must be a string or a number, not {other}"))),
        };
        if line.question.trim().is_empty() {
            return Err(err(format!("question `{id}` is empty")));
        }
        if line.golden_answers.iter().all(|a| a.trim().is_empty()) {
            return Err(err(format!("question `{id}` has no gold answer")));
        }
        if !seen.insert(id.clone()) {
            return Err(err(format!("duplicate id `{id}`")));
        }
        let meta = |key: &str| line.metadata.as_ref().and_then(|m| m.get(key));
        let hops = line.hops.or_else(|| meta("hops").and_then(Value::as_u64).map(|h| h.min(u8::MAX as u64) as u8));
        let domain = line.domain.or_else(|| meta("domain").and_then(Value::as_str).map(String::from));
        let dataset = line.dataset.or_else(|| meta("dataset").and_then(Value::as_str).map(String::from));
        items.push(Item {
            id,
            dataset: dataset.unwrap_or_else(|| stem.clone()),
            question: line.question,
            golden_answers: line.golden_answers,
            hops,
            domain,
        });
    }
    if items.is_empty() {
        return Err(DatasetError::Empty { path: path.into() });
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::Builder::new().suffix(".jsonl").tempfile().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn reads_flashrag_and_sim_layouts() {
        let f = write(concat!(
            r#"{"id": "a", "question": "Q1?", "golden_answers": ["x"], "metadata": {"hops": 2, "domain": "film"}}"#,
            "\n\n",
            r#"{"id": 7, "question": "Q2?", "golden_answers": ["y", "z"], "hops": 1, "domain": "geo", "kind": "k"}"#,
            "\n"
        ));
        let items = load(f.path()).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!((items[0].hops, items[0].domain.as_deref()), (Some(2), Some("film")));
        assert_eq!((items[1].id.as_str(), items[1].hops), ("7", Some(1)));
        let stem = f.path().file_stem().unwrap().to_string_lossy();
        assert_eq!(items[0].dataset, stem);
    }

    #[test]
    fn bad_lines_name_the_line() {
        for (text, needle) in [
            ("{\"id\": \"a\", \"question\": \"Q\"}\n", "golden_answers"),
            ("{\"id\": \"a\", \"question\": \" \", \"golden_answers\": [\"x\"]}\n", "empty"),
            ("{\"id\": \"a\", \"question\": \"Q\", \"golden_answers\": []}\n", "no gold answer"),
            ("{\"id\": [1], \"question\": \"Q\", \"golden_answers\": [\"x\"]}\n", "`id`"),
            ("not json\n", "expected"),
        ] {
            let e = load(write(text).path()).unwrap_err().to_string();
            assert!(e.contains(":1:") && e.contains(needle), "{e}");
        }
        let dup = "{\"id\": \"a\", \"question\": \"Q\", \"golden_answers\": [\"x\"]}\n".repeat(2);
        assert!(load(write(&dup).path()).unwrap_err().to_string().contains(":2: duplicate id `a`"));
        assert!(matches!(load(write("\n").path()), Err(DatasetError::Empty { .. })));
        assert!(matches!(load(Path::new("/nonexistent/x.jsonl")), Err(DatasetError::Io { .. })));
    }
}
