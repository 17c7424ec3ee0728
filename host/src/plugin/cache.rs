//! On-disk cache of compiled components.
//!
//! Key: SHA-256 of the component bytes plus a hash of the engine's
//! compatibility settings (wasmtime version, target, config), so an artifact
//! is only ever loaded by an engine that can run it. Each artifact has a
//! `.sha256` sidecar checked before deserialising: a truncated or corrupted
//! cache file is recompiled, never executed. Writes go to a temporary file
//! renamed into place, so concurrent processes never see half a file.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::error::Error;

pub struct CompileCache {
    dir: PathBuf,
    engine_key: String,
}

/// Whether a component came from the cache or was compiled now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
    Disabled,
}

impl CompileCache {
    pub fn open(dir: PathBuf, engine: &Engine) -> Result<Self, Error> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::Runtime(format!("cannot create compile cache {}: {e}", dir.display())))?;
        let mut hasher = std::hash::DefaultHasher::new();
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(CompileCache { dir, engine_key: format!("{:016x}", hasher.finish()) })
    }

    fn artifact_path(&self, content_hash: &str) -> PathBuf {
        self.dir.join(format!("{content_hash}-{}.cwasm", self.engine_key))
    }

    /// The compiled component for `bytes`, from the cache when valid.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        plugin: &str,
    ) -> Result<(Component, CacheOutcome), Error> {
        let path = self.artifact_path(&sha256_hex(bytes));
        let sidecar = path.with_extension("sha256");
        if let (Ok(artifact), Ok(expected)) = (std::fs::read(&path), std::fs::read_to_string(&sidecar)) {
            if sha256_hex(&artifact) == expected.trim() {
                // SAFETY: the artifact was produced by `precompile_component`
                // of an engine with this compatibility key (it is in the file
                // name) and its checksum matches what we wrote.
                match unsafe { Component::deserialize(engine, &artifact) } {
                    Ok(component) => return Ok((component, CacheOutcome::Hit)),
                    Err(e) => tracing::warn!("discarding cached {}: {e:#}", path.display()),
                }
            } else {
                tracing::warn!("discarding corrupted cache entry {}", path.display());
            }
        }
        let artifact = engine
            .precompile_component(bytes)
            .map_err(|e| Error::Invalid { plugin: plugin.to_string(), reason: format!("{e:#}") })?;
        // SAFETY: just produced by this engine.
        let component = unsafe { Component::deserialize(engine, &artifact) }
            .map_err(|e| Error::Runtime(format!("cannot load freshly compiled `{plugin}`: {e:#}")))?;
        if let Err(e) = self.store(&path, &sidecar, &artifact) {
            // A read-only or full disk costs compile time, not correctness.
            tracing::warn!("cannot write compile cache entry {}: {e}", path.display());
        }
        Ok((component, CacheOutcome::Miss))
    }

    fn store(&self, path: &Path, sidecar: &Path, artifact: &[u8]) -> std::io::Result<()> {
        let write_atomic = |target: &Path, data: &[u8]| -> std::io::Result<()> {
            let mut tmp = tempfile_in(&self.dir)?;
            tmp.1.write_all(data)?;
            tmp.1.sync_all()?;
            std::fs::rename(&tmp.0, target)
        };
        // Artifact first, checksum last: a reader that sees the checksum sees
        // a complete artifact.
        write_atomic(path, artifact)?;
        write_atomic(sidecar, sha256_hex(artifact).as_bytes())
    }
}

fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = format!(".tmp-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    let path = dir.join(name);
    let file = std::fs::File::create(&path)?;
    Ok((path, file))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
