//! One `/`-separated piece of a route pattern: literal text, `[name]` or `[...name]` (spec §2.3).

use std::cmp::Ordering;
use std::fmt;

/// One segment of a route pattern, parsed once from a file or folder name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Literal text that a request segment must equal (after percent-decoding the request).
    Static(String),
    /// `[name]`: any one non-empty request segment, passed to the worker as param `name`.
    Dynamic(String),
    /// `[...name]`: the rest of the path (possibly several segments), passed as param `name`.
    /// Only allowed as the last segment.
    Tail(String),
}

impl Segment {
    /// Parse a file stem or folder name.
    ///
    /// Brackets must wrap the whole name: `post-[id]` is refused (the original classified it as
    /// dynamic but its two matchers disagreed on what it matched). Parameter names are `\w+`:
    /// letters, digits and `_`. The error is the reason, for the caller to wrap with the file name.
    pub(crate) fn parse(text: &str) -> Result<Segment, String> {
        if !text.contains(['[', ']']) {
            return Ok(Segment::Static(text.to_owned()));
        }
        let Some(inner) = text
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        else {
            return Err(
                "brackets must wrap the whole file or folder name, like `[id]` or `[...path]`; \
                 mixed names such as `post-[id]` are not supported: use `[id]` and check the rest in the worker"
                    .to_owned(),
            );
        };
        let (name, tail) = match inner.strip_prefix("...") {
            Some(name) => (name, true),
            None => (inner, false),
        };
        if !is_param_name(name) {
            return Err(format!(
                "parameter name `{name}` must be one or more letters, digits or `_`, like `[id]` or `[...path]`"
            ));
        }
        Ok(if tail {
            Segment::Tail(name.to_owned())
        } else {
            Segment::Dynamic(name.to_owned())
        })
    }

    /// The parameter name of a dynamic or tail segment.
    pub fn param_name(&self) -> Option<&str> {
        match self {
            Segment::Static(_) => None,
            Segment::Dynamic(name) | Segment::Tail(name) => Some(name),
        }
    }

    /// Priority between segments at the same position (spec §2.4): static before dynamic before
    /// tail, then by text (the literal, or the parameter name).
    pub(crate) fn priority_cmp(&self, other: &Segment) -> Ordering {
        self.rank()
            .cmp(&other.rank())
            .then_with(|| self.text().cmp(other.text()))
    }

    fn rank(&self) -> u8 {
        match self {
            Segment::Static(_) => 0,
            Segment::Dynamic(_) => 1,
            Segment::Tail(_) => 2,
        }
    }

    fn text(&self) -> &str {
        match self {
            Segment::Static(text) | Segment::Dynamic(text) | Segment::Tail(text) => text,
        }
    }
}

impl fmt::Display for Segment {
    /// The segment as written in a file name: `fixed`, `[id]`, `[...all]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Static(text) => f.write_str(text),
            Segment::Dynamic(name) => write!(f, "[{name}]"),
            Segment::Tail(name) => write!(f, "[...{name}]"),
        }
    }
}

/// `\w+` as in the original's regex: Unicode letters and digits, and `_`.
fn is_param_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::Segment;

    #[test]
    fn parses_the_three_kinds() {
        assert_eq!(Segment::parse("fixed"), Ok(Segment::Static("fixed".into())));
        assert_eq!(Segment::parse("[id]"), Ok(Segment::Dynamic("id".into())));
        assert_eq!(Segment::parse("[...all]"), Ok(Segment::Tail("all".into())));
        assert_eq!(
            Segment::parse("[user_id2]"),
            Ok(Segment::Dynamic("user_id2".into()))
        );
        assert_eq!(Segment::parse("[é]"), Ok(Segment::Dynamic("é".into())));
        assert_eq!(
            Segment::parse("a.b-c d"),
            Ok(Segment::Static("a.b-c d".into()))
        );
    }

    #[test]
    fn refuses_malformed_brackets() {
        for text in [
            "post-[id]",
            "[id]-post",
            "[id",
            "id]",
            "[]",
            "[...]",
            "[..id]",
            "[a-b]",
            "[a b]",
            "[[id]]",
            "[a]b]",
            "[...[x]]",
        ] {
            let reason = Segment::parse(text).expect_err(text);
            assert!(
                !reason.is_empty() && !reason.ends_with('.'),
                "{text}: {reason}"
            );
        }
    }

    #[test]
    fn mixed_segment_reason_says_what_to_do() {
        let reason = Segment::parse("post-[id]").expect_err("mixed segment");
        assert!(reason.contains("`[id]`"), "{reason}");
    }

    #[test]
    fn displays_as_written() {
        for text in ["fixed", "[id]", "[...all]"] {
            let segment = Segment::parse(text).expect(text);
            assert_eq!(segment.to_string(), text);
        }
    }

    /// The original's segment sort test: `fixed`, `sub` (static, alphabetical), then `[id]`, then `[...all]`.
    #[test]
    fn spec_segment_sort() {
        let mut segments: Vec<Segment> = ["[...all]", "sub", "[id]", "fixed"]
            .into_iter()
            .map(|text| Segment::parse(text).expect(text))
            .collect();
        segments.sort_by(Segment::priority_cmp);
        let sorted: Vec<String> = segments.iter().map(Segment::to_string).collect();
        assert_eq!(sorted, ["fixed", "sub", "[id]", "[...all]"]);
    }
}
