//! Everything a request needs, built once at startup and shared by all connections.

use std::sync::Arc;

use wws_kv::KvStore;
use wws_router::Routes;
use wws_worker::Worker;

use crate::cors::Cors;
use crate::metrics::Metrics;
use crate::static_files::StaticFiles;

/// A route's worker and its per-worker settings.
pub struct Endpoint {
    /// The prepared worker.
    pub worker: Arc<Worker>,
    /// Its key/value namespace, if it has one.
    pub kv_namespace: Option<String>,
}

/// Settings of the HTTP front.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Largest request body accepted (larger gets 413).
    pub max_body_bytes: usize,
    /// Normalised prefix (`""` or `/app`), also applied to static files.
    pub prefix: String,
}

/// The served application.
pub struct App {
    pub(crate) routes: Routes,
    pub(crate) endpoints: Vec<Endpoint>,
    pub(crate) statics: Option<StaticFiles>,
    pub(crate) cors: Cors,
    pub(crate) kv: Arc<dyn KvStore>,
    pub(crate) config: AppConfig,
    /// Set with `--metrics`; `None` costs requests nothing.
    pub(crate) metrics: Option<Arc<Metrics>>,
    /// Runs that answered early and go on (`waitUntil` work): a shutdown waits for them, so
    /// their key/value writes are not lost.
    pub(crate) background: tokio_util::task::TaskTracker,
}

impl App {
    /// Assembles the app. `endpoints[i]` serves `routes.get(i)`.
    pub fn new(
        routes: Routes,
        endpoints: Vec<Endpoint>,
        statics: Option<StaticFiles>,
        cors: Cors,
        kv: Arc<dyn KvStore>,
        config: AppConfig,
    ) -> Self {
        assert_eq!(routes.len(), endpoints.len(), "one endpoint per route");
        Self {
            routes,
            endpoints,
            statics,
            cors,
            kv,
            config,
            metrics: None,
            background: tokio_util::task::TaskTracker::new(),
        }
    }

    /// Counts requests in `metrics` (`metrics.rs`).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

/// What answered a request, noted on the response for the metrics (only when they are on).
#[derive(Clone, Copy)]
pub(crate) enum AnsweredBy {
    Route(usize),
    Public,
}
