//! Synthetic model profiles: random simulated LLMs for training a router to read descriptors.
//!
//! The default pool has six fixed profiles, so a router trained on it can route by what it
//! remembers of each one (or of its price and size, once names are hidden) instead of by what
//! a listing says. Synthetic profiles break that: each has its own per-domain coverage, its
//! own multi-hop ability and a price tied to its size but not fixed by it, so across episodes
//! the cheap model strong in sports is sometimes a 3B line at $0.12 and sometimes nobody — only
//! the descriptor tells. They are served by the same simulated endpoint as the default pool
//! (their knowledge is a hash of the world seed, the profile's name and the fact, as for every
//! simulated model) and are shaped like it: small models know one or two domains well and
//! answer one step at a time, large ones know more of everything and compose.
//!
//! Invariants: `profiles(n, seed)` is a pure function of its arguments, and its first `k`
//! profiles are `profiles(k, seed)`; every name starts with [`NAME_PREFIX`], which no default
//! profile's name does; none is held out.

use std::collections::BTreeMap;

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::models::Profile;
use super::world::Domain;

/// What every synthetic profile's name starts with (its backend id; a training listing shows
/// it under a made-up name).
pub const NAME_PREFIX: &str = "synthetic-";

/// Sizes, in billions of parameters, drawn uniformly: as many small lines as large ones.
const SIZES: [f64; 12] = [1.0, 3.0, 7.0, 8.0, 9.0, 13.0, 27.0, 34.0, 70.0, 122.0, 141.0, 180.0];

/// Models at least this large usually compose (answer two-hop and comparison questions in one
/// call); smaller ones rarely do, as in the default pool.
const LARGE_B: f64 = 20.0;

/// `count` synthetic profiles drawn from `seed`.
pub fn profiles(count: usize, seed: u64) -> Vec<Profile> {
    (0..count).map(|i| profile(i, seed)).collect()
}

fn profile(index: usize, seed: u64) -> Profile {
    // One generator per profile, so a profile does not depend on how many come before it.
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let size_b = *SIZES.choose(&mut rng).unwrap_or(&8.0);
    let large = size_b >= LARGE_B;
    // 0 for a 1B model, 1 for a 180B one: how broad its knowledge is, before specialities.
    let scale = size_b.ln() / 180f64.ln();
    // The default pool's prices per size (8B ~$0.2, 70B ~$0.9, 141B ~$1.2), times up to +-40%.
    let price = round2(0.2 * (size_b / 8.0).powf(0.65) * rng.random_range(0.6..=1.4)).max(0.01);
    let base = (0.1 + 0.65 * scale + rng.random_range(-0.1..=0.1)).clamp(0.05, 0.85);
    let mut coverage: BTreeMap<Domain, f64> = Domain::ALL.iter().map(|d| (*d, round2(base))).collect();
    let specialities = if large { rng.random_range(0..=2) } else { rng.random_range(1..=2) };
    for domain in Domain::ALL.choose_multiple(&mut rng, specialities) {
        coverage.insert(*domain, round2(rng.random_range(0.75..=0.97)));
    }
    let multi_hop = rng.random_bool(if large { 0.85 } else { 0.1 });
    Profile {
        name: format!("{NAME_PREFIX}{index:03}"),
        price_in_per_mtok: price,
        price_out_per_mtok: price,
        latency_ms: (250.0 + 8.0 * size_b) as u32,
        context_tokens: 32_768,
        size_b,
        coverage,
        multi_hop,
        hallucination: round2((0.35 - 0.3 * scale + rng.random_range(-0.05..=0.05)).clamp(0.02, 0.4)),
        verbosity: rng.random_range(0..=5),
        held_out: false,
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::models::default_profiles;

    #[test]
    fn profiles_are_reproducible_and_prefix_stable() {
        let a = profiles(50, 7);
        let b = profiles(80, 7);
        let names = |p: &[Profile]| p.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>();
        assert_eq!(names(&a), names(&b[..50]));
        assert_ne!(names(&a), names(&profiles(50, 8)));
        for p in &b {
            assert!(p.name.starts_with(NAME_PREFIX) && !p.held_out);
        }
        assert!(default_profiles().iter().all(|p| !p.name.starts_with(NAME_PREFIX)));
    }

    #[test]
    fn profiles_vary_the_way_a_descriptor_can_tell() {
        let all = profiles(400, 0);
        for p in &all {
            assert!(p.price_out_per_mtok > 0.0 && p.coverage.len() == Domain::ALL.len(), "{p:?}");
            assert!(p.coverage.values().all(|c| (0.0..=1.0).contains(c)), "{p:?}");
            // Every small model is good at something: worth calling for that domain.
            if p.size_b < LARGE_B {
                assert!(p.coverage.values().any(|c| *c >= 0.75), "{p:?}");
            }
        }
        let mean = |f: &dyn Fn(&Profile) -> f64, large: bool| {
            let sel: Vec<f64> = all.iter().filter(|p| (p.size_b >= LARGE_B) == large).map(f).collect();
            sel.iter().sum::<f64>() / sel.len() as f64
        };
        // Price and breadth grow with size; composing is mostly for large models.
        assert!(mean(&|p| p.price_out_per_mtok, true) > 2.0 * mean(&|p| p.price_out_per_mtok, false));
        let breadth = |p: &Profile| p.coverage.values().sum::<f64>() / 5.0;
        assert!(mean(&breadth, true) > mean(&breadth, false) + 0.15);
        assert!(mean(&|p| f64::from(u8::from(p.multi_hop)), true) > 0.7);
        assert!(mean(&|p| f64::from(u8::from(p.multi_hop)), false) < 0.25);
        // No domain's best cheap model is always the same kind: each domain has small
        // specialists, and for each some large model too.
        for d in Domain::ALL {
            let strong =
                |large: bool| all.iter().filter(|p| (p.size_b >= LARGE_B) == large && p.coverage[&d] >= 0.75).count();
            assert!(
                strong(false) >= 20 && strong(true) >= 20,
                "{d:?}: {} small, {} large",
                strong(false),
                strong(true)
            );
        }
        // Prices overlap across sizes, so price alone does not give the size away.
        let cheapest_large =
            all.iter().filter(|p| p.size_b >= 70.0).map(|p| p.price_out_per_mtok).fold(f64::MAX, f64::min);
        let dearest_small = all.iter().filter(|p| p.size_b <= 27.0).map(|p| p.price_out_per_mtok).fold(0.0, f64::max);
        assert!(cheapest_large < dearest_small, "{cheapest_large} {dearest_small}");
    }
}
