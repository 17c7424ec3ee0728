//! ONNX Runtime for the policy: the shared library, found and loaded once per process, and
//! sessions on the device a policy asks for.
//!
//! Invariants:
//! - the library is loaded at most once per process (ONNX Runtime cannot be unloaded or
//!   loaded twice); the first successful load wins, and a later request naming another file is
//!   served by the loaded one with a warning;
//! - an explicitly named library (config field or `ORT_DYLIB_PATH`) that does not exist is an
//!   error naming it, never silently replaced by a library found elsewhere;
//! - `device = "cuda"` fails when the CUDA provider cannot be registered; only `auto` falls
//!   back to the CPU, and says so in the log.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::environment::Environment;
use ort::session::Session;
use serde::{Deserialize, Serialize};

use super::error::LoadError;

/// The stable link `scripts/setup` creates inside the project's virtual environment.
const VENV_LIBRARY: &str = ".venv/libonnxruntime.so";

/// Where a policy's passes run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    #[default]
    Cpu,
    /// The CUDA execution provider; loading fails when it cannot be registered.
    Cuda,
    /// CUDA when it can be registered, else the CPU (logged).
    Auto,
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
            Device::Auto => "auto",
        })
    }
}

/// How to build a session.
#[derive(Clone, Debug, Default)]
pub struct SessionOptions {
    pub device: Device,
    /// Threads ONNX Runtime uses inside one operator (None: its default, one per core).
    pub intra_threads: Option<usize>,
    /// The ONNX Runtime library to load when none is loaded yet (None: `ORT_DYLIB_PATH`, then
    /// `.venv/libonnxruntime.so` in the working directory or above the executable).
    pub library: Option<PathBuf>,
}

struct Loaded {
    path: PathBuf,
    environment: Environment,
}

static LOADED: Mutex<Option<Loaded>> = Mutex::new(None);

/// The process's ONNX Runtime environment, loading the library on first use.
pub fn environment(library: Option<&Path>) -> Result<Environment, LoadError> {
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(l) = loaded.as_ref() {
        if let Some(wanted) = library.map(absolute)
            && wanted != l.path
        {
            tracing::warn!(
                "ONNX Runtime is already loaded from {}; {} is not loaded (one runtime per process)",
                l.path.display(),
                wanted.display()
            );
        }
        return Ok(l.environment.clone());
    }
    let path = locate(library)?;
    let environment = ort::init_from(&path)
        .map_err(|e| LoadError::Runtime { reason: format!("cannot load {}: {e}", path.display()) })?
        .with_name("switchyard")
        .build()
        .map_err(|e| LoadError::Runtime { reason: format!("creating the environment from {}: {e}", path.display()) })?;
    tracing::info!("ONNX Runtime loaded from {}", path.display());
    *loaded = Some(Loaded { path, environment: environment.clone() });
    Ok(environment)
}

/// The library file `environment` would load (or has loaded).
pub fn library_path(library: Option<&Path>) -> Result<PathBuf, LoadError> {
    if let Some(l) = LOADED.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        return Ok(l.path.clone());
    }
    locate(library)
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn locate(library: Option<&Path>) -> Result<PathBuf, LoadError> {
    let explicit = |path: PathBuf, source: &str| {
        let path = absolute(&path);
        if path.exists() {
            Ok(path)
        } else {
            Err(LoadError::Runtime {
                reason: format!(
                    "{source} names {}, which does not exist (run scripts/setup, or point it at libonnxruntime.so >= 1.30)",
                    path.display()
                ),
            })
        }
    };
    if let Some(path) = library {
        return explicit(path.to_path_buf(), "the configured library");
    }
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return explicit(PathBuf::from(path), "ORT_DYLIB_PATH");
    }
    let mut tried = vec![absolute(Path::new(VENV_LIBRARY))];
    if let Ok(exe) = std::env::current_exe() {
        tried.extend(exe.ancestors().skip(1).map(|a| a.join(VENV_LIBRARY)));
    }
    if let Some(found) = tried.iter().find(|p| p.exists()) {
        return Ok(found.clone());
    }
    Err(LoadError::Runtime {
        reason: format!(
            "no library found: ORT_DYLIB_PATH is unset and none of {} exists (run scripts/setup, or set ORT_DYLIB_PATH to libonnxruntime.so >= 1.30)",
            tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        ),
    })
}

/// A session for `model` on the requested device; also returns the device it runs on
/// (never `Auto`).
pub fn open_session(model: &Path, options: &SessionOptions) -> Result<(Session, Device), LoadError> {
    let environment = environment(options.library.as_deref())?;
    match options.device {
        Device::Cpu => Ok((build(&environment, model, options, false)?, Device::Cpu)),
        Device::Cuda => Ok((build(&environment, model, options, true)?, Device::Cuda)),
        Device::Auto => match build(&environment, model, options, true) {
            Ok(session) => Ok((session, Device::Cuda)),
            Err(LoadError::Device { reason, .. }) => {
                tracing::warn!("{}: CUDA is not available ({reason}); running on the CPU", model.display());
                Ok((build(&environment, model, options, false)?, Device::Cpu))
            }
            Err(e) => Err(e),
        },
    }
}

fn build(environment: &Environment, model: &Path, options: &SessionOptions, cuda: bool) -> Result<Session, LoadError> {
    let runtime = |e: ort::Error| LoadError::Runtime { reason: format!("session options: {e}") };
    let mut builder = Session::builder(environment).map_err(runtime)?;
    if let Some(threads) = options.intra_threads {
        builder = builder.with_intra_threads(threads).map_err(|e| runtime(e.into()))?;
    }
    if cuda {
        builder = with_cuda(builder, model)?;
    }
    builder
        .commit_from_file(model)
        .map_err(|e| LoadError::file(model, format!("ONNX Runtime cannot load the graph: {e}")))
}

#[cfg(feature = "cuda")]
fn with_cuda(
    builder: ort::session::builder::SessionBuilder,
    model: &Path,
) -> Result<ort::session::builder::SessionBuilder, LoadError> {
    // error_on_failure: without it ONNX Runtime logs the failure and silently runs on the CPU.
    builder.with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()]).map_err(|e| {
        LoadError::Device {
            path: model.to_path_buf(),
            device: "cuda".into(),
            reason: format!("the CUDA execution provider cannot be registered: {e}"),
        }
    })
}

#[cfg(not(feature = "cuda"))]
fn with_cuda(
    _builder: ort::session::builder::SessionBuilder,
    model: &Path,
) -> Result<ort::session::builder::SessionBuilder, LoadError> {
    Err(LoadError::Device {
        path: model.to_path_buf(),
        device: "cuda".into(),
        reason: "this binary was built without the `cuda` feature (cargo build -p switchyard --features cuda)".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_library_that_does_not_exist_is_named() {
        let err = locate(Some(Path::new("/nonexistent/libonnxruntime.so"))).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/libonnxruntime.so") && err.contains("configured"), "{err}");
    }

    #[test]
    fn devices_parse_from_config_words() {
        #[derive(Deserialize)]
        struct D {
            device: Device,
        }
        let d: D = toml::from_str("device = \"auto\"").unwrap();
        assert_eq!(d.device, Device::Auto);
        assert!(toml::from_str::<D>("device = \"tpu\"").is_err());
    }
}
