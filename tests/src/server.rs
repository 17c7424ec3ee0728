//! A Switchyard server started in-process on loopback for the tests, from a
//! TOML config written to a temporary directory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use switchyard::server::{self, AppState, Snapshot};
use tokio::sync::oneshot;

pub struct TestServer {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    pub config_path: PathBuf,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    pub finished: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

/// The standard test pool over `backend_url`: five OpenAI-compatible models
/// and one Anthropic-compatible, three policies.
pub fn pool_config(backend_url: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
api_keys_env = "SWITCHYARD_TEST_NO_KEYS"
admin_key_env = "SWITCHYARD_TEST_ADMIN_KEY"
body_limit_bytes = 65536
request_timeout_ms = 20000

[plugins]
dir = "{plugins}"
cost = "token-price"

[engine]
max_turns = 4

[[policies]]
name = "switchyard/cheapest"
strategy = "cheapest"

[[policies]]
name = "switchyard/largest"
strategy = "largest"

[[policies]]
name = "switchyard/cascade"
strategy = "cascade"

[[models]]
name = "tiny"
adapter = "openai-chat"
endpoint = "{backend_url}"
remote_model = "knows-nothing"
descriptor = {{ price_in_per_mtok = 0.05, price_out_per_mtok = 0.1, latency_ms = 100, context_tokens = 4096, size_b = 1.0 }}

[[models]]
name = "geo"
aliases = ["geo-7b"]
adapter = "openai-chat"
endpoint = "{backend_url}"
remote_model = "knows-geo"
api_key_env = "SWITCHYARD_TEST_GEO_KEY"
descriptor = {{ price_in_per_mtok = 0.2, price_out_per_mtok = 0.4, latency_ms = 300, context_tokens = 8192, size_b = 7.0, strengths = ["geography"] }}

[[models]]
name = "echo"
adapter = "openai-chat"
endpoint = "{backend_url}"
remote_model = "echo"
descriptor = {{ price_in_per_mtok = 1.0, price_out_per_mtok = 2.0, latency_ms = 500, context_tokens = 8192, size_b = 13.0 }}

[[models]]
name = "taggy"
adapter = "openai-chat"
endpoint = "{backend_url}"
remote_model = "tags"
descriptor = {{ price_in_per_mtok = 0.5, price_out_per_mtok = 0.5, latency_ms = 100, context_tokens = 4096, size_b = 3.0 }}

[[models]]
name = "claude-geo"
adapter = "anthropic-messages"
endpoint = "{backend_url}"
remote_model = "knows-geo"
api_key_env = "SWITCHYARD_TEST_ANTHROPIC_KEY"
descriptor = {{ price_in_per_mtok = 3.0, price_out_per_mtok = 15.0, latency_ms = 900, context_tokens = 200000, size_b = 70.0 }}
"#,
        plugins = crate::repo_root().join("plugins/dist").display(),
    )
}

impl TestServer {
    /// Start a server on `config` (TOML text).
    pub async fn start(config: &str) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("switchyard.toml");
        std::fs::write(&config_path, config).unwrap();
        let runtime = crate::runtime_with(true, Some(crate::repo_root().join("target/test-component-cache")));
        let snapshot = Snapshot::load(&config_path, &runtime).expect("test config loads");
        let state = AppState::new(snapshot, runtime, Some(config_path.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let finished = tokio::spawn(server::serve(listener, state.clone(), async move {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            state,
            config_path,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            finished: Some(finished),
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client.post(self.url(path)).json(&body).send().await.unwrap()
    }

    /// Ask for a graceful shutdown; in-flight requests finish.
    pub fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
