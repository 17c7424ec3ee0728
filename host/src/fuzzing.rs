//! Fuzz harnesses: one function per target, each taking arbitrary bytes and
//! panicking only when an invariant breaks. The cargo-fuzz targets in
//! `fuzz/fuzz_targets/` are one-line wrappers around these, and the host's
//! test suite replays every committed corpus file and a few thousand
//! seeded mutations through the same functions (the CI smoke run), so the
//! harnesses cannot drift from what is fuzzed.
//!
//! Targets: the router's tag parser, the configuration loader, the SSE
//! parser, and the reference adapters' reply parsing through the component.

use std::path::Path;
use std::sync::OnceLock;

use crate::backend::SseParser;
use crate::engine::protocol;
use crate::plugin::types::{Author, HttpResponse};
use crate::plugin::{Adapter, Error, Plugin, Runtime};

/// The names of the targets, as in `fuzz/fuzz_targets/<name>.rs` and
/// `fuzz/corpus/<name>/`.
pub const TARGETS: [&str; 4] = ["tag_parser", "config_loader", "sse_parser", "adapter_replies"];

/// Run target `name` on `data`.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "tag_parser" => tag_parser(data),
        "config_loader" => config_loader(data),
        "sse_parser" => sse_parser(data),
        "adapter_replies" => adapter_replies(data),
        other => panic!("no fuzz target named `{other}`"),
    }
}

/// The tag parser: never panics; segments render back to the input; router
/// segments never contain an information block; neutralised text has no tag.
pub fn tag_parser(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = protocol::parse_turn(&text);
    let segments = protocol::segments(&text);
    assert_eq!(protocol::render(&segments), text, "segments must render back to the input");
    for segment in &segments {
        assert!(!segment.text.is_empty(), "empty segment");
        if segment.author == Author::Router {
            assert!(!segment.text.contains("<information>"), "router text holds an information block");
        }
    }
    let _ = protocol::final_answer(&segments);
    let neutral = protocol::neutralise(&text).to_ascii_lowercase();
    for tag in ["<think>", "<search>", "<answer>", "<information>", "</information>"] {
        assert!(!neutral.contains(tag), "neutralised text still has {tag}");
    }
    let block = protocol::information_block(&text, 64);
    let block_segments = protocol::segments(&block);
    assert!(block_segments.iter().all(|s| s.author == Author::Host), "a reply escaped its information block");
}

/// The configuration loader: any text is a config or a `ConfigError`, never
/// a panic; a config that loads has passed validation.
pub fn config_loader(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(config) = crate::config::Config::parse(&text, Path::new("fuzz.toml")) {
        for model in &config.models {
            assert!(!model.name.trim().is_empty(), "a loaded config has an unnamed model");
            assert!(model.max_concurrency > 0 && model.timeout_ms > 0);
        }
    }
}

/// The SSE parser: the events do not depend on how the bytes are split into
/// chunks (the first byte picks the split point), and what it holds is
/// bounded by what it was given: at most three bytes per byte, since an
/// invalid UTF-8 byte becomes U+FFFD (three bytes) in a held data line.
pub fn sse_parser(data: &[u8]) {
    let Some((&split, body)) = data.split_first() else { return };
    let mut whole = SseParser::new();
    let expected = whole.push(body);
    let cut = usize::from(split).min(body.len());
    let mut chunked = SseParser::new();
    let mut events = chunked.push(&body[..cut]);
    events.extend(chunked.push(&body[cut..]));
    assert_eq!(events, expected, "events depend on chunking (split at {cut})");
    assert!(whole.buffered() <= 3 * body.len(), "the parser holds more than it was given");
    let mut bytewise = SseParser::new();
    let events: Vec<_> = body.iter().flat_map(|b| bytewise.push(std::slice::from_ref(b))).collect();
    assert_eq!(events, expected, "events differ when fed one byte at a time");
}

/// The reference adapters (each plugin keeps its runtime alive).
struct Adapters {
    openai: Plugin<Adapter>,
    anthropic: Plugin<Adapter>,
}

fn adapters() -> &'static Adapters {
    static ADAPTERS: OnceLock<Adapters> = OnceLock::new();
    ADAPTERS.get_or_init(|| {
        let dist = std::env::var_os("SWITCHYARD_FUZZ_PLUGINS")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist"));
        let runtime = Runtime::with_defaults().expect("the plugin runtime starts");
        let load = |name: &str| {
            let path = dist.join(format!("{name}.wasm"));
            Plugin::<Adapter>::load(&runtime, &path)
                .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup to build the components)", path.display()))
        };
        Adapters { openai: load("openai-chat"), anthropic: load("anthropic-messages") }
    })
}

/// The reference adapters reading replies: the first two bytes are the
/// status, the third picks the adapter and the function, the rest is the
/// body (or `event\0data` for a stream event). Refusals are fine; a trap,
/// a deadline or an oversize value from untrusted reply bytes is a bug.
pub fn adapter_replies(data: &[u8]) {
    let [hi, lo, pick, rest @ ..] = data else { return };
    let adapters = adapters();
    let adapter = if pick & 1 == 0 { &adapters.openai } else { &adapters.anthropic };
    let result = if pick & 2 == 0 {
        let status = 100 + u16::from_be_bytes([*hi, *lo]) % 500;
        adapter.parse_response(&HttpResponse { status, headers: vec![], body: rest.to_vec() }).map(|_| ())
    } else {
        let text = String::from_utf8_lossy(rest);
        let (event, data) = text.split_once('\0').unwrap_or(("", &text));
        adapter.parse_stream_event(event, data).map(|_| ())
    };
    match result {
        Ok(()) | Err(Error::Rejected { .. }) => {}
        Err(e) => panic!("adapter `{}` failed on a reply instead of refusing it: {e}", adapter.name()),
    }
}

#[cfg(test)]
mod tests {
    //! The CI smoke run of the fuzz targets: every committed corpus file,
    //! then seeded mutations of them, through the same harnesses cargo-fuzz
    //! runs (without coverage guidance: that is `cargo fuzz run`).

    use rand::{Rng, SeedableRng};

    const MUTATIONS_PER_TARGET: usize = 2_000;

    fn corpus(target: &str) -> Vec<Vec<u8>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        files.iter().map(|f| std::fs::read(f).unwrap()).collect()
    }

    fn mutate(rng: &mut rand_chacha::ChaCha8Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
        let mut data = seeds[rng.random_range(0..seeds.len())].clone();
        for _ in 0..rng.random_range(1..8) {
            let at = rng.random_range(0..=data.len());
            match rng.random_range(0..5) {
                0 if at < data.len() => data[at] ^= 1 << rng.random_range(0..8),
                1 => data.insert(at, rng.random()),
                2 if at < data.len() => {
                    data.remove(at);
                }
                3 => {
                    // Splice in a piece of another seed (tags, keys, field names).
                    let other = &seeds[rng.random_range(0..seeds.len())];
                    let start = rng.random_range(0..=other.len());
                    let end = rng.random_range(start..=other.len().min(start + 32));
                    data.splice(at..at, other[start..end].iter().copied());
                }
                _ => data.truncate(at),
            }
        }
        data
    }

    #[test]
    fn every_corpus_file_and_seeded_mutations_pass_every_target() {
        for target in super::TARGETS {
            let seeds = corpus(target);
            assert!(!seeds.is_empty(), "fuzz/corpus/{target} is empty");
            for seed in &seeds {
                super::run(target, seed);
            }
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
            for _ in 0..MUTATIONS_PER_TARGET {
                super::run(target, &mutate(&mut rng, &seeds));
            }
        }
    }
}
