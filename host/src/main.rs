use clap::Parser;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SWITCHYARD_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = switchyard::cli::Cli::parse();
    // Rust ignores SIGPIPE, so `println!` into a closed pipe (`switchyard eval ... | head`)
    // panics; a job should end the way other Unix tools do when its reader goes away. Servers
    // keep ignoring it: a supervisor closing their log pipe must not kill them.
    #[cfg(unix)]
    if !cli.serves() {
        // SAFETY: before any thread is spawned.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match cli.run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
