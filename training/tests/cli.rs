//! The command line as a user runs it: a closed pipe ends a command quietly.

use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn a_reader_that_goes_away_ends_the_command_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("metrics.jsonl");
    let mut file = std::fs::File::create(&metrics).unwrap();
    for step in 1..=3000 {
        writeln!(file, r#"{{"step":{step},"reward":0.5,"kl":0.01,"entropy":0.1}}"#).unwrap();
    }
    drop(file);
    // Three tables of 3,000 columns: far more than a pipe holds, so printing must meet the
    // closed pipe (the read end is dropped before the command can have printed it all).
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard-train"))
        .args(["window", "--run"])
        .arg(&metrics)
        .args(["--key", "reward", "--key", "kl", "--key", "entropy", "--every", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        const SIGPIPE: i32 = 13; // Linux and the BSDs
        assert_eq!(out.status.signal(), Some(SIGPIPE), "{:?}: {stderr}", out.status);
    }
}
