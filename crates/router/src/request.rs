//! Reading a raw request path: its segments (slashes merged, trailing slash ignored) and their
//! percent-decoding, without allocating where it can be avoided.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

/// The raw path without a query string, should the caller have left one on.
pub(crate) fn strip_query(path: &str) -> &str {
    match path.find('?') {
        Some(end) => &path[..end],
        None => path,
    }
}

/// The non-empty `/`-separated segments of a raw path, still percent-encoded.
///
/// Skipping empty pieces is what merges `//` and ignores a trailing `/`, as the original's
/// `NormalizePath::trim` did before matching.
pub(crate) fn segments(path: &str) -> impl Iterator<Item = &str> + Clone {
    path.split('/').filter(|segment| !segment.is_empty())
}

/// How many segments a request may have before `with_segments` spills them into a `Vec`.
const INLINE_SEGMENTS: usize = 16;

/// Run `f` on the raw non-empty segments of `path`, split once, on the stack for paths of up
/// to 16 segments.
pub(crate) fn with_segments<R>(path: &str, f: impl FnOnce(&[&str]) -> R) -> R {
    let mut inline = [""; INLINE_SEGMENTS];
    let mut len = 0;
    for segment in segments(path) {
        if len == INLINE_SEGMENTS {
            let spilled: Vec<&str> = segments(path).collect();
            return f(&spilled);
        }
        inline[len] = segment;
        len += 1;
    }
    f(&inline[..len])
}

/// The request in the form static patterns are stored in: `/a/b`, the root `/`, decoded.
///
/// Borrows the path when it already has that form (the usual case, no allocation). `None` when
/// no static pattern can equal it: a segment decodes to `/` or to invalid UTF-8.
pub(crate) fn static_key<'a>(path: &'a str, segments: &[&str]) -> Option<Cow<'a, str>> {
    let plain = path.starts_with('/')
        && (path.len() == 1 || !path.ends_with('/'))
        && !path.contains("//")
        && !path.contains('%');
    if plain {
        return Some(Cow::Borrowed(path));
    }
    let mut key = String::with_capacity(path.len() + 1);
    for raw in segments {
        let decoded = percent_decode_str(raw).decode_utf8().ok()?;
        if decoded.contains('/') {
            return None;
        }
        key.push('/');
        key.push_str(&decoded);
    }
    if key.is_empty() {
        key.push('/');
    }
    Some(Cow::Owned(key))
}

/// Whether a raw request segment, percent-decoded, equals a literal route segment.
///
/// Compares decoded bytes as they come, so `/hello%20world` reaches `hello world.js` without an
/// allocation. Malformed escapes (`%zz`, a lone `%`) stay literal, as the decoder leaves them.
pub(crate) fn segment_eq(raw: &str, literal: &str) -> bool {
    if raw.contains('%') {
        percent_decode_str(raw).eq(literal.bytes())
    } else {
        raw == literal
    }
}

/// The percent-decoded value of a raw segment (or joined tail); invalid UTF-8 becomes U+FFFD.
pub(crate) fn decode(raw: &str) -> String {
    percent_decode_str(raw).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::{decode, segment_eq, segments, static_key, strip_query, with_segments};

    #[test]
    fn segments_merge_and_trim_slashes() {
        let split: Vec<&str> = segments("//a///b/c/").collect();
        assert_eq!(split, ["a", "b", "c"]);
        assert_eq!(segments("/").count(), 0);
        assert_eq!(segments("").count(), 0);
    }

    #[test]
    fn long_paths_spill_to_the_heap() {
        for count in [0, 1, 15, 16, 17, 100] {
            let path = "/s".repeat(count);
            let seen = with_segments(&path, |segments| segments.len());
            assert_eq!(seen, count, "path of {count} segments");
        }
    }

    #[test]
    fn static_keys() {
        let key = |path: &str| {
            let split: Vec<&str> = segments(path).collect();
            static_key(path, &split).map(|key| key.into_owned())
        };
        assert_eq!(key("/a/b").as_deref(), Some("/a/b"));
        assert_eq!(key("/").as_deref(), Some("/"));
        assert_eq!(key("").as_deref(), Some("/"));
        assert_eq!(key("//a//b/").as_deref(), Some("/a/b"));
        assert_eq!(key("/hello%20world").as_deref(), Some("/hello world"));
        assert_eq!(key("/100%").as_deref(), Some("/100%"));
        assert_eq!(key("/a%2Fb"), None);
        assert_eq!(key("/%FF"), None);
        assert!(matches!(
            static_key("/a/b", &["a", "b"]),
            Some(std::borrow::Cow::Borrowed(_))
        ));
    }

    #[test]
    fn query_is_cut() {
        assert_eq!(strip_query("/a/b?x=1/2"), "/a/b");
        assert_eq!(strip_query("/a"), "/a");
    }

    #[test]
    fn equality_decodes_the_request_side_only() {
        assert!(segment_eq("hello%20world", "hello world"));
        assert!(segment_eq("caf%C3%A9", "café"));
        assert!(!segment_eq("hello%20world", "hello%20world"));
        assert!(segment_eq("100%", "100%"));
        assert!(segment_eq("%zz", "%zz"));
        assert!(!segment_eq("abc", "abd"));
    }

    #[test]
    fn decode_is_lossy() {
        assert_eq!(decode("a%2Fb"), "a/b");
        assert_eq!(decode("%FF"), "\u{FFFD}");
        assert_eq!(decode("%"), "%");
    }
}
