//! Golden tests: cancel, cancel-all and replace.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

mod common;

use common::*;
use kestrel_matcher::{OrderType, Side};

#[test]
fn cancel_one() {
    run_table(vec![
        case(
            "cancel by order id",
            vec![buy(1, 100, 5).cmd()],
            cancel(A, 1),
            &["done #1 A cancelled rem=5", "book bid 100 = 0 (0)"],
        ),
        case(
            "cancel by client order id",
            vec![buy(1, 100, 5).cid(42).cmd(), buy(2, 100, 1).cmd()],
            cancel_cid(A, 42),
            &["done #1 A cancelled rem=5", "book bid 100 = 1 (1)"],
        ),
        case(
            "only the owner may cancel",
            vec![buy(1, 100, 5).cmd()],
            cancel(B, 1),
            &["rejected NotOrderOwner"],
        ),
        case(
            "client order ids are per user",
            vec![buy(1, 100, 5).cid(42).cmd()],
            cancel_cid(B, 42),
            &["rejected UnknownOrder"],
        ),
        case(
            "unknown order",
            vec![],
            cancel(A, 9),
            &["rejected UnknownOrder"],
        ),
        case(
            "a cancelled order cannot be cancelled again",
            vec![buy(1, 100, 5).cmd(), cancel(A, 1)],
            cancel(A, 1),
            &["rejected UnknownOrder"],
        ),
    ]);
}

#[test]
fn cancel_all_orders() {
    let book = || {
        vec![
            buy(1, 100, 1).cmd(),
            sell(2, 110, 2).cmd(),
            buy(3, 99, 3).cmd(),
            buy(4, 98, 1).by(B).cmd(),
        ]
    };
    run_table(vec![
        case(
            "cancel-all removes the user's orders in time priority",
            book(),
            cancel_all(A, None),
            &[
                "done #1 A cancelled rem=1",
                "book bid 100 = 0 (0)",
                "done #2 A cancelled rem=2",
                "book ask 110 = 0 (0)",
                "done #3 A cancelled rem=3",
                "book bid 99 = 0 (0)",
            ],
        ),
        case(
            "cancel-all for one side",
            book(),
            cancel_all(A, Some(Side::Buy)),
            &[
                "done #1 A cancelled rem=1",
                "book bid 100 = 0 (0)",
                "done #3 A cancelled rem=3",
                "book bid 99 = 0 (0)",
            ],
        ),
        case(
            "cancel-all with nothing resting says nothing",
            book(),
            cancel_all(C, None),
            &[],
        ),
    ]);
}

#[test]
fn replace_order() {
    let two = || vec![buy(1, 100, 5).cmd(), buy(2, 100, 5).by(B).cmd()];
    let then = |mut v: Vec<kestrel_matcher::Command>, c| {
        v.push(c);
        v
    };
    run_table(vec![
        case(
            "size down keeps priority",
            two(),
            replace(A, 1, 100, 3),
            &["replaced #1 100x3 kept", "book bid 100 = 8 (2)"],
        ),
        case(
            "... so the reduced order still trades first",
            then(two(), replace(A, 1, 100, 3)),
            sell(3, 100, 3).by(C),
            &[
                "accepted #3 ask 100x3",
                "fill 1 maker=#1 taker=#3 100x3",
                "done #1 A filled rem=0",
                "book bid 100 = 5 (1)",
                "done #3 C filled rem=0",
            ],
        ),
        case(
            "size up loses priority",
            two(),
            replace(A, 1, 100, 6),
            &[
                "replaced #1 100x6 moved",
                "book bid 100 = 5 (1)",
                "book bid 100 = 11 (2)",
            ],
        ),
        case(
            "... so the other order trades first",
            then(two(), replace(A, 1, 100, 6)),
            sell(3, 100, 3).by(C),
            &[
                "accepted #3 ask 100x3",
                "fill 1 maker=#2 taker=#3 100x3",
                "book bid 100 = 8 (2)",
                "done #3 C filled rem=0",
            ],
        ),
        case(
            "a price change moves the order to the new level",
            vec![buy(1, 100, 5).cmd()],
            replace(A, 1, 101, 5),
            &[
                "replaced #1 101x5 moved",
                "book bid 100 = 0 (0)",
                "book bid 101 = 5 (1)",
            ],
        ),
        case(
            "a crossing new price trades as a taker",
            vec![buy(1, 100, 5).cmd(), sell(2, 102, 3).by(B).cmd()],
            replace(A, 1, 102, 5),
            &[
                "replaced #1 102x5 moved",
                "book bid 100 = 0 (0)",
                "fill 1 maker=#2 taker=#1 102x3",
                "done #2 B filled rem=0",
                "book ask 102 = 0 (0)",
                "book bid 102 = 2 (1)",
            ],
        ),
        case(
            "a post-only order is not replaced into a cross",
            vec![
                buy(1, 100, 5).post_only().cmd(),
                sell(2, 102, 3).by(B).cmd(),
            ],
            replace(A, 1, 102, 5),
            &["rejected PostOnlyWouldCross"],
        ),
        case(
            "a post-only slide order slides instead",
            vec![
                buy(1, 100, 5).kind(OrderType::PostOnlySlide).cmd(),
                sell(2, 102, 3).by(B).cmd(),
            ],
            replace(A, 1, 103, 5),
            &[
                "replaced #1 101x5 moved",
                "book bid 100 = 0 (0)",
                "book bid 101 = 5 (1)",
            ],
        ),
        case(
            "only the owner may replace",
            vec![buy(1, 100, 5).cmd()],
            replace(B, 1, 100, 1),
            &["rejected NotOrderOwner"],
        ),
        case(
            "replace of an unknown order",
            vec![],
            replace(A, 1, 100, 1),
            &["rejected UnknownOrder"],
        ),
        case(
            "replace to size zero is rejected (use cancel)",
            vec![buy(1, 100, 5).cmd()],
            replace(A, 1, 100, 0),
            &["rejected SizeBelowMinimum"],
        ),
    ]);
}
