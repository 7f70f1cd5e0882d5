//! The optional `<name>.toml` beside a worker (spec §4): name, vars, mounted folders, the
//! key/value namespace and the outbound-HTTP feature.
//!
//! Unlike the original, a file that does not parse stops the start with an error naming the
//! file, the key and the problem; the original silently dropped the whole file. Keys we do not
//! know are reported as warnings (they may be typos) but do not stop the start, so configs
//! written for the original (e.g. with `[features.wasi_nn]`) keep loading.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::Deserialize;

/// A worker's checked configuration. `Default` is what a worker without a `.toml` gets.
#[derive(Debug, Clone, Default)]
pub struct WorkerConfig {
    /// Label for logs (`name = "..."`).
    pub name: Option<String>,
    /// Environment variables, `$HOST_VAR` values already substituted.
    pub vars: Vec<(String, String)>,
    /// Mounted folders.
    pub folders: Vec<Folder>,
    /// Key/value namespace (`[data.kv] namespace`).
    pub kv_namespace: Option<String>,
    /// Outbound HTTP permissions (`[features.http_requests]`), `None` when not granted.
    pub http_requests: Option<HttpRequests>,
    /// Whether a runtime may reuse one instance for several requests (`[runtime] reuse`);
    /// `None` leaves it to the runtime.
    pub reuse: Option<bool>,
}

/// One `[[folders]]` entry.
#[derive(Debug, Clone)]
pub struct Folder {
    /// Absolute host folder (`from`, resolved against the worker's folder).
    pub from: PathBuf,
    /// Guest path (`to`).
    pub to: String,
    /// `readonly = true` mounts it read-only (default: read/write, as in the original).
    pub readonly: bool,
}

/// `[features.http_requests]`.
#[derive(Debug, Clone)]
pub struct HttpRequests {
    /// Hosts the worker may call.
    pub allowed_hosts: Vec<String>,
    /// Methods, uppercase.
    pub allowed_methods: Vec<String>,
    /// Whether plain `http://` is allowed.
    pub allow_http: bool,
}

#[derive(Deserialize)]
#[serde(expecting = "a worker config table")]
struct Raw {
    name: Option<String>,
    version: Option<String>,
    #[serde(default)]
    vars: BTreeMap<String, String>,
    #[serde(default)]
    folders: Vec<RawFolder>,
    #[serde(default)]
    data: RawData,
    #[serde(default)]
    features: RawFeatures,
    runtime: Option<RawRuntime>,
    #[serde(flatten)]
    unknown: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
#[serde(
    expecting = "a folder table like `[[folders]]` with `from = \"./data\"` and `to = \"/data\"`"
)]
struct RawFolder {
    from: String,
    to: String,
    #[serde(default)]
    readonly: bool,
    #[serde(flatten)]
    unknown: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize, Default)]
#[serde(expecting = "a `[data]` table")]
struct RawData {
    kv: Option<RawKv>,
    #[serde(flatten)]
    unknown: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
#[serde(expecting = "a table like `[data.kv]` with `namespace = \"name\"`")]
struct RawKv {
    namespace: String,
    #[serde(flatten)]
    unknown: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize, Default)]
#[serde(expecting = "a `[features]` table")]
struct RawFeatures {
    http_requests: Option<RawHttp>,
    wasi_nn: Option<toml::Value>,
    #[serde(flatten)]
    unknown: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
#[serde(
    expecting = "a table like `[features.http_requests]` with `allowed_hosts = [\"api.example.com\"]`"
)]
struct RawHttp {
    #[serde(default)]
    allowed_hosts: Vec<String>,
    allowed_methods: Option<Vec<String>>,
    #[serde(default)]
    allow_http: bool,
    #[serde(flatten)]
    unknown: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
struct RawRuntime {
    reuse: Option<bool>,
    #[serde(flatten)]
    unknown: BTreeMap<String, toml::Value>,
}

const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"];

/// Path of the config file of `worker_file`: same name, `.toml` extension.
pub fn config_path(worker_file: &Path) -> PathBuf {
    worker_file.with_extension("toml")
}

impl WorkerConfig {
    /// Loads the config of the worker at `worker_file` (absolute), or the default when there is
    /// no `.toml` beside it. `env` looks up host variables for `$NAME` values.
    pub fn load_for(
        worker_file: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let path = config_path(worker_file);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
        };
        let base = worker_file.parent().unwrap_or(Path::new("."));
        Self::parse(&text, &path, base, env)
    }

    /// Parses and validates the text of `path`; relative folders resolve against `base`.
    pub fn parse(
        text: &str,
        path: &Path,
        base: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let file = path.display();
        let raw: Raw =
            serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|err| {
                let key = err.path().to_string();
                let detail = err.into_inner().to_string();
                if key == "." {
                    anyhow::anyhow!("invalid worker config {file}: {}", detail.trim_end())
                } else {
                    anyhow::anyhow!(
                        "invalid worker config {file}: key `{key}`: {}",
                        detail.trim_end()
                    )
                }
            })?;
        let warn_unknown = |table: &str, unknown: &BTreeMap<String, toml::Value>| {
            for key in unknown.keys() {
                tracing::warn!("{file}: unknown key `{table}{key}` is ignored; check its spelling");
            }
        };
        warn_unknown("", &raw.unknown);
        warn_unknown("data.", &raw.data.unknown);
        warn_unknown("features.", &raw.features.unknown);
        if let Some(kv) = &raw.data.kv {
            warn_unknown("data.kv.", &kv.unknown);
        }
        if let Some(h) = &raw.features.http_requests {
            warn_unknown("features.http_requests.", &h.unknown);
        }
        if let Some(r) = &raw.runtime {
            warn_unknown("runtime.", &r.unknown);
        }
        match raw.version.as_deref() {
            Some("1") => {}
            None => tracing::warn!("{file}: missing `version = \"1\"`; assuming version 1"),
            Some(other) => {
                bail!("{file}: unsupported `version = \"{other}\"`; wws reads version \"1\"")
            }
        }
        if raw.features.wasi_nn.is_some() {
            tracing::warn!("{file}: `[features.wasi_nn]` is not supported by wws and is ignored");
        }

        let mut vars = Vec::with_capacity(raw.vars.len());
        for (key, value) in raw.vars {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                bail!("{file}: `vars.{key}` is not a valid environment variable name");
            }
            let value = match value.strip_prefix('$') {
                Some(name) if !name.is_empty() && !value.contains(' ') => {
                    env(name).unwrap_or_else(|| {
                        tracing::warn!(
                            "{file}: `vars.{key}` refers to ${name}, which is not set; using \"\""
                        );
                        String::new()
                    })
                }
                _ => value,
            };
            vars.push((key, value));
        }

        let mut folders = Vec::with_capacity(raw.folders.len());
        for (i, f) in raw.folders.into_iter().enumerate() {
            let from = base.join(f.from.replace('\\', "/"));
            if !from.is_dir() {
                bail!(
                    "{file}: `folders[{i}].from` = {:?} is not a folder (looked for {}); create it or fix the path, which is relative to the worker's folder",
                    f.from,
                    from.display()
                );
            }
            if !f.to.starts_with('/') {
                bail!(
                    "{file}: `folders[{i}].to` = {:?} must be an absolute guest path such as \"/data\"",
                    f.to
                );
            }
            // A misspelt `readonly` would silently mount read-write: refuse instead.
            if let Some(key) = f.unknown.keys().next() {
                bail!(
                    "{file}: unknown key `folders[{i}].{key}`; a folder takes `from`, `to` and `readonly`"
                );
            }
            folders.push(Folder {
                from,
                to: f.to,
                readonly: f.readonly,
            });
        }

        let kv_namespace = match raw.data.kv {
            Some(kv) if kv.namespace.trim().is_empty() => {
                bail!("{file}: `data.kv.namespace` is empty; give the namespace a name")
            }
            Some(kv) => Some(kv.namespace),
            None => None,
        };

        let http_requests = match raw.features.http_requests {
            None => None,
            Some(h) => {
                let allowed_methods = match h.allowed_methods {
                    None => METHODS[..5].iter().map(|m| m.to_string()).collect(),
                    Some(methods) => {
                        let mut out = Vec::with_capacity(methods.len());
                        for m in methods {
                            let upper = m.to_ascii_uppercase();
                            if !METHODS.contains(&upper.as_str()) {
                                bail!(
                                    "{file}: `features.http_requests.allowed_methods` has {m:?}; use {}",
                                    METHODS.join(", ")
                                );
                            }
                            out.push(upper);
                        }
                        out
                    }
                };
                for host in &h.allowed_hosts {
                    if host.is_empty() || host.contains("://") || host.contains('/') {
                        bail!(
                            "{file}: `features.http_requests.allowed_hosts` has {host:?}; give a host name such as \"api.example.com\" without scheme or path"
                        );
                    }
                    // As in the original, an entry is compared with the URL's host as a whole:
                    // one with a port or a wildcard can never match. Said at load, not at the
                    // first refused request.
                    let port = host.contains(':') && !host.starts_with('[');
                    if port || host.contains('*') {
                        tracing::warn!(
                            "{file}: `features.http_requests.allowed_hosts` has {host:?}, which no request can match: entries are whole host names, without port or wildcard (\"api.example.com\", \"127.0.0.1\")"
                        );
                    }
                }
                Some(HttpRequests {
                    allowed_hosts: h.allowed_hosts,
                    allowed_methods,
                    allow_http: h.allow_http,
                })
            }
        };

        Ok(Self {
            name: raw.name,
            vars,
            folders,
            kv_namespace,
            http_requests,
            reuse: raw.runtime.and_then(|r| r.reuse),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<WorkerConfig> {
        let dir = std::env::temp_dir();
        WorkerConfig::parse(text, Path::new("api/index.toml"), &dir, |name| {
            (name == "TOKEN").then(|| "secret".to_string())
        })
    }

    #[test]
    fn original_example_parses() {
        let cfg = parse(
            r#"
name = "user-generation-js"
version = "1"
[vars]
TOKEN = "$TOKEN"
MISSING = "$NOPE"
PLAIN = "$ not a var"
[data]
[data.kv]
namespace = "counter"
[features]
[features.http_requests]
allowed_hosts = ["random-data-api.com"]
"#,
        )
        .unwrap();
        assert_eq!(cfg.name.as_deref(), Some("user-generation-js"));
        let vars: BTreeMap<_, _> = cfg.vars.into_iter().collect();
        assert_eq!(vars["TOKEN"], "secret");
        assert_eq!(vars["MISSING"], "");
        assert_eq!(vars["PLAIN"], "$ not a var");
        assert_eq!(cfg.kv_namespace.as_deref(), Some("counter"));
        assert_eq!(cfg.http_requests.unwrap().allowed_methods.len(), 5);
    }

    #[test]
    fn a_misspelt_folder_key_is_refused() {
        let err =
            parse("version = \"1\"\n[[folders]]\nfrom = \".\"\nto = \"/x\"\nread_only = true\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("folders[0].read_only"), "{err}");
    }

    #[test]
    fn errors_name_file_and_key() {
        let err = parse("version = \"1\"\n[vars]\nA = 3\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("api/index.toml") && err.contains("vars"),
            "{err}"
        );
        let err = parse("version = \"1\"\n[[folders]]\nfrom = \"./nope-missing\"\nto = \"/x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("folders[0].from"), "{err}");
        let err =
            parse("version = \"1\"\n[features.http_requests]\nallowed_methods = [\"FETCH\"]\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("allowed_methods"), "{err}");
        let err = parse("version = 1\n").unwrap_err().to_string();
        assert!(err.contains("version"), "{err}");
    }
}
