//! A per-turn cost that does not depend on the machine's load: the instructions `pivox run`
//! executes, counted by valgrind's callgrind (an instruction counter, not a clock), over a
//! few pivox-protocol turns with the bench's defaults, repeated to show how stable the count
//! is. Per turn is the whole run's count divided by its turns: start-up, the idle time between
//! presses and shutdown included, as in the bench's CPU per turn. Under `"instructions"`.
//!
//! Timing still moves it a little: how many times a thread wakes depends on the scheduler.

use std::path::Path;
use std::process::Command;

use serde_json::json;

pub(crate) struct Count {
    pub turns: usize,
    /// Instructions per turn, one figure per run.
    pub per_turn: Vec<u64>,
}

/// `runs` runs of `pivox run --turns turns` with `config`, under callgrind.
pub(crate) fn measure(pivox: &Path, dir: &Path, config: &Path, turns: usize, runs: usize) -> Result<Count, String> {
    let mut per_turn = Vec::new();
    for run in 0..runs {
        let out = dir.join(format!("callgrind.{run}.out"));
        println!("  instructions: run {} of {runs} ({turns} turns under callgrind)...", run + 1);
        let status = Command::new("valgrind")
            .args(["--tool=callgrind", "--quiet"])
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(pivox)
            .args(["run", "--turns", &turns.to_string(), "--config"])
            .arg(config)
            .env("PIVOX_LOG", "warn")
            .status()
            .map_err(|e| format!("cannot run valgrind ({e}): `make bench` installs it (apt package valgrind)"))?;
        if !status.success() {
            return Err(format!("pivox under callgrind: {status}"));
        }
        let text = std::fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        let total = text
            .lines()
            .find_map(|line| line.strip_prefix("summary:").or_else(|| line.strip_prefix("totals:")))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .ok_or_else(|| format!("{}: no instruction total", out.display()))?;
        per_turn.push(total / turns as u64);
    }
    Ok(Count { turns, per_turn })
}

/// (min, max) spread as a fraction of the mean.
fn spread(count: &Count) -> (f64, f64) {
    let mean = count.per_turn.iter().sum::<u64>() as f64 / count.per_turn.len().max(1) as f64;
    let max = count.per_turn.iter().copied().max().unwrap_or(0) as f64;
    let min = count.per_turn.iter().copied().min().unwrap_or(0) as f64;
    (mean, (max - min) / mean)
}

pub(crate) fn print(count: &Count) {
    let (mean, range) = spread(count);
    let runs: Vec<String> = count.per_turn.iter().map(|n| format!("{:.2}", *n as f64 / 1e6)).collect();
    println!("\ninstructions per turn (callgrind, {} turns a run)", count.turns);
    println!("{:<44} {:>16}", "per run, millions", runs.join(" / "));
    println!("{:<44} {:>16.2}", "mean, millions", mean / 1e6);
    println!("{:<44} {:>15.2}%", "max − min, of the mean", range * 100.0);
}

pub(crate) fn summary(count: &Count) -> serde_json::Value {
    let (mean, range) = spread(count);
    json!({ "turns_per_run": count.turns, "per_turn": count.per_turn, "mean_per_turn": mean, "spread": range })
}
