//! The HTTP front: accepts connections, matches each request to a worker route or a static
//! file, runs the worker, and turns its output into the response. Failing workers become 5xx
//! responses and log lines naming the worker; the server itself keeps going.

mod app;
mod conditional;
mod cores;
mod cors;
mod dispatch;
mod metrics;
mod outbox;
mod respond;
mod serve;
mod static_files;

pub use app::{App, AppConfig, Endpoint};
pub use cores::Serving;
pub use cors::Cors;
pub use metrics::{Metrics, serve_metrics};
pub use serve::serve;
pub use static_files::StaticFiles;
