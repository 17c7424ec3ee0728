//! Router-R1's format check (ROUTER_R1.md §3, with this project's fixes) and
//! answer extraction, over a trajectory's author-labelled segments.
//!
//! Invariants:
//! - Only router-written text is judged. Each host segment must be, after
//!   trimming whitespace, one `<information>...</information>` block; its
//!   content is opaque (the host has neutralised tag text in replies), so a
//!   called model can never break or fake the router's format, and an
//!   `<answer>` inside it never counts.
//! - Adjacent router segments are one text: a tag split across them is still
//!   a tag.
//! - Tags are the eight exact, case-sensitive strings `<think>`, `</think>`,
//!   ... as in the reference. A block is an opening tag and the next closing
//!   tag of the same name (the reference's non-greedy regex).
//! - Every failure found is reported (up to [`MAX_ERRORS`] messages, each with
//!   quoted text cut to [`MAX_QUOTE`] characters, so the breakdown stays
//!   small whatever the router wrote). Scanning is linear in the text size.

use switchyard_plugin_sdk::normalize::{is_py_whitespace, py_strip};

use crate::switchyard::plugin::types::{Author, ModelDescriptor, Segment};

/// At most this many format errors are listed; the rest are counted.
pub const MAX_ERRORS: usize = 32;
/// Quoted router text in an error message is cut to this many characters.
pub const MAX_QUOTE: usize = 60;

/// Placeholder words of the routing prompt (`<search> MODEL-NAME: SUB-QUERY
/// </search>` and the reference's `LLM-NAME: YOUR-QUERY`): a search whose
/// name or query is one of these was copied from the prompt, not written.
/// Matched case-insensitively; `_` variants included since they are the same slip.
const PLACEHOLDERS: [&str; 8] =
    ["model-name", "model_name", "sub-query", "sub_query", "llm-name", "llm_name", "your-query", "your_query"];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tag {
    Think,
    Search,
    Information,
    Answer,
}

const TAGS: [Tag; 4] = [Tag::Think, Tag::Search, Tag::Information, Tag::Answer];

impl Tag {
    fn name(self) -> &'static str {
        match self {
            Tag::Think => "think",
            Tag::Search => "search",
            Tag::Information => "information",
            Tag::Answer => "answer",
        }
    }

    fn open(self) -> &'static str {
        match self {
            Tag::Think => "<think>",
            Tag::Search => "<search>",
            Tag::Information => "<information>",
            Tag::Answer => "<answer>",
        }
    }

    fn close(self) -> &'static str {
        match self {
            Tag::Think => "</think>",
            Tag::Search => "</search>",
            Tag::Information => "</information>",
            Tag::Answer => "</answer>",
        }
    }

    fn index(self) -> usize {
        match self {
            Tag::Think => 0,
            Tag::Search => 1,
            Tag::Information => 2,
            Tag::Answer => 3,
        }
    }
}

/// One tag occurrence; `start..end` are byte offsets in the full text.
#[derive(Clone, Copy, Debug)]
struct Event {
    tag: Tag,
    opening: bool,
    start: usize,
    end: usize,
    by_host: bool,
}

/// A maximal run of same-author text; `start..end` in the full text.
struct Run {
    author: Author,
    start: usize,
    end: usize,
}

/// The trajectory text and its runs.
struct Text {
    full: String,
    runs: Vec<Run>,
}

impl Text {
    fn new(segments: &[Segment]) -> Self {
        let mut full = String::new();
        let mut runs: Vec<Run> = Vec::new();
        for seg in segments {
            let start = full.len();
            full.push_str(&seg.text);
            let end = full.len();
            // Router text is merged across segments; each host segment is
            // its own block, so host runs are never merged.
            match runs.last_mut() {
                Some(last) if last.author == Author::Router && seg.author == Author::Router => {
                    last.end = end;
                }
                _ => runs.push(Run { author: seg.author, start, end }),
            }
        }
        Text { full, runs }
    }

    fn slice(&self, start: usize, end: usize) -> &str {
        self.full.get(start..end).unwrap_or("")
    }
}

/// Outcome of the format check.
#[derive(Debug, Default)]
pub struct FormatCheck {
    /// Every failure found (the first [`MAX_ERRORS`], then a count); empty
    /// when the format is valid.
    pub errors: Vec<String>,
    /// Failures beyond [`MAX_ERRORS`], counted but not kept, so memory stays
    /// bounded whatever the router wrote.
    dropped: usize,
}

impl FormatCheck {
    /// 0 when valid, -1 otherwise.
    pub fn score(&self) -> f64 {
        if self.errors.is_empty() { 0.0 } else { -1.0 }
    }

    fn fail(&mut self, message: String) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(message);
        } else {
            self.dropped += 1;
        }
    }

    fn finish(mut self) -> Self {
        if self.dropped > 0 {
            self.errors.push(format!("... and {} more format errors", self.dropped));
        }
        self
    }
}

/// `s` cut to [`MAX_QUOTE`] characters, for quoting in a message.
fn quote(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTE) {
        Some((i, _)) => format!("{}...", s.get(..i).unwrap_or("")),
        None => s.to_string(),
    }
}

/// Tag occurrences in order. Err names a malformed host segment (a contract
/// violation by the host, not a router failure).
fn scan(text: &Text) -> Result<Vec<Event>, String> {
    let mut events = Vec::new();
    for (run_no, run) in text.runs.iter().enumerate() {
        let body = text.slice(run.start, run.end);
        match run.author {
            Author::Host => {
                let trimmed = py_strip(body);
                let open = Tag::Information.open();
                let close = Tag::Information.close();
                if trimmed.len() < open.len() + close.len() || !trimmed.starts_with(open) || !trimmed.ends_with(close) {
                    return Err(format!(
                        "host segment (run {}) is not one <information>...</information> block: `{}`",
                        run_no + 1,
                        quote(trimmed)
                    ));
                }
                // Offsets of the trimmed block inside the full text.
                let lead = body.len() - body.trim_start_matches(is_py_whitespace).len();
                let start = run.start + lead;
                let end = start + trimmed.len();
                events.push(Event {
                    tag: Tag::Information,
                    opening: true,
                    start,
                    end: start + open.len(),
                    by_host: true,
                });
                events.push(Event {
                    tag: Tag::Information,
                    opening: false,
                    start: end - close.len(),
                    end,
                    by_host: true,
                });
            }
            Author::Router => {
                for (i, _) in body.match_indices('<') {
                    let rest = body.get(i..).unwrap_or("");
                    for tag in TAGS {
                        for (pattern, opening) in [(tag.open(), true), (tag.close(), false)] {
                            if rest.starts_with(pattern) {
                                let start = run.start + i;
                                events.push(Event { tag, opening, start, end: start + pattern.len(), by_host: false });
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(events)
}

/// A paired block: the content between its tags, and the first other tag
/// found inside it, if any (nesting).
struct Block {
    tag: Tag,
    content_start: usize,
    content_end: usize,
    inner: Option<Tag>,
}

/// Pairs each opening tag with the next closing tag of the same name,
/// skipping what lies inside, as the reference's `<(tag)>(.*?)</\1>`
/// `findall` does. Also returns unpaired tags, for the balance checks.
fn pair(events: &[Event]) -> (Vec<Block>, Vec<Event>) {
    // next_close[i]: index of the first closing event of events[i]'s tag
    // after i. Built backwards so pairing stays linear.
    let mut next_close = vec![None; events.len()];
    let mut seen: [Option<usize>; 4] = [None; 4];
    for (i, e) in events.iter().enumerate().rev() {
        if let Some(slot) = next_close.get_mut(i) {
            *slot = seen[e.tag.index()];
        }
        if !e.opening {
            seen[e.tag.index()] = Some(i);
        }
    }
    let mut blocks = Vec::new();
    let mut unpaired = Vec::new();
    let mut i = 0;
    while let Some(e) = events.get(i) {
        match (e.opening, next_close.get(i).copied().flatten()) {
            (true, Some(j)) => {
                let close_start = events.get(j).map_or(e.end, |c| c.start);
                let inner = if j > i + 1 { events.get(i + 1).map(|x| x.tag) } else { None };
                blocks.push(Block { tag: e.tag, content_start: e.end, content_end: close_start, inner });
                i = j + 1;
            }
            _ => {
                unpaired.push(*e);
                i += 1;
            }
        }
    }
    (blocks, unpaired)
}

/// Whether `name` (trimmed) names a pool model, by exact case-insensitive
/// match on its name or an alias. Returns the model's canonical name.
fn resolve<'p>(name: &str, pool: &'p [ModelDescriptor]) -> Option<&'p str> {
    let wanted = py_strip(name).to_lowercase();
    pool.iter()
        .find(|m| core::iter::once(&m.name).chain(m.aliases.iter()).any(|n| py_strip(n).to_lowercase() == wanted))
        .map(|m| m.name.as_str())
}

/// Checks one search block's content (`name: query`, split at the first
/// colon).
fn check_search(no: usize, content: &str, pool: &[ModelDescriptor], check: &mut FormatCheck) {
    let content = py_strip(content);
    // A field that *is* a placeholder was copied from the prompt; a real
    // query may mention the words ("what is a SQL sub-query?").
    let is_placeholder = |field: &str| {
        let field = py_strip(field).to_lowercase();
        PLACEHOLDERS.iter().find(|p| **p == field).copied()
    };
    let (head, tail) = content.split_once(':').unwrap_or((content, ""));
    if let Some(p) = is_placeholder(head).or_else(|| is_placeholder(tail)) {
        check.fail(format!("search #{no} still contains the prompt's placeholder `{p}`: `{}`", quote(content)));
    }
    let Some((name, query)) = content.split_once(':') else {
        check.fail(format!("search #{no} is not `model: query` (no colon): `{}`", quote(content)));
        return;
    };
    let (name, query) = (py_strip(name), py_strip(query));
    if name.is_empty() {
        check.fail(format!("search #{no} has an empty model name: `{}`", quote(content)));
    }
    if query.is_empty() {
        check.fail(format!("search #{no} has an empty query: `{}`", quote(content)));
    }
    if name.is_empty() {
        return;
    }
    let resolved = resolve(name, pool);
    let query_lower = query.to_lowercase();
    let own_names = core::iter::once(name).chain(resolved.filter(|r| !py_strip(r).is_empty()));
    if let Some(own) = own_names.map(py_strip).find(|n| query_lower.contains(&n.to_lowercase())) {
        check.fail(format!("search #{no}: the query contains the model's own name `{}`", quote(own)));
    }
    if resolved.is_none() {
        let mut known: Vec<&str> = pool.iter().map(|m| m.name.as_str()).take(12).collect();
        if pool.len() > known.len() {
            known.push("...");
        }
        check.fail(format!(
            "search #{no}: `{}` is not a pool model (known: {})",
            quote(name),
            if known.is_empty() { String::from("none") } else { known.join(", ") }
        ));
    }
}

/// Runs every format rule over `segments`. Err means the input breaks the
/// plugin contract (a malformed host segment), not that the format failed.
pub fn check_format(segments: &[Segment], pool: &[ModelDescriptor]) -> Result<FormatCheck, String> {
    let text = Text::new(segments);
    let events = scan(&text)?;
    let (blocks, unpaired) = pair(&events);
    let mut check = FormatCheck::default();

    if blocks.is_empty() {
        check.fail(String::from("no <think>, <search>, <information> or <answer> block at all"));
    }

    for tag in TAGS {
        let opens = events.iter().filter(|e| e.tag == tag && e.opening).count();
        let closes = events.iter().filter(|e| e.tag == tag && !e.opening).count();
        if opens != closes {
            check.fail(format!("unbalanced <{0}>: {opens} opening and {closes} closing tags", tag.name()));
        } else {
            // Equal counts but out of order, e.g. `</think> ... <think>`.
            let stray = |opening: bool| unpaired.iter().any(|e| e.tag == tag && e.opening == opening);
            if stray(false) {
                check.fail(format!("unbalanced <{}>: a `{}` closes no open block", tag.name(), tag.close()));
            }
            if stray(true) {
                check.fail(format!("unbalanced <{}>: a `{}` is never closed", tag.name(), tag.open()));
            }
        }
    }

    let router_info = events.iter().filter(|e| e.tag == Tag::Information && !e.by_host).count();
    if router_info > 0 {
        check.fail(format!("the router wrote {router_info} <information> tag(s); only the host inserts information"));
    }

    for b in blocks.iter() {
        if let Some(inner) = b.inner {
            check.fail(format!("<{}> tag inside a <{}> block", inner.name(), b.tag.name()));
        }
    }

    let count = |tag: Tag| blocks.iter().filter(|b| b.tag == tag).count();
    let thinks: Vec<&Block> = blocks.iter().filter(|b| b.tag == Tag::Think).collect();
    if thinks.is_empty() {
        check.fail(String::from("no <think> block"));
    }
    for (k, b) in thinks.iter().enumerate() {
        let content = py_strip(text.slice(b.content_start, b.content_end));
        if content.is_empty() || content == "..." {
            check.fail(format!("<think> block #{} is empty or just `...`", k + 1));
        }
    }

    let answers = count(Tag::Answer);
    if answers != 1 {
        check.fail(format!("expected exactly one <answer> block, found {answers}"));
    }

    let (searches, infos) = (count(Tag::Search), count(Tag::Information));
    if searches != infos {
        check.fail(format!("{searches} <search> block(s) but {infos} <information> block(s)"));
    }

    let whole = py_strip(&text.full);
    if !whole.starts_with(Tag::Think.open()) {
        check.fail(format!("the text does not start with <think>: `{}`", quote(whole)));
    }
    if !whole.ends_with(Tag::Answer.close()) {
        check.fail(String::from("the text does not end with </answer>"));
    }

    // Nested searches are already failures and their content holds tags, so
    // only well-formed blocks get the content rules.
    let searches = blocks.iter().filter(|b| b.tag == Tag::Search);
    for (k, b) in searches.enumerate() {
        if b.inner.is_none() {
            check_search(k + 1, text.slice(b.content_start, b.content_end), pool, &mut check);
        }
    }

    Ok(check.finish())
}

/// The router's final answer: the content of the last `<answer>...</answer>`
/// within router-written text, trimmed (the reference's `<answer>(.*?)
/// </answer>` regex, minus matches in or across host blocks).
pub fn last_answer(segments: &[Segment]) -> Option<String> {
    let text = Text::new(segments);
    let (open, close) = (Tag::Answer.open(), Tag::Answer.close());
    let mut last = None;
    for run in text.runs.iter().filter(|r| r.author == Author::Router) {
        let mut rest = text.slice(run.start, run.end);
        while let Some(at) = rest.find(open) {
            let after = rest.get(at + open.len()..).unwrap_or("");
            let Some(end) = after.find(close) else { break };
            last = Some(after.get(..end).unwrap_or(""));
            rest = after.get(end + close.len()..).unwrap_or("");
        }
    }
    last.map(|a| py_strip(a).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{good, info, model, pool, r};

    fn errors(segments: &[Segment]) -> Vec<String> {
        check_format(segments, &pool()).expect("well-formed host segments").errors
    }

    /// Asserts the format fails with a message containing `needle`.
    fn fails_with(segments: &[Segment], needle: &str) {
        let errs = errors(segments);
        assert!(errs.iter().any(|e| e.contains(needle)), "expected `{needle}` in {errs:#?}");
    }

    fn search_traj(search: &str) -> Vec<Segment> {
        vec![
            r(&format!("<think>plan</think><search>{search}</search>")),
            info("reply"),
            r("<think>done</think><answer>x</answer>"),
        ]
    }

    #[test]
    fn valid_trajectories_pass() {
        assert_eq!(errors(&good("Paris")), Vec::<String>::new());
        // No routing at all is fine too.
        assert!(errors(&[r("<think>I know this.</think>\n<answer>Paris</answer>")]).is_empty());
        // Surrounding whitespace, including Python-only whitespace (U+001C).
        assert!(errors(&[r("\u{1c}\n <think>a</think><answer>b</answer>\u{3000}\n")]).is_empty());
        let check = check_format(&good("Paris"), &pool()).unwrap();
        assert_eq!(check.score(), 0.0);
    }

    #[test]
    fn no_tags_at_all() {
        fails_with(&[r("Paris")], "no <think>, <search>, <information> or <answer> block at all");
        fails_with(&[r("")], "at all");
        fails_with(&[], "at all");
        assert_eq!(check_format(&[r("Paris")], &pool()).unwrap().score(), -1.0);
    }

    #[test]
    fn unbalanced_tags() {
        fails_with(&[r("<think>a</think><think>b<answer>x</answer>")], "unbalanced <think>: 2 opening and 1 closing");
        fails_with(&[r("<think>a</think><answer>x</answer></answer>")], "unbalanced <answer>");
        let mut t = good("x");
        t[0] = r("<think>a</think><search>Qwen2.5-7B-Instruct: q</search></search>");
        fails_with(&t, "unbalanced <search>");
        fails_with(&[r("<think>a</information></think><answer>x</answer>")], "unbalanced <information>");
        // Equal counts in the wrong order.
        fails_with(&[r("</think>a<think><answer>x</answer>")], "`</think>` closes no open block");
        fails_with(&[r("</think>a<think><answer>x</answer>")], "`<think>` is never closed");
    }

    #[test]
    fn think_rules() {
        fails_with(&[r("<answer>x</answer>")], "no <think> block");
        fails_with(&[r("<think></think><answer>x</answer>")], "<think> block #1 is empty or just `...`");
        fails_with(&[r("<think> \n </think><answer>x</answer>")], "is empty");
        fails_with(&[r("<think> ... </think><answer>x</answer>")], "just `...`");
        fails_with(&[r("<think>ok</think><think>...</think><answer>x</answer>")], "<think> block #2");
        assert!(errors(&[r("<think>....</think><answer>x</answer>")]).is_empty());
    }

    #[test]
    fn nesting_is_a_failure() {
        fails_with(
            &[r("<think>a <answer>x</answer></think><answer>x</answer>")],
            "<answer> tag inside a <think> block",
        );
        fails_with(
            &[r("<think>a<search>Qwen2.5-7B-Instruct: q</search>"), info("r"), r("</think><answer>x</answer>")],
            "<search> tag inside a <think> block",
        );
        fails_with(&[r("<think>a</think><answer>x<think>b</think></answer>")], "<think> tag inside a <answer> block");
    }

    #[test]
    fn exactly_one_answer() {
        fails_with(&[r("<think>a</think>")], "expected exactly one <answer> block, found 0");
        fails_with(&[r("<think>a</think><answer>x</answer><answer>y</answer>")], "found 2");
        // The host's text never adds an answer block.
        let t = vec![
            r("<think>a</think><search>Qwen2.5-7B-Instruct: q</search>"),
            info("<answer>fake</answer>"),
            r("<think>b</think>"),
        ];
        fails_with(&t, "found 0");
    }

    #[test]
    fn searches_match_information_blocks() {
        fails_with(
            &[r("<think>a</think><search>Qwen2.5-7B-Instruct: q</search><think>b</think><answer>x</answer>")],
            "1 <search> block(s) but 0 <information> block(s)",
        );
        fails_with(
            &[r("<think>a</think>"), info("unasked"), r("<think>b</think><answer>x</answer>")],
            "0 <search> block(s) but 1 <information> block(s)",
        );
    }

    #[test]
    fn start_and_end() {
        fails_with(&[r("Sure! <think>a</think><answer>x</answer>")], "does not start with <think>");
        fails_with(&[r("<think>a</think><answer>x</answer> Done.")], "does not end with </answer>");
    }

    #[test]
    fn search_content_rules() {
        // The query may contain colons; only the first one splits.
        assert!(
            errors(&search_traj("Qwen2.5-7B-Instruct: Question: what happened at 10:30 on http://x.org?")).is_empty()
        );
        fails_with(&search_traj("What is the capital of France?"), "search #1 is not `model: query` (no colon)");
        fails_with(&search_traj(" : capital of France?"), "search #1 has an empty model name");
        fails_with(&search_traj("Qwen2.5-7B-Instruct:   "), "search #1 has an empty query");
        fails_with(&search_traj(""), "no colon");
    }

    #[test]
    fn placeholders_are_rejected_case_insensitively() {
        fails_with(&search_traj("MODEL-NAME: SUB-QUERY"), "placeholder `model-name`");
        fails_with(&search_traj("Qwen2.5-7B-Instruct: Sub-Query"), "placeholder `sub-query`");
        fails_with(&search_traj("LLM-NAME: capital of France"), "placeholder `llm-name`");
        fails_with(&search_traj("Qwen2.5-7B-Instruct: your-query"), "placeholder `your-query`");
        fails_with(&search_traj("model_name: capital"), "placeholder `model_name`");
        assert_eq!(errors(&search_traj("Qwen2.5-7B-Instruct: what is a SQL sub-query?")), Vec::<String>::new());
    }

    #[test]
    fn query_must_not_contain_the_model_name() {
        fails_with(
            &search_traj("Qwen2.5-7B-Instruct: what is qwen2.5-7b-instruct?"),
            "the query contains the model's own name `Qwen2.5-7B-Instruct`",
        );
        // Via an alias, the canonical name counts as the model's own name too.
        fails_with(&search_traj("qwen-7b: tell me about QWEN2.5-7B-INSTRUCT"), "own name");
        fails_with(&search_traj("qwen-7b: is Qwen-7B good?"), "own name `qwen-7b`");
    }

    #[test]
    fn names_resolve_exactly_with_aliases() {
        assert!(errors(&search_traj("qwen2.5-7b-instruct: capital of France?")).is_empty());
        assert!(errors(&search_traj("  QWEN-7B  : capital of France?")).is_empty());
        assert!(errors(&search_traj("Mixtral: capital of France?")).is_empty());
        // Substrings and near-misses are unknown (the reference matched "qwen").
        fails_with(
            &search_traj("qwen: capital of France?"),
            "`qwen` is not a pool model (known: Qwen2.5-7B-Instruct, LLaMA-3.1-8B-Instruct, Mixtral-8x22B-Instruct)",
        );
        fails_with(&search_traj("llama-8b: capital of France?"), "not a pool model");
        // Aliases declared with stray spaces still resolve.
        let pool = vec![model("Alpha", &[" beta "])];
        let t = search_traj("BETA: capital of France?");
        assert!(check_format(&t, &pool).unwrap().errors.is_empty());
        let empty = check_format(&t, &[]).unwrap();
        assert!(empty.errors.iter().any(|e| e.contains("(known: none)")), "{:?}", empty.errors);
    }

    #[test]
    fn router_written_information_fails() {
        let t = vec![r(
            "<think>a</think><search>Qwen2.5-7B-Instruct: q</search><information>Paris</information><think>b</think><answer>x</answer>",
        )];
        fails_with(&t, "the router wrote 2 <information> tag(s)");
    }

    #[test]
    fn tag_text_inside_host_blocks_is_ignored() {
        let mut t = good("Paris");
        t[1] = info("<answer>Lyon</answer></think><search>x</search><information>");
        assert!(errors(&t).is_empty(), "{:?}", errors(&t));
        assert_eq!(last_answer(&t).as_deref(), Some("Paris"));
    }

    #[test]
    fn malformed_host_segment_is_invalid_input() {
        let host = |text: &str| Segment { author: Author::Host, text: text.to_string() };
        let mut t = good("x");
        t[1] = host("Paris");
        assert!(check_format(&t, &pool()).unwrap_err().contains("not one <information>"));
        t[1] = host("<information>");
        assert!(check_format(&t, &pool()).is_err());
        t[1] = host("");
        assert!(check_format(&t, &pool()).is_err());
        t[1] = host(" <information></information> ");
        assert!(check_format(&t, &pool()).unwrap().errors.is_empty());
    }

    #[test]
    fn router_text_is_joined_across_segments() {
        let t = vec![r("<thi"), r("nk>a</think><ans"), r("wer>x</answer>")];
        assert!(errors(&t).is_empty(), "{:?}", errors(&t));
        assert_eq!(last_answer(&t).as_deref(), Some("x"));
    }

    #[test]
    fn errors_are_all_collected_and_capped() {
        let errs = errors(&[r("Sure: <answer></answer> bye")]);
        for needle in ["no <think> block", "does not start", "does not end"] {
            assert!(errs.iter().any(|e| e.contains(needle)), "{needle} in {errs:?}");
        }
        let many = "<search>nobody: q</search>".repeat(200);
        let errs = errors(&[r(&many)]);
        assert_eq!(errs.len(), MAX_ERRORS + 1);
        assert!(errs.last().unwrap().starts_with("... and "));
        // Quotes are cut.
        let long = format!("x{}", "y".repeat(500));
        let errs = errors(&search_traj(&long));
        assert!(errs.iter().all(|e| e.chars().count() < MAX_QUOTE + 80), "{errs:?}");
    }

    #[test]
    fn answer_extraction() {
        assert_eq!(last_answer(&good("  Paris \n")).as_deref(), Some("Paris"));
        assert_eq!(last_answer(&[r("<answer>a</answer><answer>b</answer>")]).as_deref(), Some("b"));
        assert_eq!(last_answer(&[r("<answer>a<answer>b</answer>")]).as_deref(), Some("a<answer>b"));
        assert_eq!(last_answer(&[r("<answer></answer>")]).as_deref(), Some(""));
        assert_eq!(last_answer(&[r("<answer>unclosed")]), None);
        assert_eq!(last_answer(&[]), None);
        // Only inside host text: no answer.
        assert_eq!(last_answer(&[r("<think>a</think>"), info("<answer>Lyon</answer>")]), None);
        // An answer spanning a host block is not router-written.
        assert_eq!(last_answer(&[r("<answer>a"), info("b"), r("c</answer>")]), None);
    }

    #[test]
    fn quote_cuts_on_char_boundaries() {
        let s = "é".repeat(100);
        let q = quote(&s);
        assert_eq!(q.chars().count(), MAX_QUOTE + 3);
        assert_eq!(quote("short"), "short");
    }
}
