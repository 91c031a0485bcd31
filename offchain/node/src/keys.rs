//! Keypair files in the Solana CLI's format (a JSON array of the 64 secret+public bytes).

use solana_sdk::signature::Keypair;
use std::path::Path;

/// Reads the keypair at `path`.
pub fn load(path: &Path) -> std::io::Result<Keypair> {
    let text = std::fs::read_to_string(path)?;
    let bytes: Vec<u8> = serde_json::from_str(&text).map_err(std::io::Error::other)?;
    Keypair::try_from(bytes.as_slice()).map_err(std::io::Error::other)
}

/// Writes `keypair` to `path` in the same format.
pub fn save(path: &Path, keypair: &Keypair) -> std::io::Result<()> {
    let text =
        serde_json::to_string(&keypair.to_bytes().to_vec()).map_err(std::io::Error::other)?;
    std::fs::write(path, text)
}

/// Reads the keypair at `path`, or generates one and writes it there.
pub fn load_or_create(path: &Path) -> std::io::Result<Keypair> {
    if path.exists() {
        return load(path);
    }
    let keypair = Keypair::new();
    save(path, &keypair)?;
    Ok(keypair)
}
