//! Configuration: the shipped examples load; every bad input is refused at
//! start with an error naming the file, the field and the reason.

use std::path::Path;

use switchyard::config::{Config, PolicyKind};
use switchyard::policy::Device;
use switchyard_tests::repo_root;

#[test]
fn shipped_example_configs_load() {
    for name in ["local.toml", "providers.toml"] {
        let path = repo_root().join("host/config").join(name);
        let config = Config::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!config.models.is_empty() && !config.policies.is_empty(), "{name}");
        for m in &config.models {
            if let Some(f) = &m.fallback {
                assert!(config.model(f).is_some(), "{name}: fallback {f}");
            }
        }
    }
    let local = Config::load(&repo_root().join("host/config/local.toml")).unwrap();
    assert_eq!(
        local.model("QWEN-7B").map(|m| m.name.as_str()),
        Some("qwen2.5-7b-instruct"),
        "aliases are case-insensitive"
    );
    assert_eq!(local.model("qwen2.5-7b-instruct").unwrap().descriptor().example_scores[0].benchmark, "nq-em");
}

fn base() -> String {
    format!(
        r#"
[plugins]
dir = "{}"

[[policies]]
name = "switchyard/cheapest"
strategy = "cheapest"

[[models]]
name = "a"
adapter = "openai-chat"
endpoint = "http://127.0.0.1:9/v1"
descriptor = {{ price_in_per_mtok = 1.0, price_out_per_mtok = 1.0, latency_ms = 1, context_tokens = 8192 }}

[[models]]
name = "b"
aliases = ["bee"]
adapter = "openai-chat"
endpoint = "http://127.0.0.1:9/v1"
descriptor = {{ price_in_per_mtok = 1.0, price_out_per_mtok = 1.0, latency_ms = 1, context_tokens = 8192 }}
"#,
        repo_root().join("plugins/dist").display()
    )
}

fn refused(text: &str) -> String {
    let err = Config::parse(text, Path::new("/etc/switchyard/test.toml")).expect_err("must be refused");
    let message = err.to_string();
    assert!(message.starts_with("/etc/switchyard/test.toml: "), "names the file: {message}");
    message
}

#[test]
fn the_base_config_is_valid() {
    Config::parse(&base(), Path::new("test.toml")).unwrap();
}

#[test]
fn bad_configs_name_field_and_reason() {
    let cases: Vec<(String, &[&str])> = vec![
        (base().replace("[plugins]", "[plugins\n"), &["line 2"]),
        (base().replace("strategy = \"cheapest\"", "strategy = \"cheapest\"\nweight = 3"), &["unknown field `weight`"]),
        (
            base().replace("endpoint = \"http://127.0.0.1:9/v1\"\ndescriptor", "descriptor"),
            &["missing field `endpoint`"],
        ),
        (
            base().replacen("adapter = \"openai-chat\"", "adapter = \"nope-adapter\"", 1),
            &["models[0].adapter", "nope-adapter", "not found"],
        ),
        (base().replace("name = \"b\"", "name = \"A\""), &["models[1].name", "`A` is used by more than one model"]),
        (base().replace("aliases = [\"bee\"]", "aliases = [\"a\"]"), &["models[1].name", "`a`"]),
        (
            base().replacen("endpoint = \"http://127.0.0.1:9/v1\"", "endpoint = \"ftp://x\"", 1),
            &["models[0].endpoint", "http(s) URL"],
        ),
        (
            base().replace("name = \"b\"", "name = \"b\"\nfallback = \"zed\""),
            &["models[1].fallback", "`zed` is not a model"],
        ),
        (base().replace("name = \"b\"", "name = \"b\"\nfallback = \"bee\""), &["models[1].fallback", "itself"]),
        (base().replace("name = \"b\"", "name = \"b:c\""), &["models[1].name", "colon"]),
        (
            base().replacen("price_in_per_mtok = 1.0", "price_in_per_mtok = -1.0", 1),
            &["models[0].descriptor", "non-negative"],
        ),
        (base().replace("name = \"switchyard/cheapest\"", "name = \"a\""), &["policies[0].name", "also a model"]),
        (base().replace("strategy = \"cheapest\"", "strategy = \"ghost\""), &["policies[0].strategy", "ghost"]),
        (format!("[reward]\nalpha = 1.5\n{}", base()), &["reward.alpha", "[0, 1]"]),
        (format!("[server]\nlisten = \"localhost\"\n{}", base()), &["server.listen", "localhost"]),
        (format!("[engine]\nmax_turns = 0\n{}", base()), &["engine.max_turns"]),
        (base().replace("name = \"b\"", "name = \"b\"\nmax_concurrency = 0"), &["models[1].max_concurrency"]),
        (
            base().replacen("context_tokens = 8192", "context_tokens = 100", 1),
            &["models[0].descriptor.context_tokens", "smaller than max_tokens (512)"],
        ),
    ];
    for (text, needles) in cases {
        let message = refused(&text);
        for needle in needles {
            assert!(message.contains(needle), "`{needle}` not in: {message}");
        }
    }
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let err = Config::load(Path::new("/nonexistent/switchyard.toml")).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/switchyard.toml") && err.contains("cannot read"), "{err}");
}

#[test]
fn router_policies_are_checked_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("router");
    std::fs::create_dir_all(&model).unwrap();
    // Validation checks the directory holds a graph; loading it (tests/onnx_policy.rs) checks the rest.
    std::fs::write(model.join("model.onnx"), b"").unwrap();
    let template = dir.path().join("prompt.jinja");
    std::fs::write(&template, "Models: {{ models | length }}\n=== user ===\nQ: {{ question }}").unwrap();
    let bad_template = dir.path().join("bad.jinja");
    std::fs::write(&bad_template, "no marker {{ question }}").unwrap();
    let router = |extra: &str| {
        format!("{}\n[[policies]]\nname = \"switchyard/router-r1\"\nonnx = \"{}\"\n{extra}\n", base(), model.display())
    };

    let text = router(&format!(
        "device = \"auto\"\ntemperature = 0.7\ntop_p = 0.9\nmax_new_tokens = 64\nseed = 3\nthreads = 2\nmax_batch = 8\nprompt_template = \"{}\"",
        template.display()
    ));
    let config = Config::parse(&text, Path::new("test.toml")).unwrap();
    let policy = &config.policies[1];
    assert!(matches!(policy.kind(), PolicyKind::Onnx(dir) if dir == model));
    let options = config.router_options(policy).unwrap();
    assert_eq!(
        (options.temperature, options.top_p, options.max_new_tokens, options.seed),
        (Some(0.7), Some(0.9), Some(64), 3)
    );
    assert_eq!(options.model.session.device, Device::Auto);
    assert_eq!((options.model.session.intra_threads, options.model.max_batch), (Some(2), 8));
    assert!(options.prompt_template.unwrap().contains("=== user ==="));

    let cases: Vec<(String, &[&str])> = vec![
        (router("strategy = \"cheapest\""), &["policies[1].onnx", "not both"]),
        (format!("{}\n[[policies]]\nname = \"x\"\n", base()), &["policies[1].strategy", "missing"]),
        (
            router("").replace(&model.display().to_string(), "/nonexistent/router"),
            &["policies[1].onnx", "no model.onnx"],
        ),
        (router("temperature = -1.0"), &["policies[1].temperature", ">= 0"]),
        (router("top_p = 0.0"), &["policies[1].top_p", "(0, 1]"]),
        (router("top_p = 1.5"), &["policies[1].top_p", "(0, 1]"]),
        (router("max_new_tokens = 0"), &["policies[1].max_new_tokens"]),
        (router("threads = 0"), &["policies[1].threads"]),
        (router("max_batch = 0"), &["policies[1].max_batch"]),
        (router("settings = { x = 1.0 }"), &["policies[1].settings", "strategy policies only"]),
        (router("device = \"tpu\""), &["unknown variant `tpu`"]),
        (router("prompt_template = \"/nonexistent/prompt.jinja\""), &["policies[1].prompt_template", "cannot read"]),
        (
            router(&format!("prompt_template = \"{}\"", bad_template.display())),
            &["policies[1].prompt_template", "=== user ==="],
        ),
        (
            base().replace("strategy = \"cheapest\"", "strategy = \"cheapest\"\ntemperature = 0.5"),
            &["policies[0].temperature", "`onnx` policies only"],
        ),
        (
            base().replace("strategy = \"cheapest\"", "strategy = \"cheapest\"\ntag_grammar = true"),
            &["policies[0].tag_grammar", "`onnx` policies only"],
        ),
        (router("tag_grammar = \"yes\""), &["line 25", "`tag_grammar = \"yes\"`", "expected a boolean"]),
        (
            base().replace("strategy = \"cheapest\"", "strategy = \"cheapest\"\nprotocol_grammar = true"),
            &["policies[0].protocol_grammar", "`onnx` policies only"],
        ),
        (
            base().replace("strategy = \"cheapest\"", "strategy = \"cheapest\"\nextractive_answers = true"),
            &["policies[0].extractive_answers", "`onnx` policies only"],
        ),
        (router("extractive_answers = 1"), &["extractive_answers", "expected a boolean"]),
        (
            format!("[onnxruntime]\nlibrary = \"/nonexistent/libonnxruntime.so\"\n{}", base()),
            &["onnxruntime.library", "/nonexistent/libonnxruntime.so"],
        ),
    ];
    for (text, needles) in cases {
        let message = refused(&text);
        for needle in needles {
            assert!(message.contains(needle), "`{needle}` not in: {message}");
        }
    }
}
