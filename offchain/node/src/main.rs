//! `kestrel`: the operator's binary (see `kestrel_node::app`).

fn main() -> anyhow::Result<()> {
    kestrel_node::app::main()
}
