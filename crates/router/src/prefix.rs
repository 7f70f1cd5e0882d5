//! `--prefix` normalization (spec §2.6): every spelling of a prefix becomes `/a/b` or the empty string.

/// Normalize a `--prefix` value so route patterns can simply be `prefix + "/" + segments`.
///
/// `\` counts as `/`, a leading `/` is added and trailing ones removed; the empty prefix and `/`
/// give the empty string. Unlike the original, which removed a single trailing slash, repeated
/// slashes anywhere are merged (`app//x/` gives `/app/x`), because requests are matched after
/// merging slashes too.
pub fn normalize_prefix(prefix: &str) -> String {
    let mut normalized = String::with_capacity(prefix.len() + 1);
    for part in prefix.split(['/', '\\']).filter(|part| !part.is_empty()) {
        normalized.push('/');
        normalized.push_str(part);
    }
    normalized
}

#[cfg(test)]
mod tests {
    use super::normalize_prefix;

    /// The original's `format_prefix` test table (spec §2.6).
    #[test]
    fn spec_table() {
        for prefix in ["app", "/app", "app/", "/app/", "\\app", "app\\", "\\app\\"] {
            assert_eq!(normalize_prefix(prefix), "/app", "prefix {prefix:?}");
        }
        for prefix in ["app/test/", "\\app\\test\\", "/app/test"] {
            assert_eq!(normalize_prefix(prefix), "/app/test", "prefix {prefix:?}");
        }
        assert_eq!(normalize_prefix(""), "");
    }

    #[test]
    fn slashes_only_and_repeated_slashes() {
        assert_eq!(normalize_prefix("/"), "");
        assert_eq!(normalize_prefix("\\"), "");
        assert_eq!(normalize_prefix("//app//test//"), "/app/test");
    }

    #[test]
    fn idempotent() {
        for prefix in ["", "/app", "/app/test", "a\\b/c/"] {
            let once = normalize_prefix(prefix);
            assert_eq!(normalize_prefix(&once), once);
        }
    }
}
