//! Agents on a cluster: three `troupe run` processes sharing one PostgreSQL
//! schema work off agent tasks that call `send_message` and `create_task`
//! against a scripted OpenAI-compatible model on 127.0.0.1, while nodes are
//! SIGKILLed and restarted mid-task. Counted in the database afterwards: no
//! duplicate message, no duplicate child task. Skipped, saying so, without
//! `$TROUPE_TEST_DATABASE_URL`.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{json, Value};
use troupe::job::{EnqueueOptions, Job, JobCtx, DEFAULT_MAX_ATTEMPTS};
use troupe::store::prelude::*;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use common::cluster::{database_url, until, Cluster, CLUSTER_DEADLINE, FAST_LEASES};

/// The agent every task is for.
const AGENT: &str = "sarah";

/// How a parent task's prompt starts (then its number); its child's prompt
/// starts with [`CHILD`].
const PARENT: &str = "PARENT";
const CHILD: &str = "CHILD";

/// The text `send_message` posts for parent `n` (unique in the schema).
fn announcement(n: u64) -> String {
    format!("announcement {n}")
}

/// The conversation of parent `n` (and of its child, which inherits it).
fn conversation(n: usize) -> String {
    format!("conv-{n}")
}

/// The scripted model. A request is answered by what its messages hold:
///
/// - tool results (the second call of a parent): a plain answer;
/// - a task (`Task: <prompt>`, the last user message) of a child: a plain
///   answer, so the tree stays one level deep;
/// - a task of parent `n`: two tool calls, `send_message` (to the task's
///   own conversation) and `create_task` (child `n`, for the same agent).
///
/// Tool call ids are fresh on every reply, as a real model's are: only the
/// reply's checkpoint keeps them, so a tool that ran again after a death
/// with a reply asked for again would show as a duplicate.
struct Script {
    calls: AtomicU64,
}

impl Script {
    fn reply(&self, n: u64, message: Value, finish: &str) -> ResponseTemplate {
        // 50–150 ms, spread, so that kills land in the middle of tasks.
        let delay = Duration::from_millis(50 + (n * 37) % 101);
        ResponseTemplate::new(200)
            .set_body_json(json!({
                "id": format!("c{n}"), "object": "chat.completion", "created": 1,
                "model": "gpt-test",
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": 30, "completion_tokens": 10, "total_tokens": 40}
            }))
            .set_delay(delay)
    }

    fn answer(&self, n: u64, text: &str) -> ResponseTemplate {
        self.reply(n, json!({"role": "assistant", "content": text}), "stop")
    }
}

impl Respond for Script {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let body: Value = match serde_json::from_slice(&request.body) {
            Ok(body) => body,
            Err(e) => return ResponseTemplate::new(400).set_body_string(e.to_string()),
        };
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        if messages.iter().any(|m| m["role"] == "tool") {
            return self.answer(n, "Announced and delegated.");
        }
        let task = messages
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default();
        let Some(rest) = task.strip_prefix(&format!("Task: {PARENT} ")) else {
            return self.answer(n, "Checked.");
        };
        let Ok(parent) = rest.trim().parse::<u64>() else {
            return ResponseTemplate::new(400).set_body_string(format!("unscripted task {task:?}"));
        };
        let send = json!({"content": announcement(parent)}).to_string();
        let create = json!({"prompt": format!("{CHILD} {parent}")}).to_string();
        let calls = json!([
            {"id": format!("call_{n}_send"), "type": "function",
             "function": {"name": "send_message", "arguments": send}},
            {"id": format!("call_{n}_create"), "type": "function",
             "function": {"name": "create_task", "arguments": create}}
        ]);
        self.reply(
            n,
            json!({"role": "assistant", "content": null, "tool_calls": calls}),
            "tool_calls",
        )
    }
}

fn agents_config(base_url: &str) -> String {
    format!(
        r#"
[[providers]]
name = "llm"
type = "openai-compatible"
baseUrl = "{base_url}"

[[agents]]
id = "{AGENT}"
name = "Sarah"
systemPrompt = "You are Sarah."
tools = ["send_message", "create_task"]
concurrency = 6
maxQueuedTasks = 100000
[agents.modelConfig]
provider = "llm"
model = "gpt-test"
"#
    )
}

/// Parent task `n`, as `troupe task sarah "PARENT n" --conversation conv-n`
/// queues it (`Troupe::task`): the agent as worker, the prompt and
/// conversation in args, the user and conversation in ctx.
fn parent_task(n: usize) -> Job {
    let conv = conversation(n);
    Job::new(
        AGENT,
        json!({"prompt": format!("{PARENT} {n}"), "conversationId": conv}),
        JobCtx {
            user_id: Some("alice".into()),
            conversation_id: Some(conv),
            source: Some("cli".into()),
            ..JobCtx::default()
        },
        &EnqueueOptions {
            max_attempts: PARENT_MAX_ATTEMPTS,
            ..EnqueueOptions::default()
        },
        Utc::now(),
    )
    .unwrap()
}

/// Parents may be interrupted often here (a death every 20 tasks); a rescue
/// counts the lost attempt, so they get room for it. Children keep the
/// default, and may run out.
const PARENT_MAX_ATTEMPTS: u32 = 10;

async fn count(sql: &tokio_postgres::Client, query: &str) -> i64 {
    sql.query_one(query, &[]).await.unwrap().get(0)
}

/// Parent tasks: jobs no `create_task` made (their ctx names no parent).
const PARENTS: &str = "data->'ctx'->>'parentJobId' IS NULL";
/// Child tasks: jobs `create_task` made (their ctx names the parent).
const CHILDREN: &str = "data->'ctx'->>'parentJobId' IS NOT NULL";

/// Where the work stands.
#[derive(Debug)]
struct Progress {
    completed: i64,
    parents_ended: i64,
    active: i64,
}

async fn progress(sql: &tokio_postgres::Client) -> Progress {
    let row = sql
        .query_one(
            &format!(
                "SELECT count(*) FILTER (WHERE status = 'completed'), \
                        count(*) FILTER (WHERE {PARENTS} AND status IN ('completed', 'failed', 'cancelled')), \
                        count(*) FILTER (WHERE status IN ('queued', 'running')) \
                 FROM jobs"
            ),
            &[],
        )
        .await
        .unwrap();
    Progress {
        completed: row.get(0),
        parents_ended: row.get(1),
        active: row.get(2),
    }
}

/// Three nodes work off 200 agent tasks, each of which posts a message
/// (`send_message`) and creates a child task (`create_task`), while a node
/// is SIGKILLed and restarted each time another 20 tasks completed, at
/// least 8 times: every task completes, each conversation holds exactly one
/// posted message, and each parent has exactly one child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_tasks_survive_node_kills_without_duplicates() {
    let Some(url) = database_url("agent_tasks_survive_node_kills_without_duplicates") else {
        return;
    };
    const TASKS: usize = 200;
    const KILL_EVERY: i64 = 20;
    const MIN_KILLS: usize = 8;

    let model = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(Script {
            calls: AtomicU64::new(0),
        })
        .mount(&model)
        .await;
    assert!(
        model.uri().starts_with("http://127.0.0.1:"),
        "{}",
        model.uri()
    );
    let mut cluster = Cluster::new(&url, FAST_LEASES, &agents_config(&model.uri()));
    let store = cluster.store().await;
    let sql = cluster.sql().await;
    let args: [&str; 0] = [];
    cluster.start(3, &args);
    let started = Instant::now();
    store
        .insert_many((0..TASKS).map(parent_task).collect())
        .await
        .unwrap();

    // Kill a node each time another KILL_EVERY tasks (parents and children)
    // completed, until every task has ended.
    let mut kills = 0;
    let mut at_last_kill = 0;
    loop {
        let next = at_last_kill + KILL_EVERY;
        let sql = &sql;
        let now = until(
            &format!("{next} tasks complete, or all end (after {kills} kills)"),
            CLUSTER_DEADLINE,
            move || async move {
                let p = progress(sql).await;
                let ended = p.parents_ended == TASKS as i64 && p.active == 0;
                if ended || p.completed >= next {
                    Ok(p)
                } else {
                    Err(format!("{p:?}"))
                }
            },
        )
        .await;
        if now.parents_ended == TASKS as i64 && now.active == 0 {
            break;
        }
        cluster.kill_and_restart(kills % 3, &args);
        kills += 1;
        at_last_kill = now.completed;
    }
    let elapsed = started.elapsed();
    let logs = cluster.logs();

    // Every parent completed; every child completed, or failed because its
    // node died on each of its attempts (a rescue counts the lost attempt:
    // `rules::rescue`), which the errors checked below confirm.
    let parents = count(&sql, &format!("SELECT count(*) FROM jobs WHERE {PARENTS}")).await;
    assert_eq!(parents, TASKS as i64, "parent tasks");
    let not_completed = count(
        &sql,
        "SELECT count(*) FROM jobs WHERE status <> 'completed' \
         AND NOT (status = 'failed' AND attempt = (data->>'maxAttempts')::int)",
    )
    .await;
    assert_eq!(
        not_completed, 0,
        "every task completed or ran out of attempts\n{logs}"
    );
    let parents_done = count(
        &sql,
        &format!("SELECT count(*) FROM jobs WHERE {PARENTS} AND status = 'completed'"),
    )
    .await;
    assert_eq!(parents_done, TASKS as i64, "every parent completed\n{logs}");

    // Exactly one child per parent: `create_task` replayed after a death
    // made no second job. Each child names its parent, has the child's
    // prompt and is for the same agent and conversation.
    let children = count(&sql, &format!("SELECT count(*) FROM jobs WHERE {CHILDREN}")).await;
    assert_eq!(children, TASKS as i64, "one child task per parent");
    let parents_with_one_child = count(
        &sql,
        &format!(
            "SELECT count(*) FROM jobs p WHERE {PARENTS} AND ( \
                 SELECT count(*) FROM jobs c \
                 WHERE c.data->'ctx'->>'parentJobId' = p.id::text \
                   AND c.worker = '{AGENT}' \
                   AND c.data->'args'->>'prompt' = \
                       '{CHILD} ' || substr(p.data->'args'->>'prompt', {}) \
                   AND c.data->'ctx'->>'conversationId' = p.data->'ctx'->>'conversationId' \
             ) = 1",
            PARENT.len() + 2
        ),
    )
    .await;
    assert_eq!(
        parents_with_one_child, TASKS as i64,
        "every parent has exactly one child, its own"
    );
    let create_task_keys = count(
        &sql,
        "SELECT count(*) FROM idempotency_keys \
         WHERE convert_from(key, 'UTF8') LIKE 'create_task:%' \
           AND convert_from(key, 'UTF8') NOT LIKE '%#done'",
    )
    .await;
    assert_eq!(
        create_task_keys, TASKS as i64,
        "one create_task call per parent"
    );

    // Exactly one posted message per conversation: `send_message` replayed
    // after a death stored nothing new. A conversation holds, besides it,
    // the parent's prompt and answer and the child's prompt and answer (each
    // appended under a key of its own): five messages, two from the user.
    let conversations = sql
        .query(
            "SELECT convert_from(conversation_id, 'UTF8'), \
                    count(*), \
                    count(*) FILTER (WHERE data->>'role' = 'user'), \
                    count(*) FILTER (WHERE data->>'content' LIKE 'announcement %'), \
                    count(*) FILTER (WHERE data->>'content' = 'Announced and delegated.'), \
                    count(*) FILTER (WHERE data->>'content' = 'Checked.') \
             FROM messages GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(conversations.len(), TASKS, "one conversation per parent");
    // A child that ran out of attempts (its node died on each) has no answer.
    let failed_children: std::collections::HashSet<String> = sql
        .query(
            "SELECT data->'ctx'->>'conversationId' FROM jobs WHERE status = 'failed'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for row in &conversations {
        let conv: String = row.get(0);
        let counts: [i64; 5] = [row.get(1), row.get(2), row.get(3), row.get(4), row.get(5)];
        let answered = i64::from(!failed_children.contains(&conv));
        assert_eq!(
            counts,
            [4 + answered, 2, 1, 1, answered],
            "{conv}: [messages, from the user, posted by send_message, parent answers, child \
             answers]"
        );
        let n: u64 = conv.trim_start_matches("conv-").parse().unwrap();
        let posted = count(
            &sql,
            &format!(
                "SELECT count(*) FROM messages WHERE conversation_id = convert_to('{conv}', \
                 'UTF8') AND data->>'content' = '{}' AND data->>'author' = '{AGENT}'",
                announcement(n)
            ),
        )
        .await;
        assert_eq!(posted, 1, "{conv}: its own announcement, once");
    }
    let messages = count(&sql, "SELECT count(*) FROM messages").await;
    assert_eq!(messages, 5 * TASKS as i64 - failed_children.len() as i64);
    let send_message_keys = count(
        &sql,
        "SELECT count(*) FROM message_keys WHERE convert_from(key, 'UTF8') LIKE 'send_message:%'",
    )
    .await;
    assert_eq!(
        send_message_keys, TASKS as i64,
        "one send_message call per parent"
    );

    // Within limits. Every attempt after a task's first was cut short by a
    // death, which the rescuer recorded as an interruption; no attempt
    // failed otherwise (no fenced checkpoint, no store or model error). A
    // rescue counts the attempt, so none runs past `maxAttempts`. A job
    // that ran out of attempts has one error per attempt, its last too.
    let unexplained: Vec<(String, String, i32, String)> = sql
        .query(
            "SELECT id::text, status, attempt, COALESCE(data->>'errors', '[]') FROM jobs \
             WHERE attempt <> CASE status WHEN 'failed' THEN 0 ELSE 1 END \
                              + COALESCE(json_array_length(data->'errors'), 0)",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert!(
        unexplained.is_empty(),
        "every extra attempt has its recorded error: {unexplained:?}"
    );
    let failures = sql
        .query(
            "SELECT id::text, e->>'message' FROM jobs, json_array_elements(data->'errors') e \
             WHERE e->>'message' NOT LIKE 'attempt % interrupted: %'",
            &[],
        )
        .await
        .unwrap();
    let failures: Vec<(String, String)> = failures.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert!(
        failures.is_empty(),
        "attempts that failed, not interrupted by a death: {failures:?}"
    );
    let max_attempt = count(&sql, "SELECT max(attempt)::int8 FROM jobs").await;
    assert!(
        max_attempt >= 1 && max_attempt <= 1 + kills as i64,
        "attempt {max_attempt} after {kills} kills"
    );
    let interrupted = count(&sql, "SELECT count(*) FROM jobs WHERE attempt > 1").await;
    let interrupted_parents = count(
        &sql,
        &format!("SELECT count(*) FROM jobs WHERE attempt > 1 AND {PARENTS}"),
    )
    .await;
    let beyond_max = count(
        &sql,
        "SELECT count(*) FROM jobs WHERE attempt > (data->>'maxAttempts')::int",
    )
    .await;
    assert_eq!(beyond_max, 0, "no task ran past its maxAttempts");
    let children_failed = count(&sql, "SELECT count(*) FROM jobs WHERE status = 'failed'").await;
    // Tool calls that ran again after a death and found their effect done
    // (`created: false`): the idempotency keys at work.
    let replayed = count(
        &sql,
        "SELECT count(*) FROM jobs, json_array_elements(data->'result'->'toolCalls') t \
         WHERE t->'result'->'data'->>'created' = 'false'",
    )
    .await;
    let resumed = logs.matches("resuming task from its checkpoint").count();
    assert!(kills >= MIN_KILLS, "only {kills} kills");
    assert!(interrupted > 0, "the kills interrupted running tasks");
    let model_calls = model.received_requests().await.map_or(0, |r| r.len());
    eprintln!(
        "{TASKS} parent tasks + {children} child tasks, {kills} kills, {interrupted} tasks \
         interrupted ({interrupted_parents} parents), {resumed} resumed from a checkpoint, max \
         attempt {max_attempt} ({children_failed} children ran out of their {DEFAULT_MAX_ATTEMPTS} attempts), \
         {replayed} tool calls replayed, {messages} messages ({send_message_keys} from send_message), \
         {model_calls} model calls, {elapsed:?}"
    );
}
