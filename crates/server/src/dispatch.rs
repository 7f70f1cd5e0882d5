//! One request, start to finish: preflight, route match, static files, worker run, response.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Body as _;
use hyper::body::Incoming;
use wws_router::RouteKind;
use wws_worker::RunError;
use wws_worker::protocol::{KvValue, WorkerRequest, WorkerResponse};

use crate::app::{AnsweredBy, App, Endpoint};
use crate::respond::{self, Body};

impl App {
    /// Answers one request. Never fails: every problem becomes a status code. With debug logs
    /// on (`RUST_LOG=debug`), each request is logged once answered: method, path, status, time.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        // Off by default: a line per request costs more than a small worker's whole run.
        let logged = tracing::enabled!(tracing::Level::DEBUG);
        if !logged && self.metrics.is_none() {
            return self.answer(req).await;
        }
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let resp = self.answer(req).await;
        if let Some(metrics) = &self.metrics {
            let route = match resp.extensions().get::<AnsweredBy>() {
                Some(AnsweredBy::Route(index)) => self.routes.get(*index).path.as_str(),
                Some(AnsweredBy::Public) => crate::metrics::PUBLIC,
                None => crate::metrics::NO_ROUTE,
            };
            metrics.answered(route, resp.status(), started.elapsed());
        }
        if logged {
            tracing::debug!(
                %method,
                path,
                status = resp.status().as_u16(),
                elapsed = ?started.elapsed(),
                "request"
            );
        }
        resp
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<Body> {
        // Only origin-form targets (`/path?query`) name a route: `OPTIONS *` asks about the
        // server, CONNECT asks for a tunnel, and `GET about` is malformed.
        if req.method() == http::Method::CONNECT {
            return respond::simple(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain; charset=utf-8",
                "wws is not a proxy\n",
            );
        }
        if !req.uri().path().starts_with('/') {
            if req.method() == http::Method::OPTIONS && req.uri().path() == "*" {
                let mut resp = respond::simple(StatusCode::NO_CONTENT, "text/plain", Bytes::new());
                resp.headers_mut().insert(
                    header::ALLOW,
                    http::HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
                );
                return resp;
            }
            return respond::simple(
                StatusCode::BAD_REQUEST,
                "text/plain; charset=utf-8",
                "the request target must be a path starting with /\n",
            );
        }
        if !self.cors.enabled() {
            return self.route(req).await;
        }
        if self.cors.is_preflight(req.method(), req.headers()) {
            let mut resp = respond::simple(StatusCode::NO_CONTENT, "text/plain", Bytes::new());
            resp.headers_mut()
                .extend(self.cors.preflight(req.headers()));
            return resp;
        }
        let request_headers = req.headers().clone();
        let mut resp = self.route(req).await;
        self.cors.decorate(&request_headers, resp.headers_mut());
        resp
    }

    async fn route(&self, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_owned();
        // Files are read-only: only GET and HEAD are theirs; a DELETE goes to the worker.
        let reads = matches!(*req.method(), http::Method::GET | http::Method::HEAD);
        if let Some(found) = self.routes.find(&path) {
            if found.route.kind != RouteKind::Static && reads {
                // A file in public/ wins over dynamic and catch-all routes (spec §2.5).
                if let Some(resp) = self.static_file(&path, req.headers()).await {
                    return self.noted(resp, AnsweredBy::Public);
                }
            }
            let index = found.index;
            let params = found.params;
            let resp = self.run_worker(&self.endpoints[index], req, params).await;
            return self.noted(resp, AnsweredBy::Route(index));
        }
        if let Some(resp) = self.static_file(&path, req.headers()).await {
            if reads {
                return self.noted(resp, AnsweredBy::Public);
            }
            let mut resp = respond::simple(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain; charset=utf-8",
                "a static file answers GET and HEAD only\n",
            );
            resp.headers_mut()
                .insert(header::ALLOW, http::HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        self.not_found().await
    }

    /// Notes what answered on the response, for the metrics (only when they are on).
    fn noted(&self, mut resp: Response<Body>, by: AnsweredBy) -> Response<Body> {
        if self.metrics.is_some() {
            resp.extensions_mut().insert(by);
        }
        resp
    }

    async fn static_file(&self, path: &str, request: &http::HeaderMap) -> Option<Response<Body>> {
        let statics = self.statics.as_ref()?;
        let rest = strip_prefix(path, &self.config.prefix)?;
        let file = statics.get(rest).await?;
        Some(crate::conditional::respond(request, file))
    }

    async fn not_found(&self) -> Response<Body> {
        if let Some(statics) = &self.statics
            && let Some(page) = statics.not_found_page().await
        {
            return respond::file(StatusCode::NOT_FOUND, page);
        }
        respond::simple(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            Bytes::new(),
        )
    }

    async fn run_worker(
        &self,
        endpoint: &Endpoint,
        req: Request<Incoming>,
        params: Vec<(String, String)>,
    ) -> Response<Body> {
        let worker = endpoint.worker.name();
        let (parts, body) = req.into_parts();
        let body = match self.read_body(body).await {
            Ok(body) => body,
            Err(resp) => return resp,
        };

        let snapshot = match &endpoint.kv_namespace {
            Some(ns) => match self.kv.snapshot(ns).await {
                Ok(s) => Some(s),
                Err(err) => {
                    tracing::error!(worker, "key/value namespace {ns} unavailable: {err:#}");
                    return respond::worker_error(StatusCode::SERVICE_UNAVAILABLE);
                }
            },
            None => None,
        };
        let empty = HashMap::new();
        let kv = snapshot.as_deref().unwrap_or(&empty);
        let url = full_url(&parts);
        let input = WorkerRequest::new(
            &url,
            parts.method.as_str(),
            &parts.headers,
            &body,
            kv,
            &params,
        )
        .to_bytes();
        drop(body);

        let (stdout, rest) = match endpoint.worker.serve(Bytes::from(input)).await {
            Ok(answer) => (answer.stdout, answer.rest),
            // Overload: the worker crate logs why once per interval; one line per refused
            // request would flood the log exactly when it matters.
            Err(RunError::Busy) => {
                if let Some(metrics) = &self.metrics {
                    metrics.failed(worker, RunError::Busy.kind());
                }
                tracing::debug!(
                    worker,
                    path = parts.uri.path(),
                    "refused: {}",
                    RunError::Busy
                );
                let mut resp = respond::worker_error(StatusCode::SERVICE_UNAVAILABLE);
                resp.headers_mut().insert(
                    header::RETRY_AFTER,
                    http::HeaderValue::from_static(RETRY_AFTER),
                );
                return resp;
            }
            Err(err) => {
                tracing::error!(worker, path = parts.uri.path(), "worker {err}");
                if let Some(metrics) = &self.metrics {
                    metrics.failed(worker, err.kind());
                }
                let status = match err {
                    RunError::Timeout(_) | RunError::WallTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                return respond::worker_error(status);
            }
        };
        let mut output = match WorkerResponse::parse(&stdout) {
            Ok(o) => o,
            Err(err) => {
                tracing::error!(worker, path = parts.uri.path(), "worker {err}");
                return respond::worker_error(StatusCode::INTERNAL_SERVER_ERROR);
            }
        };
        let mut after = None;
        let changes = match (&endpoint.kv_namespace, output.kv.take()) {
            (Some(ns), Some(state)) => {
                let state = kv_state(state);
                // What the namespace holds once the answer's changes are in, for the trailer's.
                after = rest.is_some().then(|| {
                    state
                        .iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
                        .collect::<HashMap<_, _>>()
                });
                Some((ns, wws_kv::diff(kv, state)))
            }
            _ => None,
        };
        // Our reference to the snapshot must go before the write-back, or the store has to copy
        // the whole namespace to apply the change.
        drop(snapshot);
        let resp = match respond::from_worker(worker, output) {
            Ok(resp) => resp,
            Err(err) => {
                tracing::error!(worker, path = parts.uri.path(), "worker {err}");
                return respond::worker_error(StatusCode::INTERNAL_SERVER_ERROR);
            }
        };
        if let Some((ns, changes)) = changes
            && let Err(err) = self.kv.apply(ns, changes).await
        {
            tracing::error!(worker, "could not save key/value namespace {ns}: {err:#}");
            return respond::worker_error(StatusCode::SERVICE_UNAVAILABLE);
        }
        if let Some(rest) = rest {
            let finish =
                self.finish_after_answer(endpoint, parts.uri.path().to_owned(), after, rest);
            self.background.spawn(finish);
        }
        resp
    }

    /// The end of a run that answered early: logs how it ended and saves the key/value
    /// changes made after the answer (its trailer's `kv`, against the answer's).
    fn finish_after_answer(
        &self,
        endpoint: &Endpoint,
        path: String,
        answered: Option<HashMap<String, String>>,
        rest: wws_worker::Rest,
    ) -> impl Future<Output = ()> + Send + 'static {
        let store = self.kv.clone();
        let namespace = endpoint.kv_namespace.clone();
        let worker = endpoint.worker.name().to_owned();
        async move {
            let trailer = match rest.await {
                Ok(trailer) => trailer,
                Err(err) => {
                    tracing::error!(worker, path, "worker {err} (after it answered)");
                    return;
                }
            };
            if trailer.is_empty() {
                return;
            }
            let state = match WorkerResponse::parse(&trailer) {
                Ok(mut output) => output.kv.take(),
                Err(err) => {
                    tracing::error!(worker, path, "worker {err} (after it answered)");
                    return;
                }
            };
            let (Some(ns), Some(state), Some(answered)) = (namespace, state, answered) else {
                return;
            };
            let changes = wws_kv::diff(&answered, kv_state(state));
            if let Err(err) = store.apply(&ns, changes).await {
                tracing::error!(worker, "could not save key/value namespace {ns}: {err:#}");
            }
        }
    }
}

/// A worker's output `kv` as the namespace it describes (`None`: the key is removed).
fn kv_state(kv: HashMap<String, KvValue>) -> HashMap<String, Option<String>> {
    kv.into_iter().map(|(k, v)| (k, v.into_string())).collect()
}

/// The 413 for a body over `limit` bytes.
fn too_large(limit: usize) -> Response<Body> {
    respond::simple(
        StatusCode::PAYLOAD_TOO_LARGE,
        "text/plain; charset=utf-8",
        format!("request body larger than {limit} bytes\n"),
    )
}

/// Seconds a client refused with 503 (every instance slot busy) should wait before retrying.
const RETRY_AFTER: &str = "1";

impl App {
    /// The whole request body, or the response that refuses it (too large, too slow, broken).
    async fn read_body(&self, body: Incoming) -> Result<Bytes, Response<Body>> {
        // Most requests have no body: no timer to arm and cancel for them.
        if body.is_end_stream() {
            return Ok(Bytes::new());
        }
        // A declared length past the limit is refused before any of it is read (and a client
        // that sent `Expect: 100-continue` does not upload it at all).
        if body.size_hint().lower() > self.config.max_body_bytes as u64 {
            return Err(too_large(self.config.max_body_bytes));
        }
        let collect = Limited::new(body, self.config.max_body_bytes).collect();
        let Ok(collected) = tokio::time::timeout(BODY_TIMEOUT, collect).await else {
            return Err(respond::simple(
                StatusCode::REQUEST_TIMEOUT,
                "text/plain; charset=utf-8",
                "request body not received in time\n",
            ));
        };
        match collected {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(err) if err.is::<http_body_util::LengthLimitError>() => {
                Err(too_large(self.config.max_body_bytes))
            }
            Err(err) => {
                tracing::debug!("reading request body: {err}");
                Err(respond::simple(
                    StatusCode::BAD_REQUEST,
                    "text/plain; charset=utf-8",
                    "bad request body\n",
                ))
            }
        }
    }
}

/// How long a client may take to send a request body (slow clients must not hold a
/// connection forever).
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// `scheme://host/path?query` as the worker protocol wants it; the host comes from the
/// `Host` header (or the URI for HTTP/2), the scheme from `X-Forwarded-Proto` when a proxy set it.
fn full_url(parts: &http::request::Parts) -> String {
    // As the original (actix' ConnectionInfo): a proxy's `Forwarded`, then `X-Forwarded-*`,
    // then the request itself.
    let scheme = forwarded(parts, "proto")
        .or_else(|| first_value(parts, "x-forwarded-proto"))
        .filter(|s| *s == "https" || *s == "http")
        .unwrap_or("http");
    // Only a well-formed authority: a Host such as `x/public#` would change the path a
    // worker parses out of the URL.
    let authority = |h: &&str| {
        h.parse::<http::uri::Authority>()
            .is_ok_and(|a| a.as_str() == *h)
            && !h.contains('@')
    };
    let host = forwarded(parts, "host")
        .filter(authority)
        .or_else(|| first_value(parts, "x-forwarded-host").filter(authority))
        .or_else(|| {
            parts
                .headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .filter(authority)
        })
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .unwrap_or("localhost");
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    // A client may send UTF-8 unencoded (`/café?q=été`); workers get it percent-encoded, as
    // a URL parser would give it (`/caf%C3%A9`), so `new URL(request.url).href` is the same.
    let encoded;
    let path = if path.is_ascii() {
        path
    } else {
        encoded = percent_encoding::percent_encode(path.as_bytes(), percent_encoding::CONTROLS)
            .to_string();
        &encoded
    };
    let mut url = String::with_capacity(scheme.len() + 3 + host.len() + path.len());
    for part in [scheme, "://", host, path] {
        url.push_str(part);
    }
    url
}

/// The first item of a comma-separated header (the proxy closest to the client).
fn first_value<'a>(parts: &'a http::request::Parts, name: &str) -> Option<&'a str> {
    let value = parts.headers.get(name)?.to_str().ok()?;
    let first = value.split(',').next()?.trim();
    (!first.is_empty()).then_some(first)
}

/// `key` of the first `Forwarded` element that has it (RFC 7239), unquoted.
fn forwarded<'a>(parts: &'a http::request::Parts, key: &str) -> Option<&'a str> {
    let value = parts.headers.get(header::FORWARDED)?.to_str().ok()?;
    value
        .split([',', ';'])
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(key))
        .map(|(_, v)| v.trim().trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// Path without the prefix, if it is under it. `""` prefix keeps everything.
fn strip_prefix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix.is_empty() {
        return Some(path);
    }
    if let Some(rest) = path.strip_prefix(prefix)
        && (rest.is_empty() || rest.starts_with('/'))
    {
        return Some(rest);
    }
    // A prefix with a space or non-ASCII letters arrives percent-encoded (`/a%20b/`): match
    // it segment by segment, decoded, and keep the rest of the path as it came.
    let mut rest = path;
    for want in prefix.split('/').filter(|s| !s.is_empty()) {
        let segment_and_more = rest.strip_prefix('/')?;
        let end = segment_and_more.find('/').unwrap_or(segment_and_more.len());
        let decoded = percent_encoding::percent_decode_str(&segment_and_more[..end]).decode_utf8();
        if decoded.ok()? != want {
            return None;
        }
        rest = &segment_and_more[end..];
    }
    Some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_matches_raw_or_percent_encoded() {
        assert_eq!(strip_prefix("/app/a.txt", "/app"), Some("/a.txt"));
        assert_eq!(strip_prefix("/app", "/app"), Some(""));
        assert_eq!(strip_prefix("/apple", "/app"), None);
        assert_eq!(strip_prefix("/a%20b/a.txt", "/a b"), Some("/a.txt"));
        assert_eq!(strip_prefix("/%C3%84PP/sub/x", "/ÄPP"), Some("/sub/x"));
        assert_eq!(strip_prefix("/%C3%84PPx/sub", "/ÄPP"), None);
    }

    fn url_of(headers: &[(&str, &str)]) -> String {
        let mut req = Request::builder().uri("/path?q=1");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        full_url(&req.body(()).unwrap().into_parts().0)
    }

    #[test]
    fn the_url_takes_scheme_and_host_from_the_proxy_headers_first() {
        assert_eq!(url_of(&[("host", "a.test")]), "http://a.test/path?q=1");
        assert_eq!(
            url_of(&[("host", "a.test"), ("x-forwarded-proto", "https")]),
            "https://a.test/path?q=1"
        );
        assert_eq!(
            url_of(&[
                ("host", "a.test"),
                ("x-forwarded-host", "b.test, proxy.internal"),
                ("x-forwarded-proto", "https, http")
            ]),
            "https://b.test/path?q=1"
        );
        assert_eq!(
            url_of(&[
                ("host", "a.test"),
                ("x-forwarded-host", "b.test"),
                (
                    "forwarded",
                    "for=1.2.3.4;proto=https;host=\"c.test:8443\", host=d.test"
                )
            ]),
            "https://c.test:8443/path?q=1"
        );
        // A value that is not an authority is skipped, never spliced into the URL.
        assert_eq!(
            url_of(&[("host", "a.test"), ("x-forwarded-host", "x/evil#")]),
            "http://a.test/path?q=1"
        );
        assert_eq!(url_of(&[]), "http://localhost/path?q=1");
    }
}
