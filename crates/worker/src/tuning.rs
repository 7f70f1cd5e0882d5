//! Overrides of the engine's memory settings, so that the choices in `engine.rs` can be
//! measured against their alternatives (`bench/run.sh`, "Engine memory settings"). The
//! defaults are the fastest measured; a production server needs none of these.
//!
//! - `WWS_ENGINE_COW=0`: initialise memories by copying their image instead of mapping it
//!   copy-on-write (`Config::memory_init_cow`).
//! - `WWS_ENGINE_PAGEMAP=0`: reset memories without `PAGEMAP_SCAN`: wasmtime then rewrites the
//!   whole resident part of a memory after each request.
//! - `WWS_ENGINE_KEEP_RESIDENT=BYTES`: memory kept resident per warm pool slot (default 8 MiB);
//!   `0` is wasmtime's own default (everything decommitted after each request).

use anyhow::Context as _;

/// Variable names, for messages and the benchmark.
pub const COW_ENV: &str = "WWS_ENGINE_COW";
/// See the module documentation.
pub const PAGEMAP_ENV: &str = "WWS_ENGINE_PAGEMAP";
/// See the module documentation.
pub const KEEP_RESIDENT_ENV: &str = "WWS_ENGINE_KEEP_RESIDENT";

/// Memory kept resident per warm slot between requests (notes: ≥ the guest's touched footprint).
const KEEP_RESIDENT: usize = 8 << 20;

/// The engine's memory settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuning {
    /// Copy-on-write memory images.
    pub cow: bool,
    /// `PAGEMAP_SCAN` resets, where the kernel has them.
    pub pagemap: bool,
    /// Bytes of linear memory kept resident per warm slot.
    pub keep_resident: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            cow: true,
            pagemap: true,
            keep_resident: KEEP_RESIDENT,
        }
    }
}

impl Tuning {
    /// The defaults with the overrides set in the environment; a malformed value is an error
    /// naming the variable.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let mut tuning = Self::default();
        let switch = |name: &str, default: bool| -> anyhow::Result<bool> {
            match get(name).as_deref().map(str::trim) {
                None => Ok(default),
                Some("1") => Ok(true),
                Some("0") => Ok(false),
                Some(other) => anyhow::bail!("{name}={other:?} must be 0 (off) or 1 (on)"),
            }
        };
        tuning.cow = switch(COW_ENV, tuning.cow)?;
        tuning.pagemap = switch(PAGEMAP_ENV, tuning.pagemap)?;
        if let Some(v) = get(KEEP_RESIDENT_ENV) {
            tuning.keep_resident = v.trim().parse().with_context(|| {
                format!(
                    "{KEEP_RESIDENT_ENV}={v:?} is not a number of bytes; use e.g. {KEEP_RESIDENT}"
                )
            })?;
        }
        Ok(tuning)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(
            Tuning::from_lookup(lookup(&[])).ok(),
            Some(Tuning::default())
        );
        let t = Tuning::from_lookup(lookup(&[(COW_ENV, "0"), (KEEP_RESIDENT_ENV, "0")]));
        assert_eq!(
            t.ok(),
            Some(Tuning {
                cow: false,
                pagemap: true,
                keep_resident: 0
            })
        );
    }

    #[test]
    fn malformed_values_name_the_variable() {
        let err = Tuning::from_lookup(lookup(&[(PAGEMAP_ENV, "yes")])).unwrap_err();
        assert!(err.to_string().contains(PAGEMAP_ENV), "{err}");
        let err = Tuning::from_lookup(lookup(&[(KEEP_RESIDENT_ENV, "8M")])).unwrap_err();
        assert!(format!("{err:#}").contains(KEEP_RESIDENT_ENV), "{err:#}");
    }
}
