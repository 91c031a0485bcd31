//! The `kestrel` binary, built in this package for its process-level tests (see Cargo.toml).

fn main() -> anyhow::Result<()> {
    kestrel_node::app::main()
}
