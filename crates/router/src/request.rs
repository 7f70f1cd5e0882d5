//! Reading a raw request path: its segments (slashes merged, trailing slash ignored) and their
//! percent-decoding, without allocating where it can be avoided.

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
    use super::{decode, segment_eq, segments, strip_query};

    #[test]
    fn segments_merge_and_trim_slashes() {
        let split: Vec<&str> = segments("//a///b/c/").collect();
        assert_eq!(split, ["a", "b", "c"]);
        assert_eq!(segments("/").count(), 0);
        assert_eq!(segments("").count(), 0);
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
