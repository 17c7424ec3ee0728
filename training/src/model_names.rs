//! Made-up model names, in the shapes real ones take (`family-2.5-13b-chat`,
//! `family3-turbo-70b`, ...), for training episodes that list pool models under names the
//! router has never seen (`EnvOptions::rename_models`).
//!
//! Invariants: a name is a pure function of the generator's state and the names it must
//! avoid; it is never one of those (compared case-insensitively), holds no colon (the
//! protocol splits `name: query` on it), and no part of it is a part of the world's
//! held-out model names that no pool model's name has (`palmyra`, `creative`, `chatqa`), so
//! the unseen-model experiment's names stay unseen.

use rand::Rng;
use rand::seq::IndexedRandom;

/// Families of real model lines and invented ones; `made_up` also builds words from syllables.
const FAMILIES: [&str; 20] = [
    "falcon", "phi", "yi", "command", "jamba", "granite", "olmo", "solar", "nemotron", "aya", "orca", "zephyr",
    "starling", "hermes", "openchat", "internlm", "deepseek", "qwen", "llama", "gemma",
];
const ONSETS: [&str; 18] =
    ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "kr", "st", "tr"];
const VOWELS: [&str; 7] = ["a", "e", "i", "o", "u", "ai", "eo"];
const CODAS: [&str; 6] = ["", "n", "r", "s", "x", "l"];
const VARIANTS: [&str; 12] =
    ["instruct", "chat", "turbo", "pro", "mini", "lite", "plus", "base", "coder", "reasoner", "it", "hf"];
const SIZES: [u32; 8] = [1, 3, 7, 8, 13, 34, 70, 180];

/// A made-up name for a model of `size_b` billion parameters (a typical size when unknown),
/// none of `taken` (lower-cased names).
pub fn made_up(rng: &mut impl Rng, size_b: Option<f64>, taken: &[String]) -> String {
    loop {
        let name = candidate(rng, size_b);
        if !taken.contains(&name.to_lowercase()) {
            return name;
        }
    }
}

fn candidate(rng: &mut impl Rng, size_b: Option<f64>) -> String {
    let family = if rng.random_bool(0.5) {
        FAMILIES.choose(rng).copied().unwrap_or("orca").to_string()
    } else {
        (0..rng.random_range(2..=3))
            .map(|_| {
                let pick = |set: &[&'static str], rng: &mut _| set.choose(rng).copied().unwrap_or("");
                format!("{}{}{}", pick(&ONSETS, rng), pick(&VOWELS, rng), pick(&CODAS, rng))
            })
            .collect()
    };
    let size = match size_b {
        Some(b) if b >= 1.0 => format!("{}b", b.round()),
        _ => format!("{}b", SIZES.choose(rng).copied().unwrap_or(7)),
    };
    let major = rng.random_range(1..=4);
    let version = if rng.random_bool(0.5) { format!("{major}.{}", rng.random_range(0..=9)) } else { major.to_string() };
    let variant = VARIANTS.choose(rng).copied().unwrap_or("chat");
    match rng.random_range(0..4) {
        0 => format!("{family}-{version}-{size}-{variant}"),
        1 => format!("{family}{major}-{variant}-{size}"),
        2 => format!("{family}-{variant}-{size}"),
        _ => format!("{family}-{version}-{size}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn names_are_reproducible_varied_and_avoid_what_is_taken() {
        let draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..200).map(|i| made_up(&mut rng, [Some(7.0), Some(141.0), None][i % 3], &[])).collect::<Vec<_>>()
        };
        let names = draw(1);
        assert_eq!(names, draw(1));
        assert_ne!(names, draw(2));
        let distinct: std::collections::BTreeSet<_> = names.iter().collect();
        assert!(distinct.len() > 150, "only {} distinct names in 200", distinct.len());
        for (i, n) in names.iter().enumerate() {
            assert!(!n.contains(':') && !n.trim().is_empty() && !n.contains(char::is_whitespace), "{n}");
            for held_out in ["palmyra", "creative", "chatqa"] {
                assert!(!n.contains(held_out), "{n} gives away a held-out name");
            }
            match i % 3 {
                0 => assert!(n.contains("-7b"), "{n}: a 7B model's name says so"),
                1 => assert!(n.contains("-141b"), "{n}"),
                _ => {}
            }
        }
        // A taken name (any case) is never drawn again.
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let first = made_up(&mut rng, Some(7.0), &[]);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let second = made_up(&mut rng, Some(7.0), &[first.to_uppercase().to_lowercase()]);
        assert_ne!(first, second);
    }
}
