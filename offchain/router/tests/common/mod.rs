//! A busy, deterministic command stream for snapshot tests and benches: deposits, then a mix
//! of every command kind (orders of every type, cancels, replaces, cancel-alls, withdrawals
//! and their outcomes, cancel floors, settlement updates and ticks). Signatures are not
//! checked by the state (verification happens before the sequencer), so they are zero.
#![allow(dead_code, clippy::unwrap_used, clippy::arithmetic_side_effects)]

use anchor_lang::prelude::Pubkey;
use kestrel::encoding::{
    Cancel, CancelAll, CancelSide, Order, OrderType, SelfTrade, Side, WithdrawRequest,
};
use kestrel_matcher::journal::JournalConfig;
use kestrel_router::market::MarketSpec;
use kestrel_router::model::{Command, SettlementStatus};
use kestrel_router::state::Rules;
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::time::Duration;

const WALLETS: u8 = 16;

/// Two markets over three assets.
pub fn rules() -> Rules {
    let market = |index, base_asset, quote_asset| MarketSpec {
        index,
        base_asset,
        quote_asset,
        base_lot_size: 100,
        tick_size: 1,
        min_size_lots: 1,
        max_size_lots: 1_000_000,
        min_price_ticks: 1,
        max_price_ticks: 1_000_000,
        maker_fee_bps: 1,
        taker_fee_bps: 3,
        max_orders: 200_000,
    };
    Rules {
        exchange: Pubkey::new_from_array([9; 32]),
        assets: (1..=3u8).map(|i| Pubkey::new_from_array([i; 32])).collect(),
        markets: vec![market(0, 0, 1), market(1, 2, 1)],
        max_expiry_horizon_secs: 86_400 * 365 * 50,
        expiry_margin_secs: 0,
        max_open_orders: 100_000,
    }
}

/// A journal that rotates often, with a short group window.
pub fn journal_config(dir: &Path) -> JournalConfig {
    let mut config = JournalConfig::new(dir);
    config.segment_bytes = 64 * 1024;
    config.group_window = Duration::from_millis(1);
    config
}

fn owner(w: u8) -> Pubkey {
    Pubkey::new_from_array([w.wrapping_mul(7).wrapping_add(100); 32])
}

/// The stream of `seed`: 48 deposits, then a random mix. The same seed gives the same
/// stream, so a second run can continue one with `skip`.
pub fn stream(seed: u64) -> impl Iterator<Item = Command> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut nonces = [0u64; WALLETS as usize];
    let mut withdrawals: Vec<u64> = Vec::new();
    let exchange = Pubkey::new_from_array([9; 32]);
    (0u64..).map(move |i| {
        if i < u64::from(WALLETS) * 3 {
            return Command::DepositObserved {
                owner: owner((i % u64::from(WALLETS)) as u8).to_bytes(),
                asset: (i / u64::from(WALLETS)) as u8,
                amount: 1_000_000_000_000,
                tx: [(i % 251) as u8; 64],
                ix_index: (i / 251) as u16,
            };
        }
        let w = rng.gen_range(0..WALLETS);
        let who = owner(w);
        let market_index = rng.gen_range(0..2u32);
        let side = if rng.gen_bool(0.5) {
            Side::Buy
        } else {
            Side::Sell
        };
        let nonce = &mut nonces[usize::from(w)];
        let order = |nonce: u64, rng: &mut rand::rngs::StdRng| Order {
            exchange,
            owner: who,
            market_index,
            side,
            order_type: match rng.gen_range(0..10) {
                0 => OrderType::ImmediateOrCancel,
                1 => OrderType::PostOnly,
                2 => OrderType::FillOrKill,
                _ => OrderType::Limit,
            },
            self_trade: SelfTrade::CancelTaker,
            price_ticks: rng.gen_range(980..1_020),
            size_lots: rng.gen_range(1..40),
            nonce,
            expiry: 0,
            client_order_id: if rng.gen_bool(0.2) { nonce } else { 0 },
        };
        match rng.gen_range(0..100) {
            0..=59 => {
                *nonce += 1;
                Command::Place {
                    order: order(*nonce, &mut rng),
                    signature: [0; 64],
                }
            }
            60..=74 => Command::Cancel(Cancel {
                exchange,
                owner: who,
                market_index,
                order_nonce: nonce.saturating_sub(rng.gen_range(0..6)),
                expiry: 0,
            }),
            75..=79 => {
                let old = nonce.saturating_sub(rng.gen_range(0..4));
                *nonce += 1;
                Command::Replace {
                    cancel: Cancel {
                        exchange,
                        owner: who,
                        market_index,
                        order_nonce: old,
                        expiry: 0,
                    },
                    order: order(*nonce, &mut rng),
                    signature: [0; 64],
                }
            }
            80..=81 => Command::CancelAll(CancelAll {
                exchange,
                owner: who,
                market_index,
                side: CancelSide::Both,
                up_to_nonce: nonce.saturating_sub(10),
                expiry: 0,
            }),
            82..=84 => {
                *nonce += 1;
                withdrawals.push(i);
                Command::Withdraw(WithdrawRequest {
                    exchange,
                    owner: who,
                    mint: Pubkey::new_from_array([rng.gen_range(1..=3u8); 32]),
                    amount: rng.gen_range(1..1_000_000),
                    nonce: *nonce,
                    expiry: 0,
                })
            }
            85..=86 => Command::WithdrawalFinished {
                id: withdrawals.pop().unwrap_or(1) + 1,
                confirmed: rng.gen_bool(0.5),
            },
            87 => Command::NonceFloorObserved {
                owner: who.to_bytes(),
                floor: nonce.saturating_sub(20),
            },
            88..=94 => Command::SettlementUpdate {
                market: market_index,
                fill_id: rng.gen_range(1..1_000),
                status: SettlementStatus::Confirmed,
            },
            _ => Command::Tick,
        }
    })
}
