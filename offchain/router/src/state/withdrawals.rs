//! Withdrawals after the request: the co-signed transaction handed out (Broadcasting), and
//! what the chain shows — the co-signed `withdraw` landing, and the exit hatch
//! (`request_withdrawal` holds the funds, `execute_withdrawal` pays them out).
//!
//! Every on-chain instruction is keyed by (transaction signature, instruction index) and applied
//! at most once: a listener that reprocesses history changes nothing.

use super::orders::cancel_command;
use super::{neg, PendingWithdrawal, State};
use crate::ledger::Change;
use crate::model::{
    Business, ChainWithdrawalKind, Event, Owner, Seq, Sig, WithdrawalKind, WithdrawalStatus,
};
use crate::reject::Reject;
use kestrel::encoding::Side;

impl State {
    /// Pending → Broadcasting: the operator handed out the co-signed transaction `tx`, valid
    /// until block height `last_valid_block_height`. Only a Pending co-signed withdrawal takes
    /// it, so at most one co-signed transaction per withdrawal is ever handed out.
    pub(super) fn broadcast_withdrawal(
        &mut self,
        id: Seq,
        tx: &Sig,
        last_valid_block_height: u64,
        out: &mut Vec<Event>,
    ) -> Result<(), (Owner, Reject)> {
        let w = self
            .withdrawals
            .get_mut(&id)
            .ok_or(([0; 32], Reject::WithdrawalNotPending))?;
        if w.kind != WithdrawalKind::Cosigned || w.tx.is_some() {
            return Err((w.owner, Reject::WithdrawalNotPending));
        }
        w.tx = Some(*tx);
        w.last_valid_block_height = Some(last_valid_block_height);
        out.push(w.event(id, WithdrawalStatus::Broadcasting));
        Ok(())
    }

    /// One withdrawal instruction seen on-chain, applied once per (signature, instruction).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn chain_withdrawal(
        &mut self,
        seq: Seq,
        now_ms: u64,
        owner: &Owner,
        asset: u8,
        key: (&Sig, u16),
        kind: ChainWithdrawalKind,
        out: &mut Vec<Event>,
    ) -> Result<(), (Owner, Reject)> {
        if usize::from(asset) >= self.rules.assets.len() {
            return Err((*owner, Reject::InvalidAmount));
        }
        let (tx, ix_index) = key;
        if self.chain_withdrawals.contains(&(*tx, ix_index)) {
            return Ok(());
        }
        let result = match kind {
            ChainWithdrawalKind::Immediate {
                amount,
                cosignature,
            } => self.cosigned_landed(owner, asset, amount, (tx, &cosignature), out),
            ChainWithdrawalKind::Requested { amount } => {
                self.exit_requested(seq, now_ms, owner, asset, amount, tx, out)
            }
            ChainWithdrawalKind::Executed => self.exit_executed(owner, asset, tx, out),
        };
        // An alert is raised once: the key is spent whether or not the router expected it.
        self.chain_withdrawals.insert((*tx, ix_index));
        result
    }

    /// The co-signed `withdraw` landed: the Broadcasting withdrawal whose handed-out
    /// transaction carries `cosignature` is Confirmed, recording the landed transaction's id. Anything else is impossible without the operator's signature, so it is an
    /// alert (a refusal that changes no balance; reconciliation then halts withdrawals).
    fn cosigned_landed(
        &mut self,
        owner: &Owner,
        asset: u8,
        amount: u64,
        (tx, cosignature): (&Sig, &Sig),
        out: &mut Vec<Event>,
    ) -> Result<(), (Owner, Reject)> {
        let id = self
            .withdrawals
            .iter()
            .find(|(_, w)| w.kind == WithdrawalKind::Cosigned && w.tx.as_ref() == Some(cosignature))
            .map(|(id, w)| (*id, *w));
        match id {
            Some((id, w)) if w.owner == *owner && w.asset == asset && w.amount == amount => {
                self.close_withdrawal(id, WithdrawalStatus::Confirmed, Some(*tx), out)
            }
            _ => Err((*owner, Reject::UnexpectedWithdrawal)),
        }
    }

    /// The exit hatch's first step moved `amount` from available to pending on-chain: the
    /// ledger holds the same amount so that it cannot be traded or withdrawn twice. When the
    /// available balance is short, the owner's orders holding that asset are cancelled, newest
    /// first, until it suffices; what still cannot be held (the owner's unsettled trades spent
    /// it) is left to reconciliation.
    #[allow(clippy::too_many_arguments)]
    fn exit_requested(
        &mut self,
        seq: Seq,
        now_ms: u64,
        owner: &Owner,
        asset: u8,
        amount: u64,
        tx: &Sig,
        out: &mut Vec<Event>,
    ) -> Result<(), (Owner, Reject)> {
        if amount == 0 {
            return Err((*owner, Reject::InvalidAmount));
        }
        self.free_for_exit(now_ms, owner, asset, amount, out);
        let held = amount.min(self.ledger.balance(owner, asset).available);
        if held > 0 {
            let change = Change::new(
                Business::WithdrawalHold,
                seq.to_string(),
                neg(held),
                i128::from(held),
            );
            self.ledger
                .change(owner, asset, change, out)
                .map_err(|_| (*owner, Reject::InsufficientBalance))?;
        }
        let pending = PendingWithdrawal {
            owner: *owner,
            asset,
            amount: held,
            kind: WithdrawalKind::ExitHatch,
            tx: Some(*tx),
            last_valid_block_height: None,
        };
        self.withdrawals.insert(seq, pending);
        out.push(pending.event(seq, WithdrawalStatus::Pending));
        Ok(())
    }

    /// Cancels `owner`'s open orders holding `asset`, newest first, until `amount` is
    /// available.
    fn free_for_exit(
        &mut self,
        now_ms: u64,
        owner: &Owner,
        asset: u8,
        amount: u64,
        out: &mut Vec<Event>,
    ) {
        let holding: Vec<(u64, u32)> = self
            .owners
            .get(owner)
            .map(|o| {
                o.open
                    .values()
                    .rev()
                    .filter_map(|id| self.orders.get(id).map(|order| (*id, *order)))
                    .filter(|(_, order)| {
                        self.engines.get(&order.market).is_some_and(|(spec, _)| {
                            let held_asset = match order.side {
                                Side::Buy => spec.quote_asset,
                                Side::Sell => spec.base_asset,
                            };
                            held_asset == asset
                        })
                    })
                    .map(|(id, order)| (id, order.market))
                    .collect()
            })
            .unwrap_or_default();
        for (order_id, market) in holding {
            if self.ledger.balance(owner, asset).available >= amount {
                return;
            }
            self.run_engine(market, now_ms, &cancel_command(owner, order_id), out);
        }
    }

    /// The exit hatch's second step paid out the whole on-chain pending amount: every exit
    /// hatch withdrawal of (owner, asset) is Confirmed, paying what the ledger held for it. An
    /// execution with nothing held is an alert.
    fn exit_executed(
        &mut self,
        owner: &Owner,
        asset: u8,
        tx: &Sig,
        out: &mut Vec<Event>,
    ) -> Result<(), (Owner, Reject)> {
        let ids: Vec<Seq> = self
            .withdrawals
            .iter()
            .filter(|(_, w)| {
                w.kind == WithdrawalKind::ExitHatch && w.owner == *owner && w.asset == asset
            })
            .map(|(id, _)| *id)
            .collect();
        if ids.is_empty() {
            return Err((*owner, Reject::UnexpectedWithdrawal));
        }
        for id in ids {
            self.close_withdrawal(id, WithdrawalStatus::Confirmed, Some(*tx), out)?;
        }
        Ok(())
    }
}
