//! The canonical encoding of a whole [`State`], for router snapshots.
//!
//! Everything is written in a fixed order with sorted keys, so two states that replay alike
//! encode to the same bytes: the encoding doubles as the full-state digest
//! ([`State::snapshot_digest`]). Books go through the matcher's own engine snapshot. The
//! rules are not stored, only their digest: a snapshot taken under other rules is refused.
//! Between two commands the in-flight fields (`pending_accept`, `replacing`) are always empty,
//! so they are not part of it.
//!
//! Layout (all integers little-endian): `rules digest[32] | last_seq u64 | markets u32 ×
//! (index u32 | len u32 | engine snapshot) | balances u32 × (owner[32] | asset u8 | available
//! u64 | frozen u64 | version u64) | orders u32 × (id u64 | market u32 | owner[32] | side u8 |
//! price u64 | nonce u64 | remaining u64 | held u64 | order type u8 | self-trade u8 | client
//! order id u64) | owners u32 × (owner[32] | floor u64 | nonces u32 × u64 | withdrawal nonces
//! u32 × u64 | open u32 × (nonce u64 | order id u64)) | deposits u32 × (tx[64] | ix u16) |
//! withdrawals u32 × (seq u64 | owner[32] | asset u8 | amount u64 | kind u8 | tx flag u8 [tx[64]]
//! | height flag u8 [last valid block height u64]) | chain withdrawals u32 × (tx[64] | ix u16)`.

use super::{OpenOrder, OwnerState, PendingWithdrawal, Rules, State, StateError};
use crate::ledger::Balance;
use crate::model::WithdrawalKind;
use kestrel::encoding::{OrderType, SelfTrade, Side};
use kestrel_matcher as m;
use sha2::{Digest, Sha256};

/// A snapshot body that cannot become a [`State`].
#[derive(Debug, thiserror::Error)]
pub enum StateSnapshotError {
    /// The bytes end early, run long or hold an impossible value.
    #[error("snapshot body is malformed")]
    Malformed,
    /// The snapshot was taken under different rules (markets, assets, limits).
    #[error("snapshot was taken under different rules")]
    RulesMismatch,
    /// The rules themselves are invalid.
    #[error(transparent)]
    Rules(#[from] StateError),
    /// A market's engine snapshot does not load.
    #[error("market {0}: {1}")]
    Engine(u32, m::SnapshotError),
    /// Keys out of canonical order, or an entry naming something that does not exist.
    #[error("snapshot breaks a state invariant: {0}")]
    Invariant(&'static str),
}

/// SHA-256 of the parts of `rules` that decide how commands apply.
pub fn rules_digest(rules: &Rules) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(rules.exchange.to_bytes());
    h.update((rules.assets.len() as u64).to_le_bytes());
    for a in &rules.assets {
        h.update(a.to_bytes());
    }
    h.update((rules.markets.len() as u64).to_le_bytes());
    for s in &rules.markets {
        h.update(s.index.to_le_bytes());
        h.update([s.base_asset, s.quote_asset]);
        for v in [
            s.base_lot_size,
            s.tick_size,
            s.min_size_lots,
            s.max_size_lots,
            s.min_price_ticks,
            s.max_price_ticks,
        ] {
            h.update(v.to_le_bytes());
        }
        h.update(s.maker_fee_bps.to_le_bytes());
        h.update(s.taker_fee_bps.to_le_bytes());
        h.update(s.max_orders.to_le_bytes());
    }
    h.update(rules.max_expiry_horizon_secs.to_le_bytes());
    h.update(rules.expiry_margin_secs.to_le_bytes());
    h.update(rules.max_open_orders.to_le_bytes());
    h.finalize().into()
}

struct W<'a>(&'a mut Vec<u8>);

impl W<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.0.extend_from_slice(v);
    }
    /// A count; collections of the state never approach u32::MAX entries.
    fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
}

struct R<'a>(&'a [u8]);

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StateSnapshotError> {
        if self.0.len() < n {
            return Err(StateSnapshotError::Malformed);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], StateSnapshotError> {
        self.take(N)?
            .try_into()
            .map_err(|_| StateSnapshotError::Malformed)
    }
    fn u8(&mut self) -> Result<u8, StateSnapshotError> {
        Ok(u8::from_le_bytes(self.array()?))
    }
    fn u16(&mut self) -> Result<u16, StateSnapshotError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, StateSnapshotError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, StateSnapshotError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// A count, bounded by the bytes left (each entry takes at least `min_entry` bytes), so
    /// a damaged count cannot make decoding reserve absurd memory.
    fn len(&mut self, min_entry: usize) -> Result<usize, StateSnapshotError> {
        let n = usize::try_from(self.u32()?).map_err(|_| StateSnapshotError::Malformed)?;
        if n.saturating_mul(min_entry) > self.0.len() {
            return Err(StateSnapshotError::Malformed);
        }
        Ok(n)
    }
}

/// Fails unless `keys` is strictly increasing (canonical order, no duplicates).
fn ascending<K: Ord>(
    prev: &mut Option<K>,
    key: K,
    what: &'static str,
) -> Result<(), StateSnapshotError> {
    if prev.as_ref().is_some_and(|p| *p >= key) {
        return Err(StateSnapshotError::Invariant(what));
    }
    *prev = Some(key);
    Ok(())
}

impl State {
    /// Appends the canonical encoding of the whole state to `out`.
    pub fn encode_snapshot(&self, out: &mut Vec<u8>) {
        let mut w = W(out);
        w.bytes(&rules_digest(&self.rules));
        w.u64(self.last_seq);
        w.len(self.engines.len());
        let mut engine_bytes = Vec::new();
        for (index, (_, engine)) in &self.engines {
            engine_bytes.clear();
            engine.lock().encode_snapshot(&mut engine_bytes);
            w.u32(*index);
            w.len(engine_bytes.len());
            w.bytes(&engine_bytes);
        }
        let mut balances: Vec<_> = self.ledger.iter().collect();
        balances.sort_unstable_by_key(|(k, _)| **k);
        w.len(balances.len());
        for ((owner, asset), b) in balances {
            w.bytes(owner);
            w.u8(*asset);
            w.u64(b.available);
            w.u64(b.frozen);
            w.u64(b.version);
        }
        let mut orders: Vec<_> = self.orders.iter().collect();
        orders.sort_unstable_by_key(|(id, _)| **id);
        w.len(orders.len());
        for (id, o) in orders {
            w.u64(*id);
            w.u32(o.market);
            w.bytes(&o.owner);
            w.u8(o.side as u8);
            w.u64(o.price);
            w.u64(o.nonce);
            w.u64(o.remaining);
            w.u64(o.held);
            w.u8(o.order_type as u8);
            w.u8(o.self_trade as u8);
            w.u64(o.client_order_id);
        }
        let mut owners: Vec<_> = self.owners.iter().collect();
        owners.sort_unstable_by_key(|(k, _)| **k);
        w.len(owners.len());
        for (owner, s) in owners {
            w.bytes(owner);
            w.u64(s.floor);
            for set in [&s.used_nonces, &s.used_withdrawal_nonces] {
                let mut nonces: Vec<u64> = set.iter().copied().collect();
                nonces.sort_unstable();
                w.len(nonces.len());
                for n in nonces {
                    w.u64(n);
                }
            }
            w.len(s.open.len());
            for (nonce, id) in &s.open {
                w.u64(*nonce);
                w.u64(*id);
            }
        }
        let mut deposits: Vec<_> = self.deposits.iter().collect();
        deposits.sort_unstable();
        w.len(deposits.len());
        for (tx, ix) in deposits {
            w.bytes(tx);
            w.u16(*ix);
        }
        w.len(self.withdrawals.len());
        for (seq, p) in &self.withdrawals {
            w.u64(*seq);
            w.bytes(&p.owner);
            w.u8(p.asset);
            w.u64(p.amount);
            w.u8(match p.kind {
                WithdrawalKind::Cosigned => 0,
                WithdrawalKind::ExitHatch => 1,
            });
            match &p.tx {
                Some(tx) => {
                    w.u8(1);
                    w.bytes(tx);
                }
                None => w.u8(0),
            }
            match p.last_valid_block_height {
                Some(height) => {
                    w.u8(1);
                    w.u64(height);
                }
                None => w.u8(0),
            }
        }
        let mut chain_withdrawals: Vec<_> = self.chain_withdrawals.iter().collect();
        chain_withdrawals.sort_unstable();
        w.len(chain_withdrawals.len());
        for (tx, ix) in chain_withdrawals {
            w.bytes(tx);
            w.u16(*ix);
        }
    }

    /// SHA-256 of [`State::encode_snapshot`]: equal digests mean equal states in every part
    /// replay must reproduce, nonces, deposit keys and pending withdrawals included
    /// (allocates the whole encoding; not for the hot path).
    pub fn snapshot_digest(&self) -> [u8; 32] {
        let mut bytes = Vec::new();
        self.encode_snapshot(&mut bytes);
        Sha256::digest(&bytes).into()
    }

    /// Rebuilds the state under `rules` from [`State::encode_snapshot`] output, checking the
    /// rules digest, canonical order and that every reference resolves.
    pub fn decode_snapshot(rules: Rules, bytes: &[u8]) -> Result<State, StateSnapshotError> {
        let mut r = R(bytes);
        if r.array::<32>()? != rules_digest(&rules) {
            return Err(StateSnapshotError::RulesMismatch);
        }
        let mut state = State::new(rules)?;
        state.last_seq = r.u64()?;
        let markets = r.len(8)?;
        if markets != state.engines.len() {
            return Err(StateSnapshotError::Invariant("market count"));
        }
        for _ in 0..markets {
            let index = r.u32()?;
            let len = usize::try_from(r.u32()?).map_err(|_| StateSnapshotError::Malformed)?;
            let engine = m::Engine::decode_snapshot(r.take(len)?)
                .map_err(|e| StateSnapshotError::Engine(index, e))?;
            let slot = state
                .engines
                .get_mut(&index)
                .ok_or(StateSnapshotError::Invariant("unknown market"))?;
            if *engine.config() != slot.0.engine_config() {
                return Err(StateSnapshotError::RulesMismatch);
            }
            *slot.1.lock() = engine;
        }
        let mut prev = None;
        for _ in 0..r.len(57)? {
            let owner: [u8; 32] = r.array()?;
            let asset = r.u8()?;
            ascending(&mut prev, (owner, asset), "balance order")?;
            let balance = Balance {
                available: r.u64()?,
                frozen: r.u64()?,
                version: r.u64()?,
            };
            state.ledger.restore(owner, asset, balance);
        }
        let mut prev = None;
        for _ in 0..r.len(86)? {
            let id = r.u64()?;
            ascending(&mut prev, id, "order id order")?;
            let market = r.u32()?;
            let owner = r.array()?;
            let side = Side::from_u8(r.u8()?).ok_or(StateSnapshotError::Malformed)?;
            let price = r.u64()?;
            let nonce = r.u64()?;
            let remaining = r.u64()?;
            let held = r.u64()?;
            let order_type = OrderType::from_u8(r.u8()?).ok_or(StateSnapshotError::Malformed)?;
            let self_trade = SelfTrade::from_u8(r.u8()?).ok_or(StateSnapshotError::Malformed)?;
            if !state.engines.contains_key(&market) {
                return Err(StateSnapshotError::Invariant("order in unknown market"));
            }
            state.orders.insert(
                id,
                OpenOrder {
                    market,
                    owner,
                    side,
                    price,
                    nonce,
                    remaining,
                    held,
                    order_type,
                    self_trade,
                    client_order_id: r.u64()?,
                },
            );
        }
        let mut prev = None;
        for _ in 0..r.len(52)? {
            let owner: [u8; 32] = r.array()?;
            ascending(&mut prev, owner, "owner order")?;
            let mut s = OwnerState {
                floor: r.u64()?,
                ..OwnerState::default()
            };
            for set in [&mut s.used_nonces, &mut s.used_withdrawal_nonces] {
                let mut prev = None;
                for _ in 0..r.len(8)? {
                    let n = r.u64()?;
                    ascending(&mut prev, n, "nonce order")?;
                    set.insert(n);
                }
            }
            let mut prev = None;
            for _ in 0..r.len(16)? {
                let nonce = r.u64()?;
                ascending(&mut prev, nonce, "open order nonce order")?;
                let id = r.u64()?;
                if state.orders.get(&id).is_none_or(|o| o.owner != owner) {
                    return Err(StateSnapshotError::Invariant("open order unknown"));
                }
                s.open.insert(nonce, id);
            }
            state.owners.insert(owner, s);
        }
        let mut prev = None;
        for _ in 0..r.len(66)? {
            let key = (r.array()?, r.u16()?);
            ascending(&mut prev, key, "deposit order")?;
            state.deposits.insert(key);
        }
        let mut prev = None;
        for _ in 0..r.len(52)? {
            let seq = r.u64()?;
            ascending(&mut prev, seq, "withdrawal order")?;
            let owner = r.array()?;
            let asset = r.u8()?;
            let amount = r.u64()?;
            let kind = match r.u8()? {
                0 => WithdrawalKind::Cosigned,
                1 => WithdrawalKind::ExitHatch,
                _ => return Err(StateSnapshotError::Malformed),
            };
            let tx = match r.u8()? {
                0 => None,
                1 => Some(r.array()?),
                _ => return Err(StateSnapshotError::Malformed),
            };
            let last_valid_block_height = match r.u8()? {
                0 => None,
                1 => Some(r.u64()?),
                _ => return Err(StateSnapshotError::Malformed),
            };
            let withdrawal = PendingWithdrawal {
                owner,
                asset,
                amount,
                kind,
                tx,
                last_valid_block_height,
            };
            state.withdrawals.insert(seq, withdrawal);
        }
        let mut prev = None;
        for _ in 0..r.len(66)? {
            let key = (r.array()?, r.u16()?);
            ascending(&mut prev, key, "chain withdrawal order")?;
            state.chain_withdrawals.insert(key);
        }
        if !r.0.is_empty() {
            return Err(StateSnapshotError::Malformed);
        }
        Ok(state)
    }
}
