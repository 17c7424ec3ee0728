//! Loading a plugin: read, compile (through the cache), check it against the
//! world it is loaded as, and pre-instantiate it once.
//!
//! Everything that can be checked without running guest code is checked
//! here, so a bad component fails at load with a message naming the plugin
//! and the missing or mismatched import/export — never at request time.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use wasmtime::component::{Component, InstancePre, Linker};

use super::bindings::v0_1_0;
use super::cache::{CacheOutcome, sha256_hex};
use super::error::Error;
use super::limits::{Kind, StoreState};
use super::runtime::Runtime;

/// The prefix of every interface name of our WIT package.
const PACKAGE_PREFIX: &str = "switchyard:plugin/";

/// What is known about a loaded plugin (shown by `switchyard plugin check`).
#[derive(Clone, Debug, Serialize)]
pub struct PluginInfo {
    /// Display name: the file stem, or the name given by the caller.
    pub name: String,
    pub kind: Kind,
    /// The WIT package version it was built against.
    pub version: String,
    pub size_bytes: usize,
    /// SHA-256 of the component bytes.
    pub sha256: String,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    /// Time to compile or fetch from the cache.
    pub compile_time: Duration,
    pub cache: CacheStatus,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheStatus {
    Hit,
    Miss,
    Disabled,
}

/// A component compiled and inspected, not yet bound to a world.
pub struct Inspected {
    pub component: Component,
    pub info: PluginInfo,
}

/// The display name of a plugin file: its stem.
pub fn plugin_name(path: &Path) -> String {
    path.file_stem().map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().into_owned())
}

/// The largest component file the host reads. Our components are a few
/// hundred KiB; a large language runtime compiled to a component is tens of
/// MiB. Anything bigger is refused before it is read.
pub const MAX_COMPONENT_BYTES: u64 = 64 << 20;

/// The largest parameter file of a learned strategy (it is passed to the
/// guest with every call, inside the kind's 128 MiB memory).
pub const MAX_PARAMETERS_BYTES: u64 = 32 << 20;

/// Read a component file: a regular file (a device, FIFO or directory is
/// refused before reading) of at most `MAX_COMPONENT_BYTES`.
pub fn read(path: &Path) -> Result<Vec<u8>, Error> {
    read_bounded(path, MAX_COMPONENT_BYTES)
}

/// Read a regular file of at most `limit` bytes. The checks are made on the
/// opened handle, and the read itself stops at `limit + 1` bytes, so a file
/// swapped or grown after the check is still bounded.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| Error::Read { path: path.to_path_buf(), source };
    // Opening a FIFO for reading would block until a writer appears: open
    // without blocking (no effect on a regular file), then check the type
    // on the handle, so a path swapped for a FIFO cannot hang a reload.
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(Error::NotAFile { path: path.to_path_buf(), what: file_kind(&meta.file_type()) });
    }
    if meta.len() > limit {
        return Err(Error::FileTooLarge { path: path.to_path_buf(), size: meta.len(), limit });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(Error::FileTooLarge { path: path.to_path_buf(), size: bytes.len() as u64, limit });
    }
    Ok(bytes)
}

fn file_kind(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Compile `bytes` and read its interface, for loading as `kind`.
pub fn inspect(runtime: &Runtime, name: &str, bytes: &[u8], kind: Kind) -> Result<Inspected, Error> {
    check_is_component(name, bytes)?;
    let started = Instant::now();
    let (component, outcome) = match &runtime.cache {
        Some(cache) => cache.load_or_compile(&runtime.engine, bytes, name)?,
        None => {
            let component = Component::from_binary(&runtime.engine, bytes)
                .map_err(|e| Error::Invalid { plugin: name.to_string(), reason: format!("{e:#}") })?;
            (component, CacheOutcome::Disabled)
        }
    };
    let compile_time = started.elapsed();
    let ty = component.component_type();
    let imports: Vec<String> = ty.imports(&runtime.engine).map(|(n, _)| n.to_string()).collect();
    let exports: Vec<String> = ty.exports(&runtime.engine).map(|(n, _)| n.to_string()).collect();
    let version = check_imports(name, &imports)?;
    let info = PluginInfo {
        name: name.to_string(),
        kind,
        version,
        size_bytes: bytes.len(),
        sha256: sha256_hex(bytes),
        imports,
        exports,
        compile_time,
        cache: match outcome {
            CacheOutcome::Hit => CacheStatus::Hit,
            CacheOutcome::Miss => CacheStatus::Miss,
            CacheOutcome::Disabled => CacheStatus::Disabled,
        },
    };
    Ok(Inspected { component, info })
}

/// Check the component against `kind`'s world and pre-instantiate it.
pub fn link(runtime: &Runtime, inspected: &Inspected) -> Result<InstancePre<StoreState>, Error> {
    let info = &inspected.info;
    let kind = info.kind;
    let missing: Vec<&str> =
        kind.required_exports().iter().copied().filter(|e| !info.exports.iter().any(|x| x == e)).collect();
    if !missing.is_empty() {
        let found = if info.exports.is_empty() { "nothing".to_string() } else { info.exports.join(", ") };
        return Err(Error::IncompatibleWorld {
            plugin: info.name.clone(),
            world: kind.world(),
            reason: format!("missing export(s) {}; it exports {found}", quoted(&missing)),
        });
    }
    let mut linker: Linker<StoreState> = Linker::new(&runtime.engine);
    // The shared `types` interface has no functions; a component that uses
    // its types imports it as an instance with type exports only.
    if info.imports.iter().any(|i| i == v0_1_0::TYPES_INTERFACE) {
        linker.instance(v0_1_0::TYPES_INTERFACE).map_err(|e| Error::Runtime(format!("{e:#}")))?;
    }
    linker.instantiate_pre(&inspected.component).map_err(|e| Error::IncompatibleWorld {
        plugin: info.name.clone(),
        world: kind.world(),
        reason: format!("{e:#}"),
    })
}

/// Wrap a world-specific export type-check failure.
pub fn mismatch(info: &PluginInfo, err: wasmtime::Error) -> Error {
    Error::IncompatibleWorld {
        plugin: info.name.clone(),
        world: info.kind.world(),
        reason: format!("an export has the wrong type: {err:#}"),
    }
}

fn check_is_component(name: &str, bytes: &[u8]) -> Result<(), Error> {
    const MAGIC: &[u8] = b"\0asm";
    const COMPONENT_LAYER: [u8; 2] = [0x01, 0x00];
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(Error::Invalid { plugin: name.to_string(), reason: "not a WebAssembly binary (bad magic)".into() });
    }
    if bytes[6..8] != COMPONENT_LAYER {
        return Err(Error::Invalid {
            plugin: name.to_string(),
            reason: "this is a core wasm module, not a component: build it with `switchyard plugin build`".into(),
        });
    }
    Ok(())
}

/// Plugins may import only our `types` interface, at our version. Returns
/// the package version the component was built against.
fn check_imports(name: &str, imports: &[String]) -> Result<String, Error> {
    let mut version = None;
    for import in imports {
        match import.strip_prefix(PACKAGE_PREFIX) {
            Some(rest) => {
                let found = rest.split_once('@').map(|(_, v)| v).unwrap_or("");
                if !same_minor(found, v0_1_0::VERSION) {
                    return Err(Error::IncompatibleVersion {
                        plugin: name.to_string(),
                        found: format!("switchyard:plugin@{}", if found.is_empty() { "(unversioned)" } else { found }),
                        host: v0_1_0::VERSION,
                    });
                }
                version = Some(found.to_string());
            }
            None => {
                return Err(Error::ForbiddenImport { plugin: name.to_string(), import: import.clone() });
            }
        }
    }
    Ok(version.unwrap_or_else(|| v0_1_0::VERSION.to_string()))
}

/// Semver compatibility for 0.x: same major and minor.
fn same_minor(a: &str, b: &str) -> bool {
    let key = |v: &str| {
        let mut parts = v.split('.');
        (parts.next().map(str::to_owned), parts.next().map(str::to_owned))
    };
    !a.is_empty() && key(a) == key(b)
}

fn quoted(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_minor() {
        assert!(same_minor("0.1.0", "0.1.0"));
        assert!(same_minor("0.1.7", "0.1.0"));
        assert!(!same_minor("0.2.0", "0.1.0"));
        assert!(!same_minor("", "0.1.0"));
    }

    #[test]
    fn wasi_imports_are_refused_by_name() {
        let err = check_imports("p", &["wasi:cli/environment@0.2.0".into()]).unwrap_err();
        assert!(err.to_string().contains("wasi:cli/environment@0.2.0"), "{err}");
        let err = check_imports("p", &["switchyard:plugin/types@0.2.0".into()]).unwrap_err();
        assert!(matches!(err, Error::IncompatibleVersion { .. }), "{err}");
    }

    #[test]
    fn core_modules_and_garbage_are_refused() {
        assert!(check_is_component("p", b"hello").unwrap_err().to_string().contains("bad magic"));
        let core = b"\0asm\x01\x00\x00\x00";
        assert!(check_is_component("p", core).unwrap_err().to_string().contains("core wasm module"));
    }
}
