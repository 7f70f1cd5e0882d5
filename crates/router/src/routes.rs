//! The route table: built once at startup (collisions refused, sorted by priority), then asked
//! per request for the best match.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::error::RouterError;
use crate::prefix::normalize_prefix;
use crate::request::{segment_eq, static_key, strip_query, with_segments};
use crate::route::{Route, RouteKind};

/// All routes of a project, in priority order (spec §2.4).
#[derive(Debug, Clone, Default)]
pub struct Routes {
    routes: Vec<Route>,
    /// Static patterns (`/a/b`, root `/`) to their index: they come first in priority order and
    /// match exactly, so one lookup replaces scanning them.
    statics: HashMap<String, usize>,
    /// Index of the first dynamic or tail route: where the linear scan starts.
    first_dynamic: usize,
    /// The normalized `--prefix` (`/app`, or empty).
    prefix: String,
}

/// The route chosen for a request and the request's parameter values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match<'a> {
    /// The winning route.
    pub route: &'a Route,
    /// Its position in [`Routes::iter`], for callers that keep per-route data in a parallel `Vec`.
    pub index: usize,
    /// Parameter values by name, percent-decoded, in path order (empty for static routes).
    pub params: Vec<(String, String)>,
}

impl Match<'_> {
    /// The value of one parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

impl Routes {
    /// Build the table from worker files (relative to the project root) under a `--prefix`
    /// (normalized here, see [`normalize_prefix`]).
    ///
    /// Fails on the first invalid file name, or when two files map to the same pattern
    /// (`about.js` and `about/index.js`, `index.js` and `index.wasm`, `[id].js` and `[slug].js`):
    /// the original silently served one of them.
    pub fn new(mut files: Vec<PathBuf>, prefix: &str) -> Result<Routes, RouterError> {
        files.sort();
        let prefix = normalize_prefix(prefix);
        let mut routes = files
            .into_iter()
            .map(|file| Route::new(file, &prefix))
            .collect::<Result<Vec<_>, _>>()?;
        refuse_collisions(&routes)?;
        routes.sort_by(Route::priority_cmp);
        let first_dynamic = routes
            .iter()
            .position(|route| route.kind != RouteKind::Static)
            .unwrap_or(routes.len());
        let statics = routes[..first_dynamic]
            .iter()
            .enumerate()
            .map(|(index, route)| (route.path.clone(), index))
            .collect();
        Ok(Routes {
            routes,
            statics,
            first_dynamic,
            prefix,
        })
    }

    /// The routes in priority order: the order `find` tries them.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    /// The normalized prefix every route starts with (`/app`), or the empty string.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The rest of a raw request path after the prefix, starting with `/` (`/app/x/` gives
    /// `/x/`, `/app` gives `/`), or `None` when the request is outside the prefix.
    ///
    /// For whatever serves the request relative to the mount point, e.g. static files in
    /// `public/` (the original looked those up with the prefix still on, spec §2.6). Slashes
    /// are handled as in [`Routes::find`]; the rest is returned raw (not decoded).
    pub fn strip_prefix<'p>(&self, path: &'p str) -> Option<&'p str> {
        let mut rest = path;
        for literal in self.prefix.split('/').filter(|part| !part.is_empty()) {
            let trimmed = rest.trim_start_matches('/');
            let end = trimmed.find('/').unwrap_or(trimmed.len());
            if !segment_eq(trimmed.get(..end)?, literal) {
                return None;
            }
            rest = trimmed.get(end..)?;
        }
        Some(if rest.is_empty() { "/" } else { rest })
    }

    /// How many routes there are.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the project has no workers.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The route at `index` in priority order, e.g. [`Match::index`].
    ///
    /// # Panics
    /// If `index >= self.len()`: indexes come from this table, never from a request.
    pub fn get(&self, index: usize) -> &Route {
        &self.routes[index]
    }

    /// The best route for a raw request path, as in the HTTP request line.
    ///
    /// A query string, a trailing slash and repeated slashes are ignored; literal segments
    /// compare with the percent-decoded request; parameter values are percent-decoded (invalid
    /// UTF-8 becomes U+FFFD); a catch-all's value is the rest of the path without its leading
    /// slash. The first route in priority order that matches wins. Requests outside the prefix
    /// match nothing. Cost: the path is split once (on the stack); static routes are one hash
    /// lookup, then dynamic and catch-all routes are scanned in order, rejected by segment count
    /// first. It allocates only the parameter values (and a key for paths with `%`, `//` or a
    /// trailing slash).
    pub fn find(&self, path: &str) -> Option<Match<'_>> {
        let path = strip_query(path);
        with_segments(path, |request| {
            let static_hit = if self.statics.is_empty() {
                None
            } else {
                static_key(path, request).and_then(|key| self.statics.get(key.as_ref()).copied())
            };
            let index = static_hit.or_else(|| {
                let dynamic = self.routes.get(self.first_dynamic..).unwrap_or_default();
                let offset = dynamic.iter().position(|route| route.matches(request))?;
                Some(self.first_dynamic + offset)
            })?;
            let route = self.routes.get(index)?;
            Some(Match {
                route,
                index,
                params: route.params(request),
            })
        })
    }
}

/// Fail on the first two routes of one shape (in file order), naming both files.
fn refuse_collisions(routes: &[Route]) -> Result<(), RouterError> {
    let mut seen = HashMap::with_capacity(routes.len());
    for route in routes {
        if let Some(first) = seen.insert(route.shape(), route) {
            return Err(RouterError::Collision {
                route: route.path.clone(),
                first: first.file.clone(),
                second: route.file.clone(),
            });
        }
    }
    Ok(())
}

impl<'a> IntoIterator for &'a Routes {
    type Item = &'a Route;
    type IntoIter = std::slice::Iter<'a, Route>;

    fn into_iter(self) -> Self::IntoIter {
        self.routes.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::Routes;
    use crate::request::{segments, strip_query};
    use std::path::PathBuf;

    /// The static lookup table must pick exactly what a plain scan in priority order picks.
    #[test]
    fn static_lookup_agrees_with_a_full_scan() {
        let files = [
            "index.js",
            "about.js",
            "hello world.js",
            "100%.js",
            "a/b/c.js",
            "a/[x]/c.js",
            "[id].js",
            "a/[...rest].js",
            "[...all].js",
        ];
        let words = [
            "",
            "a",
            "b",
            "c",
            "about",
            "hello%20world",
            "100%",
            "100%25",
            "%2F",
            "%FF",
            "x",
        ];
        for prefix in ["", "app"] {
            let routes =
                Routes::new(files.iter().map(PathBuf::from).collect(), prefix).expect("routes");
            let mut paths = vec![String::new()];
            for _ in 0..3 {
                let mut longer = Vec::new();
                for path in &paths {
                    for word in words {
                        longer.push(format!("{path}/{word}"));
                        longer.push(format!("{path}//{word}/"));
                    }
                }
                paths.extend(longer);
            }
            for path in &paths {
                let request: Vec<&str> = segments(strip_query(path)).collect();
                let scanned = routes
                    .routes
                    .iter()
                    .position(|route| route.matches(&request));
                let found = routes.find(path).map(|found| found.index);
                assert_eq!(found, scanned, "prefix {prefix:?}, request {path:?}");
                let prefixed = format!("/app{path}");
                let request: Vec<&str> = segments(&prefixed).collect();
                let scanned = routes
                    .routes
                    .iter()
                    .position(|route| route.matches(&request));
                assert_eq!(
                    routes.find(&prefixed).map(|f| f.index),
                    scanned,
                    "{prefixed:?}"
                );
            }
        }
    }
}
