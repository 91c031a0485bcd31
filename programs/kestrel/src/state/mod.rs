//! Account state. Every account is fixed-size zero-copy with its size asserted and reserved
//! bytes for upgrades.

mod exchange;
mod market;
mod order_record;
mod user;

pub use exchange::*;
pub use market::*;
pub use order_record::*;
pub use user::*;
