//! Building plugins: compile a guest crate (or a workspace of them) for
//! `wasm32-unknown-unknown` and turn each core module into a component.
//!
//! Two toolchains are supported, detected in this order:
//! 1. rustup with the `wasm32-unknown-unknown` target installed (laptops);
//! 2. Debian's `rustc-web`/`cargo-web` with `rust-web-src`, building std
//!    from source (`-Zbuild-std`), for machines where rustup cannot
//!    download targets. `scripts/setup` installs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

/// Everything that can go wrong building a plugin.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "no wasm32 toolchain found: run `scripts/setup` (installs Debian's rustc-web with std sources) \
         or `rustup target add wasm32-unknown-unknown`"
    )]
    NoToolchain,
    #[error("{0} has no Cargo.toml")]
    NoManifest(PathBuf),
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cargo build failed for {manifest} (see the compiler output above)")]
    Cargo { manifest: PathBuf },
    #[error("{manifest} produced no cdylib .wasm files (is `crate-type = [\"cdylib\"]` set?)")]
    NoArtifacts { manifest: PathBuf },
    #[error("cannot turn {module} into a component: {reason}")]
    Componentize { module: PathBuf, reason: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How to invoke cargo for the wasm target.
#[derive(Clone, Debug)]
pub enum Toolchain {
    /// `cargo` on PATH with rustup's wasm32 target installed.
    Rustup,
    /// Debian's `/usr/bin/cargo` + `/usr/bin/rustc`, building std from source.
    DebianBuildStd,
}

impl Toolchain {
    /// `$SWITCHYARD_WASM_TOOLCHAIN` (`rustup` or `debian`) when set, else the
    /// first available toolchain.
    pub fn detect() -> Result<Toolchain, BuildError> {
        match std::env::var("SWITCHYARD_WASM_TOOLCHAIN").as_deref() {
            Ok("rustup") => return Ok(Toolchain::Rustup),
            Ok("debian") => return Ok(Toolchain::DebianBuildStd),
            _ => {}
        }
        let rustup_has_target =
            Command::new("rustup").args(["target", "list", "--installed"]).stderr(Stdio::null()).output().is_ok_and(
                |o| o.status.success() && String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == WASM_TARGET),
            );
        if rustup_has_target {
            return Ok(Toolchain::Rustup);
        }
        if Path::new("/usr/bin/cargo").exists()
            && Path::new("/usr/bin/rustc").exists()
            && Path::new("/usr/lib/rustlib/src/rust/library").exists()
        {
            return Ok(Toolchain::DebianBuildStd);
        }
        Err(BuildError::NoToolchain)
    }

    fn cargo(&self) -> Command {
        match self {
            Toolchain::Rustup => Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())),
            Toolchain::DebianBuildStd => {
                let mut cmd = Command::new("/usr/bin/cargo");
                // The rustup proxies come first on PATH; pin Debian's compiler.
                cmd.env("RUSTC", "/usr/bin/rustc").env("RUSTC_BOOTSTRAP", "1").env_remove("RUSTC_WRAPPER");
                cmd
            }
        }
    }

    fn extra_args(&self) -> &'static [&'static str] {
        match self {
            Toolchain::Rustup => &[],
            Toolchain::DebianBuildStd => &["-Zbuild-std=std,panic_abort"],
        }
    }
}

const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// One built component.
#[derive(Clone, Debug)]
pub struct Built {
    pub name: String,
    pub path: PathBuf,
    pub size_bytes: usize,
}

/// Build the crate or workspace at `dir` and write one component per cdylib
/// into `out_dir` as `<crate-name>.wasm`.
pub fn build(dir: &Path, out_dir: &Path, target_dir: &Path) -> Result<Vec<Built>, BuildError> {
    // Cargo runs in `dir`, so hand it absolute paths.
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (dir, target_dir) = (&absolute(dir), &absolute(target_dir));
    let manifest = dir.join("Cargo.toml");
    if !manifest.exists() {
        return Err(BuildError::NoManifest(dir.to_path_buf()));
    }
    let toolchain = Toolchain::detect()?;
    let mut cmd = toolchain.cargo();
    cmd.arg("build")
        .arg("--release")
        .args(["--target", WASM_TARGET])
        .args(toolchain.extra_args())
        .arg("--message-format=json-render-diagnostics")
        .arg("--manifest-path")
        .arg(&manifest)
        // Run where the plugin lives so its `.cargo/config.toml` applies,
        // as it would for `cargo build` run by hand in that folder.
        .current_dir(dir)
        .arg("--target-dir")
        .arg(target_dir)
        // A host-side cargo invocation (e.g. `cargo run`) leaks these.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let output =
        cmd.output().map_err(|source| BuildError::Spawn { program: format!("{:?}", cmd.get_program()), source })?;
    if !output.status.success() {
        return Err(BuildError::Cargo { manifest });
    }
    let modules = cdylib_wasm_artifacts(&output.stdout);
    if modules.is_empty() {
        return Err(BuildError::NoArtifacts { manifest });
    }
    std::fs::create_dir_all(out_dir).map_err(|source| BuildError::Write { path: out_dir.to_path_buf(), source })?;
    let mut built = Vec::new();
    for (name, module) in modules {
        let core = std::fs::read(&module).map_err(|source| BuildError::Write { path: module.clone(), source })?;
        let component =
            componentize(&core).map_err(|reason| BuildError::Componentize { module: module.clone(), reason })?;
        let path = out_dir.join(format!("{name}.wasm"));
        std::fs::write(&path, &component).map_err(|source| BuildError::Write { path: path.clone(), source })?;
        built.push(Built { name, path, size_bytes: component.len() });
    }
    Ok(built)
}

/// Turn a core module carrying wit-bindgen's `component-type` section into a
/// component (no adapter: our guests import nothing).
pub fn componentize(core_module: &[u8]) -> Result<Vec<u8>, String> {
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(core_module)
        .and_then(|mut encoder| encoder.encode())
        .map_err(|e| format!("{e:#}"))
}

#[derive(Deserialize)]
struct Message {
    reason: String,
    #[serde(default)]
    target: Option<Target>,
    #[serde(default)]
    filenames: Vec<PathBuf>,
}

#[derive(Deserialize)]
struct Target {
    name: String,
    kind: Vec<String>,
}

/// `(crate-name, path)` of every cdylib `.wasm` in cargo's JSON messages.
fn cdylib_wasm_artifacts(stdout: &[u8]) -> Vec<(String, PathBuf)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Message>(line).ok())
        .filter(|m| m.reason == "compiler-artifact")
        .filter_map(|m| {
            let target = m.target?;
            if !target.kind.iter().any(|k| k == "cdylib") {
                return None;
            }
            let wasm = m.filenames.into_iter().find(|f| f.extension().is_some_and(|e| e == "wasm"))?;
            Some((target.name.replace('_', "-"), wasm))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cdylib_artifacts_in_cargo_messages() {
        let messages = br#"{"reason":"compiler-artifact","target":{"name":"token_price","kind":["cdylib","rlib"]},"filenames":["/t/token_price.wasm","/t/libtoken_price.rlib"]}
{"reason":"compiler-artifact","target":{"name":"serde","kind":["lib"]},"filenames":["/t/libserde.rlib"]}
not json
{"reason":"build-finished","success":true}"#;
        let found = cdylib_wasm_artifacts(messages);
        assert_eq!(found, vec![("token-price".to_string(), PathBuf::from("/t/token_price.wasm"))]);
    }

    #[test]
    fn componentize_rejects_garbage() {
        assert!(componentize(b"not wasm").is_err());
    }
}
