//! Replay is deterministic: the same commands and timestamps give the same events and the same
//! state hash, from scratch or from a snapshot taken part-way.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

mod common;

use common::Stream;
use kestrel_matcher::workload::Mix;
use kestrel_matcher::{Engine, Event};

fn run(
    engine: &mut Engine,
    stream: &[(kestrel_matcher::Command, kestrel_matcher::Timestamp)],
) -> Vec<Event> {
    let mut events = Vec::new();
    for (cmd, now) in stream {
        engine.apply(cmd, *now, &mut events);
    }
    events
}

#[test]
fn same_commands_same_events_same_hash() {
    let mut s = Stream::new(99);
    let stream: Vec<_> = (0..20_000).map(|_| s.next_cmd()).collect();
    let mut a = Engine::new(Mix::Random.market_config()).unwrap();
    let mut b = Engine::new(Mix::Random.market_config()).unwrap();
    let ea = run(&mut a, &stream);
    let eb = run(&mut b, &stream);
    assert_eq!(ea, eb);
    assert_eq!(a.state_hash(), b.state_hash());
    assert!(ea.iter().any(|e| matches!(e, Event::Fill(_))));

    // From a snapshot taken half-way, the second half replays to the same events and hash.
    let mut c = Engine::new(Mix::Random.market_config()).unwrap();
    let first = run(&mut c, &stream[..10_000]);
    let mut bytes = Vec::new();
    c.encode_snapshot(&mut bytes);
    let mut d = Engine::decode_snapshot(&bytes).unwrap();
    let second = run(&mut d, &stream[10_000..]);
    assert_eq!([first, second].concat(), ea);
    assert_eq!(d.state_hash(), a.state_hash());
}
