//! Compiled modules on disk, so a second start maps them in milliseconds instead of compiling
//! for seconds (CPython 4 s, Ruby 10 s, a JS snapshot 1–2 s).
//!
//! A file is named after the BLAKE3 hash of the module (or of a snapshot's inputs), the
//! engine's compatibility hash and the cache format, so a different wasmtime or different
//! settings never pick up a stale artifact. Each file is wasmtime's artifact (an ELF image)
//! followed by a trailer, the keyed BLAKE3 hash (a MAC) of that artifact under a secret of
//! this user ([`key`], kept in the user's cache folder, outside every project). A file that
//! does not match (truncated, corrupted, or written by anything but this user's wws) is
//! ignored and rebuilt. Only artifacts that wws wrote are ever deserialized — deserializing is
//! `unsafe` in wasmtime because an artifact is native code, outside the sandbox. The project
//! folder is not trusted with that: a repository served from a git URL could ship
//! `.wws/cache`, and a worker granted a writable mount of its project could write into it,
//! which would turn sandboxed code into native code at the next start. Checking a warm start's
//! artifacts (160 MB for 25 JS and 25 wasm workers) costs about 30 ms of CPU, spread over the
//! threads that prepare workers.
//!
//! Loading is built for a warm start with many workers (issue #5: 50 workers, ≤ 100 ms):
//! - the file is opened once, **mapped** (not read) and its trailer checked through the map;
//!   the same open file is then handed to wasmtime (`Module::deserialize_open_file`), which
//!   maps it again copy-on-write. What was checked is what runs, and nothing is copied: a
//!   JS snapshot's 5.6 MB used to be read, hashed and copied into fresh memory (8–13 ms each);
//! - wasmtime ignores the 32 bytes after the ELF image, so the trailer can stay in the file;
//! - a file-backed module also lets wasmtime map a snapshot's memory image straight from the
//!   file at instantiation, instead of first copying it into a memfd;
//!
//! Files are created owner-only (0600) and a cache folder wws creates is 0700: JS and Ruby
//! snapshots hold the worker's vars, including values taken from the host's environment
//! (`$HOST_VAR` in a worker's TOML), which may be secrets (review finding F11).
//!
//! [`IncrementalCache`] is the second half: Cranelift's per-function cache, so snapshots that
//! share an engine's code (every JS worker runs the same QuickJS) compile it once.

use std::borrow::Cow;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::Context as _;
use wasmtime::Module;
use wasmtime::component::Component;

/// Length of the trailer: a keyed BLAKE3 hash.
const TRAILER: usize = blake3::OUT_LEN;

/// Part of every artifact's name: files of an older layout (unkeyed trailers) are never read.
const FORMAT: &str = "v3";

/// Name of the file holding the key, in the user's cache folder.
const KEY_FILE: &str = "cache.key";

/// The trailer of the cache file at `path`: the MAC under [`key`] of its name and its
/// artifact, so that an artifact renamed to another module's name does not verify either.
fn trailer(path: &Path, artifact: &[u8]) -> [u8; TRAILER] {
    let name = path.file_name().map_or(&b""[..], |n| n.as_encoded_bytes());
    let mut hasher = blake3::Hasher::new_keyed(key());
    hasher.update(&(name.len() as u64).to_le_bytes());
    hasher.update(name);
    hasher.update(artifact);
    *hasher.finalize().as_bytes()
}

/// This user's secret for cache trailers: read from (or created in, owner-only)
/// `$XDG_CACHE_HOME/wws/cache.key` or `~/.cache/wws/cache.key`. Where neither can be used, a
/// key for this process only: compiled modules are then not reused by later starts.
fn key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| {
        let dir = std::env::var_os("XDG_CACHE_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
            .map(|d| d.join("wws"));
        match dir.as_deref().map(stored_key) {
            Some(Ok(key)) => key,
            problem => {
                let why = match problem {
                    Some(Err(err)) => format!("{err:#}"),
                    _ => "neither XDG_CACHE_HOME nor HOME is set".to_owned(),
                };
                tracing::warn!("compiled modules will not be reused by later starts: no key to check them with ({why})");
                rand::random()
            }
        }
    })
}

/// The key in `dir`, created when missing.
fn stored_key(dir: &Path) -> anyhow::Result<[u8; 32]> {
    let path = dir.join(KEY_FILE);
    if let Ok(bytes) = std::fs::read(&path) {
        return <[u8; 32]>::try_from(bytes.as_slice())
            .map_err(|_| anyhow::anyhow!("{} is not a 32-byte key; delete it", path.display()));
    }
    create_private_dir(dir)?;
    let key: [u8; 32] = rand::random();
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(&key)?;
    // Another wws may have created it meanwhile: then theirs is the key.
    match tmp.persist_noclobber(&path) {
        Ok(_) => Ok(key),
        Err(_) => {
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            <[u8; 32]>::try_from(bytes.as_slice())
                .map_err(|_| anyhow::anyhow!("{} is not a 32-byte key; delete it", path.display()))
        }
    }
}

/// A folder of compiled artifacts for one engine configuration.
#[derive(Debug, Clone)]
pub struct ModuleCache {
    dir: PathBuf,
    engine_hash: String,
}

impl ModuleCache {
    /// A cache in `dir` (created on first write) for artifacts of `engine`.
    pub fn new(dir: &Path, engine: &wasmtime::Engine) -> Self {
        Self {
            dir: dir.to_path_buf(),
            engine_hash: format!("{:016x}", compatibility_hash(engine)),
        }
    }

    /// Folder holding the artifacts.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads the compiled form of `bytes`, compiling and storing it on a miss.
    pub fn module(&self, engine: &crate::Engine, bytes: &[u8]) -> anyhow::Result<Module> {
        let path = self.path_for(bytes, "module");
        if let Some(module) = load_module(engine.wasmtime(), &path) {
            return Ok(module);
        }
        let artifact = engine.precompile_module(bytes)?;
        self.store_module(engine.wasmtime(), &path, &artifact)
    }

    /// Same as [`Self::module`] for components.
    pub fn component(&self, engine: &crate::Engine, bytes: &[u8]) -> anyhow::Result<Component> {
        let precompile = |bytes: &[u8]| engine.precompile_component(bytes);
        let engine = engine.wasmtime();
        let path = self.path_for(bytes, "component");
        if open_verified(&path).is_some() {
            #[allow(
                unsafe_code,
                reason = "deserializing an artifact wws wrote and verified"
            )]
            // SAFETY: as in `load_module`: our own artifact, trailer verified a moment ago.
            // wasmtime has no `deserialize_open_file` for components, so it reopens the path;
            // wws only ever replaces cache files by renaming a complete, verified-on-write
            // artifact over them, never by writing in place.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok(component),
                Err(err) => tracing::warn!("ignoring cached component {}: {err:#}", path.display()),
            }
        }
        let artifact = precompile(bytes)?;
        self.store(&path, &artifact);
        #[allow(unsafe_code, reason = "the artifact was just produced for this engine")]
        // SAFETY: produced by `precompile_component` a moment ago, for this engine's
        // configuration (`Engine::precompile_component`).
        Ok(unsafe { Component::deserialize(engine, &artifact) }?)
    }

    /// The compiled module stored under `key`, a hash the caller computed from everything the
    /// module depends on (e.g. a snapshot's inputs), if present and intact. A snapshot whose
    /// compiled form is cached is then never rebuilt.
    pub fn module_by_key(&self, engine: &wasmtime::Engine, key: &str) -> Option<Module> {
        load_module(engine, &self.keyed_path(key))
    }

    /// Compiles `bytes` and stores the result under `key` for [`Self::module_by_key`].
    pub fn store_module_by_key(
        &self,
        engine: &crate::Engine,
        key: &str,
        bytes: &[u8],
    ) -> anyhow::Result<Module> {
        let artifact = engine.precompile_module(bytes)?;
        self.store_module(engine.wasmtime(), &self.keyed_path(key), &artifact)
    }

    fn keyed_path(&self, key: &str) -> PathBuf {
        self.dir.join(self.keyed_file_name(key))
    }

    /// Name of the file in [`Self::dir`] that holds the module stored under `key`.
    pub fn keyed_file_name(&self, key: &str) -> String {
        format!("{key}-{}-module-{FORMAT}.cwasm", self.engine_hash)
    }

    fn path_for(&self, bytes: &[u8], kind: &str) -> PathBuf {
        let digest = blake3::hash(bytes).to_hex();
        self.dir.join(format!(
            "{digest}-{}-{kind}-{FORMAT}.cwasm",
            self.engine_hash
        ))
    }

    /// Stores a freshly compiled artifact and returns it as a module mapped from the stored
    /// file (so its memory image is file-backed too); from memory if the file cannot be written.
    fn store_module(
        &self,
        engine: &wasmtime::Engine,
        path: &Path,
        artifact: &[u8],
    ) -> anyhow::Result<Module> {
        if let Some(file) = self.store(path, artifact) {
            #[allow(unsafe_code, reason = "the artifact was just produced for this engine")]
            // SAFETY: `file` is the file just written with an artifact for this engine; it was
            // renamed into place and is never written again.
            match unsafe { Module::deserialize_open_file(engine, file) } {
                Ok(module) => return Ok(module),
                Err(err) => tracing::warn!("cannot map {}: {err:#}", path.display()),
            }
        }
        #[allow(unsafe_code, reason = "the artifact was just produced for this engine")]
        // SAFETY: produced by `precompile_module` a moment ago, for this engine's
        // configuration (`Engine::precompile_module`).
        Ok(unsafe { Module::deserialize(engine, artifact) }?)
    }

    /// Writes atomically (owner-only temp file + rename) and returns the written file. A
    /// failure only costs a recompile next time.
    fn store(&self, path: &Path, artifact: &[u8]) -> Option<File> {
        let result = (|| -> anyhow::Result<File> {
            create_private_dir(&self.dir)?;
            // `tempfile` creates the file with mode 0600; the rename keeps it.
            let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
            tmp.write_all(artifact)?;
            tmp.write_all(&trailer(path, artifact))?;
            Ok(tmp.persist(path)?)
        })();
        match result {
            Ok(file) => Some(file),
            Err(err) => {
                tracing::warn!(
                    "could not cache a compiled module in {}: {err:#} (--cache-dir names a writable folder; without a cache every start compiles again)",
                    self.dir.display()
                );
                None
            }
        }
    }
}

/// What an artifact's loadability depends on: engines with equal hashes load each other's.
pub(crate) fn compatibility_hash(engine: &wasmtime::Engine) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.finish()
}

/// A verified cached module at `path`, mapped from the file; `None` (with a warning for
/// damaged files) when it is missing, damaged or not loadable by this engine.
fn load_module(engine: &wasmtime::Engine, path: &Path) -> Option<Module> {
    let (file, _map) = open_verified(path)?;
    #[allow(
        unsafe_code,
        reason = "deserializing an artifact wws wrote and verified"
    )]
    // SAFETY: the file was written by `ModuleCache::store` for this engine configuration (its
    // name holds the engine's compatibility hash), its trailer matches its contents as read
    // through `_map`, and wasmtime maps this same open file. Cache files are replaced only by
    // renaming a new file over them, never modified in place, so the mapping stays as checked.
    match unsafe { Module::deserialize_open_file(engine, file) } {
        Ok(module) => Some(module),
        Err(err) => {
            tracing::warn!("ignoring cached module {}: {err:#}", path.display());
            None
        }
    }
}

/// Opens a cache file and checks its trailer through a read-only map; `None` for missing or
/// damaged files. Returns the open file (to hand to wasmtime) and the map (artifact + trailer).
fn open_verified(path: &Path) -> Option<(File, memmap2::Mmap)> {
    let file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    if len <= TRAILER as u64 {
        tracing::warn!("ignoring damaged cache file {} (too short)", path.display());
        return None;
    }
    #[allow(unsafe_code, reason = "mapping a cache file read-only to hash it")]
    // SAFETY: a read-only shared map of a regular file. wws never modifies cache files in
    // place (it renames complete files over them); if something else truncates the file while
    // it is mapped, reading the map faults, which is what `std::fs::read` of a cache file
    // written in place by a third party would risk as well.
    let map = match unsafe { memmap2::Mmap::map(&file) } {
        Ok(map) => map,
        Err(err) => {
            tracing::warn!("ignoring cache file {}: {err}", path.display());
            return None;
        }
    };
    let split = map.len().checked_sub(TRAILER)?;
    if trailer(path, &map[..split])[..] != map[split..] {
        tracing::warn!(
            "ignoring cache file {}: damaged, or written by another user's wws (each user signs their own); it is compiled again",
            path.display()
        );
        return None;
    }
    Some((file, map))
}

/// Creates `dir` (and missing parents) owner-only where wws creates it: cache files can hold
/// a worker's vars. An existing folder (e.g. one given with `--cache-dir`) keeps its mode.
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Cranelift's incremental compilation cache on disk: one file per compiled function, named
/// after the hash Cranelift computes from the function's IR and the target, so a function that
/// appears in several modules compiles once. Every JS worker's snapshot carries the whole
/// QuickJS engine (about 3 MB of machine code) and differs only in its data; without this, a
/// first start compiles that engine once per JS worker.
///
/// Entries live in `<cache dir>/functions/` and end with a keyed BLAKE3 trailer over the key
/// and the value, like the module cache: a damaged, misplaced or foreign entry is a miss
/// (Cranelift then compiles the function and overwrites the entry), never code. Entries are written as the
/// engine compiles, atomically, owner-only.
#[derive(Debug)]
pub struct IncrementalCache {
    dir: PathBuf,
}

impl IncrementalCache {
    /// A function cache under the module cache folder `cache_dir`.
    pub fn new(cache_dir: &Path) -> Self {
        Self {
            dir: cache_dir.join("functions"),
        }
    }

    fn path(&self, key: &[u8]) -> PathBuf {
        self.dir.join(blake3::hash(key).to_hex().as_str())
    }

    fn entry_trailer(entry: &[u8], value: &[u8]) -> [u8; TRAILER] {
        let mut hasher = blake3::Hasher::new_keyed(key());
        hasher.update(&(entry.len() as u64).to_le_bytes());
        hasher.update(entry);
        hasher.update(value);
        *hasher.finalize().as_bytes()
    }
}

impl wasmtime::CacheStore for IncrementalCache {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        let mut data = std::fs::read(self.path(key)).ok()?;
        let split = data.len().checked_sub(TRAILER)?;
        if Self::entry_trailer(key, &data[..split])[..] != data[split..] {
            tracing::debug!(
                "ignoring damaged compiled function in {}",
                self.dir.display()
            );
            return None;
        }
        data.truncate(split);
        Some(Cow::Owned(data))
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        let result = (|| -> anyhow::Result<()> {
            create_private_dir(&self.dir)?;
            let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
            tmp.write_all(&value)?;
            tmp.write_all(&Self::entry_trailer(key, &value))?;
            tmp.persist(self.path(key))?;
            Ok(())
        })();
        match result {
            Ok(()) => true,
            Err(err) => {
                tracing::debug!(
                    "could not cache a compiled function in {}: {err:#}",
                    self.dir.display()
                );
                false
            }
        }
    }
}
