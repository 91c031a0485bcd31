//! Funds in and out: deposits observed on-chain, withdrawal holds and their outcome.

use super::{neg, PendingWithdrawal, State};
use crate::ledger::Change;
use crate::model::{Business, Event, Owner, Seq, WithdrawalKind, WithdrawalStatus};
use crate::reject::Reject;
use anchor_lang::prelude::Pubkey;
use kestrel::encoding::WithdrawRequest;

impl State {
    pub(super) fn deposit(
        &mut self,
        owner: &Owner,
        asset: u8,
        amount: u64,
        tx: &[u8; 64],
        ix_index: u16,
        out: &mut Vec<Event>,
    ) -> Result<(), (Owner, Reject)> {
        if amount == 0 || usize::from(asset) >= self.rules.assets.len() {
            return Err((*owner, Reject::InvalidAmount));
        }
        if self.deposits.contains(&(*tx, ix_index)) {
            return Ok(());
        }
        let id = format!("{}:{}", crate::model::to_hex(tx), ix_index);
        self.ledger
            .change(
                owner,
                asset,
                Change::new(Business::Deposit, id, i128::from(amount), 0),
                out,
            )
            .map_err(|_| (*owner, Reject::InvalidAmount))?;
        self.deposits.insert((*tx, ix_index));
        out.push(Event::DepositCredited {
            owner: *owner,
            asset,
            amount,
            tx: crate::model::to_hex(tx),
            ix_index,
        });
        Ok(())
    }

    /// The asset index of `mint` in the asset table.
    pub(super) fn asset_of(&self, mint: &Pubkey) -> Option<u8> {
        self.rules
            .assets
            .iter()
            .position(|m| m == mint)
            .and_then(|i| u8::try_from(i).ok())
    }

    pub(super) fn withdraw(
        &mut self,
        seq: Seq,
        now_ms: u64,
        w: &WithdrawRequest,
        out: &mut Vec<Event>,
    ) -> Result<(), (Owner, Reject)> {
        let owner = w.owner.to_bytes();
        self.check_signed_expiry(w.expiry, now_ms)
            .map_err(|(_, r)| (owner, r))?;
        self.check_exchange(&w.exchange)
            .map_err(|(_, r)| (owner, r))?;
        let asset = self
            .asset_of(&w.mint)
            .ok_or((owner, Reject::InvalidAmount))?;
        if w.amount == 0 {
            return Err((owner, Reject::InvalidAmount));
        }
        if !self
            .owners
            .entry(owner)
            .or_default()
            .used_withdrawal_nonces
            .insert(w.nonce)
        {
            return Err((owner, Reject::NonceReused));
        }
        let amount = i128::from(w.amount);
        self.ledger
            .change(
                &owner,
                asset,
                Change::new(
                    Business::WithdrawalHold,
                    seq.to_string(),
                    neg(w.amount),
                    amount,
                ),
                out,
            )
            .map_err(|_| (owner, Reject::InsufficientBalance))?;
        let pending = PendingWithdrawal {
            owner,
            asset,
            amount: w.amount,
            kind: WithdrawalKind::Cosigned,
            tx: None,
            last_valid_block_height: None,
        };
        self.withdrawals.insert(seq, pending);
        out.push(pending.event(seq, WithdrawalStatus::Pending));
        Ok(())
    }

    /// A co-signed withdrawal's outcome reported by the operator side: `confirmed` pays it
    /// out, otherwise (its transaction expired without landing) the funds are released. The
    /// exit hatch is finished only by what the chain shows.
    pub(super) fn finish_withdrawal(
        &mut self,
        id: Seq,
        confirmed: bool,
        out: &mut Vec<Event>,
    ) -> Result<(), (Owner, Reject)> {
        match self.withdrawals.get(&id) {
            Some(w) if w.kind == WithdrawalKind::Cosigned => {}
            Some(w) => return Err((w.owner, Reject::WithdrawalNotPending)),
            None => return Err(([0; 32], Reject::WithdrawalNotPending)),
        }
        let status = if confirmed {
            WithdrawalStatus::Confirmed
        } else {
            WithdrawalStatus::Failed
        };
        self.close_withdrawal(id, status, None, out)
    }

    /// Ends a held withdrawal: Confirmed pays the frozen atoms out, Failed releases them.
    /// `tx` replaces the recorded transaction in the event (the exit hatch's execution).
    pub(super) fn close_withdrawal(
        &mut self,
        id: Seq,
        status: WithdrawalStatus,
        tx: Option<[u8; 64]>,
        out: &mut Vec<Event>,
    ) -> Result<(), (Owner, Reject)> {
        let mut w = self
            .withdrawals
            .remove(&id)
            .ok_or(([0; 32], Reject::WithdrawalNotPending))?;
        let (business, available) = match status {
            WithdrawalStatus::Confirmed => (Business::WithdrawalPaid, 0),
            _ => (Business::WithdrawalRelease, i128::from(w.amount)),
        };
        if w.amount > 0 {
            let change = Change::new(business, id.to_string(), available, neg(w.amount));
            if self.ledger.change(&w.owner, w.asset, change, out).is_err() {
                self.withdrawals.insert(id, w);
                return Err((w.owner, Reject::InsufficientBalance));
            }
        }
        if tx.is_some() {
            w.tx = tx;
        }
        out.push(w.event(id, status));
        Ok(())
    }
}

impl PendingWithdrawal {
    /// The withdrawal's event in `status`.
    pub(super) fn event(&self, id: Seq, status: WithdrawalStatus) -> Event {
        Event::Withdrawal {
            id,
            owner: self.owner,
            asset: self.asset,
            amount: self.amount,
            status,
            kind: self.kind,
            tx: self.tx.map(|tx| crate::model::to_hex(&tx)),
            last_valid_block_height: self.last_valid_block_height,
        }
    }
}
