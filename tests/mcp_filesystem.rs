//! A published MCP server no one here wrote, end to end:
//! `@modelcontextprotocol/server-filesystem` from the npm registry, run by
//! the machine's Node over stdio, used by an agent whose scripted model
//! (an OpenAI-shaped server on 127.0.0.1) lists a directory and reads a
//! file the test wrote, and is refused a file outside the allowed one.
//!
//! `.ci/run` installs the server (a pinned version) and sets
//! `TROUPE_TEST_MCP_FILESYSTEM` to its `dist/index.js`; without the
//! variable this test says it skips and passes.

mod common;

use common::mcp::{config, openai_text, openai_tool_calls, step};
use serde_json::json;
use troupe::{McpServerConfig, TaskOptions, Troupe};
use troupe_actors::run_system;
use wiremock::MockServer;

#[test]
fn an_agent_lists_and_reads_files_through_the_published_filesystem_server() {
    let Ok(server_js) = std::env::var("TROUPE_TEST_MCP_FILESYSTEM") else {
        eprintln!(
            "skipped: TROUPE_TEST_MCP_FILESYSTEM is not set (the path of \
             @modelcontextprotocol/server-filesystem's dist/index.js; .ci/run sets it)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = make_dir(dir.path().join("shared"));
    std::fs::write(root.join("notes.txt"), "the build is green\n").unwrap();
    std::fs::create_dir(root.join("drafts")).unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "not for agents").unwrap();
    let root_text = root.to_string_lossy().into_owned();
    run_system(async {
        let model = MockServer::start().await;
        step(
            &model,
            0,
            openai_tool_calls(&[("c1", "fs_list_directory", json!({ "path": root_text }))]),
        )
        .await;
        step(
            &model,
            1,
            openai_tool_calls(&[
                (
                    "c2",
                    "fs_read_text_file",
                    json!({ "path": root.join("notes.txt") }),
                ),
                ("c3", "fs_read_text_file", json!({ "path": secret })),
                ("c4", "fs_read_text_file", json!({ "file": "notes.txt" })),
            ]),
        )
        .await;
        step(&model, 4, openai_text("The notes say the build is green.")).await;

        let mut fs = McpServerConfig::stdio("fs", "node", [server_js.as_str(), root_text.as_str()]);
        fs.tools = Some(vec!["list_directory".into(), "read_text_file".into()]);
        let config = config(
            &model,
            &dir.path().join("data"),
            &["fs_list_directory", "fs_read_text_file"],
            vec![fs],
        );
        let troupe = Troupe::builder(config).start().await.expect("starts");
        let answer = troupe
            .ask("ana", "What do the notes say?", TaskOptions::default())
            .await
            .expect("answers");
        troupe.shutdown().await.unwrap();

        assert_eq!(answer.text, "The notes say the build is green.");
        let results: Vec<_> = answer.tool_calls.iter().map(|c| &c.result).collect();
        // The listing (the server's structured content).
        assert_eq!(results[0]["ok"], true, "{}", results[0]);
        let listing = results[0]["data"].to_string();
        assert!(listing.contains("[FILE] notes.txt"), "{listing}");
        assert!(listing.contains("[DIR] drafts"), "{listing}");
        // The file the test wrote.
        assert_eq!(results[1]["ok"], true, "{}", results[1]);
        assert!(
            results[1]["data"]
                .to_string()
                .contains("the build is green"),
            "{}",
            results[1]
        );
        // Outside the allowed directory: the server's error, as a tool error.
        assert_eq!(results[2]["error"]["kind"], "failed", "{}", results[2]);
        assert!(
            !results[2].to_string().contains("not for agents"),
            "{}",
            results[2]
        );
        // Arguments the server's schema refuses never reach it.
        assert_eq!(
            results[3]["error"]["kind"], "invalid_arguments",
            "{}",
            results[3]
        );
    });
}

/// Creates the directory and gives its canonical path (the server compares
/// paths after resolving links).
fn make_dir(path: std::path::PathBuf) -> std::path::PathBuf {
    std::fs::create_dir_all(&path).unwrap();
    path.canonicalize().unwrap()
}
