//! One worker file as a route: its pattern (spec §2.2–2.3), its priority (§2.4) and how it
//! matches a request path.

use std::cmp::Ordering;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use crate::error::RouterError;
use crate::prefix::normalize_prefix;
use crate::request::{decode, segment_eq};
use crate::segment::Segment;

/// Kind of route, by its most dynamic segment. Routes sort by kind first: static, dynamic, tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteKind {
    /// Only literal segments: matches one exact path.
    Static,
    /// At least one `[name]` segment and no catch-all.
    Dynamic,
    /// Ends with a `[...name]` catch-all.
    Tail,
}

/// A worker file and the URL pattern it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The pattern including the prefix, e.g. `/app/sub/[id]`; the root is `/`, or the prefix itself
    /// (`/app`) when there is one.
    pub path: String,
    /// The worker file relative to the project root, e.g. `sub/[id].wasm`.
    pub file: PathBuf,
    /// The most dynamic segment's kind.
    pub kind: RouteKind,
    /// The pattern's segments, the prefix's included (as static segments).
    pub segments: Vec<Segment>,
    /// How many of `segments` come from the prefix: a catch-all right after them also serves the
    /// prefix root itself.
    prefix_len: usize,
}

impl Route {
    /// Turn a worker file (relative to the project root) into its route under `prefix`.
    ///
    /// The last extension is dropped (`a.b.js` serves `/a.b`), and so is a final `index` file stem
    /// (`api/index.js` serves `/api`). Folders named `index` are kept: `a/index/b.js` serves
    /// `/a/index/b` (the original dropped every `index` component, spec §10.17). Errors name the
    /// file: a path that leaves the root or is not UTF-8, malformed brackets, a catch-all that is
    /// not last, or one parameter name used twice.
    pub fn new(file: PathBuf, prefix: &str) -> Result<Route, RouterError> {
        let names = file_names(&file)?;
        let prefix = normalize_prefix(prefix);
        let mut segments: Vec<Segment> = prefix
            .split('/')
            .filter(|part| !part.is_empty())
            .map(|part| Segment::Static(part.to_owned()))
            .collect();
        let prefix_len = segments.len();

        for name in &names {
            let segment = Segment::parse(name).map_err(|reason| invalid(&file, name, reason))?;
            if let Some(param) = segment.param_name()
                && segments.iter().any(|seen| seen.param_name() == Some(param))
            {
                let reason = format!(
                    "parameter `{param}` appears twice in this path: give each a different name"
                );
                return Err(invalid(&file, name, reason));
            }
            if let Some(tail @ Segment::Tail(_)) = segments.last() {
                let reason = "a catch-all `[...name]` must be the last part of the path: \
                              move the file up or rename the folder"
                    .to_owned();
                return Err(invalid(&file, &tail.to_string(), reason));
            }
            segments.push(segment);
        }

        let kind = if matches!(segments.last(), Some(Segment::Tail(_))) {
            RouteKind::Tail
        } else if segments.iter().any(|s| matches!(s, Segment::Dynamic(_))) {
            RouteKind::Dynamic
        } else {
            RouteKind::Static
        };
        let mut path = String::new();
        for segment in &segments {
            path.push('/');
            path.push_str(&segment.to_string());
        }
        if path.is_empty() {
            path.push('/');
        }
        Ok(Route {
            path,
            file,
            kind,
            segments,
            prefix_len,
        })
    }

    /// The worker file for messages (`sub/[id].wasm`).
    pub fn display_file(&self) -> std::path::Display<'_> {
        self.file.display()
    }

    /// The names of the route's parameters, in path order.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(Segment::param_name)
    }

    /// The fewest request segments this route can match.
    ///
    /// A catch-all needs at least one segment, except right at the (prefix) root, where
    /// `/[...slug]` also serves `/` (spec §2.3).
    fn min_segments(&self) -> usize {
        if self.kind == RouteKind::Tail && self.segments.len() == self.prefix_len + 1 {
            self.prefix_len
        } else {
            self.segments.len()
        }
    }

    /// Whether a request, given as its raw non-empty segments, is served by this route.
    ///
    /// Static and dynamic routes need exactly as many segments; a tail route at least as many
    /// (see [`Route::min_segments`]). Literal segments compare against the percent-decoded request.
    pub(crate) fn matches(&self, request: &[&str]) -> bool {
        let fits = match self.kind {
            RouteKind::Static | RouteKind::Dynamic => request.len() == self.segments.len(),
            RouteKind::Tail => request.len() >= self.min_segments(),
        };
        fits && self
            .segments
            .iter()
            .zip(request)
            .all(|(segment, raw)| match segment {
                Segment::Static(literal) => segment_eq(raw, literal),
                Segment::Dynamic(_) | Segment::Tail(_) => true,
            })
    }

    /// The decoded parameter values of a request that [`Route::matches`] accepted.
    ///
    /// A catch-all's value is the rest of the path without its leading slash (slashes merged,
    /// no trailing slash), e.g. `any/catch/all`; at the root it is empty.
    pub(crate) fn params(&self, request: &[&str]) -> Vec<(String, String)> {
        if self.kind == RouteKind::Static {
            return Vec::new();
        }
        let mut params = Vec::new();
        for (position, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Static(_) => {}
                Segment::Dynamic(name) => {
                    let value = request
                        .get(position)
                        .map(|raw| decode(raw))
                        .unwrap_or_default();
                    params.push((name.clone(), value));
                }
                Segment::Tail(name) => {
                    let rest = request.get(position..).unwrap_or_default().join("/");
                    params.push((name.clone(), decode(&rest)));
                }
            }
        }
        params
    }

    /// Priority order (spec §2.4): static routes, then dynamic routes with fewer segments first,
    /// then tail routes with **more** segments first (the deeper catch-all wins); ties are broken
    /// segment by segment, static before dynamic before tail, then by text.
    pub(crate) fn priority_cmp(&self, other: &Route) -> Ordering {
        let by_length = match self.kind {
            RouteKind::Static | RouteKind::Dynamic => {
                self.segments.len().cmp(&other.segments.len())
            }
            RouteKind::Tail => other.segments.len().cmp(&self.segments.len()),
        };
        self.kind
            .cmp(&other.kind)
            .then(by_length)
            .then_with(|| {
                for (a, b) in self.segments.iter().zip(&other.segments) {
                    let order = a.priority_cmp(b);
                    if order != Ordering::Equal {
                        return order;
                    }
                }
                Ordering::Equal
            })
            .then_with(|| self.file.cmp(&other.file))
    }

    /// The pattern with parameter names erased: two routes of one shape can never both be reached.
    pub(crate) fn shape(&self) -> Vec<Shape<'_>> {
        self.segments
            .iter()
            .map(|segment| match segment {
                Segment::Static(text) => Shape::Static(text),
                Segment::Dynamic(_) => Shape::Dynamic,
                Segment::Tail(_) => Shape::Tail,
            })
            .collect()
    }
}

impl fmt::Display for Route {
    /// The pattern, e.g. `/sub/[id]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)
    }
}

/// A segment without its parameter name, for collision detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Shape<'a> {
    Static(&'a str),
    Dynamic,
    Tail,
}

/// The route-relevant names of a worker path: its folders, then its file stem unless it is `index`.
fn file_names(file: &Path) -> Result<Vec<&str>, RouterError> {
    let mut names = Vec::new();
    for component in file.components() {
        match component {
            Component::CurDir => {}
            Component::Normal(name) => match name.to_str() {
                Some(name) => names.push(name),
                None => return Err(invalid_path(file, "its name is not valid UTF-8: rename it")),
            },
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(invalid_path(
                    file,
                    "worker paths must be relative to the project root, without `..`",
                ));
            }
        }
    }
    let Some(last) = names.pop() else {
        return Err(invalid_path(file, "the path is empty"));
    };
    let stem = Path::new(last)
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or(last);
    if stem != "index" {
        names.push(stem);
    }
    Ok(names)
}

fn invalid(file: &Path, segment: &str, reason: String) -> RouterError {
    RouterError::InvalidSegment {
        file: file.to_path_buf(),
        segment: segment.to_owned(),
        reason,
    }
}

fn invalid_path(file: &Path, reason: &str) -> RouterError {
    RouterError::InvalidPath {
        file: file.to_path_buf(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{Route, RouteKind};
    use crate::error::RouterError;
    use crate::segment::Segment;
    use std::path::PathBuf;

    fn route(file: &str) -> Route {
        Route::new(PathBuf::from(file), "").expect(file)
    }

    /// The original's path-mapping table (spec §2.2), with paths relative to the project root.
    #[test]
    fn spec_path_table() {
        for (file, path) in [
            ("examples/index.js", "/examples"),
            ("examples/index.wasm", "/examples"),
            ("examples/api/index.js", "/examples/api"),
            ("index.js", "/"),
            ("index.wasm", "/"),
            ("./index.wasm", "/"),
            ("examples/handler.js", "/examples/handler"),
            ("examples/api/handler.wasm", "/examples/api/handler"),
            ("handler.js", "/handler"),
            ("a.b.js", "/a.b"),
        ] {
            assert_eq!(route(file).path, path, "file {file}");
        }
    }

    /// Spec §10.17: only a final `index` stem is dropped, not `index` folders.
    #[test]
    fn index_folders_are_kept() {
        assert_eq!(route("a/index/b.js").path, "/a/index/b");
        assert_eq!(route("examples/index/index.js").path, "/examples/index");
        assert_eq!(route("index/index.js").path, "/index");
        assert_eq!(route("index.d.js").path, "/index.d");
    }

    #[test]
    fn kinds() {
        assert_eq!(route("fixed.wasm").kind, RouteKind::Static);
        assert_eq!(route("[id].wasm").kind, RouteKind::Dynamic);
        assert_eq!(route("[id]/fixed.wasm").kind, RouteKind::Dynamic);
        assert_eq!(route("sub/[...all].wasm").kind, RouteKind::Tail);
        assert_eq!(route("[a]/[...rest].wasm").kind, RouteKind::Tail);
        let catch_all = route("[...slug]/index.js");
        assert_eq!(catch_all.kind, RouteKind::Tail);
        assert_eq!(catch_all.path, "/[...slug]");
    }

    #[test]
    fn segments_and_params() {
        let r = route("[resource]/[id]/show.js");
        assert_eq!(
            r.segments,
            [
                Segment::Dynamic("resource".into()),
                Segment::Dynamic("id".into()),
                Segment::Static("show".into()),
            ]
        );
        assert_eq!(r.param_names().collect::<Vec<_>>(), ["resource", "id"]);
        assert_eq!(r.to_string(), "/[resource]/[id]/show");
    }

    #[test]
    fn prefix_is_part_of_the_pattern() {
        let r = Route::new(PathBuf::from("sub/[id].wasm"), "app/").expect("route");
        assert_eq!(r.path, "/app/sub/[id]");
        assert_eq!(r.segments[0], Segment::Static("app".into()));
        let root = Route::new(PathBuf::from("index.js"), "\\app\\").expect("route");
        assert_eq!(
            root.path, "/app",
            "the root index under a prefix is the prefix itself"
        );
    }

    #[test]
    fn invalid_segments_name_the_file() {
        for (file, segment) in [
            ("blog/post-[id].js", "post-[id]"),
            ("[a-b]/x.js", "[a-b]"),
            ("[...all]/fixed.js", "[...all]"),
            ("[id]/[id].js", "[id]"),
            ("[id]/[...id].js", "[...id]"),
        ] {
            match Route::new(PathBuf::from(file), "") {
                Err(error @ RouterError::InvalidSegment { .. }) => {
                    let message = error.to_string();
                    assert!(message.contains(file), "{message}");
                    assert!(message.contains(segment), "{message}");
                }
                other => panic!("{file}: expected InvalidSegment, got {other:?}"),
            }
        }
    }

    #[test]
    fn invalid_paths() {
        for file in ["", ".", "../x.js", "/abs/x.js"] {
            assert!(
                matches!(
                    Route::new(PathBuf::from(file), ""),
                    Err(RouterError::InvalidPath { .. })
                ),
                "{file:?}"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_names_are_refused() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let file = PathBuf::from(OsStr::from_bytes(b"bad\xff.js"));
        assert!(matches!(
            Route::new(file, ""),
            Err(RouterError::InvalidPath { .. })
        ));
    }
}
