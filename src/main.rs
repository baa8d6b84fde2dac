//! The `troupe` command line; see [`troupe::cli`].

fn main() -> std::process::ExitCode {
    troupe::cli::main()
}
