//! Who signs orders. A Solana [`Keypair`] signs Kestrel messages as plain ed25519 over the
//! canonical bytes, exactly what a wallet's `signMessage` does.

use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Keypair;

/// Signs Kestrel messages.
pub trait OrderSigner {
    /// The wallet key; the owner of orders it signs.
    fn pubkey(&self) -> Pubkey;
    /// Ed25519 signature over `message`.
    fn sign_message(&self, message: &[u8]) -> [u8; 64];
}

impl OrderSigner for Keypair {
    fn pubkey(&self) -> Pubkey {
        solana_sdk::signature::Signer::pubkey(self)
    }

    fn sign_message(&self, message: &[u8]) -> [u8; 64] {
        let signature = solana_sdk::signature::Signer::sign_message(self, message);
        let mut out = [0u8; 64];
        out.copy_from_slice(signature.as_ref());
        out
    }
}
