//! The compiled-module cache in `.wws/cache`: a second start loads from it, and damaged or
//! foreign files in it are ignored and rebuilt, never trusted.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use wws_test_support::Wws;
use wws_test_support::fixtures::Project;

fn cache_files(p: &Project) -> Vec<std::path::PathBuf> {
    let dir = p.path().join(".wws/cache");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| rd.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn second_start_uses_the_cache_and_damaged_entries_are_rebuilt() {
    let p = Project::new();
    p.wasm("index.wasm", "hello");
    p.file(
        "app.js",
        "addEventListener('fetch', (e) => e.respondWith(new Response('js ok')));\n",
    );
    {
        let wws = Wws::start(p.path());
        assert_eq!(wws.get_text("/", 200), "Hello from wws");
        assert_eq!(wws.get_text("/app", 200), "js ok");
    }
    let files = cache_files(&p);
    assert!(
        files.len() >= 3,
        "expected compiled modules and a JS snapshot, got {files:?}"
    );

    // Damage every entry in a different way: truncate, flip bytes, replace with foreign data.
    for (i, f) in files.iter().enumerate() {
        let mut bytes = std::fs::read(f).unwrap();
        match i % 3 {
            0 => bytes.truncate(bytes.len() / 2),
            1 => {
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0xff;
            }
            _ => bytes = b"\x7fELF not a wws artifact".to_vec(),
        }
        std::fs::write(f, bytes).unwrap();
    }
    {
        let wws = Wws::start(p.path());
        assert_eq!(wws.get_text("/", 200), "Hello from wws");
        assert_eq!(wws.get_text("/app", 200), "js ok");
        assert!(
            wws.output().contains("ignoring"),
            "damage went unnoticed:\n{}",
            wws.output()
        );
    }
    // Rebuilt: the next start finds every entry it uses intact.
    let wws = Wws::start(p.path());
    assert_eq!(wws.get_text("/app", 200), "js ok");
    assert!(!wws.output().contains("ignoring"), "{}", wws.output());
    assert!(cache_files(&p).len() >= files.len());
}
