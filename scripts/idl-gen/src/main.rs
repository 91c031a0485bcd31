//! `kestrel-idl [--check] <path>`: builds the kestrel program's IDL the way `anchor idl build`
//! does (the `idl-build` feature's test entry points print it) and writes it to `<path>`, or,
//! with `--check`, fails when `<path>` differs from a fresh build.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1).collect::<Vec<_>>();
    let check = args.first().is_some_and(|a| a == "--check");
    if check {
        args.remove(0);
    }
    let [path] = args.as_slice() else {
        bail!("usage: kestrel-idl [--check] <idl.json>");
    };
    let program = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../programs/kestrel");
    let idl = anchor_lang_idl::build::IdlBuilder::new()
        .program_path(program)
        .cargo_args(vec!["--lib".into()])
        .build()
        .context("building the IDL")?;
    let fresh = serde_json::to_string_pretty(&idl)? + "\n";
    if check {
        let committed = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
        if committed != fresh {
            bail!("{path} is stale: run scripts/idl to regenerate it and commit the result");
        }
        println!("{path} is up to date");
    } else {
        std::fs::write(path, fresh).with_context(|| format!("writing {path}"))?;
        println!("wrote {path}");
    }
    Ok(())
}
