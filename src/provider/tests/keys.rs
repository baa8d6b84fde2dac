//! Provider keys from the secrets store: where a provider's key comes
//! from and what its errors say, an expired stored key refused before any
//! call, and no key in plain text under the data directory after real
//! calls. The secrets store itself, the master key and the `troupe secrets`
//! CLI are tested through the public surface in `tests/secrets.rs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{Days, Utc};
use troupe_actors::{run_system, SupervisorSpec};
use wiremock::matchers::{header, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::provider::{
    ApiKey, Credentials, ErrorKind, Generate, GenerateRequest, KeySource, Message, ProviderConfig,
    ProviderKind, ProviderSet, UsageMeter,
};
use crate::secrets::{MasterKey, SecretError, SecretStore};
use crate::sled::{SledConfig, SledStore};
use crate::test_support::FIXTURES;
use crate::ModelConfig;

const KEY: &str = "sk-proj-PLAINTEXT-canary-7f3a9c1e5b2d4680";
const HEX_A: &str = "1f2e3d4c5b6a79880f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778";

fn master(hex: &str) -> MasterKey {
    MasterKey::parse(hex, "test").unwrap()
}

fn today() -> chrono::NaiveDate {
    Utc::now().date_naive()
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn assert_no_plaintext(dir: &Path, secret: &str) {
    let needle = secret.as_bytes();
    let all = files(dir);
    assert!(!all.is_empty());
    for f in all {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "key found in plain text in {}",
            f.display()
        );
    }
}

fn openai_config(name: &str, server: &MockServer) -> ProviderConfig {
    ProviderConfig::new(name, ProviderKind::Openai).with_base_url(server.uri())
}

fn req() -> GenerateRequest {
    GenerateRequest {
        model: "gpt-4.1-nano".into(),
        messages: vec![Message::user("hi")],
        ..Default::default()
    }
}

#[test]
fn an_expired_key_is_refused_before_any_call() {
    let dir = tempfile::tempdir().unwrap();
    let store = SecretStore::new(dir.path());
    let m = master(HEX_A);
    let yesterday = today().checked_sub_days(Days::new(1)).unwrap();
    store
        .set(&m, "openai", &ApiKey::new(KEY), Some(yesterday))
        .unwrap();
    let err = store.get_valid(&m, "openai", today()).unwrap_err();
    assert!(matches!(err, SecretError::Expired { .. }), "{err:?}");
    assert!(store.list(today()).unwrap()[0].expired);

    run_system(async {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(
                std::fs::read(format!("{FIXTURES}/openai-chat-text-usage.json")).unwrap(),
                "application/json",
            ))
            .mount(&server)
            .await;
        let credentials = Credentials::new(store.clone(), Some(master(HEX_A)));
        let set =
            ProviderSet::build(&[openai_config("openai", &server)], &credentials, None).unwrap();
        assert_eq!(set.status()[0].key_expires, Some(yesterday));
        let tree = SupervisorSpec::new("root")
            .children(set.child_specs())
            .start()
            .unwrap();
        set.attach(&tree, "").unwrap();
        let err = set
            .generate(
                &ModelConfig::new("openai", "gpt-4.1-nano"),
                Generate::new(req()),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::KeyExpired);
        let text = err.to_string();
        assert!(text.contains("provider `openai`"), "{text}");
        assert!(text.contains(&format!("expired on {yesterday}")), "{text}");
        assert!(text.contains("troupe secrets set openai"), "{text}");
        assert_eq!(server.received_requests().await.unwrap().len(), 0);
        tree.shutdown().await;
    });
}

#[test]
fn key_sources_and_their_errors_name_the_provider() {
    let dir = tempfile::tempdir().unwrap();
    let store = SecretStore::new(dir.path());
    store
        .set(&master(HEX_A), "stored", &ApiKey::new(KEY), None)
        .unwrap();

    let mut env_cfg = ProviderConfig::new("envy", ProviderKind::Openai);
    env_cfg.api_key_env = Some("TROUPE_TEST_SURELY_UNSET_VARIABLE".into());
    let creds = Credentials::new(store.clone(), Some(master(HEX_A)));
    let e = creds.resolve(&env_cfg).unwrap_err().to_string();
    assert!(
        e.contains("`envy`") && e.contains("TROUPE_TEST_SURELY_UNSET_VARIABLE"),
        "{e}"
    );

    let missing = ProviderConfig::new("nokey", ProviderKind::Anthropic);
    let e = creds.resolve(&missing).unwrap_err().to_string();
    assert!(e.contains("troupe secrets set nokey"), "{e}");

    let stored = ProviderConfig::new("stored", ProviderKind::Openai);
    let r = creds.resolve(&stored).unwrap();
    assert_eq!(r.source, KeySource::Stored);
    assert_eq!(r.key.unwrap().expose(), KEY);

    let no_master = Credentials::new(store, None);
    let e = no_master.resolve(&stored).unwrap_err().to_string();
    assert!(
        e.contains("TROUPE_MASTER_KEY") && e.contains("`stored`"),
        "{e}"
    );

    // A local OpenAI-compatible server may need no key at all.
    let local = ProviderConfig::new("ollama", ProviderKind::OpenaiCompatible)
        .with_base_url("http://127.0.0.1:11434/v1");
    assert_eq!(creds.resolve(&local).unwrap().source, KeySource::None);
}

#[test]
fn no_key_in_plain_text_under_the_data_dir_after_real_calls() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = SecretStore::new(dir.path());
    secrets
        .set(&master(HEX_A), "openai", &ApiKey::new(KEY), None)
        .unwrap();
    run_system(async {
        let server = MockServer::start().await;
        // Answers only when the decrypted key is sent.
        Mock::given(method("POST"))
            .and(header("authorization", format!("Bearer {KEY}").as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_raw(
                std::fs::read(format!("{FIXTURES}/openai-chat-text-usage.json")).unwrap(),
                "application/json",
            ))
            .mount(&server)
            .await;
        let sled = SledStore::open(SledConfig::new(dir.path())).unwrap();
        let meter = UsageMeter::new(Arc::new(sled.clone()));
        let credentials = Credentials::new(secrets.clone(), Some(master(HEX_A)));
        let set = ProviderSet::build(
            &[openai_config("openai", &server)],
            &credentials,
            Some(meter),
        )
        .unwrap();
        assert!(!format!("{set:?} {:?}", set.status()).contains(KEY));
        let tree = SupervisorSpec::new("root")
            .supervisor(set.supervisor_spec("providers"))
            .start()
            .unwrap();
        set.attach(&tree, "providers").unwrap();
        for _ in 0..3 {
            set.generate(
                &ModelConfig::new("openai", "gpt-4.1-nano"),
                Generate::new(req()).agent("sarah"),
            )
            .await
            .unwrap();
        }
        tree.shutdown().await;
        drop(set);
        drop(sled);
    });
    assert!(
        dir.path().join("db").exists(),
        "the sled store is in the same directory"
    );
    assert_no_plaintext(dir.path(), KEY);
}
