//! [`ScopeLocks`]: one lock per memory scope, for work that reads a scope
//! and later writes what it read.
//!
//! A compaction lists a scope's live memories, asks a model for a summary
//! (seconds), then archives exactly what it listed. Two at once over one
//! scope both list the same memories, and the second to write finds them
//! archived by the first and fails ("already archived"): 29 of 40 did in
//! issue 13. Holding the scope's lock from the listing to the write makes
//! them run one after the other, so each sees what the one before left:
//! every job succeeds, no model call is wasted on a summary that cannot be
//! stored, and nothing is lost (the store's check that an original is
//! still live stays, as the guard of last resort).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::OwnedMutexGuard;

use super::MemoryScope;

/// One async lock per scope, made on first use and let go when no one holds
/// or waits for it. Cheap to clone (shared).
#[derive(Clone, Default)]
pub(crate) struct ScopeLocks {
    locks: Arc<Mutex<HashMap<MemoryScope, Weak<tokio::sync::Mutex<()>>>>>,
}

impl ScopeLocks {
    /// Waits for `scope`'s lock; it is held until the guard is dropped.
    pub(crate) async fn lock(&self, scope: &MemoryScope) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            // Scopes nobody holds any more are forgotten as new ones come.
            if locks.len() >= 64 {
                locks.retain(|_, lock| lock.strong_count() > 0);
            }
            match locks.get(scope).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(scope.clone(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_scope_is_held_by_one_at_a_time_and_others_are_free() {
        futures::executor::block_on(async {
            let locks = ScopeLocks::default();
            let (ana, bob) = (MemoryScope::user("s", "ana"), MemoryScope::user("s", "bob"));
            let held = locks.lock(&ana).await;
            // Another scope is not held up.
            drop(locks.lock(&bob).await);
            let mut waiting = Box::pin(locks.lock(&ana));
            assert!(futures::poll!(waiting.as_mut()).is_pending());
            drop(held);
            drop(waiting.await);
            // Let go once nobody holds it.
            let weak = locks.locks.lock().unwrap()[&ana].clone();
            assert_eq!(weak.strong_count(), 0);
        });
    }
}
