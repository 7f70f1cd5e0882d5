//! The key/value snapshot and route parameters handed to handlers (`wws_sdk::cache::Cache`
//! is the path early versions of the original kit used).

use std::collections::HashMap;

/// The worker's key/value namespace as a map (`[data.kv] namespace` in its TOML).
///
/// A `#[worker(cache)]` handler gets it mutably: keys it sets or removes are written back by
/// wws when the handler succeeds; nothing is written when it fails. Only the keys that changed
/// are written, so concurrent requests touching different keys do not lose updates.
pub type Cache = HashMap<String, String>;

/// Dynamic route parameters, e.g. `{"id": "1"}` for `api/[id].wasm` serving `/api/1`.
pub type Params = HashMap<String, String>;
