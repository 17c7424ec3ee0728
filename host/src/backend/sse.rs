//! Incremental server-sent-events parsing: bytes in, `(event, data)` out.
//! Handles events split across chunks, CRLF line ends, multi-line data and
//! comments (keep-alives).

/// Feed bytes with [`SseParser::push`]; complete events come out in order.
#[derive(Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    /// Bytes of `buffer` already searched for a newline (no rescans).
    scanned: usize,
    event: String,
    data: Vec<String>,
    data_bytes: usize,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add bytes; returns the events they completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<(String, String)> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(offset) = self.buffer[self.scanned..].iter().position(|&b| b == b'\n') {
            let end = self.scanned + offset;
            self.scanned = 0;
            let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            if line.is_empty() {
                if !self.data.is_empty() {
                    events.push((std::mem::take(&mut self.event), self.data.join("\n")));
                    self.data.clear();
                    self.data_bytes = 0;
                }
                self.event.clear();
            } else if line.starts_with(':') {
                // A comment (keep-alive).
            } else {
                let (field, value) = line.split_once(':').unwrap_or((line.as_str(), ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "event" => self.event = value.to_string(),
                    "data" => {
                        self.data_bytes += value.len();
                        self.data.push(value.to_string());
                    }
                    _ => {}
                }
            }
        }
        self.scanned = self.buffer.len();
        events
    }

    /// Bytes held for an event not yet complete: callers cap it, so a
    /// stream without line or event ends cannot grow memory without bound.
    pub fn buffered(&self) -> usize {
        self.buffer.len() + self.data_bytes
    }

    /// Whether bytes of an unfinished event are pending (a stream that ends
    /// here was cut mid-event).
    pub fn has_partial(&self) -> bool {
        !self.buffer.is_empty() || !self.data.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_across_chunks_crlf_and_comments() {
        let mut p = SseParser::new();
        assert!(p.push(b"data: {\"a\"").is_empty());
        assert!(p.has_partial());
        let ev = p.push(b":1}\r\n\r\n: keep-alive\n\nevent: message_stop\ndata: {}\n\ndata: [DONE]\n\n");
        assert_eq!(
            ev,
            vec![
                (String::new(), "{\"a\":1}".to_string()),
                ("message_stop".to_string(), "{}".to_string()),
                (String::new(), "[DONE]".to_string())
            ]
        );
        assert!(!p.has_partial());
    }

    #[test]
    fn multi_line_data_is_joined() {
        let mut p = SseParser::new();
        assert_eq!(p.push(b"data: a\ndata: b\n\n"), vec![(String::new(), "a\nb".to_string())]);
    }
}
