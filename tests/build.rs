//! libtorch is a shared library that torch-sys links without an rpath; record its directory
//! so the router tests (which build fixtures and reference decodes with tch) run without
//! LD_LIBRARY_PATH.
fn main() {
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
