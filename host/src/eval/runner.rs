//! Running a dataset through one policy and scoring every trajectory.
//!
//! Invariants: the traces file holds at most one record per question id, all
//! of one policy; a record is appended and flushed as soon as its question is
//! scored, so an interrupted run loses only the questions in flight. Resuming
//! keeps the scored records, drops failed ones (and a torn last line), and
//! runs only the questions without a scored record: nothing is scored twice.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::dataset::Item;
use super::record::Record;
use crate::engine;
use crate::plugin::types::{RewardParams, ScoringInput};
use crate::server::Snapshot;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("unknown policy `{policy}`; this configuration has: {available}")]
    UnknownPolicy { policy: String, available: String },
    #[error("{path}: {message}")]
    Traces { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// What to run and how.
pub struct EvalRun<'a> {
    pub snapshot: Arc<Snapshot>,
    pub policy: &'a str,
    pub params: RewardParams,
    /// Questions in flight at once.
    pub concurrency: usize,
    /// Per-question limit on the whole episode.
    pub timeout: Duration,
}

/// Records already in `path` that a resumed run keeps, in file order. A torn
/// final line (an interrupted write) is dropped; any other bad line is an error.
pub fn resume(path: &Path, policy: &str, items: &[Item]) -> Result<Vec<Record>, EvalError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(EvalError::Io { path: path.into(), source }),
    };
    let wanted: BTreeSet<&str> = items.iter().map(|i| i.id.as_str()).collect();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut kept = Vec::new();
    let mut seen = BTreeSet::new();
    for (n, line) in lines.iter().enumerate() {
        let record: Record = match serde_json::from_str(line) {
            Ok(r) => r,
            Err(_) if n + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(e) => {
                return Err(EvalError::Traces { path: path.into(), message: format!("record {}: {e}", n + 1) });
            }
        };
        if record.policy != policy {
            return Err(EvalError::Traces {
                path: path.into(),
                message: format!("holds traces of policy `{}`, not `{policy}`: choose another --out", record.policy),
            });
        }
        if record.error.is_none() && wanted.contains(record.id.as_str()) && seen.insert(record.id.clone()) {
            kept.push(record);
        }
    }
    Ok(kept)
}

/// Run every item without a kept record, appending to `traces`; returns all
/// records (kept and new) in dataset order. `on_done` is called once per
/// finished question (for a progress bar).
pub async fn run(
    eval: &EvalRun<'_>,
    items: &[Item],
    traces: &Path,
    on_done: &(dyn Fn(&Record) + Sync),
) -> Result<Vec<Record>, EvalError> {
    let policy = eval.snapshot.policies.get(eval.policy).cloned().ok_or_else(|| EvalError::UnknownPolicy {
        policy: eval.policy.to_string(),
        available: eval.snapshot.policies.keys().cloned().collect::<Vec<_>>().join(", "),
    })?;
    let io = |source| EvalError::Io { path: traces.into(), source };
    let kept = resume(traces, eval.policy, items)?;
    // Rewrite the file with only what is kept, atomically, then append.
    let mut compacted = String::new();
    for r in &kept {
        compacted.push_str(&serde_json::to_string(r).expect("records serialise"));
        compacted.push('\n');
    }
    if let Some(dir) = traces.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| EvalError::Io { path: dir.into(), source })?;
    }
    let tmp = traces.with_extension("jsonl.tmp");
    std::fs::write(&tmp, compacted).map_err(io)?;
    std::fs::rename(&tmp, traces).map_err(io)?;
    let mut file = std::fs::OpenOptions::new().append(true).open(traces).map_err(io)?;
    for r in &kept {
        on_done(r);
    }
    let mut done: BTreeMap<String, Record> = kept.into_iter().map(|r| (r.id.clone(), r)).collect();

    let todo: Vec<&Item> = items.iter().filter(|i| !done.contains_key(&i.id)).collect();
    let mut finished = futures_util::stream::iter(todo)
        .map(|item| {
            let policy = policy.clone();
            async move { evaluate_one(eval, policy.as_ref(), item).await }
        })
        .buffer_unordered(eval.concurrency.max(1));
    while let Some(record) = finished.next().await {
        let line = serde_json::to_string(&record).expect("records serialise");
        writeln!(file, "{line}").and_then(|_| file.flush()).map_err(io)?;
        on_done(&record);
        done.insert(record.id.clone(), record);
    }
    Ok(items.iter().filter_map(|i| done.remove(&i.id)).collect())
}

async fn evaluate_one(eval: &EvalRun<'_>, policy: &dyn engine::Policy, item: &Item) -> Record {
    let snapshot = &eval.snapshot;
    let episode = engine::run(&snapshot.config.engine, policy, &snapshot.pool, &item.question);
    let trace = match tokio::time::timeout(eval.timeout, episode).await {
        Ok(Ok(trace)) => trace,
        Ok(Err(e)) => return Record::failed(item, eval.policy, e.to_string()),
        Err(_) => return Record::failed(item, eval.policy, format!("episode took longer than {:?}", eval.timeout)),
    };
    let input = ScoringInput { trajectory: trace.trajectory.clone(), golden_answers: item.golden_answers.clone() };
    let (reward, params) = (snapshot.reward.clone(), eval.params);
    // Guest code runs off the async workers (it may take up to its deadline).
    match tokio::task::spawn_blocking(move || reward.score(&input, &params)).await {
        Ok(Ok(scored)) => Record::scored(item, &trace, &scored),
        Ok(Err(e)) => Record::failed(item, eval.policy, format!("reward component: {e}")),
        Err(e) => Record::failed(item, eval.policy, format!("reward task failed: {e}")),
    }
}
