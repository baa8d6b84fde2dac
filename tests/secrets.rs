//! Credentials at rest: encrypted secrets file, master key sources and their
//! checks, expiry, the `troupe secrets` CLI, and no key in plain text in any
//! file under the data directory. How providers take their keys from the
//! store is the crate's own test (`src/provider/tests/keys.rs`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use chrono::{Days, Utc};
use troupe::secrets::{ApiKey, MasterKey, SecretError, SecretStore};
use troupe::sled::{SledConfig, SledStore};

const KEY: &str = "sk-proj-PLAINTEXT-canary-7f3a9c1e5b2d4680";
const HEX_A: &str = "1f2e3d4c5b6a79880f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778";
const HEX_B: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

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

#[test]
fn stored_keys_round_trip_and_list_shows_no_values() {
    let dir = tempfile::tempdir().unwrap();
    let store = SecretStore::new(dir.path());
    let m = master(HEX_A);
    let expires = today().checked_add_days(Days::new(30)).unwrap();
    store
        .set(&m, "openai", &ApiKey::new(KEY), Some(expires))
        .unwrap();
    store
        .set(&m, "anthropic", &ApiKey::new("sk-ant-other"), None)
        .unwrap();

    let got = store.get(&m, "openai").unwrap().unwrap();
    assert_eq!(got.key.expose(), KEY);
    assert_eq!(got.expires, Some(expires));
    assert!(!format!("{got:?}").contains(KEY), "Debug is redacted");
    assert!(
        !format!("{m:?}").contains("1f2e3d"),
        "master key Debug is redacted"
    );

    let list = store.list(today()).unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1].provider, "openai");
    assert_eq!(list[1].expires, Some(expires));
    assert!(!serde_json::to_string(&list).unwrap().contains(KEY));

    assert!(store.delete("anthropic").unwrap());
    assert!(!store.delete("anthropic").unwrap());
    assert_no_plaintext(dir.path(), KEY);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(store.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "secrets file is private to its owner");
    }
}

#[test]
fn a_wrong_master_key_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = SecretStore::new(dir.path());
    store
        .set(&master(HEX_A), "openai", &ApiKey::new(KEY), None)
        .unwrap();
    let err = store.get(&master(HEX_B), "openai").unwrap_err();
    assert!(matches!(err, SecretError::WrongMasterKey { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("provider `openai`"), "{text}");
    assert!(text.contains("wrong master key"), "{text}");
    assert!(!text.contains(KEY));
    // Storing another key under a different master key is refused too:
    // one file, one master key.
    let err = store
        .set(&master(HEX_B), "mistral", &ApiKey::new("sk-m"), None)
        .unwrap_err();
    assert!(matches!(err, SecretError::WrongMasterKey { .. }), "{err:?}");
    // And a malformed master key names its source, not its text.
    let err = MasterKey::parse("not-a-key", "TROUPE_MASTER_KEY").unwrap_err();
    assert!(err
        .to_string()
        .starts_with("TROUPE_MASTER_KEY is not a valid master key"));
}

#[cfg(unix)]
#[test]
fn a_key_file_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let generated = MasterKey::generate_file(&path).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(MasterKey::from_file(&path).is_ok());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = MasterKey::from_file(&path).unwrap_err();
    assert!(
        matches!(err, SecretError::KeyFilePermissions { mode: 0o644, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("chmod 600"), "{text}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(MasterKey::from_file(&path).is_err());
    drop(generated);
}

fn troupe(data_dir: &Path, key_file: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_troupe"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("TROUPE_MASTER_KEY")
        .env("TROUPE_MASTER_KEY_FILE", key_file)
        .env("HOME", data_dir.join("no-home"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The command may exit before reading stdin (a refused flag): ignore EPIPE.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_secrets_cli_works_while_the_store_is_held() {
    let dir = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("master.key");
    // A daemon would hold the sled store; so does this test.
    let held = SledStore::open(SledConfig::new(dir.path())).unwrap();

    // No key file yet: `set` creates it (mode 600) and says where.
    let o = troupe(
        dir.path(),
        &key_file,
        &["secrets", "set", "openai", "--expires", "2099-12-31"],
        &format!("{KEY}\n"),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("created master key file"), "{}", text(&o));
    assert!(!text(&o).contains(KEY));

    let o = troupe(dir.path(), &key_file, &["secrets", "list", "--json"], "");
    assert!(o.status.success(), "{}", text(&o));
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(list[0]["provider"], "openai");
    assert_eq!(list[0]["expires"], "2099-12-31");
    assert!(!text(&o).contains(KEY));

    // The stored key decrypts with the key file the CLI made.
    let m = MasterKey::from_file(&key_file).unwrap();
    let got = SecretStore::new(dir.path())
        .get(&m, "openai")
        .unwrap()
        .unwrap();
    assert_eq!(got.key.expose(), KEY);

    // An expiry in the past is refused up front; an empty stdin too.
    let o = troupe(
        dir.path(),
        &key_file,
        &["secrets", "set", "x", "--expires", "2000-01-01"],
        "k",
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("not in the future"), "{}", text(&o));
    let o = troupe(dir.path(), &key_file, &["secrets", "set", "x"], "");
    assert!(!o.status.success());
    assert!(text(&o).contains("no key on stdin"), "{}", text(&o));

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let o = troupe(
            dir.path(),
            &key_file,
            &["secrets", "set", "mistral"],
            "sk-m\n",
        );
        assert!(!o.status.success());
        assert!(text(&o).contains("chmod 600"), "{}", text(&o));
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // A different master key cannot add to this file.
    let other = keys.path().join("other.key");
    MasterKey::generate_file(&other).unwrap();
    let o = troupe(dir.path(), &other, &["secrets", "set", "mistral"], "sk-m\n");
    assert!(!o.status.success());
    assert!(text(&o).contains("wrong master key"), "{}", text(&o));

    let o = troupe(dir.path(), &key_file, &["secrets", "delete", "openai"], "");
    assert!(o.status.success(), "{}", text(&o));
    let o = troupe(dir.path(), &key_file, &["secrets", "delete", "openai"], "");
    assert!(!o.status.success());
    assert!(text(&o).contains("no stored key for provider `openai`"));
    drop(held);
    assert_no_plaintext(dir.path(), KEY);
}

/// The temporary file `set` writes before renaming it over `secrets.json`
/// (its name in every version: `.secrets.json.tmp-<pid>`).
fn temp_file(dir: &Path) -> PathBuf {
    dir.join(format!(".secrets.json.tmp-{}", std::process::id()))
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

/// A temporary file left by a crash (here with a pid this process has
/// again, and open to others) is not written into: the secrets file comes
/// out 0600 all the same; stale ones of other pids are cleared away.
#[test]
fn a_stale_temp_file_left_by_a_crash_is_replaced_not_reused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let stale = temp_file(dir.path());
    std::fs::write(&stale, "left by a crash").unwrap();
    std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o644)).unwrap();
    let other = dir.path().join(".secrets.json.tmp-999999999");
    std::fs::write(&other, "left by another crash").unwrap();
    let store = SecretStore::new(dir.path());
    store
        .set(&master(HEX_A), "openai", &ApiKey::new(KEY), None)
        .unwrap();
    assert_eq!(mode_of(store.path()), 0o600, "secrets.json");
    assert!(
        !stale.exists() && !other.exists(),
        "no temporary file is left"
    );
    let got = store.get(&master(HEX_A), "openai").unwrap().unwrap();
    assert_eq!(got.key.expose(), KEY);
}

/// A link planted at the temporary file's name is not followed: the file it
/// points to is untouched and `secrets.json` is a file of its own, 0600.
#[test]
fn a_link_at_the_temp_files_name_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("collected");
    std::fs::write(&target, "nothing yet").unwrap();
    std::os::unix::fs::symlink(&target, temp_file(dir.path())).unwrap();
    let store = SecretStore::new(dir.path());
    store
        .set(&master(HEX_A), "openai", &ApiKey::new(KEY), None)
        .unwrap();
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "nothing yet");
    let meta = std::fs::symlink_metadata(store.path()).unwrap();
    assert!(meta.file_type().is_file(), "secrets.json is not a link");
    assert_eq!(mode_of(store.path()), 0o600);
}
