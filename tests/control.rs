//! One operation, three ways: the same runtime asked in process
//! (`LocalControl`), through its HTTP API (`RemoteControl` against a
//! `ControlServer` on 127.0.0.1:0), and from its store alone
//! (`StoreControl`, as the CLI with no daemon) gives the same answer, and
//! the same error.

mod common;

use std::fmt::Debug;

use troupe::api::*;
use troupe::job::{JobId, JobStatus};
use troupe_actors::run_system;

use common::daemon::{start, Daemon};

/// The three ways to one daemon's data.
struct Ways {
    local: LocalControl,
    remote: RemoteControl,
    offline: StoreControl,
}

fn ways(d: &Daemon) -> Ways {
    Ways {
        local: LocalControl::new(d.troupe.clone()),
        remote: RemoteControl::new(&d.base, d.token.clone()).unwrap(),
        offline: StoreControl::new(d.store.clone(), d.config.clone()),
    }
}

/// The answers of `a` and `b` are equal, both values or both errors with
/// the same status and message.
fn same<T: PartialEq + Debug>(
    what: &str,
    a: Result<T, ControlError>,
    b: Result<T, ControlError>,
) -> Option<T> {
    match (a, b) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "{what}");
            Some(a)
        }
        (Err(a), Err(b)) => {
            assert_eq!(
                (a.status(), a.to_string()),
                (b.status(), b.to_string()),
                "{what}"
            );
            None
        }
        (a, b) => panic!("{what}: {a:?} vs {b:?}"),
    }
}

#[test]
fn local_and_remote_give_the_same_answers_and_errors() {
    run_system(async {
        let d = start(None).await;
        let Ways { local, remote, .. } = ways(&d);
        // Nothing runs meanwhile: every answer is stable between the two.
        same(
            "pause all",
            local.pause(PauseRequest::all()).await,
            remote.pause(PauseRequest::all()).await,
        );
        let request = EnqueueRequest {
            unique_key: Some("same".into()),
            priority: Some(4),
            ..EnqueueRequest::new("echo")
        };
        let first = local.enqueue(request.clone()).await.unwrap();
        assert!(first.new);
        let again = same(
            "enqueue again",
            local.enqueue(request.clone()).await,
            remote.enqueue(request).await,
        )
        .unwrap();
        assert!(!again.new);
        assert_eq!(again.job, first.job);
        let id = first.job.id;
        same("job", local.job(id).await, remote.job(id).await);
        let query = JobsQuery {
            status: Some(JobStatus::Queued),
            limit: Some(5),
            ..JobsQuery::default()
        };
        let page = same(
            "jobs",
            local.jobs(query.clone()).await,
            remote.jobs(query).await,
        );
        assert_eq!(page.unwrap().jobs[0].id, id);
        same("workers", local.workers().await, remote.workers().await);
        same("agents", local.agents().await, remote.agents().await);
        same(
            "readiness",
            local.readiness().await,
            remote.readiness().await,
        );
        same("health", local.health().await, remote.health().await);
        let mut screen = local.status().await.unwrap();
        screen.daemon = Some(d.base.clone());
        same("status", Ok(screen), remote.status().await);
        same(
            "resume all",
            local.resume(PauseRequest::all()).await,
            remote.resume(PauseRequest::all()).await,
        );
        same("cancel", local.cancel(id).await, remote.cancel(id).await);
        errors_are_the_same(&local, &remote).await;
        d.stop().await;
    });
}

/// The refusals of every kind are the same through both.
async fn errors_are_the_same(local: &dyn Control, remote: &dyn Control) {
    let unknown: JobId = "0190f0c4-0000-7000-8000-000000000000".parse().unwrap();
    same(
        "unknown job",
        local.job(unknown).await,
        remote.job(unknown).await,
    );
    same(
        "cancel unknown job",
        local.cancel(unknown).await,
        remote.cancel(unknown).await,
    );
    let bad = EnqueueRequest {
        max_attempts: Some(0),
        ..EnqueueRequest::new("echo")
    };
    same(
        "zero attempts",
        local.enqueue(bad.clone()).await,
        remote.enqueue(bad).await,
    );
    same(
        "unknown worker",
        local.enqueue(EnqueueRequest::new("ghost")).await,
        remote.enqueue(EnqueueRequest::new("ghost")).await,
    );
    let task = TaskRequest::new("hi");
    same(
        "unknown agent",
        local.task("ghost", task.clone()).await,
        remote.task("ghost", task).await,
    );
    same(
        "empty prompt",
        local.task("sarah", TaskRequest::new(" ")).await,
        remote.task("sarah", TaskRequest::new(" ")).await,
    );
    let query = MemoriesQuery::default();
    same(
        "memories of nobody",
        local.memories("ghost", query.clone()).await,
        remote.memories("ghost", query).await,
    );
    same(
        "no conversation",
        local.messages("none-such").await,
        remote.messages("none-such").await,
    );
    same(
        "pause nobody",
        local.pause(PauseRequest::worker("ghost")).await,
        remote.pause(PauseRequest::worker("ghost")).await,
    );
    let query = JobsQuery {
        limit: Some(0),
        ..JobsQuery::default()
    };
    same(
        "limit 0",
        local.jobs(query.clone()).await,
        remote.jobs(query).await,
    );
}

#[test]
fn a_task_waited_for_reads_back_the_same_every_way() {
    run_system(async {
        let d = start(None).await;
        let Ways {
            local,
            remote,
            offline,
        } = ways(&d);
        let request = TaskRequest {
            conversation_id: Some("c-1".into()),
            user_id: Some("ann".into()),
            wait: true,
            ..TaskRequest::new("Remember that the team ships on Thursdays")
        };
        for control in [&local as &dyn Control, &remote] {
            match control.task("sarah", request.clone()).await.unwrap() {
                TaskAnswer::Finished(result) => assert!(result.success, "{result:?}"),
                other => panic!("not waited for: {other:?}"),
            }
        }
        let queued = remote
            .task("sarah", TaskRequest::new("Later"))
            .await
            .unwrap();
        let TaskAnswer::Queued(job) = queued else {
            panic!("{queued:?}")
        };
        assert_eq!(job.ctx.source.as_deref(), Some("api"));
        common::daemon::eventually("the queued task to end", || async {
            let job = local.job(job.id).await.unwrap();
            job.status.is_terminal().then_some(())
        })
        .await;

        let query = MemoriesQuery {
            user_id: Some("ann".into()),
            archived: true,
        };
        let memories = same(
            "memories",
            local.memories("sarah", query.clone()).await,
            remote.memories("sarah", query.clone()).await,
        );
        same(
            "memories offline",
            Ok(memories.unwrap()),
            offline.memories("sarah", query).await,
        );
        let messages = same(
            "messages",
            local.messages("c-1").await,
            remote.messages("c-1").await,
        )
        .unwrap();
        assert!(messages.messages.len() >= 4, "{messages:?}");
        same(
            "messages offline",
            Ok(messages),
            offline.messages("c-1").await,
        );
        d.stop().await;
    });
}

#[test]
fn the_store_alone_answers_as_the_runtime_does() {
    run_system(async {
        let d = start(None).await;
        let Ways { local, offline, .. } = ways(&d);
        local.pause(PauseRequest::all()).await.unwrap();
        // Queued offline (as `troupe enqueue` with no daemon), read back
        // by the runtime, and the other way round.
        let e = offline.enqueue(EnqueueRequest::new("sleep")).await.unwrap();
        same(
            "job",
            local.job(e.job.id).await,
            offline.job(e.job.id).await,
        );
        let queued = offline
            .task("sarah", TaskRequest::new("offline task"))
            .await
            .unwrap();
        let TaskAnswer::Queued(task) = queued else {
            panic!("{queued:?}")
        };
        assert_eq!(task.ctx.source.as_deref(), Some("cli"));
        assert_eq!(task.args["prompt"], "offline task");
        same(
            "jobs",
            local.jobs(JobsQuery::default()).await,
            offline.jobs(JobsQuery::default()).await,
        );
        same("workers", local.workers().await, offline.workers().await);
        same("agents", local.agents().await, offline.agents().await);
        // With no daemon, the status says so (no readiness, providers not
        // running); the rest is the same.
        let screen =
            |s: StatusScreen| (s.queue_depth, s.paused_all, s.workers, s.agents, s.running);
        same(
            "status",
            local.status().await.map(screen),
            offline.status().await.map(screen),
        );
        same(
            "unknown worker",
            local.enqueue(EnqueueRequest::new("ghost")).await,
            offline.enqueue(EnqueueRequest::new("ghost")).await,
        );
        let unknown: JobId = "0190f0c4-0000-7000-8000-000000000000".parse().unwrap();
        same(
            "unknown job",
            local.job(unknown).await,
            offline.job(unknown).await,
        );
        same(
            "cancel unknown",
            local.cancel(unknown).await,
            offline.cancel(unknown).await,
        );
        let cancelled = offline.cancel(e.job.id).await.unwrap();
        assert_eq!(cancelled.outcome, CancelKind::Cancelled);
        same("cancelled", Ok(cancelled.job), local.job(e.job.id).await);
        let wait = TaskRequest {
            wait: true,
            ..TaskRequest::new("x")
        };
        let refused = offline.task("sarah", wait).await.unwrap_err();
        assert_eq!(refused.status(), 503, "{refused}");
        d.stop().await;
    });
}
