//! The store conformance suite: one set of behaviour tests that every
//! adapter of the storage ports runs, so that sled, the in-memory store and
//! PostgreSQL answer every call alike. The ports' documentation says what a
//! store must do; these cases are that documentation, executable.
//!
//! # Running it on an adapter
//!
//! 1. Implement [`Harness`] for your adapter: how to open a fresh, empty
//!    store, and how to open the same data again after a crash.
//! 2. Write one test file that names the harness:
//!
//! ```ignore
//! // tests/conformance_postgres.rs
//! troupe::store_conformance!(my_crate::PostgresHarness::from_env());
//! ```
//!
//! [`store_conformance!`](crate::store_conformance) expands to one `#[test]`
//! per case, grouped in modules (`transitions::a_completion_is_recorded_once`,
//! `memories::compaction_archives_originals_and_stores_summaries` …), so
//! `cargo test` lists and reports every case by name and a filter runs one
//! group (`cargo test --test conformance_postgres memories::`). Each test
//! builds its own tokio runtime (two worker threads, so the concurrency
//! cases really race), opens a fresh store, and fails with a message that
//! says what was expected, what came back, and where in the suite.
//!
//! # What "crash" means here
//!
//! [`Fixture::crash`] drops the case's handle on the store (the suite checks
//! it holds no other: every clone it gave to a task has been dropped) without
//! any shutdown call, then asks the harness to reopen the same data. The
//! suite then expects exactly what the ports' durability contract promises:
//! every acknowledged write is there, nothing changed state on its own
//! (running jobs stay running until [`JobStore::recover`](super::JobStore::recover)), and whatever the
//! adapter derives from its records (indexes of unique keys, ready jobs,
//! pause state) was rebuilt. For an in-process store "reopen" is a new
//! handle over the same shared data that rebuilds what a real open rebuilds.
//! Killing a process for real is adapter business (sled has its SIGKILL
//! tests); the suite checks the logical contract.
//!
//! # The cases
//!
//! | module | about |
//! |---|---|
//! | [`transitions`] | every operation from every status, against [`crate::job::rules`]; stale outcomes; terminal statuses; cancel, discard, retries |
//! | [`claims`] | claim order, due times, limits in total and per worker, pauses, `next_wake`, concurrent claimers |
//! | [`inserts`] | unique keys (also within one `insert_many`, and concurrently), duplicate ids, `validate_new` refusals |
//! | [`listing`] | paging newest first with a cursor, filters, counts |
//! | [`durability`] | crash and reopen: everything acknowledged survives, running jobs wait for `recover`, derived state rebuilt |
//! | [`failure`] | a failed store (a flush that failed): every write refused with `StoreError::Failed`, reads go on, `health` says so; whole and writable again after a restart |
//! | [`retention`] | `prune` by age and count, ended jobs only, with their steps, keys and old usage calls |
//! | [`schedules`] | put/get/list/delete, validation, firing once per due time, catch-up, unique keys, parking, atomic firing |
//! | [`memories`] | validation, scopes, idempotent remember, forget, touch, compaction and its refusals |
//! | [`conversations`] | append with idempotency keys, order, validation |
//! | [`steps`] | the contiguity rule, replace, load order, clear, size and JSON checks |
//! | [`idempotency`] | one winner among concurrent claims, `Existing` carries the winner's value, validation |
//! | [`usage`] | records, totals per agent, provider and day, calls in recording order |
//! | [`approvals`] | parking (`waiting`), decisions made once among racing deciders, cancel, deadlines, across crashes |
//!
//! Cases never call `unwrap`: a failed step returns a [`ConformanceError`]
//! naming what was being done and the suite's file and line.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::Store;

/// Fails the case with a formatted message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($crate::store::conformance::ConformanceError::new(format!($($msg)+)));
        }
    };
}

/// Fails the case unless `actual == expected`, showing both.
macro_rules! ensure_eq {
    ($actual:expr, $expected:expr, $($msg:tt)+) => {
        match (&$actual, &$expected) {
            (actual, expected) => {
                if actual != expected {
                    return Err($crate::store::conformance::ConformanceError::new(format!(
                        "{}\n  expected: {:?}\n  got:      {:?}",
                        format!($($msg)+),
                        expected,
                        actual
                    )));
                }
            }
        }
    };
}

/// Fails the case with a formatted message.
macro_rules! bail {
    ($($msg:tt)+) => {
        return Err($crate::store::conformance::ConformanceError::new(format!($($msg)+)))
    };
}

mod support;

pub mod approvals;
pub mod claims;
pub mod conversations;
pub mod durability;
pub mod failure;
pub mod idempotency;
pub mod inserts;
pub mod listing;
pub mod memories;
pub mod retention;
pub mod schedules;
pub mod steps;
pub mod transitions;
pub mod usage;

/// What a harness may fail with (opening a database, making a directory):
/// any error, reported as the case's failure.
pub type HarnessError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How the suite gets stores of one adapter. Implemented once per adapter,
/// in its own folder or its test file; the cases only ever see the ports.
#[async_trait]
pub trait Harness: Send + Sync {
    /// The adapter under test.
    type Store: Store;
    /// Where one store's data lives between a crash and the reopen (a
    /// temporary directory, a database name, shared memory). Dropped at the
    /// end of the case, after the store: a place that cleans up on drop
    /// leaves nothing behind.
    type Place: Send + Sync;

    /// A new, empty store, and where its data lives. Every case calls it
    /// once, so cases never see each other's data.
    async fn open_fresh(&self) -> Result<(Self::Store, Self::Place), HarnessError>;

    /// The store over the same data after a crash: every handle of the old
    /// one has been dropped, with no shutdown call. Open it the way a
    /// restarted process would (sled: open the directory again; in-memory:
    /// a new handle over the same data that rebuilds what an open rebuilds).
    async fn reopen(&self, place: &Self::Place) -> Result<Self::Store, HarnessError>;

    /// Makes `store` fail as it does when a write cannot be made durable (a
    /// flush failed, the disk is full), with `reason`: from then on it must
    /// refuse every write with [`StoreError::Failed`](super::StoreError::Failed)
    /// naming the reason. sled: `SledStore::mark_failed`, the same path a
    /// failed flush takes; in-memory: `InMemoryStore::mark_failed`.
    async fn fail(&self, store: &Self::Store, reason: &str) -> Result<(), HarnessError>;
}

/// One case's store: opened fresh from the harness, crashed and reopened
/// on demand. Public so an adapter can write cases of its own in the same
/// style.
pub struct Fixture<'h, H: Harness> {
    harness: &'h H,
    // Before `place`: fields drop in order, the store before its data.
    store: Arc<H::Store>,
    place: H::Place,
}

impl<'h, H: Harness> Fixture<'h, H> {
    /// A fresh, empty store of `harness`.
    pub async fn open(harness: &'h H) -> Result<Self, ConformanceError> {
        let (store, place) = match harness.open_fresh().await {
            Ok(opened) => opened,
            Err(e) => bail!("the harness could not open a fresh store: {e}"),
        };
        Ok(Fixture {
            harness,
            store: Arc::new(store),
            place,
        })
    }

    /// The store.
    pub fn store(&self) -> &H::Store {
        &self.store
    }

    /// A shared handle, for tasks that race on the store. Drop every one
    /// before [`crash`](Self::crash).
    pub fn shared(&self) -> Arc<H::Store> {
        Arc::clone(&self.store)
    }

    /// Makes the store fail, as a failed flush does ([`Harness::fail`]).
    pub async fn fail(&self, reason: &str) -> Result<(), ConformanceError> {
        match self.harness.fail(&self.store, reason).await {
            Ok(()) => Ok(()),
            Err(e) => bail!("the harness could not make the store fail: {e}"),
        }
    }

    /// Drops the store without a shutdown and reopens the same data: see
    /// the [module documentation](self) for what the suite expects after.
    pub async fn crash(self) -> Result<Self, ConformanceError> {
        let Fixture {
            harness,
            store,
            place,
        } = self;
        match Arc::try_unwrap(store) {
            Ok(store) => drop(store),
            Err(_) => bail!(
                "the case still holds a handle on the store while crashing it (a task's clone was not dropped)"
            ),
        }
        let store = match harness.reopen(&place).await {
            Ok(store) => store,
            Err(e) => bail!("the harness could not reopen the store after a crash: {e}"),
        };
        Ok(Fixture {
            harness,
            store: Arc::new(store),
            place,
        })
    }
}

/// A case that failed: what was expected or what went wrong, and where in
/// the suite. Its `Debug` is the same readable text, because that is what
/// the test harness prints for a test that returns an error.
pub struct ConformanceError {
    message: String,
    location: &'static Location<'static>,
}

impl ConformanceError {
    /// A failure at the caller's line.
    #[track_caller]
    pub fn new(message: impl Into<String>) -> Self {
        ConformanceError {
            message: message.into(),
            location: Location::caller(),
        }
    }

    /// What failed, without the location.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same failure, its message prefixed with what the case was
    /// doing around it (the location stays where it failed).
    pub fn within(mut self, doing: impl fmt::Display) -> Self {
        self.message = format!("{doing}: {}", self.message);
        self
    }
}

impl fmt::Display for ConformanceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}\n  (at {}:{})",
            self.message,
            self.location.file(),
            self.location.line()
        )
    }
}

impl fmt::Debug for ConformanceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for ConformanceError {}

/// Turns a failed step into a [`ConformanceError`] that says what the case
/// was doing: `store.insert(job).await.context("insert a job")?`.
pub trait Context<T> {
    /// The value, or a failure "`doing`: what went wrong" at the caller's line.
    fn context(self, doing: impl fmt::Display) -> Result<T, ConformanceError>;
}

impl<T, E: fmt::Display> Context<T> for Result<T, E> {
    #[track_caller]
    fn context(self, doing: impl fmt::Display) -> Result<T, ConformanceError> {
        match self {
            Ok(value) => Ok(value),
            Err(e) => Err(ConformanceError::new(format!("{doing}: {e}"))),
        }
    }
}

impl<T> Context<T> for Option<T> {
    #[track_caller]
    fn context(self, doing: impl fmt::Display) -> Result<T, ConformanceError> {
        match self {
            Some(value) => Ok(value),
            None => Err(ConformanceError::new(format!("{doing}: nothing there"))),
        }
    }
}

/// Longest a case may run before it counts as hung (a deadlocked lock, a
/// durable write never acknowledged).
pub const CASE_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs one case to its end on a runtime of its own: what each test of
/// [`store_conformance!`](crate::store_conformance) calls, so callers need
/// no async test macros. Two worker threads, so tasks that race really run
/// at the same time.
pub fn run<F>(case: F) -> Result<(), ConformanceError>
where
    F: Future<Output = Result<(), ConformanceError>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("build the case's tokio runtime")?;
    runtime.block_on(async {
        match tokio::time::timeout(CASE_TIMEOUT, case).await {
            Ok(result) => result,
            Err(_) => bail!("the case did not finish within {CASE_TIMEOUT:?}"),
        }
    })
}

/// Expands to the whole conformance suite for a [`Harness`] given as an
/// expression: one `#[test]` per case, in one module per group
/// (`transitions`, `claims` …). The expression is evaluated once per test,
/// inside those modules (which `use super::*`), so a harness type defined in
/// the test file is found.
///
/// ```ignore
/// troupe::store_conformance!(troupe::sled::SledHarness::default());
/// ```
#[macro_export]
macro_rules! store_conformance {
    ($harness:expr) => {
        $crate::store_conformance!(@groups $harness;
            transitions: [
                a_job_runs_the_happy_path,
                a_job_keeps_every_field_it_was_stored_with,
                a_completion_is_recorded_once,
                failures_retry_until_attempts_run_out,
                an_outage_is_waited_out_without_spending_attempts,
                a_permanent_failure_ends_the_job_at_once,
                cancel_ends_a_queued_job_and_requests_a_running_one,
                ack_cancel_is_fenced_by_status_and_attempt,
                discard_fails_only_a_queued_job,
                terminal_statuses_have_no_way_out,
                every_operation_from_every_status_follows_the_rules,
                operations_on_an_unknown_job_name_it,
            ],
            claims: [
                claim_order_is_priority_then_run_at_then_id,
                jobs_are_not_claimed_before_they_are_due,
                claims_are_limited_in_total_and_per_worker,
                paused_workers_are_not_claimed_and_do_not_wake_the_scheduler,
                next_wake_is_the_earliest_claimable_run_at,
                concurrent_claimers_never_claim_a_job_twice,
            ],
            inserts: [
                unique_keys_are_held_while_queued_or_running,
                a_unique_key_is_freed_by_every_way_a_job_ends,
                concurrent_inserts_with_one_unique_key_store_one_job,
                a_duplicate_id_is_refused,
                jobs_that_are_not_new_are_refused_naming_the_field,
                insert_many_answers_in_input_order,
            ],
            listing: [
                jobs_are_listed_newest_first_with_cursor_paging_and_filters,
                a_page_size_of_zero_means_the_default,
                counts_are_kept_by_status_and_by_worker,
            ],
            durability: [
                everything_acknowledged_survives_a_crash,
                running_jobs_stay_running_until_recover,
                derived_state_is_rebuilt_after_a_crash,
            ],
            failure: [
                a_failed_store_refuses_every_write_and_serves_reads,
                a_failed_store_is_whole_and_writable_after_a_restart,
            ],
            retention: [
                prune_by_age_and_by_count_keeps_active_jobs,
                pruning_a_job_drops_its_steps_and_idempotency_keys,
                pruning_drops_old_usage_calls_and_keeps_day_totals,
                no_retention_limit_prunes_nothing,
            ],
            schedules: [
                schedules_are_put_got_listed_and_deleted,
                invalid_schedules_are_refused_with_their_id,
                schedules_fire_once_per_due_time_across_a_crash,
                catch_up_fires_missed_times_in_bounded_chunks,
                a_unique_key_coalesces_firings,
                a_cron_that_never_fires_again_is_parked,
                a_firing_is_atomic_and_survives_a_crash,
                pause_state_survives_a_crash,
            ],
            memories: [
                bad_memories_are_refused_naming_the_field,
                memories_are_remembered_listed_and_forgotten,
                scopes_are_isolated_by_agent_and_user,
                an_idempotency_key_remembers_once,
                touch_never_moves_time_backwards,
                compaction_archives_originals_and_stores_summaries,
                refused_compactions_change_nothing,
            ],
            conversations: [
                messages_are_appended_and_read_in_order,
                an_idempotency_key_appends_once,
                bad_messages_are_refused_naming_the_field,
            ],
            steps: [
                steps_are_saved_loaded_replaced_and_cleared,
                bad_steps_are_refused_naming_the_field,
            ],
            idempotency: [
                a_key_is_claimed_once_across_a_crash,
                one_of_many_concurrent_claims_wins,
                bad_keys_are_refused_naming_the_field,
            ],
            usage: [
                usage_is_totalled_per_agent_provider_and_day,
                calls_come_back_in_recording_order,
                usage_survives_a_crash,
            ],
            approvals: [
                a_parked_job_waits_until_every_approval_is_decided,
                one_of_many_racing_decisions_wins,
                cancelling_a_waiting_job_cancels_its_approvals,
                deadlines_deny_by_themselves_across_a_crash,
            ],
        );
    };
    (@groups $harness:expr; $($group:ident: [$($case:ident),* $(,)?]),* $(,)?) => {
        $(
            mod $group {
                #[allow(unused_imports)]
                use super::*;
                $(
                    #[test]
                    fn $case() -> ::std::result::Result<(), $crate::store::conformance::ConformanceError> {
                        $crate::store::conformance::run(async {
                            let harness = $harness;
                            $crate::store::conformance::$group::$case(&harness).await
                        })
                    }
                )*
            }
        )*
    };
}
