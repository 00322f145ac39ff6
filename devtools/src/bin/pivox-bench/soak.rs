//! The soak: several hundred short turns in one `pivox run`, against a reference server that
//! answers every turn with the same short reply, with the daemon's resident memory, open files
//! and threads sampled every second. A leak shows as growth between the warmed-up figure (after
//! a tenth of the turns) and the last one; the run's own turn outcomes say whether every turn
//! still completed.
//!
//! The absolute RSS includes the simulated microphone's WAV, which it holds whole (48 KB per
//! soak turn, 14 MB for 300); the growth after warm-up is the figure that finds leaks.
//!
//! Each turn: the microphone plays half a second of the speech sample, the button is pressed
//! 100 ms into it and released at 600 ms, the reply (0.3 s) plays, and the next turn starts
//! [`PERIOD`] after the last.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pivox::audio::CODEC_RATE;
use pivox::metrics::TurnMetrics;
use pivox::session::Outcome;

/// Seconds from one soak turn's start to the next.
pub const PERIOD: f64 = 1.5;

/// What the soak saw.
#[derive(Debug)]
pub struct Soak {
    pub turns: usize,
    pub completed: usize,
    pub seconds: f64,
    /// (warmed up, last, highest) of each sampled figure.
    pub rss_kb: (u64, u64, u64),
    pub open_files: (u64, u64, u64),
    pub threads: (u64, u64, u64),
}

impl Soak {
    /// Resident memory gained from the warmed-up sample (a tenth into the run) to the last,
    /// per 100 turns: a leak's rate.
    pub fn growth_kb_per_100_turns(&self) -> f64 {
        let (warm, last, _) = self.rss_kb;
        (last as f64 - warm as f64) * 100.0 / (self.turns as f64 * 0.9).max(1.0)
    }
}

/// The reply the soak's server gives every turn: 0.3 s of a 440 Hz tone at 16 kHz.
pub fn reply() -> Vec<i16> {
    (0..4800)
        .map(|i| ((i as f64 * 440.0 * std::f64::consts::TAU / f64::from(CODEC_RATE)).sin() * 8000.0) as i16)
        .collect()
}

/// Runs `turns` soak turns of `pivox` against the server at `url`; files go in `dir`.
pub fn run(pivox: &Path, dir: &Path, url: &str, speech: &[i16], turns: usize) -> Result<Soak, String> {
    let (mic, script) = microphone(dir, speech, turns)?;
    let config = dir.join("soak.toml");
    let metrics = dir.join("soak.jsonl");
    let text = format!(
        "[server]\nurl = \"{url}\"\n[audio]\nearcon_volume = 0.3\n[microphone]\nbackend = \"sim\"\ndevice = {:?}\n\
         [speaker]\nbackend = \"sim\"\n[button]\nbackend = \"sim\"\ndevice = \"{script}\"\n[led]\nbackend = \"sim\"\n",
        mic.display().to_string()
    );
    std::fs::write(&config, text).map_err(|e| e.to_string())?;
    let length = turns as f64 * PERIOD;
    println!("  soak: {turns} turns in one run ({length:.0} s)...");
    let started = Instant::now();
    let mut child = super::spawn_pivox(pivox, &config, &metrics, &[])?;
    let pid = child.id();
    let mut samples = Vec::new();
    // One sample a second until a second after the last turn, then a clean stop.
    let end = started + Duration::from_secs_f64(length + 1.0);
    while Instant::now() < end {
        if child.try_wait().map_err(|e| e.to_string())?.is_some() {
            return Err("soak: pivox run exited before the last turn".into());
        }
        samples.push(sample(pid)?);
        std::thread::sleep(Duration::from_secs(1));
    }
    // SAFETY: kill(2) on our own child, which has not been waited for yet.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("soak: pivox run exited with {status} after SIGTERM"));
    }
    let outcomes = std::fs::read_to_string(&metrics).map_err(|e| format!("{}: {e}", metrics.display()))?;
    let completed = outcomes
        .lines()
        .filter_map(|l| serde_json::from_str::<TurnMetrics>(l).ok())
        .filter(|t| t.outcome == Outcome::Completed)
        .count();
    let figure = |f: fn(&Sample) -> u64| {
        let warm = samples.get(samples.len() / 10).map_or(0, f);
        (warm, samples.last().map_or(0, f), samples.iter().map(f).max().unwrap_or(0))
    };
    Ok(Soak {
        turns,
        completed,
        seconds: started.elapsed().as_secs_f64(),
        rss_kb: figure(|s| s.rss_kb),
        open_files: figure(|s| s.open_files),
        threads: figure(|s| s.threads),
    })
}

struct Sample {
    rss_kb: u64,
    open_files: u64,
    threads: u64,
}

fn sample(pid: u32) -> Result<Sample, String> {
    let proc = PathBuf::from("/proc").join(pid.to_string());
    let status = super::idle::read_bounded(&proc.join("status"))?;
    let field = |key: &str| {
        status.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.split_whitespace().next()?.parse().ok())
    };
    let open_files = std::fs::read_dir(proc.join("fd")).map_err(|e| format!("{}/fd: {e}", proc.display()))?.count();
    Ok(Sample {
        rss_kb: field("VmRSS:").unwrap_or(0),
        threads: field("Threads:").unwrap_or(0),
        open_files: open_files as u64,
    })
}

/// A WAV with half a second of speech at the start of every period, and the button script.
fn microphone(dir: &Path, speech: &[i16], turns: usize) -> Result<(PathBuf, String), String> {
    let period = (PERIOD * f64::from(CODEC_RATE)) as usize;
    let said = &speech[..speech.len().min(8_000)];
    let mut samples = vec![0i16; period * turns];
    for t in 0..turns {
        samples[t * period..t * period + said.len()].copy_from_slice(said);
    }
    let path = dir.join("soak-mic.wav");
    pivox_hal::sim::write_wav(&path, CODEC_RATE, &samples).map_err(|e| e.to_string())?;
    let script = (0..turns)
        .map(|t| {
            let start = t as f64 * PERIOD;
            format!("press {:.3}, release {:.3}", start + 0.1, start + 0.6)
        })
        .collect::<Vec<_>>()
        .join(", ");
    Ok((path, script))
}

pub fn print(s: &Soak) {
    println!("\n{:<44} {:>16}", format!("soak: {} turns in {:.0} s", s.turns, s.seconds), "pivox");
    let row = |name: &str, value: String| println!("{name:<44} {value:>16}");
    row("turns completed", s.completed.to_string());
    let triple = |(warm, last, max): (u64, u64, u64)| format!("{warm}/{last}/{max}");
    row("RSS KiB warmed-up/last/highest", triple(s.rss_kb));
    row("RSS growth KiB per 100 turns after warm-up", format!("{:.1}", s.growth_kb_per_100_turns()));
    row("open files warmed-up/last/highest", triple(s.open_files));
    row("threads warmed-up/last/highest", triple(s.threads));
}

pub fn summary(s: &Soak) -> serde_json::Value {
    let triple = |(warm, last, max): (u64, u64, u64)| serde_json::json!({"warm": warm, "last": last, "max": max});
    serde_json::json!({
        "turns": s.turns,
        "completed": s.completed,
        "seconds": s.seconds,
        "rss_kb": triple(s.rss_kb),
        "rss_growth_kb_per_100_turns": s.growth_kb_per_100_turns(),
        "open_files": triple(s.open_files),
        "threads": triple(s.threads),
    })
}
