//! The response body of a handler.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// A response body: text, bytes, or bytes the worker already base64-encoded.
///
/// The protocol carries the body inside a JSON string, so bytes travel base64-encoded and wws
/// decodes them before answering. [`Content::Bytes`] does that encoding for you.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// UTF-8 text, sent as is.
    Text(String),
    /// Standard base64 of the body bytes (what the original kit produced for `Vec<u8>`).
    Base64(String),
    /// Raw body bytes, base64-encoded when the response is written.
    Bytes(Vec<u8>),
}

impl Content {
    /// The body as it goes into the output JSON: the `data` text and whether it is base64.
    pub fn into_data(self) -> (String, bool) {
        match self {
            Content::Text(text) => (text, false),
            Content::Base64(encoded) => (encoded, true),
            Content::Bytes(bytes) => (STANDARD.encode(bytes), true),
        }
    }
}

impl From<String> for Content {
    fn from(text: String) -> Self {
        Content::Text(text)
    }
}

impl From<&str> for Content {
    fn from(text: &str) -> Self {
        Content::Text(text.to_owned())
    }
}

impl From<Vec<u8>> for Content {
    fn from(bytes: Vec<u8>) -> Self {
        Content::Bytes(bytes)
    }
}

impl From<&[u8]> for Content {
    fn from(bytes: &[u8]) -> Self {
        Content::Bytes(bytes.to_vec())
    }
}

impl From<bytes::Bytes> for Content {
    fn from(bytes: bytes::Bytes) -> Self {
        Content::Bytes(bytes.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_base64_encoded_once() {
        assert_eq!(
            Content::from(vec![0u8, 255, 10]).into_data(),
            ("AP8K".to_owned(), true)
        );
        assert_eq!(
            Content::Base64("AP8K".into()).into_data(),
            ("AP8K".to_owned(), true)
        );
    }

    #[test]
    fn text_is_sent_as_is() {
        assert_eq!(
            Content::from("héllo").into_data(),
            ("héllo".to_owned(), false)
        );
    }
}
