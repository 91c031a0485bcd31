//! The kestrel program, run natively inside the bank through solana-program-test's `processor!`.

use solana_program_test::ProgramTest;
use solana_sdk::account_info::AccountInfo;
use solana_sdk::entrypoint::ProgramResult;
use solana_sdk::pubkey::Pubkey;

/// Adapter: Anchor's `entry` ties every argument to one lifetime, `processor!` does not.
#[allow(unsafe_code)]
fn process_instruction<'a, 'b, 'c, 'd>(
    program_id: &'a Pubkey,
    accounts: &'b [AccountInfo<'c>],
    data: &'d [u8],
) -> ProgramResult {
    // SAFETY: all three borrows outlive this call and `entry` keeps no reference past its
    // return; only the lifetimes are unified, the types are identical.
    let (program_id, accounts, data) = unsafe {
        (
            core::mem::transmute::<&'a Pubkey, &'c Pubkey>(program_id),
            core::mem::transmute::<&'b [AccountInfo<'c>], &'c [AccountInfo<'c>]>(accounts),
            core::mem::transmute::<&'d [u8], &'c [u8]>(data),
        )
    };
    kestrel::entry(program_id, accounts, data)
}

/// A bank with the kestrel program (native) next to the SPL programs solana-program-test ships
/// as real SBF (Token, Token-2022, associated token, memo, address lookup tables).
pub(crate) fn program_test() -> ProgramTest {
    let mut pt = ProgramTest::default();
    #[allow(deprecated)] // `processor!` is solana-program-test's unstable native-program hook
    pt.add_program(
        "kestrel",
        kestrel::ID,
        solana_program_test::processor!(process_instruction),
    );
    pt
}
