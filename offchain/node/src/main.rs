//! `kestrel`: the operator's binary (see `kestrel_node::app`).

/// The router allocates per command (events, answers, feed frames) on many threads; mimalloc
/// gave the router ~5 % more orders/s than the system allocator (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    kestrel_node::app::main()
}
