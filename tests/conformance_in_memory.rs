//! The store conformance suite (`troupe::store::conformance`) in memory.
troupe::store_conformance!(troupe::in_memory::InMemoryHarness);
