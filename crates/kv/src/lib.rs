//! Key/value namespaces for workers.
//!
//! Workers speaking the wws JSON protocol see a snapshot of their whole namespace and print
//! the namespace as they want it. The original replaced the namespace with that output, so two
//! concurrent requests lost each other's writes. Here only the keys a request changed (set,
//! changed or removed) are written back, key by key ([`diff`]), so requests that touch
//! different keys never lose anything.
//!
//! Backends implement [`KvStore`]; [`MemoryStore`] keeps everything in memory.

mod memory;

use std::collections::HashMap;
use std::sync::Arc;

pub use memory::MemoryStore;

/// A namespace's contents at one moment, shared cheaply between readers.
pub type Snapshot = Arc<HashMap<String, String>>;

/// One change a request made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Set `key` to `value`.
    Set(String, String),
    /// Remove `key`.
    Delete(String),
}

/// A key/value backend shared by every worker of the process.
#[async_trait::async_trait]
pub trait KvStore: Send + Sync {
    /// The current contents of `namespace` (empty when it does not exist yet).
    async fn snapshot(&self, namespace: &str) -> anyhow::Result<Snapshot>;
    /// Applies `changes` to `namespace`, each key independently.
    async fn apply(&self, namespace: &str, changes: Vec<Change>) -> anyhow::Result<()>;
}

/// The changes that turn `before` into `after`. `None` in `after` means "remove this key";
/// keys of `before` that are missing from `after` are removed too, since the protocol
/// describes deletion by omission.
pub fn diff(
    before: &HashMap<String, String>,
    after: HashMap<String, Option<String>>,
) -> Vec<Change> {
    let mut changes = Vec::new();
    for key in before.keys() {
        if !matches!(after.get(key), Some(Some(_))) {
            changes.push(Change::Delete(key.clone()));
        }
    }
    for (key, value) in after {
        if let Some(value) = value
            && before.get(&key) != Some(&value)
        {
            changes.push(Change::Set(key, value));
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_changed_keys_are_written() {
        let before = map(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let after: HashMap<_, _> = [
            ("a", Some("1")),
            ("b", Some("20")),
            ("d", Some("4")),
            ("c", None),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
        .collect();
        let mut changes = diff(&before, after);
        changes.sort_by_key(|c| format!("{c:?}"));
        assert_eq!(
            changes,
            vec![
                Change::Delete("c".into()),
                Change::Set("b".into(), "20".into()),
                Change::Set("d".into(), "4".into()),
            ]
        );
    }

    #[test]
    fn omitted_keys_are_deleted() {
        let before = map(&[("a", "1")]);
        assert_eq!(
            diff(&before, HashMap::new()),
            vec![Change::Delete("a".into())]
        );
    }
}
