//! `--cors ORIGIN`: answers preflight requests and adds `Access-Control-Allow-Origin`.
//!
//! The original joined several origins with commas, which browsers reject: the header must be
//! one origin or `*`. Here the request's `Origin` is echoed when it is allowed (with
//! `Vary: Origin`), `*` allows any origin, and `OPTIONS` preflights get a 204 with the allowed
//! methods and the requested headers.

use http::header::{self, HeaderMap, HeaderValue};

/// Allowed origins; empty means CORS is off.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    origins: Vec<String>,
}

impl Cors {
    /// Allows the given origins (`*` for any).
    /// Origins as given (`--cors`), trimmed and without a trailing `/` (a browser's `Origin`
    /// has none); one that is not `*` or `scheme://host[:port]` is named in a warning.
    pub fn new(origins: Vec<String>) -> Self {
        let origins = origins
            .iter()
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .inspect(|o| {
                let shaped = o == "*"
                    || o.split_once("://").is_some_and(|(scheme, rest)| {
                        !scheme.is_empty() && !rest.is_empty() && !rest.contains(['/', ' ', ','])
                    });
                if !shaped {
                    tracing::warn!(
                        "--cors {o:?} is not an origin (`*` or scheme://host[:port], like https://app.example): no browser sends it"
                    );
                }
            })
            .collect();
        Self { origins }
    }

    /// Whether CORS is configured.
    pub fn enabled(&self) -> bool {
        !self.origins.is_empty()
    }

    /// The `Access-Control-Allow-Origin` value for a request with these headers, if allowed.
    pub fn allow_origin(&self, request: &HeaderMap) -> Option<HeaderValue> {
        if self.origins.iter().any(|o| o == "*") {
            return Some(HeaderValue::from_static("*"));
        }
        let origin = request.get(header::ORIGIN)?;
        let origin_str = origin.to_str().ok()?;
        self.origins
            .iter()
            .any(|o| o == origin_str)
            .then(|| origin.clone())
    }

    /// Whether this is a preflight request we should answer.
    pub fn is_preflight(&self, method: &http::Method, request: &HeaderMap) -> bool {
        self.enabled()
            && method == http::Method::OPTIONS
            && request.contains_key(header::ORIGIN)
            && request.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// Adds the CORS headers to a worker or file response, unless the worker set them.
    pub fn decorate(&self, request: &HeaderMap, response: &mut HeaderMap) {
        if !self.enabled() || response.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
            return;
        }
        let wildcard = self.origins.iter().any(|o| o == "*");
        if let Some(value) = self.allow_origin(request) {
            response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        }
        // The answer depends on the Origin (even when refused): caches must keep them apart.
        if !wildcard {
            response.append(header::VARY, HeaderValue::from_static("Origin"));
        }
    }

    /// Headers of a preflight answer (204).
    pub fn preflight(&self, request: &HeaderMap) -> HeaderMap {
        let mut out = HeaderMap::new();
        let Some(origin) = self.allow_origin(request) else {
            return out;
        };
        let wildcard = origin == "*";
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        out.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"),
        );
        if let Some(requested) = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested.clone());
        }
        out.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
        if !wildcard {
            out.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(origin: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        h
    }

    #[test]
    fn one_of_several_origins_is_echoed() {
        let cors = Cors::new(vec!["https://a.test".into(), "https://b.test".into()]);
        assert_eq!(
            cors.allow_origin(&req("https://b.test")).unwrap(),
            "https://b.test"
        );
        assert!(cors.allow_origin(&req("https://evil.test")).is_none());
    }

    #[test]
    fn origins_are_trimmed_and_lose_a_trailing_slash() {
        let cors = Cors::new(vec!["https://a.test/".into(), " https://b.test".into()]);
        assert!(cors.allow_origin(&req("https://a.test")).is_some());
        assert!(cors.allow_origin(&req("https://b.test")).is_some());
    }

    #[test]
    fn wildcard_allows_any() {
        let cors = Cors::new(vec!["*".into()]);
        assert_eq!(cors.allow_origin(&HeaderMap::new()).unwrap(), "*");
    }
}
