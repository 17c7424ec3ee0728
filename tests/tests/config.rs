//! Configuration: the shipped examples load; every bad input is refused at
//! start with an error naming the file, the field and the reason.

use std::path::Path;

use switchyard::config::Config;
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
descriptor = {{ price_in_per_mtok = 1.0, price_out_per_mtok = 1.0, latency_ms = 1, context_tokens = 1 }}

[[models]]
name = "b"
aliases = ["bee"]
adapter = "openai-chat"
endpoint = "http://127.0.0.1:9/v1"
descriptor = {{ price_in_per_mtok = 1.0, price_out_per_mtok = 1.0, latency_ms = 1, context_tokens = 1 }}
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
