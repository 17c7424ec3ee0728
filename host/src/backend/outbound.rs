//! The request an adapter built, checked before the host attaches a model's
//! credentials and sends it.
//!
//! Invariants (each enforced here, on parsed values, never on raw strings):
//! - The URL that is sent is the URL that was checked: the adapter's string
//!   is parsed once (WHATWG rules: dot-segments, `%2e` segments, backslashes,
//!   tabs and newlines are normalised as every HTTP client would), compared
//!   with the configured endpoint by scheme, host, port and path segments,
//!   and that parsed `Url` is what goes on the wire.
//! - A path may not carry encoded separators or dots (`%2f`, `%5c`, `%2e`)
//!   that a server could decode into another path after our check.
//! - Only the methods the WIT promises (`POST`, `GET`).
//! - Headers that steer the connection (hop-by-hop, framing, `Host`) or carry
//!   credentials are the host's: an adapter's copies are dropped.
//! - The credential header an adapter names (`auth-scheme::header`) must be
//!   a valid header name that is neither hop-by-hop nor reserved; checked
//!   when the pool is built, so a bad one never reaches a request.

use reqwest::Method;
use reqwest::Url;
use reqwest::header::{HeaderName, HeaderValue};

/// Headers that describe one hop of a connection (RFC 9110 section 7.6.1,
/// plus the de-facto `proxy-connection` and `keep-alive`): never forwarded.
pub const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Headers the host sets itself: the virtual host and the body's framing.
pub const RESERVED: [&str; 3] = ["host", "content-length", "expect"];

/// Headers that carry credentials: only the host puts a key in them.
pub const CREDENTIAL: [&str; 3] = ["authorization", "x-api-key", "cookie"];

/// Headers that ask a server to treat the request as another method: they
/// would turn an allowed `POST` into a `TRACE` on many frameworks.
pub const METHOD_OVERRIDE: [&str; 3] = ["x-http-method-override", "x-http-method", "x-method-override"];

/// Standard request headers that servers and proxies log or echo as a
/// matter of course: never a place for a key.
pub const LOGGED: [&str; 12] = [
    "user-agent",
    "content-type",
    "accept",
    "accept-encoding",
    "accept-language",
    "referer",
    "origin",
    "via",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-real-ip",
];

fn is_one_of(name: &str, list: &[&str]) -> bool {
    list.iter().any(|r| name.eq_ignore_ascii_case(r))
}

/// Check a configured endpoint: an http(s) URL with a host and no
/// credentials, query or fragment (the path is a prefix every request of the
/// model must stay under).
pub fn check_endpoint(endpoint: &str) -> Result<Url, String> {
    let url = Url::parse(endpoint).map_err(|e| format!("`{endpoint}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("`{endpoint}` is not an http(s) URL with a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("`{endpoint}` carries credentials in the URL; use `api_key_env`"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{endpoint}` has a query or fragment; an endpoint is a base URL"));
    }
    ambiguous_path(&url).map_or(Ok(url), Err)
}

/// The path segments of `url`, without the empty one a trailing slash adds.
fn segments(url: &Url) -> Vec<&str> {
    let mut segments: Vec<&str> = url.path_segments().map(Iterator::collect).unwrap_or_default();
    if segments.last() == Some(&"") {
        segments.pop();
    }
    segments
}

/// What a server might still decode into another path after our check:
/// encoded separators or dots, path parameters (`..;/` is `../` to Tomcat
/// and Spring), and segments that start with `..`.
fn ambiguous_path(url: &Url) -> Option<String> {
    let path = url.path().to_ascii_lowercase();
    if let Some(e) = ["%2f", "%5c", "%2e", ";"].iter().find(|e| path.contains(*e)) {
        return Some(format!("the path of `{url}` contains `{e}`, an encoded separator, dot or path parameter"));
    }
    url.path_segments()
        .into_iter()
        .flatten()
        .any(|segment| segment.starts_with(".."))
        .then(|| format!("the path of `{url}` has a segment starting with `..`"))
}

/// Check the URL an adapter built against the model's endpoint; returns the
/// parsed URL to send.
pub fn check_url(endpoint: &Url, url: &str) -> Result<Url, String> {
    let parsed = Url::parse(url).map_err(|e| format!("request URL `{url}` is not a URL: {e}"))?;
    let outside = || format!("request URL `{url}` is outside the configured endpoint `{endpoint}`");
    if parsed.scheme() != endpoint.scheme()
        || parsed.host() != endpoint.host()
        || parsed.port_or_known_default() != endpoint.port_or_known_default()
    {
        return Err(outside());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!("request URL `{url}` carries credentials"));
    }
    if parsed.fragment().is_some() {
        return Err(format!("request URL `{url}` has a fragment"));
    }
    if let Some(reason) = ambiguous_path(&parsed) {
        return Err(reason);
    }
    let (base, path) = (segments(endpoint), segments(&parsed));
    if path.len() < base.len() || path[..base.len()] != base[..] {
        return Err(outside());
    }
    Ok(parsed)
}

/// The method of an adapter's request: `POST` or `GET`, as the WIT says.
pub fn check_method(method: &str) -> Result<Method, String> {
    match method {
        "POST" => Ok(Method::POST),
        "GET" => Ok(Method::GET),
        other => Err(format!("method `{}` is not allowed (only POST and GET)", other.escape_debug())),
    }
}

/// The headers of an adapter's request that the host forwards: valid names
/// and values, without hop-by-hop, reserved and credential headers, nor the
/// model's own credential header.
pub fn forwarded_headers(
    headers: &[(String, String)],
    credential_header: Option<&str>,
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut out = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        if is_one_of(name, &HOP_BY_HOP)
            || is_one_of(name, &RESERVED)
            || is_one_of(name, &CREDENTIAL)
            || is_one_of(name, &METHOD_OVERRIDE)
            || credential_header.is_some_and(|c| name.eq_ignore_ascii_case(c))
        {
            continue;
        }
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("header name `{}` is not a valid HTTP header name", name.escape_debug()))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("the value of header `{name}` is not a valid HTTP header value"))?;
        out.push((header, value));
    }
    Ok(out)
}

/// Check the header an adapter asks the key to be sent in.
pub fn check_credential_header(name: &str) -> Result<HeaderName, String> {
    if is_one_of(name, &HOP_BY_HOP) || is_one_of(name, &RESERVED) || is_one_of(name, &METHOD_OVERRIDE) {
        return Err(format!(
            "the key's header `{}` is a hop-by-hop or reserved header; the key would leak or be dropped",
            name.escape_debug()
        ));
    }
    if is_one_of(name, &LOGGED) {
        return Err(format!(
            "the key's header `{}` is a standard header that servers log or echo; the key would leak",
            name.escape_debug()
        ));
    }
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("the key's header `{}` is not a valid HTTP header name", name.escape_debug()))
}

/// How much of a key's start counts as the key when text was cut: a
/// message truncated (by the adapter or the host's cap) in the middle of a
/// quoted key still gives away this much and more.
const KEY_PREFIX: usize = 8;

/// Replace the key in `text` (a reply or an error shown to a client): a
/// provider that echoes request headers must not hand the key to the
/// caller. Every run that starts with the key's first `KEY_PREFIX` bytes is
/// replaced as far as it matches the key, so a key cut short is caught too;
/// a key shorter than that is replaced where it appears whole.
pub fn redact(text: &str, key: Option<&str>) -> String {
    let Some(key) = key.filter(|k| k.len() >= 4) else { return text.to_string() };
    let probe = key.get(..KEY_PREFIX.min(key.len())).unwrap_or(key);
    if !text.contains(probe) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(probe) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let mut matched = tail.bytes().zip(key.bytes()).take_while(|(a, b)| a == b).count();
        while !tail.is_char_boundary(matched) {
            matched -= 1;
        }
        out.push_str("[redacted]");
        rest = &tail[matched..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Url {
        check_endpoint("http://127.0.0.1:9100/v1").unwrap()
    }

    #[test]
    fn urls_under_the_endpoint_are_accepted_as_parsed() {
        for url in
            ["http://127.0.0.1:9100/v1", "http://127.0.0.1:9100/v1/", "http://127.0.0.1:9100/v1/chat/completions"]
        {
            assert!(check_url(&endpoint(), url).is_ok(), "{url}");
        }
        let url = check_url(&endpoint(), "http://127.0.0.1:9100/v1/chat/completions?x=1").unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:9100/v1/chat/completions?x=1");
        // The default port is the same port.
        let https = check_endpoint("https://api.example.com/v1").unwrap();
        assert!(check_url(&https, "https://api.example.com:443/v1/messages").is_ok());
    }

    #[test]
    fn every_escape_from_the_endpoint_path_is_refused() {
        for url in [
            "http://127.0.0.1:9100/v1/../admin",
            "http://127.0.0.1:9100/v1/%2e%2e/admin",
            "http://127.0.0.1:9100/v1/.%2E/admin",
            "http://127.0.0.1:9100/v1\\..\\admin",
            "http://127.0.0.1:9100/v1/\t../admin",
            "http://127.0.0.1:9100/v1/chat%2f..%2f..%2fadmin",
            "http://127.0.0.1:9100/v1/chat%5cadmin",
            "http://127.0.0.1:9100/v1x/chat",
            "http://127.0.0.1:9100/",
            "http://127.0.0.1:9101/v1/chat",
            "https://127.0.0.1:9100/v1/chat",
            "http://localhost:9100/v1/chat",
            "http://127.0.0.1:9100@evil.example/v1/chat",
            "http://user:pw@127.0.0.1:9100/v1/chat",
            "http://127.0.0.1:9100/v1/chat#frag",
            "http://127.0.0.1:9100/v1/..;/admin",
            "http://127.0.0.1:9100/v1/chat;jsessionid=1",
            "http://127.0.0.1:9100/v1/..%3b/admin",
            "not a url",
        ] {
            assert!(check_url(&endpoint(), url).is_err(), "{url} should be refused");
        }
    }

    #[test]
    fn endpoints_with_credentials_queries_or_other_schemes_are_refused() {
        for e in ["ftp://h/v1", "http://u:p@h/v1", "http://h/v1?k=1", "http://h/v1#f", "h/v1", "http://h/v1%2fadmin"] {
            assert!(check_endpoint(e).is_err(), "{e}");
        }
    }

    #[test]
    fn only_post_and_get() {
        assert_eq!(check_method("POST").unwrap(), Method::POST);
        assert_eq!(check_method("GET").unwrap(), Method::GET);
        for m in ["TRACE", "PUT", "DELETE", "post", "CONNECT", "OPTIONS", ""] {
            assert!(check_method(m).is_err(), "{m}");
        }
    }

    #[test]
    fn hop_by_hop_reserved_and_credential_headers_are_dropped() {
        let headers: Vec<(String, String)> = [
            "Connection",
            "Keep-Alive",
            "TE",
            "Trailer",
            "Transfer-Encoding",
            "Upgrade",
            "Proxy-Authorization",
            "Host",
            "Content-Length",
            "Authorization",
            "X-Api-Key",
            "Cookie",
            "x-goog-api-key",
            "X-HTTP-Method-Override",
            "X-HTTP-Method",
            "X-Method-Override",
        ]
        .iter()
        .map(|h| (h.to_string(), "v".to_string()))
        .chain([("content-type".to_string(), "application/json".to_string())])
        .collect();
        let kept = forwarded_headers(&headers, Some("x-goog-api-key")).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].0, "content-type");
        assert!(forwarded_headers(&[("bad name".into(), "v".into())], None).is_err());
        assert!(forwarded_headers(&[("x-ok".into(), "line\nbreak".into())], None).is_err());
    }

    #[test]
    fn the_key_may_not_travel_in_a_reserved_header() {
        for h in [
            "Host",
            "host",
            "Connection",
            "Transfer-Encoding",
            "Content-Length",
            "TE",
            "bad header",
            "",
            "User-Agent",
            "Referer",
            "Content-Type",
            "X-Forwarded-For",
            "X-HTTP-Method-Override",
        ] {
            assert!(check_credential_header(h).is_err(), "{h}");
        }
        for h in ["authorization", "x-api-key", "api-key"] {
            assert!(check_credential_header(h).is_ok(), "{h}");
        }
    }

    #[test]
    fn keys_are_redacted_from_text() {
        assert_eq!(redact("echo: Bearer sk-secret-1", Some("sk-secret-1")), "echo: Bearer [redacted]");
        assert_eq!(redact("nothing here", Some("sk-secret-1")), "nothing here");
        assert_eq!(redact("abc", None), "abc");
        // Cut short by a cap, twice, and beside multi-byte text.
        assert_eq!(redact("key: sk-secret-1 and sk-secr", Some("sk-secret-1")), "key: [redacted] and sk-secr");
        assert_eq!(redact("a: sk-secret-1, b: sk-secre", Some("sk-secret-1")), "a: [redacted], b: [redacted]");
        assert_eq!(redact("é sk-secret-1é", Some("sk-secret-1")), "é [redacted]é");
        assert_eq!(redact("sk-secr", Some("sk-secret-1")), "sk-secr", "under 8 bytes is not the key");
    }
}
