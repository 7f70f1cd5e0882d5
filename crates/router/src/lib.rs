//! wws-router: project files to routes to matches, pure (no engine, no I/O beyond discovery).
//!
//! 1. [`discover`] walks the project for worker files (spec §2.1).
//! 2. [`Routes::new`] turns each file into a [`Route`] (§2.2–2.3), refuses two files with one
//!    pattern, applies the `--prefix` ([`normalize_prefix`], §2.6) and sorts by priority (§2.4).
//! 3. [`Routes::find`] picks the route for a request path and extracts its parameters.
//!
//! See `README.md` beside this crate for the rules table and the original's bugs fixed here.
//!
//! ```
//! use std::path::PathBuf;
//! use wws_router::Routes;
//!
//! let files = ["index.js", "[id].wasm", "sub/[...all].wasm"].map(PathBuf::from).to_vec();
//! let routes = Routes::new(files, "app")?;
//! let found = routes.find("/app/sub/a/b%20c").expect("the catch-all serves it");
//! assert_eq!(found.route.path, "/app/sub/[...all]");
//! assert_eq!(found.param("all"), Some("a/b c"));
//! assert_eq!(routes.find("/app/").map(|m| m.route.path.as_str()), Some("/app"));
//! # Ok::<(), wws_router::RouterError>(())
//! ```

mod discover;
mod error;
mod prefix;
mod request;
mod route;
mod routes;
mod segment;

pub use discover::discover;
pub use error::RouterError;
pub use prefix::normalize_prefix;
pub use route::{Route, RouteKind};
pub use routes::{Match, Routes};
pub use segment::Segment;
