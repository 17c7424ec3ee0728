//! Components are compiled once and cached on disk by content hash and
//! engine compatibility; a corrupted cache entry is recompiled, not run.

use switchyard::plugin::loader::CacheStatus;
use switchyard::plugin::{Plugin, Reward};
use switchyard_tests::*;

#[test]
fn second_load_hits_the_cache_and_corruption_is_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().to_path_buf();
    let first = Plugin::<Reward>::load(&runtime_with(true, Some(cache.clone())), &plugin("router-r1")).unwrap();
    assert_eq!(first.info().cache, CacheStatus::Miss);

    let runtime = runtime_with(true, Some(cache.clone()));
    let second = Plugin::<Reward>::load(&runtime, &plugin("router-r1")).unwrap();
    assert_eq!(second.info().cache, CacheStatus::Hit);
    assert!(second.info().compile_time < first.info().compile_time);
    assert_eq!(second.score(&scoring_input("Amsel", &["Amsel"]), &params(0.0)).unwrap().exact_match, 1.0);

    // Corrupt every artifact: the next load must notice and recompile.
    for entry in std::fs::read_dir(&cache).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            let mut bytes = std::fs::read(&path).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xff;
            std::fs::write(&path, bytes).unwrap();
        }
    }
    let third = Plugin::<Reward>::load(&runtime_with(true, Some(cache.clone())), &plugin("router-r1")).unwrap();
    assert_eq!(third.info().cache, CacheStatus::Miss);
    assert_eq!(third.score(&scoring_input("Amsel", &["Amsel"]), &params(0.0)).unwrap().exact_match, 1.0);
    let fourth = Plugin::<Reward>::load(&runtime_with(true, Some(cache)), &plugin("router-r1")).unwrap();
    assert_eq!(fourth.info().cache, CacheStatus::Hit, "the recompiled artifact was written back");
}

#[test]
fn different_components_get_different_entries() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime_with(true, Some(dir.path().to_path_buf()));
    let a = Plugin::<Reward>::load(&runtime, &plugin("router-r1")).unwrap();
    let b = Plugin::<Reward>::load(&runtime, &guest("misbehaving-reward")).unwrap();
    assert_ne!(a.info().sha256, b.info().sha256);
    let artifacts = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "cwasm"))
        .count();
    assert_eq!(artifacts, 2);
}
