//! The in-memory adapter of the storage ports: everything kept in the
//! process, lost when it ends. For tests, for `troupe::testing`, and for
//! embedders that keep nothing. It imports nothing above the ports.

mod usage;

pub use usage::MemoryUsageStore;
