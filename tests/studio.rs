//! The Studio in a real browser: `troupe run` (the binary) with a scripted
//! OpenAI-compatible model server and a broken one on 127.0.0.1, Debian's
//! headless Chromium driven over WebDriver (chromedriver, started here on a
//! free port), and assertions on what a person sees: the job in the jobs
//! list, its transcript with the tool call, pause from the page pausing the
//! agent (checked through the API), the failing provider red on the
//! overview, and no console errors. A second daemon's agent needs approval
//! for its tool: Approve and Deny clicked on the approvals page (the deny
//! with a typed reason the model is then shown), and a job's page that
//! follows the task live over its event stream while it is approved and
//! finishes. Screenshots of each page go to `target/studio-screenshots/`.
//!
//! Without `/usr/bin/chromium` or `/usr/bin/chromedriver` the test says it
//! skipped and passes, unless `TROUPE_STUDIO_TESTS=require` (CI), where a
//! missing browser fails it.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use common::cli::command;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const DEADLINE: Duration = Duration::from_secs(30);
const FAVOURITE: &str = "The user's favourite colour is green.";

/// Kills the processes it holds when dropped (also when a step panics).
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether the browser is here; `false` (the test skips) unless CI
/// requires it.
fn browser_present() -> bool {
    let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !present {
        assert!(
            std::env::var("TROUPE_STUDIO_TESTS").as_deref() != Ok("require"),
            "TROUPE_STUDIO_TESTS=require but {CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)"
        );
        eprintln!("skipped: {CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)");
    }
    present
}

/// An OpenAI-style chat completion answer.
fn completion(message: Value, finish: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-test",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 18, "total_tokens": 138}
    }))
}

/// An answer calling `remember` with `args`.
fn remember_call(args: &Value) -> ResponseTemplate {
    completion(
        json!({"role": "assistant", "content": null, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "remember", "arguments": args.to_string()}
        }]}),
        "tool_calls",
    )
}

/// The scripted model: asks for `remember` first; once a tool result is in
/// the conversation, answers in text.
async fn scripted_model() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(|req: &Request| {
            let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            let answered = body["messages"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["role"] == "tool"));
            if answered {
                completion(
                    json!({"role": "assistant", "content": "Noted: green it is."}),
                    "stop",
                )
            } else {
                let args = json!({"type": "fact", "content": FAVOURITE, "importance": 7});
                remember_call(&args)
            }
        })
        .mount(&server)
        .await;
    server
}

/// A model server that only answers 500.
async fn broken_model() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(json!({"error": {"message": "boom", "type": "server_error"}})),
        )
        .mount(&server)
        .await;
    server
}

fn write_config(dir: &Path, good: &str, bad: &str) -> (PathBuf, PathBuf) {
    let data = dir.join("data");
    let config = dir.join("troupe.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[store]
dataDir = "{data}"

[[providers]]
name = "scripted"
type = "openai-compatible"
baseUrl = "{good}"
apiKeyEnv = "STUDIO_TEST_KEY"

[[providers]]
name = "broken"
type = "openai-compatible"
baseUrl = "{bad}"
apiKeyEnv = "STUDIO_TEST_KEY"
[providers.breaker]
failureThreshold = 2
openSecs = 600
[providers.retry]
maxAttempts = 1

[[agents]]
id = "sarah"
name = "Sarah the Frontend Developer"
systemPrompt = "You are Sarah."
tools = ["remember", "recall"]
[agents.modelConfig]
provider = "scripted"
model = "gpt-test"
[agents.budget]
dailyCostUsd = 5.0

[[agents]]
id = "bob"
name = "Bob on a broken provider"
systemPrompt = "You are Bob."
tools = []
[agents.modelConfig]
provider = "broken"
model = "gpt-test"
"#,
            data = data.display()
        ),
    )
    .unwrap();
    (data, config)
}

/// `troupe run` on 127.0.0.1:0; its address once it has announced it.
fn start_daemon(config: &Path, data: &Path, log: &Path) -> (Child, String) {
    let child = command()
        .args(["run", "--http", "127.0.0.1:0", "--config"])
        .arg(config)
        .env("STUDIO_TEST_KEY", "sk-test")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let announced = data.join("daemon.json");
    let url = wait_for("the daemon to announce its address", || {
        let text = std::fs::read_to_string(&announced).ok()?;
        let daemon: Value = serde_json::from_str(&text).ok()?;
        daemon["url"].as_str().map(str::to_string)
    });
    (child, url)
}

/// Polls `probe` until it answers, failing after [`DEADLINE`].
fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The daemon's API, with its token.
struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    async fn get(&self, path: &str) -> Value {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "POST {path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    /// Polls `path` until `done` holds for its answer.
    async fn until(&self, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let v = self.get(path).await;
            if done(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {v}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// chromedriver on a free port of 127.0.0.1, once it accepts connections.
fn start_chromedriver() -> (Child, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("chromedriver to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    (child, port)
}

async fn browser(port: u16) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,800"]
        }),
    );
    caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a chromium session")
}

fn shots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/studio-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(shots_dir().join(name), png).unwrap();
}

/// Waits until the page has drawn view `name` with fresh data.
async fn loaded(c: &Client, name: &str) {
    let css = format!("body[data-loaded=\"{name}\"]");
    c.wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css(&css))
        .await
        .unwrap_or_else(|e| panic!("view {name} never loaded: {e}"));
}

async fn go(c: &Client, base: &str, hash: &str, view: &str) {
    c.execute("document.body.dataset.loaded = ''", vec![])
        .await
        .unwrap();
    c.goto(&format!("{base}/{hash}")).await.unwrap();
    loaded(c, view).await;
}

/// Presses and releases `key` on whatever has the focus.
async fn press(c: &Client, key: Key) {
    let keys = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value: key.into() })
        .then(KeyAction::Up { value: key.into() });
    c.perform_actions(keys).await.unwrap();
}

/// The focused element: its tag, class and text.
async fn focused(c: &Client) -> String {
    let v = c
        .execute(
            "const e = document.activeElement; return `${e.tagName} ${e.className} ${e.textContent.trim()}`",
            vec![],
        )
        .await
        .unwrap();
    v.as_str().unwrap_or("").to_string()
}

/// Waits until `script` (a function body) returns true on the page.
async fn page_until(c: &Client, what: &str, script: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if c.execute(script, vec![]).await.unwrap() == json!(true) {
            return;
        }
        if Instant::now() > deadline {
            let page = c
                .execute("return document.getElementById('live').innerText + '\\n' + document.getElementById('main').innerText", vec![])
                .await
                .unwrap();
            panic!(
                "timed out waiting for {what}; the page shows:\n{}",
                page.as_str().unwrap_or("")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The text of `css` once on the page. The page redraws its live parts
/// every few seconds (and a job's page on each event), so an element found
/// may be replaced before it is read: then it is found again.
async fn text_of(c: &Client, css: &str) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let found = c
            .wait()
            .at_most(DEADLINE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"));
        match found.text().await {
            Ok(text) => return text,
            Err(e) if is_stale(&e) && Instant::now() < deadline => continue,
            Err(e) => panic!("reading `{css}`: {e}"),
        }
    }
}

fn is_stale(e: &fantoccini::error::CmdError) -> bool {
    e.is_stale_element_reference()
}

/// The browser's console since the last read (chromedriver's log endpoint).
async fn console(driver: u16, c: &Client) -> Vec<Value> {
    let session = c.session_id().await.unwrap().expect("a session id");
    let answer: Value = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{driver}/session/{session}/se/log"
        ))
        .json(&json!({"type": "browser"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["value"].as_array().cloned().unwrap_or_default()
}

/// Whether a console entry is an error: anything SEVERE but the 404 of a
/// route the page feature-detects (approvals, a job's events), which the
/// browser logs itself.
fn is_error(entry: &Value) -> bool {
    let message = entry["message"].as_str().unwrap_or("");
    let detected = (message.contains("/v1/approvals") || message.contains("/events"))
        && message.contains("404");
    entry["level"] == "SEVERE" && !detected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_studio_shows_jobs_transcripts_providers_and_pauses_agents() {
    if !browser_present() {
        return;
    }
    let good = scripted_model().await;
    let bad = broken_model().await;
    let dir = tempfile::tempdir().unwrap();
    let (data, config) = write_config(dir.path(), &good.uri(), &bad.uri());
    let (daemon, base) = start_daemon(&config, &data, &dir.path().join("daemon.log"));
    let mut processes = Processes(vec![daemon]);
    let token = std::fs::read_to_string(data.join("http.token"))
        .unwrap()
        .trim()
        .to_string();
    let api = Api {
        base: base.clone(),
        token: token.clone(),
        http: reqwest::Client::new(),
    };

    // A task that calls a tool, and tasks on the broken provider until its
    // circuit opens.
    let job = api
        .post(
            "/v1/agents/sarah/tasks",
            json!({"prompt": "Remember my favourite colour: green.", "userId": "ana"}),
        )
        .await;
    let id = job["id"].as_str().unwrap().to_string();
    api.until(&format!("/v1/jobs/{id}"), "the task to complete", |j| {
        j["status"] == "completed"
    })
    .await;
    for n in 0..3 {
        api.post(
            "/v1/agents/bob/tasks",
            json!({"prompt": format!("task {n}")}),
        )
        .await;
    }
    api.until("/v1/status", "the broken provider's circuit to open", |s| {
        s["providers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "broken" && p["circuit"] == "open")
    })
    .await;

    let (driver, port) = start_chromedriver();
    processes.0.push(driver);
    let c = browser(port).await;
    c.set_window_size(1280, 800).await.unwrap();

    // The token, asked once.
    c.goto(&format!("{base}/")).await.unwrap();
    let field = c
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("#token"))
        .await
        .unwrap();
    field.send_keys(&token).await.unwrap();
    c.find(Locator::Css("#token-go"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    loaded(&c, "overview").await;

    // The failing provider is red; the good one is not.
    let broken = text_of(&c, "tr[data-provider=\"broken\"] .badge.circuit").await;
    assert_eq!(broken, "open");
    let red: String = c
        .execute(
            "return getComputedStyle(document.querySelector('tr[data-provider=\"broken\"] .badge.circuit')).backgroundColor",
            vec![],
        )
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(red, "rgb(179, 38, 30)", "the open circuit's badge is red");
    let errors = text_of(&c, "tr[data-provider=\"broken\"]").await;
    assert!(errors.contains("serverError"), "{errors}");
    let scripted = text_of(&c, "tr[data-provider=\"scripted\"] .badge.circuit").await;
    assert_eq!(scripted, "closed");
    let tiles = text_of(&c, "#ov-tiles").await;
    assert!(tiles.contains("Open circuits"), "{tiles}");
    shot(&c, "overview.png").await;

    // The keyboard: Tab reaches the skip link, then the main links, each
    // drawn with a focus outline; Enter on a link follows it.
    // (A reload puts the focus back at the start; the token stays in the
    // tab's sessionStorage.)
    c.refresh().await.unwrap();
    loaded(&c, "overview").await;
    press(&c, Key::Tab).await;
    assert_eq!(focused(&c).await, "A skip Skip to content");
    for _ in 0..3 {
        press(&c, Key::Tab).await;
    }
    assert_eq!(focused(&c).await, "A  Jobs");
    let outline = c
        .execute(
            "return getComputedStyle(document.activeElement).outlineStyle",
            vec![],
        )
        .await
        .unwrap();
    assert_ne!(outline, json!("none"), "the focused link shows it");
    c.execute("document.body.dataset.loaded = ''", vec![])
        .await
        .unwrap();
    press(&c, Key::Enter).await;
    loaded(&c, "jobs").await;

    // The job is in the list.
    go(&c, &base, "#/jobs", "jobs").await;
    let row = text_of(&c, &format!("tr[data-job=\"{id}\"]")).await;
    assert!(
        row.contains("completed") && row.contains("sarah"),
        "the jobs list shows the task: {row}"
    );
    // Filtered to bob's failing tasks, it is not.
    c.execute(
        "const s = document.getElementById('f-worker'); s.value = 'bob'; s.dispatchEvent(new Event('change'));",
        vec![],
    )
    .await
    .unwrap();
    page_until(
        &c,
        "the jobs list filtered to bob",
        "const rows = [...document.querySelectorAll('tr[data-job]')]; \
         return rows.length > 0 && rows.every(r => r.textContent.includes('bob'))",
    )
    .await;
    shot(&c, "jobs.png").await;

    // Its transcript shows the model call and the tool call with its
    // arguments and result.
    go(&c, &base, &format!("#/jobs/{id}"), "job").await;
    let tool = text_of(&c, "#transcript .step.tool[data-tool=\"remember\"]").await;
    assert!(tool.contains("remember"), "{tool}");
    assert!(tool.contains("favourite colour is green"), "{tool}");
    let model = text_of(&c, "#transcript .step.model").await;
    assert!(model.contains("scripted / gpt-test"), "{model}");
    assert!(model.contains("120 in"), "{model}");
    let result = text_of(&c, "#job-result").await;
    assert!(result.contains("Noted: green it is."), "{result}");
    shot(&c, "job.png").await;
    c.execute(
        "document.getElementById('transcript-h').scrollIntoView()",
        vec![],
    )
    .await
    .unwrap();
    shot(&c, "job-transcript.png").await;

    // The agent page: settings, and its memory recalled with scores.
    go(&c, &base, "#/agents/sarah", "agent").await;
    let settings = text_of(&c, "#agent-config").await;
    assert!(settings.contains("scripted / gpt-test"), "{settings}");
    c.find(Locator::Css("#m-query"))
        .await
        .unwrap()
        .send_keys("colour")
        .await
        .unwrap();
    c.find(Locator::Css("#m-user"))
        .await
        .unwrap()
        .send_keys("ana")
        .await
        .unwrap();
    c.find(Locator::Css("#m-recall"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    page_until(
        &c,
        "the recalled memory with its score",
        "const t = document.getElementById('agent-memories').textContent; \
         return t.includes('Score') && t.includes('green')",
    )
    .await;
    c.execute(
        "document.getElementById('agent-memories-box-h').scrollIntoView()",
        vec![],
    )
    .await
    .unwrap();
    shot(&c, "agent.png").await;

    // Pause from the page pauses the agent (asked first).
    go(&c, &base, "#/", "overview").await;
    c.find(Locator::Css(
        "tr[data-agent=\"sarah\"] button[data-action=\"pause\"]",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    let ok = c
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("dialog[open] #confirm-ok"))
        .await
        .unwrap();
    ok.click().await.unwrap();
    api.until("/v1/agents", "sarah to be paused", |a| {
        a["agents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == "sarah" && a["paused"] == true)
    })
    .await;
    let resume = text_of(
        &c,
        "tr[data-agent=\"sarah\"] button[data-action=\"resume\"]",
    )
    .await;
    assert_eq!(resume, "Resume");

    // A phone's width: nothing wider than the screen.
    c.set_window_size(390, 844).await.unwrap();
    go(&c, &base, "#/", "overview").await;
    let fits = c
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(fits, json!(true), "the overview fits 390 px");
    shot(&c, "phone-overview.png").await;
    go(&c, &base, &format!("#/jobs/{id}"), "job").await;
    let fits = c
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(fits, json!(true), "the job page fits 390 px");
    shot(&c, "phone-job.png").await;

    let log = console(port, &c).await;
    eprintln!("browser console: {log:#?}");
    let errors: Vec<Value> = log.into_iter().filter(is_error).collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    c.close().await.unwrap();
    drop(processes);
}

/// Opens the Studio and gives it the token; the overview once drawn.
async fn login(c: &Client, base: &str, token: &str) {
    c.goto(&format!("{base}/")).await.unwrap();
    let field = c
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("#token"))
        .await
        .unwrap();
    field.send_keys(token).await.unwrap();
    c.find(Locator::Css("#token-go"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    loaded(c, "overview").await;
}

/// Clicks `css` once on the page (found again if redrawn meanwhile).
async fn click(c: &Client, css: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let found = c
            .wait()
            .at_most(DEADLINE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"));
        match found.click().await {
            Ok(_) => return,
            Err(e) if is_stale(&e) && Instant::now() < deadline => continue,
            Err(e) => panic!("clicking `{css}`: {e}"),
        }
    }
}

/// The code word a task's prompt names (its memory says it).
const WORDS: [&str; 3] = ["alpha", "beta", "gamma"];
const REASON: &str = "Not beta: it is private.";

/// The model of the approvals agent: asks `remember` for the prompt's code
/// word; once the call's result is in, answers, saying whether it was
/// refused. Its answer after the tool of the "gamma" task comes after a
/// while (the job's page is open and follows it then).
async fn approvals_model() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(|req: &Request| {
            let body = String::from_utf8_lossy(&req.body).to_string();
            let word = WORDS
                .iter()
                .find(|w| body.contains(&format!("Remember the code word {w}")))
                .copied()
                .unwrap_or("none");
            if body.contains(r#""role":"tool""#) {
                let text = if body.contains("not approved") {
                    format!("Understood, I did not remember {word}.")
                } else {
                    format!("Remembered {word}.")
                };
                let answer = completion(json!({"role": "assistant", "content": text}), "stop");
                if word == "gamma" {
                    answer.set_delay(Duration::from_millis(600))
                } else {
                    answer
                }
            } else {
                let args =
                    json!({"type": "fact", "content": format!("The code word is {word}."), "importance": 5});
                remember_call(&args)
            }
        })
        .mount(&server)
        .await;
    server
}

fn approvals_config(dir: &Path, model: &str) -> (PathBuf, PathBuf) {
    let data = dir.join("data");
    let config = dir.join("troupe.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[store]
dataDir = "{data}"

[[providers]]
name = "scripted"
type = "openai-compatible"
baseUrl = "{model}"
apiKeyEnv = "STUDIO_TEST_KEY"

[[agents]]
id = "keeper"
name = "Keeper, whose memory needs approval"
systemPrompt = "You keep code words."
tools = ["remember"]
approval = ["remember"]
[agents.modelConfig]
provider = "scripted"
model = "gpt-test"
"#,
            data = data.display()
        ),
    )
    .unwrap();
    (data, config)
}

impl Api {
    /// Gives Keeper the task of remembering `word`; its job id, once the
    /// task waits for approval of its call.
    async fn parked_task(&self, word: &str) -> String {
        let job = self
            .post(
                "/v1/agents/keeper/tasks",
                json!({"prompt": format!("Remember the code word {word}."), "userId": "ana"}),
            )
            .await;
        let id = job["id"].as_str().unwrap().to_string();
        self.until("/v1/approvals", "the task to ask for approval", |a| {
            a["approvals"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["id"].as_str().unwrap().starts_with(&id))
        })
        .await;
        self.until(&format!("/v1/jobs/{id}"), "the task to wait", |j| {
            j["status"] == "waiting"
        })
        .await;
        id
    }

    /// How many of Ana's memories say `word`.
    async fn memories_of(&self, word: &str) -> usize {
        let answer = self.get("/v1/agents/keeper/memories?userId=ana").await;
        answer["memories"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["content"].as_str().unwrap().contains(word))
            .count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_studio_approves_and_denies_tool_calls_and_follows_a_task_live() {
    if !browser_present() {
        return;
    }
    let model = approvals_model().await;
    let dir = tempfile::tempdir().unwrap();
    let (data, config) = approvals_config(dir.path(), &model.uri());
    let (daemon, base) = start_daemon(&config, &data, &dir.path().join("daemon.log"));
    let mut processes = Processes(vec![daemon]);
    let token = std::fs::read_to_string(data.join("http.token"))
        .unwrap()
        .trim()
        .to_string();
    let api = Api {
        base: base.clone(),
        token: token.clone(),
        http: reqwest::Client::new(),
    };
    let alpha = api.parked_task("alpha").await;
    let beta = api.parked_task("beta").await;

    let (driver, port) = start_chromedriver();
    processes.0.push(driver);
    let c = browser(port).await;
    c.set_window_size(1280, 800).await.unwrap();
    login(&c, &base, &token).await;
    let tiles = text_of(&c, "#ov-tiles").await;
    assert!(tiles.contains("Waiting for approval\n2"), "{tiles}");
    let panel = text_of(&c, "#ov-approvals").await;
    assert!(panel.contains("The code word is beta."), "{panel}");

    // The approvals page, from the menu: both calls, with their arguments.
    c.execute("document.body.dataset.loaded = ''", vec![])
        .await
        .unwrap();
    click(&c, "nav a[data-nav=\"approvals\"]").await;
    loaded(&c, "approvals").await;
    let row_a = format!("tr[data-approval^=\"{alpha}\"]");
    let row_b = format!("tr[data-approval^=\"{beta}\"]");
    let shown = text_of(&c, &row_a).await;
    assert!(
        shown.contains("remember") && shown.contains("The code word is alpha."),
        "{shown}"
    );
    let shown = text_of(&c, &row_b).await;
    assert!(shown.contains("The code word is beta."), "{shown}");
    shot(&c, "approvals.png").await;

    // Approve alpha: asked first, then the call runs once and the task ends.
    click(&c, &format!("{row_a} button[data-action=\"approve\"]")).await;
    let question = text_of(&c, "dialog[open] #confirm-text").await;
    assert!(question.contains("remember"), "{question}");
    click(&c, "dialog[open] #confirm-ok").await;
    let done = api
        .until(&format!("/v1/jobs/{alpha}"), "alpha to complete", |j| {
            j["status"] == "completed"
        })
        .await;
    assert_eq!(done["result"]["response"], "Remembered alpha.", "{done}");
    let calls = done["result"]["toolCalls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{done}");
    assert_eq!(calls[0]["result"]["ok"], true, "{done}");
    assert_eq!(api.memories_of("alpha").await, 1, "remembered once");
    page_until(
        &c,
        "alpha to leave the list",
        &format!(
            "return !document.querySelector('{}')",
            row_a.replace('\'', "\\'")
        ),
    )
    .await;

    // Deny beta: the page wants a reason (OK with none keeps the dialog
    // open), and the model is shown it.
    click(&c, &format!("{row_b} button[data-action=\"deny\"]")).await;
    c.wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("dialog[open] #confirm-input"))
        .await
        .unwrap();
    click(&c, "dialog[open] #confirm-ok").await;
    let still = c
        .execute("return document.getElementById('confirm').open", vec![])
        .await
        .unwrap();
    assert_eq!(still, json!(true), "no reason, no denial");
    c.find(Locator::Css("dialog[open] #confirm-input"))
        .await
        .unwrap()
        .send_keys(REASON)
        .await
        .unwrap();
    shot(&c, "approvals-deny.png").await;
    click(&c, "dialog[open] #confirm-ok").await;
    let done = api
        .until(&format!("/v1/jobs/{beta}"), "beta to complete", |j| {
            j["status"] == "completed"
        })
        .await;
    assert_eq!(
        done["result"]["response"], "Understood, I did not remember beta.",
        "{done}"
    );
    assert_eq!(
        done["result"]["toolCalls"][0]["result"]["ok"], false,
        "{done}"
    );
    assert_eq!(
        api.memories_of("beta").await,
        0,
        "the denied call did not run"
    );
    let requests = model.received_requests().await.unwrap();
    let told = requests
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).to_string())
        .filter(|b| b.contains("Remember the code word beta") && b.contains(r#""role":"tool""#))
        .collect::<Vec<_>>();
    assert_eq!(told.len(), 1, "one call after the denial");
    assert!(
        told[0].contains(REASON),
        "the model read the reason: {}",
        told[0]
    );

    // Nothing pending: the page says so, and so does the API.
    page_until(
        &c,
        "the empty approvals list",
        "return !document.querySelector('tr[data-approval]') && \
         document.getElementById('approvals-list').textContent.includes('Nothing waits for approval')",
    )
    .await;
    let pending = api.get("/v1/approvals").await;
    assert_eq!(pending["approvals"], json!([]), "{pending}");
    shot(&c, "approvals-done.png").await;

    // A job's page open while its task waits follows it live: approved
    // (through the API), the page shows the tool's result and then the
    // answer, from the job's event stream, without a reload.
    let gamma = api.parked_task("gamma").await;
    go(&c, &base, &format!("#/jobs/{gamma}"), "job").await;
    let head = text_of(&c, "#job-head").await;
    assert!(head.contains("waiting"), "{head}");
    page_until(
        &c,
        "the page to follow the job's event stream",
        "return document.body.dataset.follow === 'sse'",
    )
    .await;
    let asks = text_of(&c, "#transcript .step.model").await;
    assert!(asks.contains("remember"), "{asks}");
    let pending = text_of(&c, "#job-approvals").await;
    assert!(pending.contains("The code word is gamma."), "{pending}");
    assert!(
        c.find(Locator::Css("#transcript .step.tool"))
            .await
            .is_err(),
        "no tool result before the approval"
    );
    shot(&c, "job-waiting.png").await;
    // A mark on the page: gone if it were reloaded.
    let before: u64 = c
        .execute(
            "window.notReloaded = true; return Number(document.body.dataset.events || 0)",
            vec![],
        )
        .await
        .unwrap()
        .as_u64()
        .unwrap();
    let id = api.get("/v1/approvals").await["approvals"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    api.post(&format!("/v1/approvals/{id}/approve"), json!({}))
        .await;
    page_until(
        &c,
        "the tool's result on the page",
        "const t = document.querySelector('#transcript .step.tool[data-tool=\"remember\"]'); \
         return !!t && t.textContent.includes('ok')",
    )
    .await;
    page_until(
        &c,
        "the answer on the page",
        "const t = document.getElementById('transcript'); \
         return !!t && t.textContent.includes('Final answer') && t.textContent.includes('Remembered gamma.') \
           && document.getElementById('job-head').textContent.includes('completed')",
    )
    .await;
    let after = c
        .execute(
            "return [window.notReloaded === true, Number(document.body.dataset.events || 0), \
             document.body.dataset.follow, \
             performance.getEntriesByType('navigation').length]",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(after[0], json!(true), "the page was not reloaded: {after}");
    assert!(
        after[1].as_u64().unwrap() > before,
        "events arrived on the stream after the approval: {after} (before: {before})"
    );
    assert_eq!(after[2], json!("ended"), "{after}");
    // The stream was what the page read.
    let streamed = c
        .execute(
            "return performance.getEntriesByType('resource').some(e => e.name.endsWith('/v1/jobs/' + arguments[0] + '/events'))",
            vec![json!(gamma)],
        )
        .await
        .unwrap();
    assert_eq!(streamed, json!(true), "the page asked for the job's events");
    c.execute(
        "document.getElementById('transcript-h').scrollIntoView()",
        vec![],
    )
    .await
    .unwrap();
    shot(&c, "job-live.png").await;

    let log = console(port, &c).await;
    eprintln!("browser console: {log:#?}");
    let errors: Vec<Value> = log.into_iter().filter(is_error).collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    c.close().await.unwrap();
    drop(processes);
}

/// The page and the routes it reads, without a browser: the page is open
/// and carries its policy; the data routes need the token; a task's steps,
/// the stats, an agent's settings and a recall answer as typed.
#[test]
fn the_page_is_served_with_its_policy_and_its_routes_answer() {
    use common::daemon::{error_of, start};
    use reqwest::StatusCode;
    troupe_actors::run_system(async {
        let mut d = start(None).await;
        let page = d.client.get(format!("{}/", d.base)).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let csp = page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert!(page.text().await.unwrap().contains("/studio/app.js"));
        for asset in ["/studio/app.js", "/studio/app.css", "/studio/icon.svg"] {
            let r = d
                .client
                .get(format!("{}{asset}", d.base))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{asset}");
            assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        }

        let (s, result) = d
            .post(
                "/v1/agents/sarah/tasks",
                json!({"prompt": "Say hello", "wait": true}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{result}");
        let (_, page) = d.get("/v1/jobs?worker=sarah").await;
        let id = page["jobs"][0]["id"].as_str().unwrap().to_string();
        let (s, steps) = d.get(&format!("/v1/jobs/{id}/steps")).await;
        assert_eq!(s, StatusCode::OK, "{steps}");
        assert_eq!(steps["jobId"], json!(id));
        // A direct answer is no step (the job's completion is its
        // checkpoint): the offline model's task saved none. (Steps with
        // tool calls: the browser test.)
        assert_eq!(steps["steps"], json!([]), "{steps}");

        let (s, body) = d
            .get("/v1/jobs/01a24837-0000-7000-8000-000000000000/steps")
            .await;
        error_of(s, &body, StatusCode::NOT_FOUND);

        let (s, stats) = d.get("/v1/stats").await;
        assert_eq!(s, StatusCode::OK, "{stats}");
        let minutes = stats["minutes"].as_array().unwrap();
        assert_eq!(minutes.len(), 60);
        let completed: u64 = minutes
            .iter()
            .map(|m| m["completed"].as_u64().unwrap())
            .sum();
        assert_eq!(completed, 1, "{stats}");
        assert_eq!(stats["spend"][0]["agent"], "sarah", "{stats}");

        let (s, agent) = d.get("/v1/agents/sarah").await;
        assert_eq!(s, StatusCode::OK, "{agent}");
        assert_eq!(agent["systemPrompt"], "You are Sarah.");
        assert_eq!(agent["completed"], 1);
        let (s, body) = d.get("/v1/agents/nobody").await;
        error_of(s, &body, StatusCode::NOT_FOUND);

        let (s, recall) = d.get("/v1/agents/sarah/recall?q=hello").await;
        assert_eq!(s, StatusCode::OK, "{recall}");
        assert!(recall["memories"].is_array(), "{recall}");
        let (s, body) = d.get("/v1/agents/sarah/recall?q=").await;
        let message = error_of(s, &body, StatusCode::BAD_REQUEST);
        assert!(message.contains("q"), "{message}");

        d.token = None;
        for path in [
            "/v1/stats",
            "/v1/agents/sarah",
            &format!("/v1/jobs/{id}/steps"),
        ] {
            let (s, body) = d.get(path).await;
            error_of(s, &body, StatusCode::UNAUTHORIZED);
        }
        d.stop().await;
    });
}
