//! Listing and counting jobs: pages newest first with a cursor, filtered
//! by status and worker; counts by status and by worker.

use std::collections::BTreeMap;

use chrono::Utc;
use serde_json::json;

use super::support::{claim_worker, enqueue, ids, new_job};
use super::{ConformanceError, Context, Fixture, Harness};
use crate::job::{EnqueueOptions, FailAction, Job, JobStatus};
use crate::store::prelude::*;
use crate::store::{ListQuery, DEFAULT_PAGE_SIZE};

/// Pages are newest first; `next_cursor` continues strictly after the
/// page's last job and is `None` on the last page; status and worker filter
/// alone or together; an unknown worker lists nothing.
pub async fn jobs_are_listed_newest_first_with_cursor_paging_and_filters<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let mut ids_made = Vec::new();
    for i in 0..7 {
        let worker = if i % 2 == 0 { "even" } else { "odd" };
        ids_made.push(enqueue(store, worker, EnqueueOptions::default()).await?.id);
    }
    let id = |i: usize| ids_made[i];
    for job in claim_worker(store, "even", 2, Utc::now()).await? {
        store
            .complete(job.id, 1, json!(null))
            .await
            .context("complete")?;
    }
    let page = |status, worker: Option<&str>, limit, cursor| ListQuery {
        status,
        worker: worker.map(str::to_owned),
        limit,
        cursor,
    };
    let first = store
        .list_jobs(&page(None, None, 3, None))
        .await
        .context("list page 1")?;
    ensure_eq!(
        ids(&first.jobs),
        vec![id(6), id(5), id(4)],
        "page 1, newest first"
    );
    ensure_eq!(
        first.next_cursor,
        Some(id(4)),
        "the cursor is the page's last job"
    );
    let second = store
        .list_jobs(&page(None, None, 3, first.next_cursor))
        .await
        .context("list page 2")?;
    ensure_eq!(ids(&second.jobs), vec![id(3), id(2), id(1)], "page 2");
    let third = store
        .list_jobs(&page(None, None, 3, second.next_cursor))
        .await
        .context("list page 3")?;
    ensure_eq!(ids(&third.jobs), vec![id(0)], "page 3");
    ensure_eq!(third.next_cursor, None, "no cursor after the last page");
    let exact = store
        .list_jobs(&page(None, None, 7, None))
        .await
        .context("list exactly all")?;
    ensure_eq!(
        (exact.jobs.len(), exact.next_cursor),
        (7, None),
        "a page holding exactly the rest has no cursor"
    );

    let even = store
        .list_jobs(&page(None, Some("even"), 0, None))
        .await
        .context("list even")?;
    ensure_eq!(
        ids(&even.jobs),
        vec![id(6), id(4), id(2), id(0)],
        "one worker, any status"
    );
    let done = store
        .list_jobs(&page(Some(JobStatus::Completed), None, 0, None))
        .await
        .context("list completed")?;
    ensure_eq!(
        ids(&done.jobs),
        vec![id(2), id(0)],
        "one status, any worker"
    );
    let even_queued = store
        .list_jobs(&page(Some(JobStatus::Queued), Some("even"), 1, None))
        .await
        .context("list even queued")?;
    ensure_eq!(
        (ids(&even_queued.jobs), even_queued.next_cursor),
        (vec![id(6)], Some(id(6))),
        "status and worker, one per page"
    );
    let rest = store
        .list_jobs(&page(
            Some(JobStatus::Queued),
            Some("even"),
            5,
            even_queued.next_cursor,
        ))
        .await
        .context("list even queued, page 2")?;
    ensure_eq!(
        (ids(&rest.jobs), rest.next_cursor),
        (vec![id(4)], None),
        "status and worker, page 2"
    );
    let none = store
        .list_jobs(&page(None, Some("nobody"), 0, None))
        .await
        .context("list nobody")?;
    ensure!(
        none.jobs.is_empty() && none.next_cursor.is_none(),
        "an unknown worker lists nothing, got {none:?}"
    );
    let empty_status = store
        .list_jobs(&page(Some(JobStatus::Cancelled), None, 0, None))
        .await
        .context("list cancelled")?;
    ensure!(
        empty_status.jobs.is_empty(),
        "no job has that status, got {empty_status:?}"
    );
    Ok(())
}

/// A page of limit 0 holds [`DEFAULT_PAGE_SIZE`] jobs.
pub async fn a_page_size_of_zero_means_the_default<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let jobs: Vec<Job> = (0..=DEFAULT_PAGE_SIZE)
        .map(|_| new_job("w", EnqueueOptions::default()))
        .collect::<Result<_, _>>()?;
    let newest = jobs.iter().map(|j| j.id).max();
    store
        .insert_many(jobs)
        .await
        .context("insert one more than a page")?;
    let first = store
        .list_jobs(&ListQuery::default())
        .await
        .context("list with limit 0")?;
    ensure_eq!(first.jobs.len(), DEFAULT_PAGE_SIZE, "a default page's size");
    ensure_eq!(
        first.jobs.first().map(|j| j.id),
        newest,
        "the newest job first"
    );
    let second = store
        .list_jobs(&ListQuery {
            cursor: first.next_cursor,
            ..ListQuery::default()
        })
        .await
        .context("list the next page")?;
    ensure_eq!(
        (second.jobs.len(), second.next_cursor),
        (1, None),
        "the one job left"
    );
    Ok(())
}

/// Counts give every status (0 included) over all workers, and per worker
/// only the statuses it has.
pub async fn counts_are_kept_by_status_and_by_worker<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let empty = store.counts().await.context("counts of an empty store")?;
    ensure_eq!(
        empty.by_status,
        JobStatus::ALL.into_iter().map(|s| (s, 0)).collect(),
        "an empty store counts 0 of every status"
    );
    ensure!(empty.by_worker.is_empty(), "and no worker");
    for _ in 0..3 {
        enqueue(store, "a", EnqueueOptions::default()).await?;
    }
    enqueue(store, "b", EnqueueOptions::default()).await?;
    let now = Utc::now();
    let running = claim_worker(store, "a", 2, now).await?;
    store
        .complete(running[0].id, 1, json!(1))
        .await
        .context("complete")?;
    let b = claim_worker(store, "b", 1, now).await?;
    store
        .fail(b[0].id, 1, "e".into(), FailAction::Final)
        .await
        .context("fail")?;
    let counts = store.counts().await.context("counts")?;
    let expected: BTreeMap<JobStatus, u64> = [
        (JobStatus::Queued, 1),
        (JobStatus::Running, 1),
        (JobStatus::Completed, 1),
        (JobStatus::Failed, 1),
        (JobStatus::Cancelled, 0),
        (JobStatus::Waiting, 0),
    ]
    .into();
    ensure_eq!(counts.by_status, expected, "by status");
    let by_worker: BTreeMap<String, BTreeMap<JobStatus, u64>> = [
        (
            "a".to_string(),
            [
                (JobStatus::Queued, 1),
                (JobStatus::Running, 1),
                (JobStatus::Completed, 1),
            ]
            .into(),
        ),
        ("b".to_string(), [(JobStatus::Failed, 1)].into()),
    ]
    .into();
    ensure_eq!(
        counts.by_worker,
        by_worker,
        "by worker, only the statuses it has"
    );
    ensure_eq!(
        (
            counts.worker("a", JobStatus::Queued),
            counts.worker("zzz", JobStatus::Queued)
        ),
        (1, 0),
        "a worker's count, and an unknown worker's"
    );
    Ok(())
}
