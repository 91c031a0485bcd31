//! Crash-test child: recovers the journal in `<dir>`, then journals and applies the seeded
//! `Random` workload from where the journal ends, printing `durable <seq>` after every group
//! commit. The crash test kills it with SIGKILL at random moments.
//!
//! Usage: `crash_child <dir> <seed> <total commands> <snapshot every>`

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use kestrel_matcher::journal::{recover, JournalConfig};
use kestrel_matcher::workload::{Mix, Workload};
use kestrel_matcher::NullSink;

fn arg(args: &[String], i: usize) -> Result<u64, String> {
    args.get(i)
        .ok_or_else(|| format!("missing argument {i}"))?
        .parse()
        .map_err(|e| format!("argument {i}: {e}"))
}

fn run(args: &[String]) -> Result<(), String> {
    let dir = args
        .get(1)
        .ok_or("usage: crash_child <dir> <seed> <total> <snapshot every>")?;
    let seed = arg(args, 2)?;
    let total = arg(args, 3)?;
    let snapshot_every = arg(args, 4)?.max(1);
    let config = JournalConfig {
        dir: dir.into(),
        segment_bytes: 256 << 10,
        group_max_records: 64,
        group_window: Duration::from_millis(1),
    };
    let mut workload = Workload::new(Mix::Random, seed).map_err(|e| e.to_string())?;
    let market = Mix::Random.market_config();
    let mut recovered = recover(config, market, &mut NullSink).map_err(|e| e.to_string())?;
    let mut stream = workload.prefill().into_iter();
    let mut next = move |w: &mut Workload| stream.next().unwrap_or_else(|| w.next_command());
    for _ in 0..recovered.last_seq {
        next(&mut workload);
    }
    let mut out = std::io::stdout().lock();
    let mut seq = recovered.last_seq;
    while seq < total {
        seq = seq.saturating_add(1);
        let (cmd, now) = next(&mut workload);
        let writer = &mut recovered.writer;
        writer
            .append(seq, now, &cmd, Instant::now())
            .map_err(|e| e.to_string())?;
        recovered.engine.apply(&cmd, now, &mut NullSink);
        if let Some(durable) = writer
            .commit_if_due(Instant::now())
            .map_err(|e| e.to_string())?
        {
            writeln!(out, "durable {durable}").map_err(|e| e.to_string())?;
            out.flush().map_err(|e| e.to_string())?;
        }
        if seq.checked_rem(snapshot_every) == Some(0) {
            writer
                .snapshot(&recovered.engine, seq)
                .map_err(|e| e.to_string())?;
            writeln!(out, "durable {seq}").map_err(|e| e.to_string())?;
        }
    }
    let durable = recovered.writer.commit().map_err(|e| e.to_string())?;
    writeln!(out, "durable {durable}").map_err(|e| e.to_string())?;
    writeln!(out, "finished").map_err(|e| e.to_string())?;
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crash_child: {e}");
            ExitCode::FAILURE
        }
    }
}
