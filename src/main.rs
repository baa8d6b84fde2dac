//! The `troupe` command line; see [`troupe::cli`].

/// Counts each worker's heap, for `restartAboveMemoryMib` and the
/// `troupe_worker_heap_bytes` metric (see [`troupe::alloc`]).
#[global_allocator]
static ALLOC: troupe::alloc::AccountingAllocator = troupe::alloc::AccountingAllocator;

fn main() -> std::process::ExitCode {
    troupe::cli::main()
}
