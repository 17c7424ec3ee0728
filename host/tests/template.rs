//! The documented plugin-author workflow, for real: copy the reward
//! template, change it, build it with `switchyard plugin build`, then
//! `plugin check` and `plugin call` it. Needs the wasm toolchain that
//! `scripts/setup` installs.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .current_dir(repo())
        .env("SWITCHYARD_CACHE_DIR", repo().join("target/test-component-cache"))
        .output()
        .expect("switchyard runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "switchyard {args:?} failed:\n{stderr}\n{stdout}");
    stdout.into_owned()
}

#[test]
fn a_plugin_copied_from_the_template_builds_checks_and_runs() {
    let template = repo().join("plugins/rewards/template");
    let work = tempfile::tempdir().unwrap();
    let crate_dir = work.path().join("my-reward");
    std::fs::create_dir_all(crate_dir.join("src")).unwrap();

    // Copy, then change: a standalone crate (outside the plugins workspace,
    // so paths become absolute) whose outcome is F1 instead of exact match.
    let source = std::fs::read_to_string(template.join("src/lib.rs")).unwrap();
    let wit = repo().join("wit");
    let changed = source
        .replace(r#"path: "../../../wit""#, &format!("path: {:?}", wit.to_str().unwrap()))
        .replace("    let outcome = exact_match;", "    let outcome = f1;");
    assert_ne!(changed, source);
    assert!(changed.contains("let outcome = f1;"), "the template's outcome line moved; update this test");
    std::fs::write(crate_dir.join("src/lib.rs"), changed).unwrap();
    let manifest = std::fs::read_to_string(repo().join("plugins/Cargo.toml")).unwrap();
    let profile = &manifest[manifest.find("[profile.release]").expect("plugins workspace has a release profile")..];
    std::fs::write(
        crate_dir.join("Cargo.toml"),
        format!(
            r#"[package]
name = "my-reward"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[dependencies]
wit-bindgen = {{ version = "=0.60.0", default-features = false, features = ["macros", "realloc"] }}
switchyard-plugin-sdk = {{ path = {sdk:?} }}

[workspace]

{profile}"#,
            sdk = repo().join("plugins/sdk").to_str().unwrap(),
        ),
    )
    .unwrap();

    let out_dir = work.path().join("dist");
    let built = run(&[
        "plugin",
        "build",
        crate_dir.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--target-dir",
        repo().join("target/wasm").to_str().unwrap(),
    ]);
    assert!(built.contains("my-reward"), "{built}");
    let component = out_dir.join("my-reward.wasm");

    let check = run(&["plugin", "check", component.to_str().unwrap()]);
    assert!(check.contains("world:        reward (switchyard:plugin@0.1.0)") && check.ends_with("ok\n"), "{check}");

    // The template's example input: answer "Paris" against golds including
    // "Paris". Then a partial answer, which only the changed (F1) outcome credits.
    let example = template.join("example-input.json");
    let full: serde_json::Value = serde_json::from_str(&run(&[
        "plugin",
        "call",
        component.to_str().unwrap(),
        "--input",
        example.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(full["answer"], "Paris");
    assert_eq!(full["outcome"], 1.0);

    let mut partial: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&example).unwrap()).unwrap();
    partial["input"]["golden_answers"] = serde_json::json!(["Paris France"]);
    let scored: serde_json::Value =
        serde_json::from_str(&run(&["plugin", "call", component.to_str().unwrap(), "--input", &partial.to_string()]))
            .unwrap();
    assert_eq!(scored["exact_match"], 0.0);
    let outcome = scored["outcome"].as_f64().unwrap();
    assert!((outcome - 2.0 / 3.0).abs() < 1e-9, "F1 of `Paris` vs `Paris France` is 2/3: {scored}");
}
