//! The route table: built once at startup (collisions refused, sorted by priority), then asked
//! per request for the best match.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::error::RouterError;
use crate::prefix::normalize_prefix;
use crate::request::{segments, strip_query};
use crate::route::Route;

/// All routes of a project, in priority order (spec §2.4).
#[derive(Debug, Clone, Default)]
pub struct Routes {
    routes: Vec<Route>,
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
        let routes = files
            .into_iter()
            .map(|file| Route::new(file, &prefix))
            .collect::<Result<Vec<_>, _>>()?;

        let mut seen = HashMap::with_capacity(routes.len());
        for route in &routes {
            if let Some(first) = seen.insert(route.shape(), route) {
                return Err(RouterError::Collision {
                    route: route.path.clone(),
                    first: first.file.clone(),
                    second: route.file.clone(),
                });
            }
        }
        drop(seen);

        let mut routes = routes;
        routes.sort_by(Route::priority_cmp);
        Ok(Routes { routes })
    }

    /// The routes in priority order: the order `find` tries them.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
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
    /// match nothing. Costs one pass to count segments, then a comparison per route whose length
    /// fits; it allocates only the parameter values.
    pub fn find(&self, path: &str) -> Option<Match<'_>> {
        let path = strip_query(path);
        let count = segments(path).count();
        self.routes
            .iter()
            .enumerate()
            .find(|(_, route)| route.matches(path, count))
            .map(|(index, route)| Match {
                route,
                index,
                params: route.params(path),
            })
    }
}

impl<'a> IntoIterator for &'a Routes {
    type Item = &'a Route;
    type IntoIter = std::slice::Iter<'a, Route>;

    fn into_iter(self) -> Self::IntoIter {
        self.routes.iter()
    }
}
