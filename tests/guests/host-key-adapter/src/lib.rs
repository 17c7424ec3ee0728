//! An adapter that asks the host to send the API key in the `Host` header:
//! an upstream error page that quotes the virtual host would then hand the
//! key to the client. The host must refuse it when the pool is built.

wit_bindgen::generate!({ world: "adapter", path: "../../../wit" });

use switchyard::plugin::types::ErrorKind;

struct HostKey;

impl Guest for HostKey {
    fn auth() -> AuthScheme {
        AuthScheme::Header("Host".into())
    }

    fn build_request(_request: ChatRequest, base_url: String) -> Result<HttpRequest, PluginError> {
        Ok(HttpRequest {
            method: "POST".into(),
            url: format!("{base_url}/chat/completions"),
            headers: vec![],
            body: vec![],
        })
    }

    fn parse_response(_response: HttpResponse) -> Result<Completion, PluginError> {
        Err(PluginError { kind: ErrorKind::Upstream, message: "never reached".into() })
    }

    fn parse_stream_event(_event: String, _data: String) -> Result<StreamEvent, PluginError> {
        Ok(StreamEvent::Ignore)
    }
}

export!(HostKey);
