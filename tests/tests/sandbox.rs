//! The sandbox contains misbehaving guests: each is stopped within its limit,
//! reported with the right typed error, and the next call succeeds.

use std::time::{Duration, Instant};

use switchyard::plugin::{Error, Plugin, Reward};
use switchyard_tests::*;

/// Load the misbehaving guest and make it misbehave in `mode`.
fn misbehave(runtime: &std::sync::Arc<switchyard::plugin::Runtime>, mode: &str) -> Error {
    let plugin = Plugin::<Reward>::load(runtime, &guest("misbehaving-reward")).expect("guest loads");
    plugin.score(&scoring_input("x", &[mode]), &params(0.0)).expect_err("misbehaviour is an error")
}

/// After any failure, the same plugin and the reference reward still work.
fn assert_next_calls_succeed(runtime: &std::sync::Arc<switchyard::plugin::Runtime>) {
    let plugin = Plugin::<Reward>::load(runtime, &guest("misbehaving-reward")).unwrap();
    let ok = plugin.score(&scoring_input("x", &["behave"]), &params(0.0)).expect("a good call after a bad one");
    assert_eq!(ok.total, 1.0);
    let reference = Plugin::<Reward>::load(runtime, &plugin_path("router-r1")).unwrap();
    let scored = reference.score(&scoring_input("Amsel", &["the Amsel"]), &params(0.0)).unwrap();
    assert_eq!(scored.exact_match, 1.0, "{scored:?}");
}

fn plugin_path(name: &str) -> std::path::PathBuf {
    switchyard_tests::plugin(name)
}

#[test]
fn infinite_loop_hits_the_deadline_in_cpu_time() {
    use switchyard::plugin::deadline::thread_cpu_time;
    let runtime = runtime();
    let plugin = Plugin::<Reward>::load(&runtime, &guest("misbehaving-reward")).unwrap();
    let input = scoring_input("x", &["loop"]);
    // The call runs on its own thread, so that thread's CPU clock is the guest's (plus a little
    // host work) — wall-clock time would also count waiting for a core while other tests run —
    // and a guest that is never interrupted fails the test instead of hanging it.
    let (done, result) = std::sync::mpsc::channel();
    let looping = plugin.clone();
    std::thread::spawn(move || {
        let (cpu, wall) = (thread_cpu_time().unwrap(), Instant::now());
        let err = looping.score(&input, &params(0.0)).unwrap_err();
        let _ = done.send((err, thread_cpu_time().unwrap() - cpu, wall.elapsed()));
    });
    let (err, cpu, wall) =
        result.recv_timeout(Duration::from_secs(60)).expect("the looping guest was never interrupted");
    assert!(matches!(err, Error::DeadlineExceeded { .. }), "{err}");
    assert!(err.to_string().contains("misbehaving-reward"), "error names the plugin: {err}");
    assert!(
        cpu <= TEST_REWARD_DEADLINE + 3 * TEST_TICK + Duration::from_millis(20),
        "stopped after {cpu:?} of CPU ({wall:?} wall); deadline is {TEST_REWARD_DEADLINE:?}"
    );
    assert!(cpu + TEST_TICK >= TEST_REWARD_DEADLINE, "stopped early: {cpu:?} of {TEST_REWARD_DEADLINE:?}");
    assert_next_calls_succeed(&runtime);
}

#[test]
fn allocation_bomb_hits_the_memory_cap() {
    let runtime = runtime();
    let err = misbehave(&runtime, "alloc");
    match &err {
        Error::OutOfMemory { limit, requested, .. } => {
            assert_eq!(*limit, 32 << 20);
            assert!(requested > limit);
        }
        other => panic!("expected OutOfMemory, got {other}"),
    }
    assert_next_calls_succeed(&runtime);
}

#[test]
fn panic_is_a_trap() {
    let runtime = runtime();
    let err = misbehave(&runtime, "panic");
    assert!(matches!(err, Error::Trap { .. }), "{err}");
    assert_eq!(err.label(), "trap");
    assert_next_calls_succeed(&runtime);
}

#[test]
fn unbounded_recursion_is_a_stack_overflow() {
    let runtime = runtime();
    let err = misbehave(&runtime, "recurse");
    assert!(matches!(err, Error::StackOverflow { .. }), "{err}");
    assert_next_calls_succeed(&runtime);
}

#[test]
fn shadow_stack_overflow_is_a_contained_trap() {
    let runtime = runtime();
    let err = misbehave(&runtime, "recurse-big-frames");
    assert!(matches!(err, Error::Trap { .. }), "{err}");
    assert_next_calls_succeed(&runtime);
}

#[test]
fn oversize_output_is_refused() {
    let runtime = runtime();
    let err = misbehave(&runtime, "oversize");
    match &err {
        Error::OversizeOutput { size, limit, .. } => assert!(size > limit && *limit == 1 << 20, "{err}"),
        other => panic!("expected OversizeOutput, got {other}"),
    }
    assert_next_calls_succeed(&runtime);
}

#[test]
fn wrong_world_is_refused_at_load_naming_the_missing_exports() {
    let runtime = runtime();
    let err =
        Plugin::<Reward>::load(&runtime, &plugin_path("token-price")).err().expect("a cost plugin is not a reward");
    let msg = err.to_string();
    assert!(matches!(err, Error::IncompatibleWorld { .. }), "{msg}");
    assert!(msg.contains("token-price") && msg.contains("`score`") && msg.contains("`score-batch`"), "{msg}");
    assert!(msg.contains("it exports cost"), "{msg}");
}

#[test]
fn mismatched_signature_is_refused_at_load_naming_the_export() {
    let runtime = runtime();
    let err = Plugin::<Reward>::load(&runtime, &guest("mismatched-reward")).err().unwrap();
    let msg = err.to_string();
    assert!(matches!(err, Error::IncompatibleWorld { .. }), "{msg}");
    assert!(msg.contains("mismatched-reward") && msg.contains("score"), "{msg}");
}

#[test]
fn other_interface_version_is_refused_at_load_naming_both_versions() {
    let runtime = runtime();
    let err = Plugin::<Reward>::load(&runtime, &guest("future-reward")).err().unwrap();
    let msg = err.to_string();
    assert!(matches!(err, Error::IncompatibleVersion { .. }), "{msg}");
    assert!(msg.contains("switchyard:plugin@0.2.0") && msg.contains("switchyard:plugin@0.1.0"), "{msg}");
}

#[test]
fn host_imports_are_refused_at_load() {
    let runtime = runtime();
    let err = Plugin::<Reward>::load(&runtime, &guest("importing-reward")).err().unwrap();
    assert!(matches!(err, Error::ForbiddenImport { ref import, .. } if import == "wall-clock-now"), "{err}");
}

#[test]
fn garbage_and_missing_files_are_clear_errors() {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"definitely not wasm").unwrap();
    let err = Plugin::<Reward>::load(&runtime, &garbage).err().unwrap();
    assert!(matches!(err, Error::Invalid { .. }) && err.to_string().contains("garbage"), "{err}");
    let truncated = dir.path().join("truncated.wasm");
    let bytes = std::fs::read(plugin_path("router-r1")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = Plugin::<Reward>::load(&runtime, &truncated).err().unwrap();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    let err = Plugin::<Reward>::load(&runtime, &dir.path().join("absent.wasm")).err().unwrap();
    assert!(matches!(err, Error::Read { .. }) && err.to_string().contains("absent.wasm"), "{err}");
}

#[test]
fn a_trapped_warm_instance_is_replaced_not_reused() {
    let runtime = runtime();
    let plugin = Plugin::<Reward>::load(&runtime, &guest("misbehaving-reward")).unwrap();
    let mut warm = plugin.warm();
    assert_eq!(warm.score(&scoring_input("x", &["behave"]), &params(0.0)).unwrap().total, 1.0);
    assert!(warm.is_alive());
    assert!(matches!(warm.score(&scoring_input("x", &["panic"]), &params(0.0)), Err(Error::Trap { .. })));
    assert!(!warm.is_alive(), "the trapped instance was dropped");
    assert_eq!(warm.score(&scoring_input("x", &["behave"]), &params(0.0)).unwrap().total, 1.0);
    assert!(warm.is_alive());
}

#[test]
fn concurrent_bad_calls_do_not_disturb_good_ones() {
    let runtime = runtime();
    let plugin = Plugin::<Reward>::load(&runtime, &guest("misbehaving-reward")).unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let plugin = plugin.clone();
                s.spawn(move || {
                    let mode = ["behave", "panic", "recurse", "alloc"][i % 4];
                    (mode, plugin.score(&scoring_input("x", &[mode]), &params(0.0)))
                })
            })
            .collect();
        for h in handles {
            let (mode, result) = h.join().unwrap();
            match mode {
                "behave" => assert_eq!(result.unwrap().total, 1.0),
                _ => assert!(result.is_err(), "{mode} must fail"),
            }
        }
    });
}

#[test]
fn works_without_the_pooling_allocator() {
    let runtime = runtime_with(false, None);
    assert!(!runtime.pooling());
    assert!(matches!(misbehave(&runtime, "alloc"), Error::OutOfMemory { .. }));
    assert_next_calls_succeed(&runtime);
}

#[test]
fn falls_back_when_the_pool_cannot_be_reserved() {
    use switchyard::plugin::{Runtime, RuntimeConfig};
    // A billion slots of address space cannot be reserved on any machine:
    // the runtime must fall back to on-demand allocation and still work.
    let runtime = Runtime::new(RuntimeConfig { max_instances: 1 << 30, cache_dir: None, ..RuntimeConfig::default() })
        .expect("the runtime starts without the pool");
    assert!(!runtime.pooling());
    let plugin = Plugin::<Reward>::load(&runtime, &plugin_path("router-r1")).unwrap();
    assert_eq!(plugin.score(&scoring_input("Amsel", &["Amsel"]), &params(0.0)).unwrap().exact_match, 1.0);
}
