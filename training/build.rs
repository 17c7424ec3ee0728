//! libtorch is a shared library that torch-sys links without an rpath;
//! record its directory so the binary and tests run without LD_LIBRARY_PATH.
fn main() {
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
    // tch sees CUDA only if libtorch_cuda is linked even though no symbol
    // of it is referenced (tch issues 907, 980).
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-ltorch");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
