//! Key/value namespaces: a counter, sharing by namespace name, and concurrent increments on
//! different keys that must all be kept (the original lost them).

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use wws_test_support::Wws;
use wws_test_support::fixtures::Project;

fn project() -> Project {
    let p = Project::new();
    p.wasm("counter.wasm", "kv_counter");
    p.wasm("other.wasm", "kv_counter");
    p.wasm("ops.wasm", "kv_ops");
    p.wasm("plain.wasm", "kv_counter");
    for name in ["counter", "other", "ops"] {
        p.file(
            &format!("{name}.toml"),
            "version = \"1\"\n[data.kv]\nnamespace = \"shared\"\n",
        );
    }
    p
}

#[test]
fn sequential_counter_and_shared_namespace() {
    let p = project();
    let wws = Wws::start(p.path());
    for i in 1..=5 {
        assert_eq!(wws.get_text("/counter", 200).trim(), i.to_string());
    }
    // Same namespace name, same data.
    assert_eq!(wws.get_text("/other", 200).trim(), "6");
    // Without a namespace the worker starts from nothing every time.
    assert_eq!(wws.get_text("/plain", 200).trim(), "1");
    assert_eq!(wws.get_text("/plain", 200).trim(), "1");
}

#[test]
fn concurrent_increments_on_different_keys_are_all_kept() {
    let p = project();
    let wws = Wws::start(p.path());
    let keys = 8;
    let per_key = 25;
    std::thread::scope(|s| {
        for k in 0..keys {
            let url = wws.url(&format!("/counter?key=k{k}"));
            s.spawn(move || {
                let client = wws_test_support::wws::client();
                for _ in 0..per_key {
                    let resp = client.get(&url).send().unwrap();
                    assert_eq!(resp.status(), 200);
                }
            });
        }
    });
    let snapshot: serde_json::Value = serde_json::from_str(&wws.get_text("/ops", 200)).unwrap();
    for k in 0..keys {
        assert_eq!(
            snapshot[format!("k{k}")],
            per_key.to_string(),
            "key k{k} in {snapshot}"
        );
    }
}

#[test]
fn set_delete_and_untouched_namespace() {
    let p = project();
    let wws = Wws::start(p.path());
    wws.get_text("/ops?set=a&value=1", 200);
    wws.get_text("/ops?set=b&value=2", 200);
    wws.get_text("/ops?del=a", 200);
    // A run that omits `kv` leaves the namespace as it was.
    wws.get_text("/ops?nokv=1&set=c&value=3", 200);
    let snapshot: serde_json::Value = serde_json::from_str(&wws.get_text("/ops", 200)).unwrap();
    assert_eq!(snapshot, serde_json::json!({"b": "2"}));
}
