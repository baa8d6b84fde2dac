//! Troupe in a `#[tokio::main]` service, on the offline model: `cargo run --example embedded`.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use troupe::prelude::*;
#[derive(Deserialize, JsonSchema)]
struct Text {
    text: String,
}
#[derive(Serialize)]
struct Words(usize);
struct WordCount;
#[async_trait]
impl TypedTool for WordCount {
    type Args = Text;
    type Output = Words;
    type Error = ToolError;
    fn name(&self) -> &str {
        "word_count"
    }
    fn description(&self) -> &str {
        "Counts the words in a text."
    }
    async fn run(&self, args: Text, _: ToolContext) -> Result<Words, ToolError> {
        Ok(Words(args.text.split_whitespace().count()))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (dir, model) = (tempfile::tempdir()?, ModelConfig::new("offline", "offline"));
    let editor = AgentConfig::new("ed", "Ed", "You edit.", model).tools(["word_count"]);
    let config = TroupeConfig::default().data_dir(dir.path()).agent(editor);
    let troupe = Troupe::builder(config).tool(WordCount).start().await?;
    let task = "Use word_count on: the quick brown fox";
    let answer = troupe.ask("ed", task, TaskOptions::default()).await?;
    println!("{}\ntool calls: {:?}", answer.text, answer.tool_calls);
    troupe.shutdown().await?;
    Ok(())
}
