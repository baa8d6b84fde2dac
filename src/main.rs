//! The `troupe` command line (`src/cli/`).

/// Counts each worker's heap, for `restartAboveMemoryMib` and the
/// `troupe_worker_heap_bytes` metric (see [`troupe::alloc`]).
#[cfg(not(feature = "mimalloc"))]
#[global_allocator]
static ALLOC: troupe::alloc::AccountingAllocator = troupe::alloc::AccountingAllocator;

/// The same over mimalloc (`--features mimalloc`).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: troupe::alloc::AccountingAllocatorOver<mimalloc::MiMalloc> =
    troupe::alloc::AccountingAllocatorOver(mimalloc::MiMalloc);

fn main() -> std::process::ExitCode {
    troupe::cli_main()
}
