//! The store conformance suite on PostgreSQL: every case in a schema of its
//! own on `$TROUPE_TEST_DATABASE_URL` (`.ci/run` sets it). Without the
//! variable each case says it was skipped and passes, so
//! `cargo test --workspace` still runs on a machine without PostgreSQL.

troupe::store_conformance!(match troupe::postgres::PostgresHarness::from_env() {
    Some(harness) => harness,
    None => {
        eprintln!(
            "skipped: {} is not set (no PostgreSQL to test against)",
            troupe::postgres::TEST_DATABASE_URL
        );
        return Ok(());
    }
});
