//! The official OpenAI Python client against a running server (installed
//! into .venv by scripts/setup): plain and streaming, policies and
//! pass-through, listing and errors.

use switchyard_tests::backend;
use switchyard_tests::repo_root;
use switchyard_tests::server::{TestServer, pool_config};

#[tokio::test]
async fn the_official_openai_client_works_streaming_and_not() {
    let python = repo_root().join(".venv/bin/python");
    assert!(python.exists(), "{} is missing: run scripts/setup", python.display());
    let backend = backend::start().await;
    let server = TestServer::start(&pool_config(&backend.url())).await;
    let script = repo_root().join("tests/clients/openai_client.py");
    let output =
        tokio::process::Command::new(&python).arg(&script).arg(server.url("/v1")).output().await.expect("python runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "openai client failed:\n{stderr}\n{stdout}");
    assert_eq!(stdout.trim(), "ok");
}
