//! `switchyard eval` end to end: the binary over the embedded default (the
//! simulated pool served on loopback), real strategy and reward components.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use switchyard_tests::router::switchyard_binary;

fn switchyard(args: &[&str]) -> Output {
    Command::new(switchyard_binary())
        .current_dir(switchyard_tests::repo_root())
        .args(args)
        .output()
        .expect("switchyard runs")
}

fn ok(out: &Output) -> String {
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "failed: {stderr}\n{stdout}");
    stdout.into_owned()
}

fn failure(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", path.display())))
        .collect()
}

fn export(dir: &Path) -> String {
    let out = dir.join("data");
    ok(&switchyard(&["sim", "export", "--questions", "400", "--out", out.to_str().unwrap()]));
    out.join("test.jsonl").to_str().unwrap().to_string()
}

#[test]
fn scores_every_question_writes_summaries_and_resumes_without_rescoring() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = export(dir.path());
    let out = dir.path().join("eval");
    let args = [
        "eval",
        "--dataset",
        &dataset,
        "--policy",
        "switchyard/cheapest",
        "--policy",
        "switchyard/teacher",
        "--limit",
        "12",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    let stdout = ok(&switchyard(&args));
    assert!(stdout.contains("### `switchyard/cheapest`") && stdout.contains("### `switchyard/teacher`"), "{stdout}");

    let cheapest = out.join("switchyard_cheapest.jsonl");
    let first = records(&cheapest);
    let ids: std::collections::BTreeSet<&str> = first.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!((first.len(), ids.len()), (12, 12));
    for r in &first {
        assert!(r.get("error").is_none(), "{r}");
        assert_eq!(r["calls"], 1, "the cheapest strategy routes once: {r}");
        assert!(r["trajectory"].as_str().unwrap().contains("<answer>"), "{r}");
        assert!(r["cost"].as_f64().unwrap() > 0.0 && r["hops"].as_u64().is_some(), "{r}");
    }
    let teacher: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("switchyard_teacher.summary.json")).unwrap()).unwrap();
    assert_eq!(teacher["overall"]["questions"], 12);
    assert!(teacher["overall"]["em"].as_f64().unwrap() >= 0.5, "the teacher answers most: {teacher}");
    assert!(teacher["by_hops"]["2"]["calls"].as_f64().unwrap() >= 2.0, "two hops, two calls: {teacher}");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("| **all** | 12 |"), "{report}");
    let used = teacher["overall"]["model_use"].as_object().unwrap();
    assert!(!used.is_empty() && used.keys().all(|m| !held_out().contains(m)), "training pool only: {used:?}");

    // Interrupt: keep 7 records, mark one of them failed, leave a torn line.
    let lines: Vec<String> = first.iter().map(|r| r.to_string()).collect();
    let mut failed: Value = first[6].clone();
    failed["error"] = "backend down".into();
    let torn = &lines[7][..lines[7].len() / 2];
    std::fs::write(&cheapest, format!("{}\n{failed}\n{torn}", lines[..6].join("\n"))).unwrap();
    ok(&switchyard(&args[..5].iter().chain(&args[7..]).copied().collect::<Vec<_>>()));
    let resumed = records(&cheapest);
    assert_eq!(resumed.len(), 12, "nothing scored twice");
    assert_eq!(resumed[..6], first[..6], "kept records are not rerun");
    let ids: std::collections::BTreeSet<&str> = resumed.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 12);
    assert!(resumed.iter().all(|r| r.get("error").is_none()), "the failed question was retried");
}

#[test]
fn bad_arguments_and_inputs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = export(dir.path());
    let out = dir.path().join("eval");
    let out = out.to_str().unwrap();

    let e = failure(&switchyard(&["eval", "--dataset", &dataset, "--policy", "nope", "--limit", "2", "--out", out]));
    assert!(e.contains("unknown policy `nope`") && e.contains("switchyard/cheapest"), "{e}");

    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"id\": 1, \"question\": \"Q?\", \"golden_answers\": [\"a\"]}\n{\"id\": 2}\n").unwrap();
    let e = failure(&switchyard(&["eval", "--dataset", bad.to_str().unwrap(), "--policy", "switchyard/cheapest"]));
    assert!(e.contains("bad.jsonl:2:") && e.contains("question"), "{e}");

    // A traces file of another policy is never mixed into.
    let traces = Path::new(out).join("switchyard_cheapest.jsonl");
    std::fs::create_dir_all(out).unwrap();
    let foreign = serde_json::json!({"id": "x", "dataset": "d", "policy": "switchyard/largest", "question": "q", "golden_answers": ["a"]});
    std::fs::write(&traces, format!("{foreign}\n")).unwrap();
    let e = failure(&switchyard(&[
        "eval",
        "--dataset",
        &dataset,
        "--policy",
        "switchyard/cheapest",
        "--limit",
        "2",
        "--out",
        out,
    ]));
    assert!(e.contains("policy `switchyard/largest`"), "{e}");
    assert_eq!(std::fs::read_to_string(&traces).unwrap(), format!("{foreign}\n"), "the file is left as it was");

    let e = failure(&switchyard(&["eval", "--dataset", &dataset, "--policy", "switchyard/cheapest", "--alpha", "2"]));
    assert!(e.contains("--alpha"), "{e}");
}

#[test]
fn chance_and_single_model_baselines_are_served_by_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = export(dir.path());
    let out = dir.path().join("eval");
    let stdout = ok(&switchyard(&[
        "eval",
        "--dataset",
        &dataset,
        "--policy",
        "switchyard/random",
        "--policy",
        "switchyard/only/qwen2.5-7b-instruct",
        "--limit",
        "16",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]));
    assert!(stdout.contains("switchyard/random"), "{stdout}");
    let random = records(&out.join("switchyard_random.jsonl"));
    let models: std::collections::BTreeSet<&str> = random.iter().map(|r| r["models"][0].as_str().unwrap()).collect();
    assert!(models.len() >= 3, "16 questions spread over the pool: {models:?}");
    let alone = records(&out.join("switchyard_only_qwen2.5-7b-instruct.jsonl"));
    assert!(alone.iter().all(|r| r["models"] == serde_json::json!(["qwen2.5-7b-instruct"])), "{alone:?}");
}

/// The simulated world's held-out models.
fn held_out() -> Vec<String> {
    let models = switchyard::sim::serve::SimConfig::default().build();
    models.profiles().iter().filter(|p| p.held_out).map(|p| p.name.clone()).collect()
}

#[test]
fn held_out_models_join_the_pool_by_descriptor_and_the_report_shows_which_models_are_called() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = export(dir.path());
    let out = dir.path().join("eval");
    let run = |extra: &[&str]| {
        let mut args = vec!["eval", "--dataset", &dataset, "--policy", "switchyard/teacher", "--limit", "40"];
        args.extend(["--out", out.to_str().unwrap(), "--quiet", "--held-out-models"]);
        args.extend(extra);
        switchyard(&args)
    };
    let stdout = ok(&run(&["--policy", "switchyard/only/palmyra-creative-122b"]));
    assert!(stdout.contains("Questions calling each model"), "{stdout}");
    let teacher: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("switchyard_teacher.summary.json")).unwrap()).unwrap();
    let used = teacher["overall"]["model_use"].as_object().unwrap();
    let held_out = held_out();
    assert_eq!(held_out.len(), 2);
    assert!(held_out.iter().any(|m| used.contains_key(m)), "the teacher reads the new descriptors: {used:?}");
    // llama3-chatqa's descriptor is the cheapest strong one in geography and sports: the
    // teacher sends such questions to it.
    let domains = teacher["by_domain"].as_object().unwrap();
    let chatqa = |d: &str| domains.get(d).is_some_and(|m| m["model_use"].get("llama3-chatqa-1.5-8b").is_some());
    assert!(chatqa("geography") || chatqa("sports"), "{domains:?}");
    let alone = records(&out.join("switchyard_only_palmyra-creative-122b.jsonl"));
    assert!(alone.iter().all(|r| r["models"] == serde_json::json!(["palmyra-creative-122b"])), "{alone:?}");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("(models.svg)"), "{report}");
    let svg = std::fs::read_to_string(out.join("models.svg")).unwrap();
    assert!(svg.contains("switchyard/teacher · all"), "the plot has a bar per routing policy and slice");
    assert!(out.join("models.png").is_file());

    let e = failure(&run(&["--config", "switchyard.toml"]));
    assert!(e.contains("--held-out-models") && e.contains("--config"), "{e}");
}

/// `switchyard sim serve` on a free port, standing in for a provider; killed on drop.
struct SimServer(std::process::Child, String);

impl SimServer {
    fn start() -> SimServer {
        use std::io::BufRead;
        let mut child = Command::new(switchyard_binary())
            .args(["sim", "serve", "--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("sim serve starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("listening on ").expect("the address line").to_string();
        SimServer(child, url)
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn provider_config(dir: &Path, endpoint: &str) -> std::path::PathBuf {
    let config = format!(
        r#"
[plugins]
dir = "{plugins}"

[[policies]]
name = "switchyard/cascade"
strategy = "cascade"

[[models]]
name = "small"
adapter = "openai-chat"
endpoint = "{endpoint}"
remote_model = "qwen2.5-7b-instruct"
timeout_ms = 2000
retries = 0
descriptor = {{ price_in_per_mtok = 0.2, price_out_per_mtok = 0.2, latency_ms = 300, context_tokens = 32768, size_b = 7.0 }}

[[models]]
name = "large"
adapter = "openai-chat"
endpoint = "{endpoint}"
remote_model = "llama-3.1-70b-instruct"
timeout_ms = 2000
retries = 0
descriptor = {{ price_in_per_mtok = 0.9, price_out_per_mtok = 0.9, latency_ms = 900, context_tokens = 131072, size_b = 70.0 }}
"#,
        plugins = switchyard_tests::repo_root().join("plugins/dist").display(),
    );
    let path = dir.join("providers.toml");
    std::fs::write(&path, config).unwrap();
    path
}

#[test]
fn real_backends_through_a_config_and_flashrag_files() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimServer::start();
    let config = provider_config(dir.path(), &sim.1);
    // FlashRAG layout: metadata carries what the summary groups by.
    let exported = records(Path::new(&export(dir.path())));
    let flashrag = dir.path().join("nq.jsonl");
    let lines: Vec<String> = exported[..10]
        .iter()
        .map(|q| {
            serde_json::json!({"id": q["id"], "question": q["question"], "golden_answers": q["golden_answers"],
                "metadata": {"hops": q["hops"], "domain": q["domain"]}})
            .to_string()
        })
        .collect();
    std::fs::write(&flashrag, lines.join("\n") + "\n").unwrap();
    let out = dir.path().join("eval");
    let args = [
        "eval",
        "--config",
        config.to_str().unwrap(),
        "--dataset",
        flashrag.to_str().unwrap(),
        "--policy",
        "switchyard/cascade",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    ok(&switchyard(&args));
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("switchyard_cascade.summary.json")).unwrap()).unwrap();
    assert_eq!(summary["overall"]["questions"], 10, "{summary}");
    assert_eq!(summary["by_dataset"]["nq"]["questions"], 10, "{summary}");
    assert!(summary["overall"]["em"].as_f64().unwrap() > 0.0, "the simulated provider answers some: {summary}");
    assert!(summary["overall"]["cost"].as_f64().unwrap() > 0.0, "{summary}");
    let traced = records(&out.join("switchyard_cascade.jsonl"));
    assert!(traced.iter().all(|r| r["models"].as_array().is_some_and(|m| !m.is_empty())), "{traced:?}");

    // The provider goes away: the questions still in the file are kept; calls now fail, which the
    // cascade reports to the router as failed calls, not as lost questions.
    drop(sim);
    let more: Vec<String> = lines
        .iter()
        .chain(std::iter::once(
            &serde_json::json!({
        "id": "extra", "question": "Which river flows through Karsk?", "golden_answers": ["x"]})
            .to_string(),
        ))
        .cloned()
        .collect();
    std::fs::write(&flashrag, more.join("\n") + "\n").unwrap();
    ok(&switchyard(&args));
    let after = records(&out.join("switchyard_cascade.jsonl"));
    assert_eq!(after.len(), 11);
    assert_eq!(after[..10], traced[..], "scored questions are not run again");
    assert_eq!(after[10]["id"], "extra");
    assert_eq!(after[10]["em"], 0.0, "{}", after[10]);
}

/// `--router` serves another export as the embedded default's `switchyard/router-r1`, decoded
/// as `--router-decoding` says: with extractive answers, a random router's every answer is
/// copied from its question or the replies it got. A router that does not load is an error,
/// not a silent fallback to the shipped one.
#[test]
fn a_router_named_by_flag_is_served_and_decodes_as_asked() {
    let fixture = switchyard_tests::router::shared();
    let router = fixture.export.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dataset = export(dir.path());
    let out = dir.path().join("eval");
    let base = ["eval", "--dataset", &dataset, "--policy", "switchyard/router-r1", "--limit", "6", "--quiet"];
    let mut args = base.to_vec();
    args.extend(["--router", router, "--router-decoding", "extractive", "--out", out.to_str().unwrap()]);
    ok(&switchyard(&args));
    let traces = records(&out.join("switchyard_router-r1.jsonl"));
    assert_eq!(traces.len(), 6);
    let mut answers = 0;
    for t in &traces {
        let answer = t["answer"].as_str().unwrap_or_default().trim().to_lowercase();
        if answer.is_empty() {
            continue;
        }
        answers += 1;
        let trajectory = t["trajectory"].as_str().unwrap();
        let replies: String = trajectory
            .split("<information>")
            .skip(1)
            .filter_map(|s| s.split_once("</information>").map(|(reply, _)| reply))
            .collect::<Vec<_>>()
            .join("\n");
        let evidence = format!("{}\n{replies}", t["question"].as_str().unwrap()).to_lowercase();
        assert!(evidence.contains(&answer), "{answer:?} is not copied from {evidence:?}");
    }
    assert!(answers > 0, "the final turn answers under the grammar: {traces:?}");

    let missing = dir.path().join("no-router");
    let mut args = base.to_vec();
    args.extend(["--router", missing.to_str().unwrap()]);
    let e = failure(&switchyard(&args));
    assert!(e.contains("--router") && e.contains("no-router"), "{e}");
    let mut args = base.to_vec();
    args.extend(["--router", router, "--config", "host/config/local.toml"]);
    assert!(failure(&switchyard(&args)).contains("cannot be used with"));
}
