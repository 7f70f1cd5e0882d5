//! Compiled modules on disk, so a second start deserializes in milliseconds instead of
//! compiling for seconds (CPython 4 s, Ruby 10 s).
//!
//! A file is named after the BLAKE3 hash of the module (or of a snapshot's inputs) and the
//! engine's compatibility hash, so a
//! different wasmtime or different settings never pick up a stale artifact. Each file ends with
//! the SHA-256 of its own contents; a file that does not match (truncated, corrupted, written by
//! something else) is ignored and rebuilt. Only artifacts that wws wrote and verified are
//! deserialized — deserializing is `unsafe` in wasmtime because a forged artifact is native code.
//! The trailer is a BLAKE3 hash: a warm start reads every artifact once, and BLAKE3 checks a
//! few hundred megabytes in tens of milliseconds where SHA-256 needs a few hundred.
//! Someone who can write `.wws/cache` can also replace the worker itself, so this guards against
//! accidents, not against the project's owner.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The integrity trailer of a cache file.
fn trailer(bytes: &[u8]) -> [u8; TRAILER] {
    *blake3::hash(bytes).as_bytes()
}
use wasmtime::Module;
use wasmtime::component::Component;

const TRAILER: usize = 32;

/// A folder of compiled artifacts for one engine configuration.
#[derive(Debug, Clone)]
pub struct ModuleCache {
    dir: PathBuf,
    engine_hash: String,
}

impl ModuleCache {
    /// A cache in `dir` (created on first write) for artifacts of `engine`.
    pub fn new(dir: &Path, engine: &wasmtime::Engine) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Self {
            dir: dir.to_path_buf(),
            engine_hash: format!("{:016x}", hasher.finish()),
        }
    }

    /// Folder holding the artifacts.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads the compiled form of `bytes`, compiling and storing it on a miss.
    pub fn module(&self, engine: &wasmtime::Engine, bytes: &[u8]) -> anyhow::Result<Module> {
        let path = self.path_for(bytes, "module");
        if let Some(artifact) = read_verified(&path) {
            // SAFETY: the artifact was written by `store` below for this engine configuration
            // (name = module hash + engine hash) and its checksum trailer matches.
            #[allow(
                unsafe_code,
                reason = "deserializing an artifact wws wrote and verified"
            )]
            match unsafe { Module::deserialize(engine, &artifact) } {
                Ok(module) => return Ok(module),
                Err(err) => tracing::warn!("ignoring cached module {}: {err:#}", path.display()),
            }
        }
        let artifact = engine.precompile_module(bytes)?;
        self.store(&path, &artifact);
        #[allow(unsafe_code, reason = "the artifact was just produced by this engine")]
        // SAFETY: produced by `precompile_module` of this very engine a moment ago.
        Ok(unsafe { Module::deserialize(engine, &artifact) }?)
    }

    /// Same as [`Self::module`] for components.
    pub fn component(&self, engine: &wasmtime::Engine, bytes: &[u8]) -> anyhow::Result<Component> {
        let path = self.path_for(bytes, "component");
        if let Some(artifact) = read_verified(&path) {
            #[allow(
                unsafe_code,
                reason = "deserializing an artifact wws wrote and verified"
            )]
            // SAFETY: as in `module`: our own artifact, checksum verified.
            match unsafe { Component::deserialize(engine, &artifact) } {
                Ok(component) => return Ok(component),
                Err(err) => tracing::warn!("ignoring cached component {}: {err:#}", path.display()),
            }
        }
        let artifact = engine.precompile_component(bytes)?;
        self.store(&path, &artifact);
        #[allow(unsafe_code, reason = "the artifact was just produced by this engine")]
        // SAFETY: produced by `precompile_component` of this very engine a moment ago.
        Ok(unsafe { Component::deserialize(engine, &artifact) }?)
    }

    /// The compiled module stored under `key`, a hash the caller computed from everything the
    /// module depends on (e.g. a snapshot's inputs), if present and intact. A snapshot whose
    /// compiled form is cached is then never rebuilt, read or hashed again.
    pub fn module_by_key(&self, engine: &wasmtime::Engine, key: &str) -> Option<Module> {
        let path = self.keyed_path(key);
        let artifact = read_verified(&path)?;
        #[allow(
            unsafe_code,
            reason = "deserializing an artifact wws wrote and verified"
        )]
        // SAFETY: written by `store_module_by_key` for this engine configuration; trailer matches.
        match unsafe { Module::deserialize(engine, &artifact) } {
            Ok(module) => Some(module),
            Err(err) => {
                tracing::warn!("ignoring cached module {}: {err:#}", path.display());
                None
            }
        }
    }

    /// Compiles `bytes` and stores the result under `key` for [`Self::module_by_key`].
    pub fn store_module_by_key(
        &self,
        engine: &wasmtime::Engine,
        key: &str,
        bytes: &[u8],
    ) -> anyhow::Result<Module> {
        let artifact = engine.precompile_module(bytes)?;
        self.store(&self.keyed_path(key), &artifact);
        #[allow(unsafe_code, reason = "the artifact was just produced by this engine")]
        // SAFETY: produced by `precompile_module` of this very engine a moment ago.
        Ok(unsafe { Module::deserialize(engine, &artifact) }?)
    }

    fn keyed_path(&self, key: &str) -> PathBuf {
        self.dir
            .join(format!("{key}-{}-module.cwasm", self.engine_hash))
    }

    /// A stored blob (e.g. a pre-initialised snapshot) named `key`, if present and intact.
    pub fn get_blob(&self, key: &str) -> Option<Vec<u8>> {
        read_verified(&self.dir.join(format!("{key}.blob")))
    }

    /// Stores a blob under `key` (atomically, with a checksum trailer).
    pub fn put_blob(&self, key: &str, bytes: &[u8]) {
        self.store(&self.dir.join(format!("{key}.blob")), bytes);
    }

    fn path_for(&self, bytes: &[u8], kind: &str) -> PathBuf {
        let digest = blake3::hash(bytes).to_hex();
        self.dir
            .join(format!("{digest}-{}-{kind}.cwasm", self.engine_hash))
    }

    /// Writes atomically (temp file + rename). A failure only costs a recompile next time.
    fn store(&self, path: &Path, artifact: &[u8]) {
        let result = (|| -> anyhow::Result<()> {
            std::fs::create_dir_all(&self.dir)
                .with_context(|| format!("creating {}", self.dir.display()))?;
            let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
            use std::io::Write as _;
            tmp.write_all(artifact)?;
            tmp.write_all(&trailer(artifact))?;
            tmp.persist(path)?;
            Ok(())
        })();
        if let Err(err) = result {
            tracing::warn!(
                "could not cache a compiled module in {}: {err:#}",
                self.dir.display()
            );
        }
    }
}

/// Reads an artifact and checks its trailer; `None` for missing or damaged files.
fn read_verified(path: &Path) -> Option<Vec<u8>> {
    let mut data = std::fs::read(path).ok()?;
    if data.len() <= TRAILER {
        return None;
    }
    let split = data.len() - TRAILER;
    if trailer(&data[..split])[..] != data[split..] {
        tracing::warn!("ignoring damaged cache file {}", path.display());
        return None;
    }
    data.truncate(split);
    Some(data)
}
