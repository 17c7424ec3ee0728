//! Helpers for backend adapters, over plain strings and JSON values (each
//! adapter keeps its own bindings and its provider-specific parsing).

use alloc::format;
use alloc::string::String;
use serde_json::Value;

/// Provider text quoted in an error is cut to this many characters.
pub const QUOTE_CHARS: usize = 300;

/// `{base-url}/{path}`, after checking the base URL is a plain http(s) URL
/// (a host, no query, fragment or whitespace). The error explains why not.
pub fn endpoint(base_url: &str, path: &str) -> Result<String, String> {
    let base = base_url.trim().trim_end_matches('/');
    let lower = base.to_ascii_lowercase();
    let rest = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://"));
    let Some(rest) = rest else {
        return Err(format!("base-url must be an http(s) URL, got `{base_url}`"));
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("base-url has no host: `{base_url}`"));
    }
    // A query or fragment would end up before the path we append.
    if rest.contains(['?', '#']) || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("base-url must not contain a query, fragment or whitespace: `{base_url}`"));
    }
    Ok(format!("{base}/{path}"))
}

/// At most [`QUOTE_CHARS`] characters of `text`, whitespace collapsed and
/// control characters dropped so the quote fits on one log line.
pub fn quote(text: &str) -> String {
    let mut out = String::new();
    for (n, word) in text.split_whitespace().enumerate() {
        if n > 0 {
            out.push(' ');
        }
        out.extend(word.chars().filter(|c| !c.is_control()));
        if out.chars().count() > QUOTE_CHARS {
            let cut: String = out.chars().take(QUOTE_CHARS).collect();
            return cut + "...";
        }
    }
    out
}

/// The message of an error reply: the status, then the provider's message
/// (read by `provider_error`), else the start of the body, whatever it is.
pub fn http_error(status: u16, body: &[u8], provider_error: impl Fn(&Value) -> Option<String>) -> String {
    let raw = || quote(&String::from_utf8_lossy(body));
    let detail = match serde_json::from_slice::<Value>(body) {
        Ok(v) => provider_error(&v).unwrap_or_else(raw),
        // Not JSON: an HTML error page, plain text, or a truncated reply.
        Err(_) => raw(),
    };
    if detail.is_empty() {
        format!("provider returned HTTP {status} with an empty body")
    } else {
        format!("provider returned HTTP {status}: {detail}")
    }
}

/// A token count, saturating at `u32::MAX`; `None` unless a non-negative number.
pub fn count(v: Option<&Value>) -> Option<u32> {
    let v = v?;
    let n = v.as_u64().or_else(|| v.as_f64().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f as u64))?;
    Some(u32::try_from(n).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoints_are_checked() {
        assert_eq!(endpoint(" http://h:1/v1/ ", "x").unwrap(), "http://h:1/v1/x");
        for bad in ["ftp://h", "http://", "https:///v1", "http://h?a=1", "http://h #x", "h/v1"] {
            assert!(endpoint(bad, "x").is_err(), "{bad}");
        }
    }

    #[test]
    fn quotes_are_one_bounded_line() {
        assert_eq!(quote(" a\n\tb\u{7}c "), "a bc");
        let long = "x".repeat(QUOTE_CHARS * 2);
        assert_eq!(quote(&long).chars().count(), QUOTE_CHARS + 3);
    }

    #[test]
    fn errors_name_status_and_provider_text() {
        let read = |v: &Value| v.get("m").and_then(Value::as_str).map(String::from);
        assert_eq!(http_error(429, br#"{"m":"slow down"}"#, read), "provider returned HTTP 429: slow down");
        assert_eq!(
            http_error(502, b"<html>bad gateway</html>", read),
            "provider returned HTTP 502: <html>bad gateway</html>"
        );
        assert_eq!(http_error(500, b"", read), "provider returned HTTP 500 with an empty body");
    }

    #[test]
    fn counts_saturate_and_reject_negatives() {
        assert_eq!(count(Some(&json!(12))), Some(12));
        assert_eq!(count(Some(&json!(1e12))), Some(u32::MAX));
        assert_eq!(count(Some(&json!(-1))), None);
        assert_eq!(count(Some(&json!("3"))), None);
        assert_eq!(count(None), None);
    }
}
