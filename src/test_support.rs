//! Helpers shared by the crate's own tests (the unit tests that reach
//! inside modules); the integration tests in `tests/` have theirs in
//! `tests/common/`.

use std::path::Path;

use crate::sled::{SledConfig, SledStore};
use crate::store::StoreError;

/// The providers' recorded response bodies (`../shared/fixtures/`).
pub(crate) const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures");

/// The bytes of the fixture file `name`.
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}"))
        .unwrap_or_else(|e| panic!("read the fixture {name}: {e}"))
}

/// The sled store in `dir`, with the default configuration.
pub(crate) fn open(dir: impl AsRef<Path>) -> SledStore {
    let dir = dir.as_ref();
    SledStore::open(SledConfig::new(dir))
        .unwrap_or_else(|e| panic!("open the store in {}: {e}", dir.display()))
}

/// The field an [`StoreError::InvalidInput`] names (panics on any other error).
pub(crate) fn field_of(err: &StoreError) -> &'static str {
    match err {
        StoreError::InvalidInput { field, .. } => field,
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}
