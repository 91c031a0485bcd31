//! Encodings: commands round-trip exactly; no byte string makes a decoder panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

mod common;

use common::Stream;
use kestrel_matcher::{Command, Engine};
use proptest::prelude::*;

#[test]
fn every_command_of_a_long_stream_round_trips() {
    let mut stream = Stream::new(3);
    for _ in 0..5_000 {
        let (cmd, _) = stream.next_cmd();
        let mut bytes = Vec::new();
        cmd.encode(&mut bytes);
        assert_eq!(Command::decode(&bytes).unwrap(), cmd);
        bytes.push(0);
        assert!(
            Command::decode(&bytes).is_err(),
            "trailing bytes must be refused"
        );
    }
}

/// A snapshot of a book built by 300 random commands (built once).
fn snapshot() -> &'static [u8] {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(|| {
        let mut engine =
            Engine::new(kestrel_matcher::workload::Mix::Random.market_config()).unwrap();
        let mut stream = Stream::new(5);
        for _ in 0..300 {
            let (cmd, ts) = stream.next_cmd();
            engine.apply(&cmd, ts, &mut kestrel_matcher::NullSink);
        }
        let mut bytes = Vec::new();
        engine.encode_snapshot(&mut bytes);
        bytes
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Command::decode(&bytes);
        let _ = Engine::decode_snapshot(&bytes);
    }

    #[test]
    fn damaged_snapshots_are_refused_or_consistent(flip in 0usize..4_000, bit in 0u8..8) {
        let mut bytes = snapshot().to_vec();
        let i = flip % bytes.len();
        bytes[i] ^= 1 << bit;
        // Either refused, or a book that satisfies every invariant the decoder checks.
        if let Ok(copy) = Engine::decode_snapshot(&bytes) {
            let mut again = Vec::new();
            copy.encode_snapshot(&mut again);
            prop_assert_eq!(Engine::decode_snapshot(&again).unwrap().state_hash(), copy.state_hash());
        }
    }
}
