//! Prometheus metrics (`--metrics ADDR`): requests by route and status, their duration, and
//! why workers failed, served as text on their own listener (`GET /metrics`) so that neither
//! a worker route can hide them nor the public port expose them. Off by default: then no
//! request pays for them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// What answered a request: a worker's route (`/api/[id]`), `public/` or nothing (404).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Answered {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Failure {
    worker: String,
    reason: String,
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<Answered, Counter>,
    duration: Family<Route, Histogram>,
    failures: Family<Failure, Counter>,
}

/// Label of requests answered from `public/`.
pub(crate) const PUBLIC: &str = "public/";
/// Label of requests nothing answered (404).
pub(crate) const NO_ROUTE: &str = "none";

fn duration_histogram() -> Histogram {
    // 50 µs to about 13 s.
    Histogram::new(exponential_buckets(50e-6, 4.0, 10))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("wws");
        let requests = Family::<Answered, Counter>::default();
        registry.register(
            "requests",
            "HTTP requests answered, by what answered them and the status",
            requests.clone(),
        );
        let duration = Family::<Route, Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        registry.register(
            "request_duration_seconds",
            "Time from the request's head to its response's head",
            duration.clone(),
        );
        let failures = Family::<Failure, Counter>::default();
        registry.register(
            "worker_failures",
            "Worker runs that did not produce a response, by worker file and reason",
            failures.clone(),
        );
        Self {
            registry,
            requests,
            duration,
            failures,
        }
    }
}

impl Metrics {
    /// Counts one answered request.
    pub(crate) fn answered(&self, route: &str, status: StatusCode, took: Duration) {
        let route = route.to_owned();
        self.duration
            .get_or_create(&Route {
                route: route.clone(),
            })
            .observe(took.as_secs_f64());
        self.requests
            .get_or_create(&Answered {
                route,
                status: status.as_u16(),
            })
            .inc();
    }

    /// Counts a run of `worker` that failed for `reason` ([`wws_worker::RunError::kind`]).
    pub(crate) fn failed(&self, worker: &str, reason: &'static str) {
        self.failures
            .get_or_create(&Failure {
                worker: worker.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves.
pub async fn serve_metrics(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!("metrics: accept failed: {err}");
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                async move {
                    if req.uri().path() == "/metrics" {
                        Response::builder()
                            .header(
                                header::CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )
                            .body(Full::new(Bytes::from(metrics.render())))
                    } else {
                        Response::builder()
                            .status(StatusCode::NOT_FOUND)
                            .body(Full::new(Bytes::from_static(b"metrics are at /metrics\n")))
                    }
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
