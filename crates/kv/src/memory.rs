//! The in-memory backend: fast, shared by all workers of one process, gone on restart.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::{Change, KvStore, Snapshot};

/// Namespaces kept in memory. Snapshots are copy-on-write: a reader holds an `Arc` of the map
/// and a writer clones it only while a reader still holds the old one.
#[derive(Debug, Default)]
pub struct MemoryStore {
    namespaces: RwLock<HashMap<String, Snapshot>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait::async_trait]
impl KvStore for MemoryStore {
    async fn snapshot(&self, namespace: &str) -> anyhow::Result<Snapshot> {
        let guard = self.namespaces.read().unwrap_or_else(|p| p.into_inner());
        Ok(guard.get(namespace).cloned().unwrap_or_default())
    }

    async fn apply(&self, namespace: &str, changes: Vec<Change>) -> anyhow::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut guard = self.namespaces.write().unwrap_or_else(|p| p.into_inner());
        let map = Arc::make_mut(guard.entry(namespace.to_string()).or_default());
        for change in changes {
            match change {
                Change::Set(k, v) => {
                    map.insert(k, v);
                }
                Change::Delete(k) => {
                    map.remove(&k);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_writers_on_different_keys_keep_both() {
        let store = MemoryStore::new();
        let a = store.snapshot("ns").await.unwrap();
        let b = store.snapshot("ns").await.unwrap();
        let mut a2: HashMap<_, _> = a
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        a2.insert("a".into(), Some("1".into()));
        let mut b2: HashMap<_, _> = b
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        b2.insert("b".into(), Some("2".into()));
        store.apply("ns", crate::diff(&a, a2)).await.unwrap();
        store.apply("ns", crate::diff(&b, b2)).await.unwrap();
        let now = store.snapshot("ns").await.unwrap();
        assert_eq!(now.get("a").map(String::as_str), Some("1"));
        assert_eq!(now.get("b").map(String::as_str), Some("2"));
    }
}
