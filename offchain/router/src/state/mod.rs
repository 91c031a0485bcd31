//! The deterministic heart of the router: given the same commands with the same sequence
//! numbers and timestamps, it emits the same events and reaches the same state. The sequencer
//! calls [`State::apply`] for live commands and for journal replay alike.
//!
//! Per order: risk/ledger hold → match in the market's engine → ledger transfers per fill →
//! release of what the order no longer needs.

mod admission;
mod book;
mod funds;
mod orders;
mod pipeline;
mod snapshot;
mod withdrawals;

pub use pipeline::{Pipeline, PipelineError};
pub use snapshot::{rules_digest, StateSnapshotError};

use crate::ledger::Ledger;
use crate::market::MarketSpec;
use crate::model::{Command, Event, Owner, Seq, Sig, WithdrawalKind};
use crate::reject::Reject;
use anchor_lang::prelude::Pubkey;
use kestrel::encoding::{OrderType, SelfTrade, Side};
use kestrel_matcher as m;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// The ledger owner that collects fees (the all-zero key, which no wallet can sign for). Its
/// balance per quote asset mirrors the markets' on-chain `fees_accrued`.
pub const FEE_ACCOUNT: Owner = [0; 32];

/// Router-wide rules.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The exchange account every signed message must name.
    pub exchange: Pubkey,
    /// Mints by asset index (the on-chain asset table).
    pub assets: Vec<Pubkey>,
    /// Markets.
    pub markets: Vec<MarketSpec>,
    /// Orders expiring later than this many seconds from now are refused.
    pub max_expiry_horizon_secs: u64,
    /// Orders stop matching this many seconds before their signed expiry, so that their fills
    /// can still settle on-chain (the chain refuses fills after expiry).
    pub expiry_margin_secs: u64,
    /// Most open orders per owner.
    pub max_open_orders: u32,
}

/// An order resting in (or passing through) a book.
#[derive(Debug, Clone, Copy)]
struct OpenOrder {
    market: u32,
    owner: Owner,
    side: Side,
    price: u64,
    nonce: u64,
    remaining: u64,
    /// Atoms still frozen for it (quote for buys, base for sells).
    held: u64,
    /// Signed terms a replacement must keep.
    order_type: OrderType,
    self_trade: SelfTrade,
    client_order_id: u64,
}

/// A replacement under way: the order as it was, and the extra atoms held for the new terms,
/// restored if the engine refuses the replacement.
#[derive(Debug, Clone)]
struct Replacing {
    order_id: u64,
    before: OpenOrder,
    extra_hold: u64,
    event: Event,
}

#[derive(Debug, Default, Clone)]
struct OwnerState {
    floor: u64,
    used_nonces: HashSet<u64>,
    used_withdrawal_nonces: HashSet<u64>,
    /// Open orders by nonce → order id, ordered for deterministic cancel-all.
    open: BTreeMap<u64, u64>,
}

/// A withdrawal whose funds the ledger holds (Pending or Broadcasting).
#[derive(Debug, Clone, Copy)]
struct PendingWithdrawal {
    owner: Owner,
    asset: u8,
    /// Atoms held (frozen) for it.
    amount: u64,
    kind: WithdrawalKind,
    /// The paying transaction's signature: the co-signed one once Broadcasting, the
    /// `request_withdrawal` for the exit hatch.
    tx: Option<Sig>,
    /// Last block height at which the co-signed transaction can land (Broadcasting).
    last_valid_block_height: Option<u64>,
}

/// A market's engine, shared with the market's engine thread ([`Pipeline`]). The sequencer
/// and that thread never use it at the same time: a batch is handed to the thread and its
/// result awaited before the sequencer touches the engine again, so the lock is only the
/// hand-over, never a wait.
#[derive(Clone)]
struct EngineCell(Arc<Mutex<m::Engine>>);

impl EngineCell {
    fn new(engine: m::Engine) -> Self {
        EngineCell(Arc::new(Mutex::new(engine)))
    }

    /// The engine. A poisoned lock is taken over: an engine thread that panicked mid-batch
    /// stops the sequencer before this state is used again, and recovery rebuilds the state
    /// from the journal.
    fn lock(&self) -> MutexGuard<'_, m::Engine> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The whole sequenced state: books, ledger, nonces, withdrawals.
pub struct State {
    rules: Rules,
    engines: BTreeMap<u32, (MarketSpec, EngineCell)>,
    ledger: Ledger,
    orders: HashMap<u64, OpenOrder>,
    owners: HashMap<Owner, OwnerState>,
    deposits: HashSet<([u8; 64], u16)>,
    withdrawals: BTreeMap<Seq, PendingWithdrawal>,
    /// On-chain withdrawal instructions already applied, by (signature, instruction index).
    chain_withdrawals: HashSet<(Sig, u16)>,
    last_seq: Seq,
    /// The acceptance of the order being placed, emitted when its engine accepts it.
    pending_accept: Option<Event>,
    /// The replacement being applied.
    replacing: Option<Replacing>,
}

/// The state could not be built from its rules.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A market's parameters are invalid for the engine.
    #[error("market {0}: {1}")]
    Market(u32, m::ConfigError),
    /// A market names an asset missing from the asset table.
    #[error("market {0} names an unknown asset")]
    UnknownAsset(u32),
}

impl State {
    /// Empty books and ledger for `rules`.
    pub fn new(rules: Rules) -> Result<State, StateError> {
        let mut engines = BTreeMap::new();
        for spec in &rules.markets {
            let assets = rules.assets.len();
            if usize::from(spec.base_asset) >= assets || usize::from(spec.quote_asset) >= assets {
                return Err(StateError::UnknownAsset(spec.index));
            }
            let engine = m::Engine::new(spec.engine_config())
                .map_err(|e| StateError::Market(spec.index, e))?;
            engines.insert(spec.index, (*spec, EngineCell::new(engine)));
        }
        Ok(State {
            rules,
            engines,
            ledger: Ledger::default(),
            orders: HashMap::new(),
            owners: HashMap::new(),
            deposits: HashSet::new(),
            withdrawals: BTreeMap::new(),
            chain_withdrawals: HashSet::new(),
            last_seq: 0,
            pending_accept: None,
            replacing: None,
        })
    }

    /// The rules this state runs under.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Sequence number of the last applied command.
    pub fn last_seq(&self) -> Seq {
        self.last_seq
    }

    /// A market's engine (for book snapshots).
    pub fn engine(&self, market: u32) -> Option<MutexGuard<'_, m::Engine>> {
        self.engines.get(&market).map(|(_, e)| e.lock())
    }

    /// A market's spec.
    pub fn market(&self, market: u32) -> Option<&MarketSpec> {
        self.engines.get(&market).map(|(s, _)| s)
    }

    /// Number of open orders of `owner`.
    pub fn open_orders(&self, owner: &Owner) -> usize {
        self.owners.get(owner).map_or(0, |o| o.open.len())
    }

    /// A digest of everything replay must reproduce: sequence, books, balances, open orders.
    pub fn state_hash(&self) -> u64 {
        let mut h = Fnv::default();
        h.write_u64(self.last_seq);
        for (index, (_, engine)) in &self.engines {
            h.write_u64(u64::from(*index));
            h.write_u64(engine.lock().state_hash());
        }
        let mut balances: Vec<_> = self.ledger.iter().collect();
        balances.sort_by_key(|(k, _)| **k);
        for ((owner, asset), b) in balances {
            h.write(owner);
            h.write_u64(u64::from(*asset));
            h.write_u64(b.available);
            h.write_u64(b.frozen);
            h.write_u64(b.version);
        }
        let mut orders: Vec<_> = self.orders.iter().collect();
        orders.sort_by_key(|(id, _)| **id);
        for (id, o) in orders {
            h.write_u64(*id);
            h.write_u64(o.remaining);
            h.write_u64(o.held);
        }
        for (id, w) in &self.withdrawals {
            h.write_u64(*id);
            h.write_u64(w.amount);
            h.write(w.tx.as_ref().map_or(&[][..], |tx| &tx[..]));
            h.write_u64(w.last_valid_block_height.unwrap_or(0));
        }
        h.finish()
    }

    /// Applies command `seq`, stamped `now_ms` (unix milliseconds), returning its events.
    /// A refused command yields one [`Event::Rejected`] and changes nothing else, except that
    /// a signed order consumes its nonce once it reaches the sequencer, accepted or not, so
    /// that a refused order can never be replayed later.
    pub fn apply(&mut self, seq: Seq, now_ms: u64, command: &Command) -> Vec<Event> {
        self.last_seq = seq;
        let mut out = Vec::new();
        let result = match command {
            Command::Place { order, signature } => {
                self.place(seq, now_ms, order, signature, &mut out)
            }
            Command::Cancel(c) => self.check_cancel(c, now_ms).and_then(|()| {
                let owner = c.owner.to_bytes();
                self.cancel_one(now_ms, &owner, c.market_index, c.order_nonce, &mut out)
            }),
            Command::Replace {
                cancel,
                order,
                signature,
            } => self.replace(now_ms, (cancel, order, signature), &mut out),
            Command::CancelAll(c) => self.cancel_all(now_ms, c, &mut out),
            Command::Withdraw(w) => self.withdraw(seq, now_ms, w, &mut out),
            Command::DepositObserved {
                owner,
                asset,
                amount,
                tx,
                ix_index,
            } => self.deposit(owner, *asset, *amount, tx, *ix_index, &mut out),
            Command::NonceFloorObserved { owner, floor } => {
                self.raise_floor(now_ms, owner, *floor, &mut out);
                Ok(())
            }
            Command::WithdrawalBroadcast {
                id,
                tx,
                last_valid_block_height,
            } => self.broadcast_withdrawal(*id, tx, *last_valid_block_height, &mut out),
            Command::ChainWithdrawal {
                owner,
                asset,
                tx,
                ix_index,
                kind,
            } => {
                self.chain_withdrawal(seq, now_ms, owner, *asset, (tx, *ix_index), *kind, &mut out)
            }
            Command::WithdrawalFinished { id, confirmed } => {
                self.finish_withdrawal(*id, *confirmed, &mut out)
            }
            Command::SettlementUpdate {
                market,
                fill_id,
                status,
            } => {
                out.push(Event::Settlement {
                    market: *market,
                    fill_id: *fill_id,
                    status: *status,
                });
                Ok(())
            }
            Command::Tick => {
                let markets: Vec<u32> = self.engines.keys().copied().collect();
                for market in markets {
                    self.run_engine(market, now_ms, &m::Command::ExpireDue, &mut out);
                }
                Ok(())
            }
        };
        if let Err((owner, reason)) = result {
            out.push(Event::Rejected { owner, reason });
        }
        out
    }

    fn check_exchange(&self, exchange: &Pubkey) -> Result<(), (Owner, Reject)> {
        if *exchange == self.rules.exchange {
            Ok(())
        } else {
            Err(([0; 32], Reject::WrongExchange))
        }
    }

    fn check_signed_expiry(&self, expiry: i64, now_ms: u64) -> Result<(), (Owner, Reject)> {
        if expiry != 0 && i128::from(expiry).saturating_mul(1000) <= i128::from(now_ms) {
            return Err(([0; 32], Reject::Expired));
        }
        Ok(())
    }
}

/// The negative of an amount, as a ledger delta (cannot overflow: |u64| fits in i128).
pub(super) fn neg(amount: u64) -> i128 {
    0i128.saturating_sub(i128::from(amount))
}

/// FNV-1a, for a deterministic state digest independent of the process's hasher seed.
#[derive(Debug)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.write(&v.to_le_bytes());
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
