//! A tiny router for the policy runtime tests and benchmarks: a byte-level BPE tokenizer
//! trained on router prompts and trajectories, a small random Qwen2-style decoder (hidden 32,
//! 2 layers, 4 heads, 2 KV heads), written as a model directory by the training crate and
//! exported to ONNX in the optimum layout.
//!
//! The decoder's weights are perturbed away from their small initial values (as the export
//! parity tests do) so its logits are O(1): greedy choices are then far from ties, and the
//! ONNX Runtime and tch decodes must agree token for token.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use switchyard::policy::chat_template::CHATML;
use switchyard::policy::{ChatTemplate, RouterPrompt};
use switchyard_train::model::{Config, Transformer};
use switchyard_train::tokenizer::{END_OF_TURN, RouterTokenizer};

/// A router exported for the host, with the training-side files it came from.
pub struct RouterFixture {
    /// The ONNX model directory the host loads (model.onnx, tokenizer.json, ...).
    pub export: PathBuf,
    /// The training crate's model directory (config.json, model.safetensors, tokenizer.json).
    pub source: PathBuf,
    _dir: tempfile::TempDir,
}

impl RouterFixture {
    /// The tch model, loaded from the source directory.
    pub fn model(&self) -> Transformer {
        Transformer::load(&self.source, tch::Device::Cpu).expect("the fixture's model loads")
    }

    pub fn tokenizer(&self) -> RouterTokenizer {
        RouterTokenizer::load(&self.source.join("tokenizer.json")).expect("the fixture's tokenizer loads")
    }

    /// A copy of the export in a fresh directory, for tests that alter files.
    pub fn copy(&self) -> tempfile::TempDir {
        let dir = scratch_dir();
        for entry in std::fs::read_dir(&self.export).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
        dir
    }
}

/// A temporary directory under target/tmp (removed when dropped).
pub fn scratch_dir() -> tempfile::TempDir {
    let base = crate::repo_root().join("target/tmp");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::Builder::new().prefix("router-").tempdir_in(base).unwrap()
}

/// Texts the tokenizer is trained on: router prompts over the test pool, in the chat
/// template, and well-formed trajectories.
pub fn corpus() -> Vec<String> {
    let prompt = RouterPrompt::new();
    let chat = ChatTemplate::new(CHATML, "", END_OF_TURN).unwrap();
    let pool = crate::pool();
    let subjects = ["Veloria", "Karsk", "the Amsel", "Acme Corp", "Zaththeth", "Kerneth", "Mount Orrin", "Lake Tesk"];
    let mut texts = Vec::new();
    for (i, subject) in subjects.iter().cycle().take(120).enumerate() {
        let question = format!("Which river flows through the capital of {subject} {i}?");
        let messages = prompt.messages(&question, &pool).unwrap();
        texts.push(chat.render(&messages, true).unwrap());
        texts.push(format!(
            "<think>Find the capital of {subject} first.</think>\n<search>small-geo: What is the capital of {subject}?</search>\n\n<information>Karsk {i}.</information>\n\n<think>Now its river.</think>\n<search>large-reasoner: Which river flows through Karsk?</search>\n\n<information>The Amsel.</information>\n\n<answer>The Amsel</answer>"
        ));
    }
    texts
}

/// Build a fixture with decoder weights drawn from `seed` in a fresh directory (removed when
/// the fixture is dropped); `layer_scale` multiplies the attention and MLP projections (at 1
/// the embedding dominates the residual stream and the tied LM head keeps choosing the
/// current token again: greedy decoding loops on one token).
pub fn build(seed: i64, layer_scale: f64) -> RouterFixture {
    build_in(scratch_dir(), seed, layer_scale, test_config)
}

/// The tests' decoder: hidden 32, 2 layers, 4 heads, 2 KV heads.
pub fn test_config(vocab: i64) -> Config {
    Config {
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        ..Config::tiny(vocab)
    }
}

/// `build` with another architecture (given the vocabulary size).
pub fn build_with(seed: i64, layer_scale: f64, config: fn(i64) -> Config) -> RouterFixture {
    build_in(scratch_dir(), seed, layer_scale, config)
}

fn build_in(dir: tempfile::TempDir, seed: i64, layer_scale: f64, config: fn(i64) -> Config) -> RouterFixture {
    // tch's generator is global: hold it while drawing the weights.
    static TORCH_RNG: Mutex<()> = Mutex::new(());
    let (source, export) = (dir.path().join("source"), dir.path().join("export"));
    let tokenizer = RouterTokenizer::train(corpus().into_iter(), 600).expect("the tokenizer trains");
    let model = {
        let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
        tch::manual_seed(seed);
        let model = Transformer::new(config(tokenizer.vocab_size() as i64), tch::Device::Cpu).unwrap();
        switchyard_train::model::perturb(&model, layer_scale);
        model
    };
    switchyard_train::checkpoint::write_model_dir(&source, &model, &tokenizer).expect("the model directory is written");
    switchyard_train::export::export_dir(&model, &[&source], &export, false).expect("the model exports");
    RouterFixture { export, source, _dir: dir }
}

/// The fixture most tests share (built once per test binary): its greedy decodes are varied
/// text.
pub fn shared() -> &'static RouterFixture {
    static FIXTURE: OnceLock<RouterFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| build_in(process_dir("shared"), 7, 3.0, test_config))
}

/// A fixture whose greedy decode repeats one token and writes no stop (for tests that need a
/// generation to run until it is cancelled; the cancellation test checks this holds).
pub fn looping() -> &'static RouterFixture {
    static FIXTURE: OnceLock<RouterFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| build_in(process_dir("looping"), 7, 1.0, test_config))
}

/// A directory for a fixture that lives as long as the process. Statics are never dropped,
/// so it is named after the process, and those of processes that have exited are removed here.
fn process_dir(name: &str) -> tempfile::TempDir {
    let base = crate::repo_root().join("target/tmp");
    std::fs::create_dir_all(&base).unwrap();
    // Where there is no /proc, nothing is known to have exited and nothing is removed.
    if Path::new("/proc/self").exists() {
        for entry in std::fs::read_dir(&base).into_iter().flatten().flatten() {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let pid = file_name.strip_prefix("router-process-").and_then(|rest| rest.split('-').next());
            if pid.is_some_and(|pid| !Path::new("/proc").join(pid).exists()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    tempfile::Builder::new().prefix(&format!("router-process-{}-{name}-", std::process::id())).tempdir_in(base).unwrap()
}

/// The `switchyard` binary next to this test binary (`target/<profile>/switchyard`).
pub fn switchyard_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    // target/<profile>/deps/<test> -> target/<profile>/switchyard
    let path = exe.parent().and_then(Path::parent).map(|p| p.join("switchyard")).expect("a target directory");
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build -p switchyard` (`cargo test --workspace` does)",
        path.display()
    );
    path
}

/// `switchyard serve` (the embedded default) run in `cwd`; returns the child and its address.
pub fn spawn_embedded(cwd: &Path) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(switchyard_binary())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(cwd)
        .env("SWITCHYARD_CACHE_DIR", crate::repo_root().join("target/test-component-cache"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first_line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut first_line).unwrap();
    let addr = first_line.trim().strip_prefix("listening on http://").expect("prints its address").to_string();
    (child, addr)
}

pub fn stderr_of(mut child: std::process::Child) -> String {
    use std::io::Read;
    child.kill().unwrap();
    child.wait().unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    stderr
}
