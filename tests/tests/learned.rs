//! The single-round learned routers end to end, through the binary: labels
//! from single-model evaluation runs on the train split, `switchyard learned
//! train` (KNN and MLP), the `learned` strategy component serving the files in
//! the embedded default, and the errors a bad parameter file or configuration
//! gives at load.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use switchyard_tests::router::switchyard_binary;

const MODELS: [&str; 3] = ["qwen2.5-7b-instruct", "llama-3.1-8b-instruct", "llama-3.1-70b-instruct"];

fn switchyard(cwd: &Path, args: &[&str]) -> Output {
    Command::new(switchyard_binary()).current_dir(cwd).args(args).output().expect("switchyard runs")
}

fn ok(out: &Output) -> String {
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "failed: {stderr}\n{stdout}");
    format!("{stdout}{stderr}")
}

fn failure(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Single-model traces of MODELS on the first `limit` train questions.
fn single_model_traces(dir: &Path, limit: usize) -> Vec<PathBuf> {
    let data = dir.join("data");
    let root = switchyard_tests::repo_root();
    ok(&switchyard(&root, &["sim", "export", "--questions", "400", "--out", data.to_str().unwrap()]));
    let out = dir.join("eval-train");
    let mut args: Vec<String> = ["eval", "--dataset", data.join("train.jsonl").to_str().unwrap(), "--quiet"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["--limit".into(), limit.to_string(), "--out".into(), out.to_str().unwrap().into()]);
    for m in MODELS {
        args.extend(["--policy".into(), format!("switchyard/only/{m}")]);
    }
    ok(&switchyard(&root, &args.iter().map(String::as_str).collect::<Vec<_>>()));
    MODELS.iter().map(|m| out.join(format!("switchyard_only_{m}.jsonl"))).collect()
}

fn train(cwd: &Path, kind: &str, traces: &[PathBuf], out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["learned", "train", "--kind", kind, "--out", out.to_str().unwrap()];
    for t in traces {
        args.extend(["--traces", t.to_str().unwrap()]);
    }
    args.extend(extra);
    switchyard(cwd, &args)
}

#[test]
fn trained_knn_and_mlp_routers_are_served_by_the_learned_component() {
    let dir = tempfile::tempdir().unwrap();
    let traces = single_model_traces(dir.path(), 40);
    // Served from `models/learned/` of the working directory, like a shipped router.
    let shipped = dir.path().join("models/learned");
    let knn = train(dir.path(), "knn", &traces, &shipped.join("knn.safetensors"), &[]);
    let log = ok(&knn);
    assert!(log.contains("questions run on all of 3 models") && log.contains("validation: EM"), "{log}");
    let mlp = train(dir.path(), "mlp", &traces, &shipped.join("mlp.safetensors"), &["--epochs", "3", "--hidden", "8"]);
    let log = ok(&mlp);
    assert_eq!(log.matches("validation loss").count(), 3, "one line per epoch: {log}");

    let out = dir.path().join("eval-test");
    let test = dir.path().join("data/test.jsonl");
    let args = [
        "eval",
        "--dataset",
        test.to_str().unwrap(),
        "--limit",
        "15",
        "--policy",
        "switchyard/knn",
        "--policy",
        "switchyard/mlp",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    ok(&switchyard(dir.path(), &args));
    for policy in ["knn", "mlp"] {
        let rs = records(&out.join(format!("switchyard_{policy}.jsonl")));
        assert_eq!(rs.len(), 15);
        for r in &rs {
            assert!(r.get("error").is_none(), "{r}");
            assert_eq!(r["format_ok"], true, "{r}");
            // Single round: one call, to a model the router was trained on.
            let called = r["models"].as_array().unwrap();
            assert_eq!(called.len(), 1, "{r}");
            assert!(MODELS.contains(&called[0].as_str().unwrap()), "{r}");
        }
    }
}

#[test]
fn bad_parameter_files_and_configurations_fail_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let root = switchyard_tests::repo_root();
    let config = |parameters: &str, extra: &str| -> PathBuf {
        let text = format!(
            r#"
[plugins]
dir = "{plugins}"

[[policies]]
name = "switchyard/learned"
strategy = "learned"
parameters = "{parameters}"
{extra}

[[models]]
name = "small"
adapter = "openai-chat"
endpoint = "http://127.0.0.1:9/v1"
descriptor = {{ price_in_per_mtok = 0.2, price_out_per_mtok = 0.2, latency_ms = 300, context_tokens = 32768 }}
"#,
            plugins = root.join("plugins/dist").display(),
        );
        let path = dir.path().join("learned.toml");
        std::fs::write(&path, text).unwrap();
        path
    };
    let dataset = dir.path().join("q.jsonl");
    std::fs::write(&dataset, "{\"id\": \"1\", \"question\": \"Who?\", \"golden_answers\": [\"x\"]}\n").unwrap();
    let eval = |config: &Path| {
        switchyard(
            dir.path(),
            &[
                "eval",
                "--config",
                config.to_str().unwrap(),
                "--dataset",
                dataset.to_str().unwrap(),
                "--policy",
                "switchyard/learned",
                "--out",
                dir.path().join("out").to_str().unwrap(),
                "--quiet",
            ],
        )
    };

    let missing = failure(&eval(&config("absent.safetensors", "")));
    assert!(missing.contains("parameters") && missing.contains("absent.safetensors") && missing.contains("not a file"));

    std::fs::write(dir.path().join("garbage.safetensors"), b"\x00\x01 not a parameter file").unwrap();
    let garbage = failure(&eval(&config("garbage.safetensors", "")));
    assert!(garbage.contains("garbage.safetensors") && garbage.contains("not a safetensors file"), "{garbage}");

    // A real file, trained for other models than this pool's.
    let traces = single_model_traces(dir.path(), 5);
    ok(&train(dir.path(), "knn", &traces, &dir.path().join("knn.safetensors"), &["--validate-every", "0"]));
    let other_pool = failure(&eval(&config("knn.safetensors", "")));
    assert!(other_pool.contains("none of the parameter file's models"), "{other_pool}");
    // A setting the file's kind does not take.
    let unknown = failure(&eval(&config("knn.safetensors", "settings = { depth = 2 }")));
    assert!(unknown.contains("unknown setting `depth`"), "{unknown}");

    // Training refuses traces that are not single-model runs.
    let cascade = dir.path().join("cascade.jsonl");
    let first = std::fs::read_to_string(&traces[0]).unwrap();
    let mut mixed: Vec<Value> = first.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    mixed[0]["models"] = serde_json::json!(["a", "b"]);
    std::fs::write(&cascade, mixed.iter().map(Value::to_string).collect::<Vec<_>>().join("\n")).unwrap();
    let refused = failure(&train(dir.path(), "mlp", &[cascade], &dir.path().join("x.safetensors"), &[]));
    assert!(refused.contains("cascade.jsonl") && refused.contains("not a single-model run"), "{refused}");
}

#[test]
fn plugin_check_tells_a_learned_strategy_from_a_strategy() {
    // Both export `decide`; the signature decides the world.
    let root = switchyard_tests::repo_root();
    let learned = ok(&switchyard(&root, &["plugin", "check", "plugins/dist/learned.wasm"]));
    assert!(learned.contains("world:        learned-strategy"), "{learned}");
    let cascade = ok(&switchyard(&root, &["plugin", "check", "plugins/dist/cascade.wasm"]));
    assert!(cascade.contains("world:        strategy "), "{cascade}");
}
