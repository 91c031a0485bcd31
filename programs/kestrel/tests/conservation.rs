//! Conservation under random operation sequences (DESIGN.md rule 3).
//!
//! proptest generates sequences of deposits, settlements (new orders and partial fills of
//! recorded ones), immediate and delayed withdrawals and on-chain cancels for 4 users on market 0.
//! A plain model predicts each step's outcome. After every step: a success leaves the chain equal
//! to the model, a failure fails with exactly the predicted error and changes nothing, and per
//! mint the vault holds exactly the users' balances, pending withdrawals and accrued fees.
//!
//! `PROPTEST_CASES` sets the number of cases (default 20).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]
mod program_test;

use kestrel::encoding::{Order, Side};
use kestrel::error::KestrelError;
use kestrel::state::AssetBalance;
use program_test::*;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use solana_program_test::BanksClientError;
use solana_sdk::account::Account;
use solana_sdk::instruction::{Instruction, InstructionError};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use solana_sdk::transaction::Transaction;
use std::time::Duration;

const USERS: usize = 4;
/// Minted into each wallet before the run; the first steps deposit part of it.
const WALLET_BASE: u64 = 400_000;
const WALLET_QUOTE: u64 = 1_000_000;
const OPENING_DEPOSIT_BASE: u64 = 30_000;
const OPENING_DEPOSIT_QUOTE: u64 = 60_000;
/// SPL Token's `TokenError::InsufficientFunds`, surfaced through the deposit CPI.
const TOKEN_INSUFFICIENT_FUNDS: u32 = 1;

// ---------------------------------------------------------------- operations and strategies

/// One side of a fill: a new order with these terms, or (when `recorded` is set and the user
/// has recorded orders) the user's recorded order at `recorded % count`. A new maker is priced
/// at `price`; a new taker `price - MID` ticks past the maker's limit (mostly crossing it).
#[derive(Clone, Debug)]
struct Pick {
    price: u64,
    size: u64,
    recorded: Option<usize>,
}

/// Price level around which every order is priced.
const MID: u64 = 100;

#[derive(Clone, Debug)]
struct SettleOp {
    maker_user: usize,
    /// Taker is user `(maker_user + taker_offset) % USERS`; 0 is a self-trade.
    taker_offset: usize,
    maker: Pick,
    taker: Pick,
    /// Side of a new maker order.
    maker_side: Side,
    /// A new taker order on the maker's side instead of the opposite one.
    taker_same_side: bool,
    /// Where the fill price falls between the sell and buy limits.
    price_sel: u64,
    /// Trade one tick through the buyer's limit.
    through: bool,
    /// Fill size: `1 + size_sel % remaining` of the smaller remaining size...
    size_sel: u64,
    /// ...or one lot more than that remaining size.
    overfill: bool,
}

#[derive(Clone, Debug)]
enum Op {
    Deposit {
        user: usize,
        asset: u8,
        amount: u64,
    },
    Settle(SettleOp),
    Withdraw {
        user: usize,
        asset: u8,
        amount: u64,
    },
    RequestWithdrawal {
        user: usize,
        asset: u8,
        amount: u64,
    },
    /// Warps `warp` slots, then executes for one of the pending withdrawals (`pending % count`)
    /// if any and `pending` is set, else for `user`/`asset`.
    ExecuteWithdrawal {
        user: usize,
        asset: u8,
        pending: Option<usize>,
        warp: u64,
    },
    CancelUpTo {
        user: usize,
        raise: u64,
    },
}

fn user() -> impl Strategy<Value = usize> {
    0..USERS
}

fn asset() -> impl Strategy<Value = u8> {
    prop_oneof![Just(BASE), Just(QUOTE)]
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

/// Mostly plausible amounts, sometimes zero, sometimes far more than anyone holds.
fn amount() -> impl Strategy<Value = u64> {
    prop_oneof![
        1 => Just(0u64),
        12 => 1u64..=80_000,
        1 => 1_000_000u64..=10_000_000,
    ]
}

fn pick() -> impl Strategy<Value = Pick> {
    (
        MID - 2..=MID + 8,
        1u64..=40,
        prop::option::weighted(0.5, any::<usize>()),
    )
        .prop_map(|(price, size, recorded)| Pick {
            price,
            size,
            recorded,
        })
}

fn settle_op() -> impl Strategy<Value = SettleOp> {
    (
        (user(), prop_oneof![1 => Just(0usize), 12 => 1..USERS]),
        (pick(), pick(), side(), prop::bool::weighted(0.05)),
        (
            any::<u64>(),
            prop::bool::weighted(0.05),
            any::<u64>(),
            prop::bool::weighted(0.05),
        ),
    )
        .prop_map(
            |(
                (maker_user, taker_offset),
                (maker, taker, maker_side, taker_same_side),
                (price_sel, through, size_sel, overfill),
            )| SettleOp {
                maker_user,
                taker_offset,
                maker,
                taker,
                maker_side,
                taker_same_side,
                price_sel,
                through,
                size_sel,
                overfill,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (user(), asset(), amount())
            .prop_map(|(user, asset, amount)| Op::Deposit { user, asset, amount }),
        8 => settle_op().prop_map(Op::Settle),
        2 => (user(), asset(), amount())
            .prop_map(|(user, asset, amount)| Op::Withdraw { user, asset, amount }),
        2 => (user(), asset(), amount())
            .prop_map(|(user, asset, amount)| Op::RequestWithdrawal { user, asset, amount }),
        3 => (
            user(),
            asset(),
            prop::option::weighted(0.8, any::<usize>()),
            prop_oneof![1 => Just(0u64), 1 => 1u64..=60, 2 => 90u64..=150],
        )
            .prop_map(|(user, asset, pending, warp)| Op::ExecuteWithdrawal {
                user,
                asset,
                pending,
                warp,
            }),
        1 => (user(), 0u64..=3).prop_map(|(user, raise)| Op::CancelUpTo { user, raise }),
    ]
}

// ---------------------------------------------------------------- the model

/// Everything the program keeps about one user's holdings of one asset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Bal {
    available: u64,
    pending: u64,
    ready_slot: u64,
    deposited: u64,
    withdrawn: u64,
    settled_in: u64,
    settled_out: u64,
    fees_paid: u64,
}

impl From<&AssetBalance> for Bal {
    fn from(b: &AssetBalance) -> Self {
        Bal {
            available: b.available,
            pending: b.pending_withdrawal,
            ready_slot: b.withdrawal_ready_slot,
            deposited: b.deposited,
            withdrawn: b.withdrawn,
            settled_in: b.settled_in,
            settled_out: b.settled_out,
            fees_paid: b.fees_paid,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct ModelUser {
    /// Token account balances outside the exchange, per asset.
    wallet: [u64; 2],
    bal: [Bal; 2],
    nonce_floor: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct ModelOrder {
    user: usize,
    order: Order,
    filled: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Model {
    slot: u64,
    vault: [u64; 2],
    users: Vec<ModelUser>,
    /// Every order recorded on-chain, in recording order.
    orders: Vec<ModelOrder>,
    fees_accrued: u64,
    volume_lots: u64,
    last_fill_id: u64,
    last_batch_id: u64,
}

/// The predicted failure of a step.
#[derive(Clone, Copy, Debug)]
enum Failure {
    Kestrel(KestrelError),
    Token(u32),
}

/// A fill's order as the model sees it: the terms plus where they are recorded.
#[derive(Clone, Copy, Debug)]
struct FillOrder {
    user: usize,
    order: Order,
    /// Index in `Model::orders` when already recorded.
    recorded: Option<usize>,
}

/// The market and exchange parameters the model needs.
struct Params {
    maker_bps: u16,
    taker_bps: u16,
    base_lot_size: u64,
    tick_size: u64,
    withdrawal_delay: u64,
}

fn fee(notional: u64, bps: u16) -> u64 {
    (u128::from(notional) * u128::from(bps)).div_ceil(10_000) as u64
}

impl Model {
    fn bal(&mut self, user: usize, asset: u8) -> &mut Bal {
        &mut self.users[user].bal[usize::from(asset)]
    }

    fn deposit(&self, user: usize, asset: u8, amount: u64) -> Result<Model, Failure> {
        let a = usize::from(asset);
        if amount == 0 {
            return Err(Failure::Kestrel(KestrelError::ZeroAmount));
        }
        if amount > self.users[user].wallet[a] {
            return Err(Failure::Token(TOKEN_INSUFFICIENT_FUNDS));
        }
        let mut m = self.clone();
        m.users[user].wallet[a] -= amount;
        m.vault[a] += amount;
        let b = m.bal(user, asset);
        b.available += amount;
        b.deposited += amount;
        Ok(m)
    }

    fn withdraw(&self, user: usize, asset: u8, amount: u64) -> Result<Model, Failure> {
        let a = usize::from(asset);
        if amount == 0 {
            return Err(Failure::Kestrel(KestrelError::ZeroAmount));
        }
        if amount > self.users[user].bal[a].available {
            return Err(Failure::Kestrel(KestrelError::InsufficientBalance));
        }
        let mut m = self.clone();
        m.users[user].wallet[a] += amount;
        m.vault[a] -= amount;
        let b = m.bal(user, asset);
        b.available -= amount;
        b.withdrawn += amount;
        Ok(m)
    }

    fn request_withdrawal(
        &self,
        user: usize,
        asset: u8,
        amount: u64,
        delay: u64,
    ) -> Result<Model, Failure> {
        if amount == 0 {
            return Err(Failure::Kestrel(KestrelError::ZeroAmount));
        }
        if amount > self.users[user].bal[usize::from(asset)].available {
            return Err(Failure::Kestrel(KestrelError::InsufficientBalance));
        }
        let mut m = self.clone();
        let ready = m.slot + delay;
        let b = m.bal(user, asset);
        b.available -= amount;
        b.pending += amount;
        b.ready_slot = ready;
        Ok(m)
    }

    fn execute_withdrawal(&self, user: usize, asset: u8) -> Result<Model, Failure> {
        let a = usize::from(asset);
        let b = self.users[user].bal[a];
        if b.pending == 0 {
            return Err(Failure::Kestrel(KestrelError::NoPendingWithdrawal));
        }
        if self.slot < b.ready_slot {
            return Err(Failure::Kestrel(KestrelError::WithdrawalNotReady));
        }
        let mut m = self.clone();
        m.users[user].wallet[a] += b.pending;
        m.vault[a] -= b.pending;
        let b = m.bal(user, asset);
        b.withdrawn += b.pending;
        b.pending = 0;
        b.ready_slot = 0;
        Ok(m)
    }

    /// The `sel`-th (user, asset) with a pending withdrawal, if any.
    fn pending_withdrawal(&self, sel: Option<usize>) -> Option<(usize, u8)> {
        let pending: Vec<(usize, u8)> = (0..USERS)
            .flat_map(|u| [(u, BASE), (u, QUOTE)])
            .filter(|(u, a)| self.users[*u].bal[usize::from(*a)].pending > 0)
            .collect();
        let sel = sel?;
        (!pending.is_empty()).then(|| pending[sel % pending.len()])
    }

    /// Lots still open on a fill side.
    fn remaining(&self, s: &FillOrder) -> u64 {
        let filled = s.recorded.map_or(0, |i| self.orders[i].filled);
        s.order.size_lots - filled
    }

    fn cancel_up_to(&self, user: usize, floor: u64) -> Result<Model, Failure> {
        if floor <= self.users[user].nonce_floor {
            return Err(Failure::Kestrel(KestrelError::CancelFloorNotIncreasing));
        }
        let mut m = self.clone();
        m.users[user].nonce_floor = floor;
        Ok(m)
    }

    /// One fill between `maker` and `taker`, checked in the program's order.
    fn settle(
        &self,
        maker: FillOrder,
        taker: FillOrder,
        price: u64,
        size: u64,
        ids: (u64, u64),
        f: &Params,
    ) -> Result<Model, Failure> {
        let fail = |e| Err(Failure::Kestrel(e));
        if maker.recorded.is_some() && maker.recorded == taker.recorded {
            return fail(KestrelError::SettlementDuplicateAccount);
        }
        if maker.order.side == taker.order.side {
            return fail(KestrelError::SettlementSameSide);
        }
        if maker.user == taker.user {
            return fail(KestrelError::SettlementSelfTrade);
        }
        for s in [&maker, &taker] {
            if s.order.nonce < self.users[s.user].nonce_floor {
                return fail(KestrelError::InvalidOrderCancelled);
            }
            let within = match s.order.side {
                Side::Buy => price <= s.order.price_ticks,
                Side::Sell => price >= s.order.price_ticks,
            };
            if !within {
                return fail(KestrelError::SettlementPriceThroughLimit);
            }
            if size > self.remaining(s) {
                return fail(KestrelError::SettlementOverfill);
            }
        }
        let base_atoms = size * f.base_lot_size;
        let notional = price * f.tick_size * size;
        let (maker_fee, taker_fee) = (fee(notional, f.maker_bps), fee(notional, f.taker_bps));
        let (buyer, buyer_fee, seller, seller_fee) = match maker.order.side {
            Side::Buy => (maker.user, maker_fee, taker.user, taker_fee),
            Side::Sell => (taker.user, taker_fee, maker.user, maker_fee),
        };
        if self.users[buyer].bal[usize::from(QUOTE)].available < notional + buyer_fee
            || self.users[seller].bal[usize::from(BASE)].available < base_atoms
        {
            return fail(KestrelError::SettlementInsufficientBalance);
        }

        let mut m = self.clone();
        let q = m.bal(buyer, QUOTE);
        q.available -= notional + buyer_fee;
        q.settled_out += notional;
        q.fees_paid += buyer_fee;
        let b = m.bal(buyer, BASE);
        b.available += base_atoms;
        b.settled_in += base_atoms;
        let b = m.bal(seller, BASE);
        b.available -= base_atoms;
        b.settled_out += base_atoms;
        let q = m.bal(seller, QUOTE);
        q.available += notional - seller_fee;
        q.settled_in += notional;
        q.fees_paid += seller_fee;
        m.fees_accrued += maker_fee + taker_fee;
        m.volume_lots += size;
        (m.last_batch_id, m.last_fill_id) = ids;
        for s in [maker, taker] {
            match s.recorded {
                Some(i) => m.orders[i].filled += size,
                None => m.orders.push(ModelOrder {
                    user: s.user,
                    order: s.order,
                    filled: size,
                }),
            }
        }
        Ok(m)
    }
}

// ---------------------------------------------------------------- running a sequence

struct Run {
    t: TestExchange,
    users: Vec<TestUser>,
    model: Model,
    params: Params,
}

/// Raw account state, to show that a failed transaction changed nothing.
type Snapshot = Vec<(Pubkey, Option<Account>)>;

impl Run {
    async fn new() -> Run {
        let mut t = TestExchange::new().await;
        let mut users = Vec::new();
        let mut model = Model::default();
        for _ in 0..USERS {
            users.push(t.wallet(WALLET_BASE, WALLET_QUOTE).await);
            model.users.push(ModelUser {
                wallet: [WALLET_BASE, WALLET_QUOTE],
                ..ModelUser::default()
            });
        }
        model.slot = t.slot().await;
        let params = Params {
            maker_bps: t.cfg.maker_fee_bps,
            taker_bps: t.cfg.taker_fee_bps,
            base_lot_size: t.cfg.base_lot_size,
            tick_size: t.cfg.tick_size,
            withdrawal_delay: t.cfg.withdrawal_delay_slots,
        };
        let mut run = Run {
            t,
            users,
            model,
            params,
        };
        for user in 0..USERS {
            for (asset, amount) in [(BASE, OPENING_DEPOSIT_BASE), (QUOTE, OPENING_DEPOSIT_QUOTE)] {
                run.step(&Op::Deposit {
                    user,
                    asset,
                    amount,
                })
                .await;
            }
        }
        run
    }

    /// Every account a step could touch (the payer, who pays fees even for failures, aside).
    async fn snapshot(&mut self, extra: &[Pubkey]) -> Snapshot {
        let t = &self.t;
        let mut keys = vec![
            t.exchange,
            t.market,
            t.base_vault,
            t.quote_vault,
            t.operator.pubkey(),
        ];
        for u in &self.users {
            keys.extend([u.user, u.base_ata, u.quote_ata, u.key()]);
        }
        keys.extend(
            self.model
                .orders
                .iter()
                .map(|o| order_address(&t.exchange, &o.order.owner, o.order.nonce)),
        );
        keys.extend_from_slice(extra);
        let mut snapshot = Vec::with_capacity(keys.len());
        for key in keys {
            snapshot.push((key, self.t.account(&key).await));
        }
        snapshot
    }

    /// The chain's state in the model's terms.
    async fn observe(&mut self) -> Model {
        let mut seen = Model {
            slot: self.t.slot().await,
            ..Model::default()
        };
        for (a, vault) in [self.t.base_vault, self.t.quote_vault].iter().enumerate() {
            seen.vault[a] = self.t.token_balance(vault).await;
        }
        for u in &self.users {
            let state = self.t.user_state(u).await;
            seen.users.push(ModelUser {
                wallet: [
                    self.t.token_balance(&u.base_ata).await,
                    self.t.token_balance(&u.quote_ata).await,
                ],
                bal: [
                    Bal::from(&state.balances[usize::from(BASE)]),
                    Bal::from(&state.balances[usize::from(QUOTE)]),
                ],
                nonce_floor: state.nonce_floor,
            });
        }
        for o in &self.model.orders {
            let record = self
                .t
                .order_record(&o.order.owner, o.order.nonce)
                .await
                .expect("a recorded order has its record");
            assert!(record.matches(&o.order), "record terms of {:?}", o.order);
            seen.orders.push(ModelOrder {
                filled: record.filled_lots,
                ..o.clone()
            });
        }
        let market = self.t.market_state().await;
        seen.fees_accrued = market.fees_accrued;
        seen.volume_lots = market.volume_lots;
        seen.last_fill_id = market.last_fill_id;
        seen.last_batch_id = market.last_batch_id;
        seen
    }

    /// The fill side of `pick` for `user`: a recorded order of that user (on `side` if given),
    /// or a new one on `new_side` at `price`.
    fn resolve(
        &mut self,
        user: usize,
        pick: &Pick,
        side: Option<Side>,
        new_side: Side,
        price: u64,
    ) -> FillOrder {
        let recorded: Vec<usize> = (0..self.model.orders.len())
            .filter(|i| {
                let o = &self.model.orders[*i];
                o.user == user && side.is_none_or(|s| o.order.side == s)
            })
            .collect();
        if let (Some(sel), false) = (pick.recorded, recorded.is_empty()) {
            let i = recorded[sel % recorded.len()];
            return FillOrder {
                user,
                order: self.model.orders[i].order,
                recorded: Some(i),
            };
        }
        let order = self
            .t
            .order(&mut self.users[user], new_side, price, pick.size);
        FillOrder {
            user,
            order,
            recorded: None,
        }
    }

    /// Builds the step's transaction and predicts its outcome; warps the clock first for an
    /// `ExecuteWithdrawal`.
    async fn prepare(&mut self, op: &Op) -> Prepared {
        let m = &self.model;
        match *op {
            Op::Deposit {
                user,
                asset,
                amount,
            } => self.by_owner(
                user,
                self.t.ix_deposit(&self.users[user], asset, amount),
                m.deposit(user, asset, amount),
            ),
            Op::Withdraw {
                user,
                asset,
                amount,
            } => {
                let mut p = self.by_owner(
                    user,
                    self.t.ix_withdraw(&self.users[user], asset, amount),
                    m.withdraw(user, asset, amount),
                );
                p.signers.push(self.t.operator.insecure_clone());
                p
            }
            Op::RequestWithdrawal {
                user,
                asset,
                amount,
            } => self.by_owner(
                user,
                self.t
                    .ix_request_withdrawal(&self.users[user], asset, amount),
                m.request_withdrawal(user, asset, amount, self.params.withdrawal_delay),
            ),
            Op::ExecuteWithdrawal {
                user,
                asset,
                pending,
                warp,
            } => {
                let (user, asset) = m.pending_withdrawal(pending).unwrap_or((user, asset));
                if warp > 0 {
                    self.t.warp_slots(warp).await;
                    self.model.slot += warp;
                }
                self.by_owner(
                    user,
                    self.t.ix_execute_withdrawal(&self.users[user], asset),
                    self.model.execute_withdrawal(user, asset),
                )
            }
            Op::CancelUpTo { user, raise } => {
                let floor = m.users[user].nonce_floor + raise;
                self.by_owner(
                    user,
                    self.t.ix_cancel_up_to(&self.users[user], floor),
                    m.cancel_up_to(user, floor),
                )
            }
            Op::Settle(ref settle) => self.prepare_settle(settle),
        }
    }

    fn by_owner(&self, user: usize, ix: Instruction, predicted: Predicted) -> Prepared {
        Prepared {
            ixs: vec![ix],
            signers: vec![self.users[user].wallet.insecure_clone()],
            predicted,
            untouched: Vec::new(),
        }
    }

    fn prepare_settle(&mut self, op: &SettleOp) -> Prepared {
        let maker = self.resolve(
            op.maker_user,
            &op.maker,
            None,
            op.maker_side,
            op.maker.price,
        );
        let taker_user = (op.maker_user + op.taker_offset) % USERS;
        let taker_side = if op.taker_same_side {
            maker.order.side
        } else {
            maker.order.side.opposite()
        };
        let past = op.taker.price as i64 - MID as i64;
        let limit = maker.order.price_ticks as i64;
        let taker_price = match taker_side {
            Side::Buy => limit + past,
            Side::Sell => limit - past,
        } as u64;
        let taker = self.resolve(
            taker_user,
            &op.taker,
            Some(taker_side),
            taker_side,
            taker_price,
        );

        let (sell, buy) = match maker.order.side {
            Side::Sell => (maker.order.price_ticks, taker.order.price_ticks),
            Side::Buy => (taker.order.price_ticks, maker.order.price_ticks),
        };
        let price = if op.through {
            buy + 1
        } else if sell <= buy {
            sell + op.price_sel % (buy - sell + 1)
        } else {
            sell
        };
        let remaining = self
            .model
            .remaining(&maker)
            .min(self.model.remaining(&taker));
        let size = if op.overfill || remaining == 0 {
            remaining + 1
        } else {
            1 + op.size_sel % remaining
        };

        let batch_order = |s: &FillOrder| match s.recorded {
            Some(_) => BatchOrder::recorded(&s.order),
            None => BatchOrder::new(&s.order, &self.users[s.user].wallet),
        };
        let ids = (self.t.batch_id(), self.t.fill_id());
        let batch = Batch {
            batch_id: ids.0,
            orders: vec![batch_order(&maker), batch_order(&taker)],
            fills: vec![fill(ids.1, 0, 1, price, size)],
        };
        Prepared {
            ixs: self.t.settle_instructions(&batch),
            signers: vec![self.t.operator.insecure_clone()],
            predicted: self
                .model
                .settle(maker, taker, price, size, ids, &self.params),
            untouched: [maker, taker]
                .iter()
                .filter(|s| s.recorded.is_none())
                .map(|s| order_address(&self.t.exchange, &s.order.owner, s.order.nonce))
                .collect(),
        }
    }

    async fn step(&mut self, op: &Op) {
        let prepared = self.prepare(op).await;
        let before = match prepared.predicted {
            Ok(_) => None,
            Err(_) => Some(self.snapshot(&prepared.untouched).await),
        };
        let signers: Vec<&Keypair> = prepared.signers.iter().collect();
        let result = send_now(&mut self.t, &prepared.ixs, &signers).await;
        match prepared.predicted {
            Ok(next) => {
                if let Err(e) = result {
                    panic!("{op:?} should succeed, failed with {e:?}");
                }
                self.model = next;
            }
            Err(failure) => {
                assert_failure(result, failure, op);
                let after = Some(self.snapshot(&prepared.untouched).await);
                assert!(before == after, "{op:?} failed but changed account state");
            }
        }
        let seen = self.observe().await;
        assert_eq!(
            seen, self.model,
            "chain differs from the model after {op:?}"
        );
        self.t.assert_conservation().await;
    }
}

type Predicted = Result<Model, Failure>;

/// A step ready to send.
struct Prepared {
    ixs: Vec<Instruction>,
    /// Signers besides the fee payer.
    signers: Vec<Keypair>,
    predicted: Predicted,
    /// Accounts that exist only if the step succeeds (new order records).
    untouched: Vec<Pubkey>,
}

/// Processes a transaction directly in the bank: the same execution and commit as `t.send`,
/// without the banks server's preflight simulation and confirmation polling (several times
/// faster, which is what lets this file run hundreds of steps).
async fn send_now(
    t: &mut TestExchange,
    ixs: &[Instruction],
    signers: &[&Keypair],
) -> Result<(), BanksClientError> {
    // A fresh blockhash, so that a repeated step is a new transaction, not a duplicate.
    let blockhash = loop {
        let latest = t.ctx.banks_client.get_latest_blockhash().await?;
        if latest != t.ctx.last_blockhash {
            t.ctx.last_blockhash = latest;
            break latest;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let payer = &t.ctx.payer;
    let mut all: Vec<&Keypair> = vec![payer];
    all.extend_from_slice(signers);
    let tx = Transaction::new_signed_with_payer(ixs, Some(&payer.pubkey()), &all, blockhash);
    let outcome = t
        .ctx
        .banks_client
        .process_transaction_with_metadata(tx)
        .await?;
    outcome.result.map_err(BanksClientError::TransactionError)
}

#[track_caller]
fn assert_failure(result: Result<(), BanksClientError>, failure: Failure, op: &Op) {
    match failure {
        Failure::Kestrel(e) => assert_kestrel_error(result, e),
        Failure::Token(code) => assert_eq!(
            instruction_error(result),
            (0, InstructionError::Custom(code)),
            "{op:?}"
        ),
    }
}

async fn run(ops: Vec<Op>) {
    let mut run = Run::new().await;
    for op in &ops {
        run.step(op).await;
    }
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    ProptestConfig {
        cases,
        // Each shrink step replays a whole case (about a second): cap shrinking at ~30 s.
        max_shrink_iters: 32,
        max_shrink_time: 45_000,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// After every step the chain equals the model, a failed step changed nothing, and every
    /// vault holds exactly what the users and fees are owed.
    #[test]
    fn random_operations_keep_every_vault_equal_to_what_it_owes(ops in prop::collection::vec(op(), 30..=40)) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(run(ops));
    }
}
