//! Crash test: a child process journals a long random stream and is killed with SIGKILL at
//! random moments. After each kill, recovery must equal a clean replay of the recovered
//! prefix, that prefix must hold every command the child reported durable, and the journal's
//! records must be exactly the commands of the stream. The child then restarts from the
//! recovered journal, so crashes also land in recovery, rotation and snapshot writing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command as Process, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{temp_dir, Stream};
use kestrel_matcher::journal::{read_all, recover, JournalConfig};
use kestrel_matcher::workload::{Mix, SplitMix64};
use kestrel_matcher::{Engine, NullSink};

const KILLS: usize = 25;
const SEED: u64 = 42;

#[test]
fn sigkill_at_random_points_loses_no_durable_command() {
    let dir = temp_dir("crash");
    let mut rng = SplitMix64::new(7);
    let mut stream = Stream::new(SEED);
    let mut generated = Vec::new();
    let mut reference = Engine::new(Mix::Random.market_config()).unwrap();
    let mut total_durable = 0u64;
    let mut torn_tails = 0;
    let mut from_snapshot = 0;
    for kill in 0..KILLS {
        let mut child = Process::new(env!("CARGO_BIN_EXE_crash_child"))
            .args([
                dir.to_str().unwrap(),
                &SEED.to_string(),
                "100000000",
                "1500",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("durable ") {
                    tx.send(n.parse::<u64>().unwrap()).ok();
                }
            }
        });
        std::thread::sleep(Duration::from_millis(rng.range(20, 180)));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        reader.join().unwrap();
        let reported = rx.try_iter().max().unwrap_or(0);
        total_durable = total_durable.max(reported);

        let config = JournalConfig::new(&dir);
        let recovered = recover(config, Mix::Random.market_config(), &mut NullSink)
            .unwrap_or_else(|e| panic!("kill {kill}: recovery failed: {e}"));
        assert!(
            recovered.last_seq >= total_durable,
            "kill {kill}: durable command lost: recovered {} < reported {}",
            recovered.last_seq,
            total_durable
        );
        while (generated.len() as u64) < recovered.last_seq {
            let (cmd, ts) = stream.next_cmd();
            reference.apply(&cmd, ts, &mut NullSink);
            generated.push((cmd, ts));
        }
        assert_eq!(
            recovered.engine.state_hash(),
            reference.state_hash(),
            "kill {kill}: recovered state differs from a clean replay of {} commands",
            recovered.last_seq
        );
        torn_tails += usize::from(recovered.truncated_bytes > 0);
        from_snapshot += usize::from(recovered.snapshot_seq > 0);
        drop(recovered);
        for rec in read_all(&dir).unwrap() {
            assert_eq!(
                (rec.command, rec.timestamp),
                generated[(rec.seq - 1) as usize]
            );
        }
    }
    eprintln!(
        "crash test: {KILLS} kills, {total_durable} commands durable, {torn_tails} torn tails truncated, {from_snapshot} recoveries from a snapshot"
    );
    assert!(
        total_durable > 1_500,
        "the child made too little progress: {total_durable}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
