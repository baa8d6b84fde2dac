//! The store conformance suite (`troupe::store::conformance`) on sled.
troupe::store_conformance!(troupe::sled::SledHarness::default());
