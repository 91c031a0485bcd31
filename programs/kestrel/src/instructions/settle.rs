//! Batch settlement of matched fills. Only the operator may call it; it proves nothing by
//! itself: every rule of DESIGN.md (signed intent, order limits, conservation) is re-checked
//! here against the users' own signatures and the on-chain order records.
//!
//! Remaining accounts: `[user_0 .. user_{k-1}, record_0 .. record_{n-1}]`, all writable, all
//! distinct; `orders[i].user` indexes the users and `record_i` is order `i`'s record PDA.

use crate::constants::{MAX_FILLS_PER_BATCH, MAX_ORDERS_PER_BATCH, ORDER_SEED};
use crate::ed25519::{verify_signatures, ExpectedSignature};
use crate::encoding::{DecodeError, Order, Side, ORDER_LEN};
use crate::error::KestrelError;
use crate::events::FillSettled;
use crate::math::{BaseLots, SafeMath, Ticks};
use crate::state::{Exchange, Market, OrderRecord, UserAccount};
use anchor_lang::prelude::*;
use solana_sdk_ids::sysvar::instructions as instructions_sysvar;

/// One order of the batch.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Debug, PartialEq, Eq)]
pub struct SettleOrder {
    /// Index of the owner's user account among the remaining accounts.
    pub user: u8,
    /// The signed bytes when the order is new to the chain (its signature must be in the
    /// Ed25519 instruction); `None` when its record already stands for it.
    pub signed: Option<[u8; ORDER_LEN]>,
}

/// One matched fill.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettleFill {
    /// Off-chain fill id; strictly increasing per market, across batches.
    pub fill_id: u64,
    /// Index of the maker order in `orders`.
    pub maker: u8,
    /// Index of the taker order in `orders`.
    pub taker: u8,
    /// Execution price in ticks.
    pub price_ticks: u64,
    /// Size in base lots.
    pub size_lots: u64,
}

/// Arguments of `settle`.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Debug, PartialEq, Eq)]
pub struct SettleArgs {
    /// Strictly increasing per market.
    pub batch_id: u64,
    /// Index in the transaction of the Ed25519 precompile instruction carrying one signature
    /// per new order, in order; `None` when the batch has no new order.
    pub ed25519_instruction: Option<u16>,
    /// Orders referenced by the fills.
    pub orders: Vec<SettleOrder>,
    /// Fills, in increasing fill id.
    pub fills: Vec<SettleFill>,
}

impl SettleArgs {
    /// Byte offsets, within the settle instruction's data (discriminator included), of each new
    /// order's signed bytes, in order. The Ed25519 instruction points its messages (and,
    /// through [`crate::encoding::OWNER_OFFSET`], its public keys) here.
    pub fn signed_order_offsets(&self) -> Vec<usize> {
        // discriminator + batch_id + Option<u16> + Vec length prefix
        let option_len: usize = if self.ed25519_instruction.is_some() {
            3
        } else {
            1
        };
        let mut at = 8usize
            .saturating_add(8)
            .saturating_add(option_len)
            .saturating_add(4);
        let mut offsets = Vec::new();
        for order in &self.orders {
            at = at.saturating_add(2); // user index + Option tag
            if order.signed.is_some() {
                offsets.push(at);
                at = at.saturating_add(ORDER_LEN);
            }
        }
        offsets
    }
}

#[derive(Accounts)]
pub struct Settle<'info> {
    /// Pays the rent of new order records.
    #[account(mut)]
    pub operator: Signer<'info>,
    #[account(has_one = operator @ KestrelError::NotOperator)]
    pub exchange: AccountLoader<'info, Exchange>,
    #[account(mut, has_one = exchange)]
    pub market: AccountLoader<'info, Market>,
    /// CHECK: address-constrained to the instructions sysvar, read with the checked loader.
    #[account(address = instructions_sysvar::ID)]
    pub instructions: UncheckedAccount<'info>,
    pub system_program: Program<'info, System>,
}

/// An order's terms as the batch sees them, whether new or recorded.
struct Terms {
    owner: Pubkey,
    user: usize,
    side: Side,
    price: Ticks,
    size: BaseLots,
    filled: BaseLots,
    nonce: u64,
    expiry: i64,
}

pub fn settle<'info>(ctx: Context<'info, Settle<'info>>, args: SettleArgs) -> Result<()> {
    let exchange_key = ctx.accounts.exchange.key();
    require!(
        ctx.accounts.exchange.load()?.settlement_paused == 0,
        KestrelError::SettlementPaused
    );
    let n_orders = args.orders.len();
    require!(
        (1..=MAX_FILLS_PER_BATCH).contains(&args.fills.len())
            && (2..=MAX_ORDERS_PER_BATCH).contains(&n_orders),
        KestrelError::SettlementBadBatch
    );
    let accounts = ctx.remaining_accounts;
    let n_users = accounts
        .len()
        .checked_sub(n_orders)
        .filter(|n| *n > 0)
        .ok_or(KestrelError::SettlementAccountsMismatch)?;
    let (user_infos, record_infos) = accounts.split_at(n_users);
    check_distinct_writable(accounts)?;

    let clock = Clock::get()?;
    let mut market = ctx.accounts.market.load_mut()?;
    market.apply_due_fee_change(clock.slot);
    require!(
        args.batch_id > market.last_batch_id,
        KestrelError::SettlementBatchReplayed
    );

    let users = user_infos
        .iter()
        .map(|info| {
            let loader = AccountLoader::<UserAccount>::try_from(info)?;
            require_keys_eq!(
                loader.load()?.exchange,
                exchange_key,
                KestrelError::SettlementAccountsMismatch
            );
            Ok(loader)
        })
        .collect::<Result<Vec<_>>>()?;

    // Resolve every order to its terms, creating records for orders new to the chain.
    let mut expected = Vec::new();
    let mut terms = Vec::with_capacity(n_orders);
    for (slot, record_info) in args.orders.iter().zip(record_infos) {
        let user_index = usize::from(slot.user);
        let user = users
            .get(user_index)
            .ok_or(KestrelError::SettlementBadOrderRef)?;
        let owner = user.load()?.owner;
        let t = match &slot.signed {
            Some(bytes) => {
                let order = validate_new_order(bytes, &exchange_key, &market, &owner)?;
                expected.push(ExpectedSignature {
                    signer: order.owner,
                    message: bytes,
                });
                record_new_order(&ctx, record_info, &order, &exchange_key)?
            }
            None => load_recorded_order(record_info, &exchange_key, &owner, market.index)?,
        };
        terms.push(Terms {
            user: user_index,
            ..t
        });
    }

    match (args.ed25519_instruction, expected.is_empty()) {
        (_, true) => {}
        (None, false) => return err!(KestrelError::SignatureMissing),
        (Some(index), false) => {
            let sysvar = ctx.accounts.instructions.to_account_info();
            let current = solana_instructions_sysvar::load_current_index_checked(&sysvar)?;
            let settle_ix = solana_instructions_sysvar::load_instruction_at_checked(
                usize::from(current),
                &sysvar,
            )?;
            verify_signatures(&sysvar, index, current, &settle_ix.data, &expected)?;
        }
    }

    // Apply the fills in order, all in memory; any failure reverts the whole batch.
    let mut last_fill_id = market.last_fill_id;
    for fill in &args.fills {
        require!(
            fill.fill_id > last_fill_id,
            KestrelError::SettlementFillReplayed
        );
        last_fill_id = fill.fill_id;
        apply_fill(fill, &mut terms, &users, &mut market, clock.unix_timestamp)?;
    }
    market.last_fill_id = last_fill_id;
    market.last_batch_id = args.batch_id;

    for (t, info) in terms.iter().zip(record_infos) {
        let loader = AccountLoader::<OrderRecord>::try_from(info)?;
        loader.load_mut()?.filled_lots = t.filled.0;
    }
    Ok(())
}

fn check_distinct_writable(accounts: &[AccountInfo]) -> Result<()> {
    for (i, account) in accounts.iter().enumerate() {
        require!(
            account.is_writable,
            KestrelError::SettlementAccountsMismatch
        );
        if accounts
            .iter()
            .skip(i.saturating_add(1))
            .any(|other| other.key == account.key)
        {
            return err!(KestrelError::SettlementDuplicateAccount);
        }
    }
    Ok(())
}

fn validate_new_order(
    bytes: &[u8; ORDER_LEN],
    exchange: &Pubkey,
    market: &Market,
    owner: &Pubkey,
) -> Result<Order> {
    let order = Order::decode(bytes).map_err(|e| match e {
        DecodeError::Field => error!(KestrelError::InvalidOrderField),
        DecodeError::Length | DecodeError::Tag => error!(KestrelError::InvalidOrderEncoding),
    })?;
    require_keys_eq!(
        order.exchange,
        *exchange,
        KestrelError::InvalidOrderExchange
    );
    require!(
        order.market_index == market.index,
        KestrelError::InvalidOrderMarket
    );
    require!(
        order.price_ticks > 0 && order.size_lots >= market.min_size_lots.max(1),
        KestrelError::InvalidOrderSize
    );
    require_keys_eq!(order.owner, *owner, KestrelError::InvalidOrderOwner);
    Ok(order)
}

fn terms_of(record: &OrderRecord) -> Terms {
    Terms {
        owner: record.owner,
        user: 0,
        side: record.side(),
        price: Ticks(record.price_ticks),
        size: BaseLots(record.size_lots),
        filled: BaseLots(record.filled_lots),
        nonce: record.nonce,
        expiry: record.expiry,
    }
}

/// Creates the record of an order seen for the first time, or, if a record already exists
/// (a retried batch), accepts it only when it holds exactly the same terms.
fn record_new_order<'info>(
    ctx: &Context<'info, Settle<'info>>,
    info: &'info AccountInfo<'info>,
    order: &Order,
    exchange: &Pubkey,
) -> Result<Terms> {
    let nonce = order.nonce.to_le_bytes();
    let seeds: [&[u8]; 4] = [ORDER_SEED, exchange.as_ref(), order.owner.as_ref(), &nonce];
    let (address, bump) = Pubkey::find_program_address(&seeds, ctx.program_id);
    require_keys_eq!(info.key(), address, KestrelError::SettlementBadOrderRecord);

    if info.owner == ctx.program_id {
        let loader = AccountLoader::<OrderRecord>::try_from(info)?;
        let record = loader.load()?;
        require!(
            record.matches(order),
            KestrelError::SettlementOrderRecordMismatch
        );
        return Ok(terms_of(&record));
    }

    let bump_seed = [bump];
    let signer: [&[u8]; 5] = [
        ORDER_SEED,
        exchange.as_ref(),
        order.owner.as_ref(),
        &nonce,
        &bump_seed,
    ];
    let loader = super::create_zero_copy::<OrderRecord>(
        &ctx.accounts.operator,
        info,
        &ctx.accounts.system_program,
        &signer,
    )?;
    let mut record = loader.load_mut()?;
    record.owner = order.owner;
    record.payer = ctx.accounts.operator.key();
    record.market_index = order.market_index;
    record.side = order.side as u8;
    record.order_type = order.order_type as u8;
    record.self_trade = order.self_trade as u8;
    record.bump = bump;
    record.price_ticks = order.price_ticks;
    record.size_lots = order.size_lots;
    record.nonce = order.nonce;
    record.expiry = order.expiry;
    record.client_order_id = order.client_order_id;
    Ok(terms_of(&record))
}

fn load_recorded_order<'info>(
    info: &'info AccountInfo<'info>,
    exchange: &Pubkey,
    owner: &Pubkey,
    market_index: u32,
) -> Result<Terms> {
    require_keys_eq!(
        *info.owner,
        crate::ID,
        KestrelError::SettlementOrderNotRecorded
    );
    let loader = AccountLoader::<OrderRecord>::try_from(info)?;
    let record = loader.load()?;
    require_keys_eq!(record.owner, *owner, KestrelError::InvalidOrderOwner);
    let nonce = record.nonce.to_le_bytes();
    let address = Pubkey::create_program_address(
        &[
            ORDER_SEED,
            exchange.as_ref(),
            owner.as_ref(),
            &nonce,
            &[record.bump],
        ],
        &crate::ID,
    )
    .map_err(|_| error!(KestrelError::SettlementBadOrderRecord))?;
    require_keys_eq!(info.key(), address, KestrelError::SettlementBadOrderRecord);
    require!(
        record.market_index == market_index,
        KestrelError::InvalidOrderMarket
    );
    Ok(terms_of(&record))
}

/// Checks an order may still trade: above the owner's cancel floor and not expired.
fn check_live(terms: &Terms, users: &[AccountLoader<UserAccount>], now: i64) -> Result<()> {
    let user = users
        .get(terms.user)
        .ok_or(KestrelError::SettlementBadOrderRef)?;
    require!(
        terms.nonce >= user.load()?.nonce_floor,
        KestrelError::InvalidOrderCancelled
    );
    require!(
        terms.expiry == 0 || now <= terms.expiry,
        KestrelError::InvalidOrderExpired
    );
    Ok(())
}

fn apply_fill(
    fill: &SettleFill,
    terms: &mut [Terms],
    users: &[AccountLoader<UserAccount>],
    market: &mut Market,
    now: i64,
) -> Result<()> {
    let (mi, ti) = (usize::from(fill.maker), usize::from(fill.taker));
    require!(
        mi != ti && mi < terms.len() && ti < terms.len(),
        KestrelError::SettlementBadOrderRef
    );
    require!(
        fill.size_lots > 0 && fill.price_ticks > 0,
        KestrelError::SettlementZeroFill
    );
    let size = BaseLots(fill.size_lots);
    let price = Ticks(fill.price_ticks);
    let (maker_side, taker_side) = (terms[mi].side, terms[ti].side);
    require!(maker_side != taker_side, KestrelError::SettlementSameSide);
    require!(
        terms[mi].owner != terms[ti].owner,
        KestrelError::SettlementSelfTrade
    );
    for index in [mi, ti] {
        let t = &mut terms[index];
        check_live(t, users, now)?;
        let within = match t.side {
            Side::Buy => price <= t.price,
            Side::Sell => price >= t.price,
        };
        require!(within, KestrelError::SettlementPriceThroughLimit);
        let filled = t.filled.0.safe_add(size.0)?;
        require!(filled <= t.size.0, KestrelError::SettlementOverfill);
        t.filled = BaseLots(filled);
    }

    let base_atoms = size.to_base_atoms(market.base_lot_size)?.0;
    let notional = size.notional(price, market.tick_size)?;
    let maker_fee = notional.fee(market.maker_fee_bps)?.0;
    let taker_fee = notional.fee(market.taker_fee_bps)?.0;
    let (buyer, buyer_fee, seller, seller_fee) = match maker_side {
        Side::Buy => (mi, maker_fee, ti, taker_fee),
        Side::Sell => (ti, taker_fee, mi, maker_fee),
    };
    let (base, quote) = (market.base_asset, market.quote_asset);
    {
        let loader = users
            .get(terms[buyer].user)
            .ok_or(KestrelError::SettlementBadOrderRef)?;
        let mut user = loader.load_mut()?;
        let pay = notional.0.safe_add(buyer_fee)?;
        let q = user.balance_mut(quote)?;
        q.available = q
            .available
            .checked_sub(pay)
            .ok_or(KestrelError::SettlementInsufficientBalance)?;
        q.settled_out = q.settled_out.safe_add(notional.0)?;
        q.fees_paid = q.fees_paid.safe_add(buyer_fee)?;
        let b = user.balance_mut(base)?;
        b.available = b.available.safe_add(base_atoms)?;
        b.settled_in = b.settled_in.safe_add(base_atoms)?;
    }
    {
        let loader = users
            .get(terms[seller].user)
            .ok_or(KestrelError::SettlementBadOrderRef)?;
        let mut user = loader.load_mut()?;
        let b = user.balance_mut(base)?;
        b.available = b
            .available
            .checked_sub(base_atoms)
            .ok_or(KestrelError::SettlementInsufficientBalance)?;
        b.settled_out = b.settled_out.safe_add(base_atoms)?;
        let q = user.balance_mut(quote)?;
        q.available = q.available.safe_add(notional.0.safe_sub(seller_fee)?)?;
        q.settled_in = q.settled_in.safe_add(notional.0)?;
        q.fees_paid = q.fees_paid.safe_add(seller_fee)?;
    }
    market.fees_accrued = market
        .fees_accrued
        .safe_add(maker_fee.safe_add(taker_fee)?)?;
    market.volume_lots = market.volume_lots.safe_add(size.0)?;
    emit!(FillSettled {
        market: market.index,
        fill_id: fill.fill_id,
        maker: terms[mi].owner,
        maker_nonce: terms[mi].nonce,
        taker: terms[ti].owner,
        taker_nonce: terms[ti].nonce,
        price_ticks: fill.price_ticks,
        size_lots: fill.size_lots,
        maker_fee,
        taker_fee,
    });
    Ok(())
}
