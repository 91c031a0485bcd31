//! Settlement end to end on the embedded chain, through solana-client's `RpcClient` only:
//! a deployment built with the SDK, deposits, signed orders, the batcher's transactions
//! submitted by the operator, and the on-chain balances checked against the fills.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::arithmetic_side_effects)]

mod common;

use common::{Chain, Exchange, LOT, TICK};
use kestrel::state::{Market, UserAccount};
use kestrel_relayer::batcher::{Limits, Packer, PendingFill};
use kestrel_sdk::order::SignedOrder;
use kestrel_sdk::settle::PACKET_DATA_SIZE;
use kestrel_sdk::OrderBuilder;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signer;
use solana_sdk::transaction::Transaction;
use std::collections::HashSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_fills_settle_on_the_embedded_chain_within_every_transaction_limit() {
    let c = Chain::start().await;
    let x = Exchange::deploy(&c).await;
    let (d, operator) = (&x.d, &x.operator);

    // Six makers each sell 5 lots at 100; one taker buys them all, in two orders.
    let (taker, _) = x.user(&c, 1, 10_000_000, 0).await;
    let mut makers = Vec::new();
    for _ in 0..6 {
        makers.push(x.user(&c, 0, 5 * LOT, 0).await.0);
    }
    let bids: Vec<SignedOrder> = (0..2)
        .map(|i| {
            OrderBuilder::limit(0)
                .buy()
                .price(101)
                .size(15)
                .sign(d.exchange, &taker, 100 + i)
                .unwrap()
        })
        .collect();
    let fills: Vec<PendingFill> = makers
        .iter()
        .enumerate()
        .map(|(i, maker)| PendingFill {
            market: 0,
            fill_id: i as u64 + 1,
            maker: OrderBuilder::limit(0)
                .sell()
                .price(100)
                .size(5)
                .sign(d.exchange, maker, 1)
                .unwrap(),
            taker: bids[i / 3],
            price_ticks: 100,
            size_lots: 5,
        })
        .collect();

    let packer = Packer {
        deployment: d,
        operator: operator.pubkey(),
        limits: Limits::default(),
    };
    let mut next_batch = 1;
    let packed = packer
        .pack(&fills, &HashSet::new(), &mut next_batch)
        .unwrap();
    assert!(
        packed.len() > 1,
        "six fills of new orders need several transactions"
    );
    assert_eq!(packed.iter().map(|p| p.batch.fills.len()).sum::<usize>(), 6);
    for p in &packed {
        assert!(p.bytes <= PACKET_DATA_SIZE && p.accounts <= 64);
        let blockhash = c.rpc.get_latest_blockhash().await.unwrap();
        let tx = Transaction::new_signed_with_payer(
            &p.instructions,
            Some(&operator.pubkey()),
            &[operator],
            blockhash,
        );
        assert_eq!(bincode::serialize(&tx).unwrap().len(), p.bytes);
        c.rpc.send_and_confirm_transaction(&tx).await.unwrap();
    }

    let market: Market = c.load(&d.market_address(0)).await;
    assert_eq!(
        (market.last_fill_id, market.last_batch_id),
        (6, next_batch - 1)
    );
    // 30 lots × 1,000 atoms of base to the taker; 6 × (100 × 10 × 5) = 30,000 quote to makers.
    let t: UserAccount = c.load(&d.user_address(&taker.pubkey())).await;
    assert_eq!(t.balances[0].available, 30 * LOT);
    let notional_each = 100 * TICK * 5;
    let taker_fee_each = (notional_each * 5).div_ceil(10_000);
    assert_eq!(
        t.balances[1].available,
        10_000_000 - 6 * (notional_each + taker_fee_each)
    );
    let maker_fee_each = (notional_each * 2).div_ceil(10_000);
    for maker in &makers {
        let m: UserAccount = c.load(&d.user_address(&maker.pubkey())).await;
        assert_eq!(
            (m.balances[0].available, m.balances[1].available),
            (0, notional_each - maker_fee_each)
        );
    }
    assert_eq!(market.fees_accrued, 6 * (maker_fee_each + taker_fee_each));
    // Conservation: the quote vault holds exactly the users' balances plus fees.
    let vault = c
        .rpc
        .get_token_account_balance(&d.vault_address(&x.quote))
        .await
        .unwrap();
    let held = t.balances[1].available + 6 * (notional_each - maker_fee_each) + market.fees_accrued;
    assert_eq!(vault.amount.parse::<u64>().unwrap(), held);

    // Repacking the same fills now that every order is recorded: fewer, smaller transactions,
    // and the chain refuses them as replays.
    let recorded: HashSet<(Pubkey, u64)> = fills
        .iter()
        .flat_map(|f| {
            [
                (f.maker.order.owner, f.maker.order.nonce),
                (f.taker.order.owner, f.taker.order.nonce),
            ]
        })
        .collect();
    let mut replay_batch = 1;
    let again = packer.pack(&fills, &recorded, &mut replay_batch).unwrap();
    assert!(again.len() < packed.len());
    assert!(
        again.iter().all(|p| p.instructions.len() == 1),
        "no signature for recorded orders"
    );
    let blockhash = c.rpc.get_latest_blockhash().await.unwrap();
    let tx = Transaction::new_signed_with_payer(
        &again[0].instructions,
        Some(&operator.pubkey()),
        &[operator],
        blockhash,
    );
    assert!(
        c.rpc.send_and_confirm_transaction(&tx).await.is_err(),
        "a replayed batch is refused"
    );
}
