//! Shared test helpers: order builders, a compact event notation and a golden-table runner.
#![allow(dead_code)]

pub mod reference;

use kestrel_matcher::{
    CancelTarget, ClientOrderId, Command, DoneReason, Engine, Event, Lots, MarketConfig, OrderId,
    OrderType, PlaceOrder, ReplaceOrder, SelfTradeMode, Side, Ticks, Timestamp, UserId,
};

pub const A: UserId = UserId([0xA; 32]);
pub const B: UserId = UserId([0xB; 32]);
pub const C: UserId = UserId([0xC; 32]);

/// Time of every setup command, in Unix seconds.
pub const T0: u64 = 1_000;

pub fn config() -> MarketConfig {
    MarketConfig {
        market_id: 7,
        tick_size: 10,
        lot_size: 100,
        min_size: Lots(1),
        max_size: Lots(1_000),
        min_price: Ticks(50),
        max_price: Ticks(200),
        max_orders: 64,
    }
}

/// A place command under construction: user A, limit, cancel-taker, no expiry.
#[derive(Clone, Copy)]
pub struct Order(pub PlaceOrder);

pub fn order(side: Side, id: u64, price: u64, size: u64) -> Order {
    Order(PlaceOrder {
        order_id: OrderId(id),
        user: A,
        client_order_id: None,
        side,
        price: Ticks(price),
        size: Lots(size),
        order_type: OrderType::Limit,
        self_trade: SelfTradeMode::CancelTaker,
        nonce: id,
        expiry: 0,
    })
}

pub fn buy(id: u64, price: u64, size: u64) -> Order {
    order(Side::Buy, id, price, size)
}

pub fn sell(id: u64, price: u64, size: u64) -> Order {
    order(Side::Sell, id, price, size)
}

impl Order {
    pub fn by(mut self, user: UserId) -> Self {
        self.0.user = user;
        self
    }
    pub fn kind(mut self, t: OrderType) -> Self {
        self.0.order_type = t;
        self
    }
    pub fn ioc(self) -> Self {
        self.kind(OrderType::ImmediateOrCancel)
    }
    pub fn fok(self) -> Self {
        self.kind(OrderType::FillOrKill)
    }
    pub fn post_only(self) -> Self {
        self.kind(OrderType::PostOnly)
    }
    pub fn slide(self) -> Self {
        self.kind(OrderType::PostOnlySlide)
    }
    pub fn market(self) -> Self {
        self.kind(OrderType::Market)
    }
    pub fn stp(mut self, m: SelfTradeMode) -> Self {
        self.0.self_trade = m;
        self
    }
    pub fn expiry(mut self, secs: u64) -> Self {
        self.0.expiry = secs;
        self
    }
    pub fn cid(mut self, c: u64) -> Self {
        self.0.client_order_id = Some(ClientOrderId(c));
        self
    }
    pub fn cmd(self) -> Command {
        Command::Place(self.0)
    }
}

impl From<Order> for Command {
    fn from(o: Order) -> Command {
        o.cmd()
    }
}

pub fn cancel(user: UserId, id: u64) -> Command {
    Command::Cancel {
        user,
        target: CancelTarget::OrderId(OrderId(id)),
    }
}

pub fn cancel_cid(user: UserId, cid: u64) -> Command {
    Command::Cancel {
        user,
        target: CancelTarget::ClientOrderId(ClientOrderId(cid)),
    }
}

pub fn cancel_all(user: UserId, side: Option<Side>) -> Command {
    Command::CancelAll { user, side }
}

pub fn replace(user: UserId, id: u64, price: u64, size: u64) -> Command {
    Command::Replace(ReplaceOrder {
        user,
        order_id: OrderId(id),
        price: Ticks(price),
        size: Lots(size),
        nonce: id,
        expiry: 0,
    })
}

fn side(s: Side) -> &'static str {
    match s {
        Side::Buy => "bid",
        Side::Sell => "ask",
    }
}

fn user(u: UserId) -> &'static str {
    match u {
        A => "A",
        B => "B",
        C => "C",
        _ => "?",
    }
}

/// One line per event, without sequence numbers (those are checked separately).
pub fn render(e: &Event) -> String {
    match e {
        Event::Accepted(a) => format!(
            "accepted #{} {} {}x{}",
            a.order_id.0,
            side(a.side),
            a.price.0,
            a.size.0
        ),
        Event::Rejected(r) => format!("rejected {:?}", r.reason),
        Event::Fill(f) => format!(
            "fill {} maker=#{} taker=#{} {}x{}",
            f.fill_id, f.maker_order_id.0, f.taker_order_id.0, f.price.0, f.size.0
        ),
        Event::SelfTradeDecrement(d) => {
            format!(
                "decrement maker=#{} taker=#{} x{}",
                d.maker_order_id.0, d.taker_order_id.0, d.size.0
            )
        }
        Event::Replaced(r) => format!(
            "replaced #{} {}x{} {}",
            r.order_id.0,
            r.price.0,
            r.size.0,
            if r.kept_priority { "kept" } else { "moved" }
        ),
        Event::Done(d) => {
            let why = match d.reason {
                DoneReason::Filled => "filled",
                DoneReason::Cancelled => "cancelled",
                DoneReason::Expired => "expired",
                DoneReason::SelfTrade => "self-trade",
                DoneReason::Unmatched => "unmatched",
            };
            format!(
                "done #{} {} {} rem={}",
                d.order_id.0,
                user(d.user),
                why,
                d.remaining.0
            )
        }
        Event::BookDelta(b) => format!(
            "book {} {} = {} ({})",
            side(b.side),
            b.price.0,
            b.size.0,
            b.orders
        ),
    }
}

/// A row of a golden table: after `given` (at T0), `when` runs at `at` seconds and must
/// produce exactly `then`, and afterwards the listed `book` (bid/ask levels, best first).
pub struct Case {
    pub name: &'static str,
    pub given: Vec<Command>,
    pub when: Command,
    pub at: u64,
    pub then: &'static [&'static str],
}

pub fn case(
    name: &'static str,
    given: Vec<Command>,
    when: impl Into<Command>,
    then: &'static [&'static str],
) -> Case {
    Case {
        name,
        given,
        when: when.into(),
        at: T0,
        then,
    }
}

impl Case {
    pub fn at(mut self, secs: u64) -> Case {
        self.at = secs;
        self
    }
}

/// Runs every case through the engine and through the reference book; both must print the
/// expected lines, and sequence numbers must run on without a gap.
pub fn run_table(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for c in cases {
        let mut engine = Engine::new(config()).unwrap();
        let mut reference = reference::RefBook::new(config());
        let mut events = Vec::new();
        for cmd in &c.given {
            engine.apply(cmd, Timestamp::from_unix_seconds(T0), &mut events);
            reference.apply(cmd, Timestamp::from_unix_seconds(T0));
        }
        let before = engine.last_seq();
        events.clear();
        engine.apply(&c.when, Timestamp::from_unix_seconds(c.at), &mut events);
        let ref_events = reference.apply(&c.when, Timestamp::from_unix_seconds(c.at));
        let got: Vec<String> = events.iter().map(render).collect();
        let want: Vec<String> = c.then.iter().map(|s| s.to_string()).collect();
        if got != want {
            failures.push(format!(
                "{}:\n  want {:#?}\n  got  {:#?}",
                c.name, want, got
            ));
        }
        if events != ref_events {
            failures.push(format!("{}: engine and reference differ", c.name));
        }
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.seq(), before + 1 + i as u64, "{}: sequence gap", c.name);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A fresh, empty directory for one test.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kestrel-matcher-{}-{}", name, std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The crash child's command stream: `Random` prefill, then steady-state commands.
pub struct Stream {
    workload: kestrel_matcher::workload::Workload,
    prefill: std::vec::IntoIter<(Command, Timestamp)>,
}

impl Stream {
    pub fn new(seed: u64) -> Stream {
        let mut workload =
            kestrel_matcher::workload::Workload::new(kestrel_matcher::workload::Mix::Random, seed)
                .unwrap();
        let prefill = workload.prefill().into_iter();
        Stream { workload, prefill }
    }

    pub fn next_cmd(&mut self) -> (Command, Timestamp) {
        self.prefill
            .next()
            .unwrap_or_else(|| self.workload.next_command())
    }
}

/// Segment files of a journal directory, oldest first.
pub fn segments(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}
