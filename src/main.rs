//! The `troupe` command line.

use clap::{CommandFactory, Parser};

/// Troupe runs LLM agents as supervised actors, with a durable job queue.
#[derive(Debug, Parser)]
#[command(name = "troupe", version, about, long_about = None)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    // No commands yet: show what there is.
    let _ = Cli::command().print_help();
}
