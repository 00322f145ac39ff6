//! `make bench`: N push-to-talk turns against the reference server over loopback, run by
//! the real `pivox` binary as a child process, for pivox's defaults and — in the same run —
//! for a baseline shaped like today's Python satellites (raw 16 kHz PCM in 64 ms chunks,
//! no pre-roll). Prints p50/p95 latencies, CPU, peak RSS and upstream bytes, and writes
//! `target/bench/summary.json`.
//!
//! The microphone plays the speech sample once per turn (a WAV the bench writes), and the
//! button is pressed 250 ms into each utterance, as a person pressing while starting to talk.
//!
//! A third run talks to the fake Home Assistant (`pivox_devtools::fake_ha`) with the same turns:
//! release → end-of-audio marker on the wire, `tts-end` → first reply sample handed to the
//! speaker (download of the MP3 over loopback, decode, resample, jitter buffer; every answer
//! differs, so none comes from the reply cache), CPU seconds per turn and peak RSS. It goes
//! under `"homeassistant"` in the summary.
//!
//! A fourth run is pivox as an ESPHome-API satellite (Noise-encrypted, as Home Assistant
//! provisions it), with the stand-in HA client (`pivox_devtools::fake_esphome`) connected to it
//! and answering every run with the same MP3 at a new URL: the same figures, and its idle cost,
//! under `"esphome"`.
//!
//! Last, the idle cost: each of pivox and the baseline connected to the reference server and
//! left alone (no press) for `--idle SECONDS` (default 10): CPU time per minute idle and
//! wake-ups per second (context switches summed over the daemon's threads, from
//! `/proc/PID/task/*/status`), with the threads that wake most. Under `"idle"` in each
//! variant's summary.
//!
//! Then the soak (`--soak TURNS`, default 300; 0 skips it): that many short turns in one run,
//! with memory, open files and threads sampled every second (soak.rs). Under `"soak"`.

mod esphome;
mod idle;
mod instructions;
mod opus;
mod report;
mod soak;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use idle::{measure_idle, wait_with_usage};
use pivox::audio::CODEC_RATE;
use pivox::metrics::TurnMetrics;
use pivox::session::Outcome;
use pivox_devtools::demo::SPEECH_WAV;
use pivox_devtools::fake_ha::{self, FakeHaOptions};
use pivox_devtools::server::{self, ServerOptions};
use pivox_hal::sim::WavMicrophone;
use report::{percentiles, print_homeassistant, print_idle, print_table, write_summary};

/// Seconds between the starts of consecutive turns: speech, reply, and a pause.
const PERIOD: f64 = 5.0;
const PRESS_AFTER: f64 = 0.25;

struct Variant {
    name: &'static str,
    audio: &'static str,
}

const VARIANTS: [Variant; 2] = [
    Variant { name: "pivox", audio: "codecs = [\"opus\"]\nframe_ms = 20\npreroll_ms = 300\n" },
    Variant { name: "baseline", audio: "codecs = [\"pcm\"]\nframe_ms = 64\npreroll_ms = 0\n" },
];

#[derive(Debug)]
struct Figures {
    press_to_first_frame: (f64, f64),
    release_to_end: (f64, f64),
    reply_to_first_sample: (f64, f64),
    /// Home Assistant: tts-end → first sample.
    announced_to_first_sample: (f64, f64),
    upstream_bytes_per_s: f64,
    cpu_s_per_audio_s: f64,
    cpu_s_per_turn: f64,
    peak_rss_kb: i64,
    turns: usize,
    /// Connected and idle; `None` with `--idle 0`.
    idle: Option<Idle>,
}

/// What the daemon costs while connected and waiting for a press.
#[derive(Debug)]
struct Idle {
    seconds: f64,
    cpu_ms_per_min: f64,
    /// Voluntary and involuntary context switches of all threads, per second.
    wakeups_per_s: f64,
    /// The same by thread name (tokio's workers share one), busiest first.
    threads: Vec<(String, f64)>,
    /// Resident memory at the end, in KiB.
    memory: Memory,
}

/// Resident memory of the daemon, in KiB, from `/proc/PID/smaps`: what RSS is made of.
#[derive(Debug, Default)]
struct Memory {
    rss: u64,
    /// Private memory: heap, stacks, buffers (the daemon's own).
    anonymous: u64,
    /// Pages of the `pivox` executable mapped in.
    binary: u64,
    /// Pages of shared libraries (libc, libm, libasound…), shared with every process using them.
    libraries: u64,
    /// Proportional set size: shared pages divided among the processes that map them.
    pss: u64,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("pivox-bench: {e}");
        std::process::exit(1);
    }
}

/// What the command line asks for.
struct Args {
    turns: usize,
    out: PathBuf,
    idle: Duration,
    soak_turns: usize,
    /// Runs under callgrind for the instruction count (0: none).
    instruction_runs: usize,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        turns: 10,
        out: PathBuf::from("target/bench/summary.json"),
        idle: Duration::from_secs(10),
        soak_turns: 300,
        instruction_runs: 3,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--turns" => {
                parsed.turns = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or("--turns takes a positive number")?
            }
            "--out" => parsed.out = args.next().map(PathBuf::from).ok_or("--out takes a path")?,
            "--idle" => {
                parsed.idle = args
                    .next()
                    .and_then(|s| s.parse::<f64>().ok())
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .ok_or("--idle takes seconds (0: no idle measurement)")?
            }
            "--soak" => {
                parsed.soak_turns = args.next().and_then(|n| n.parse().ok()).ok_or("--soak takes a number of turns")?
            }
            "--instructions" => {
                parsed.instruction_runs =
                    args.next().and_then(|n| n.parse().ok()).ok_or("--instructions takes a number of runs")?
            }
            other => {
                return Err(format!(
                    "unknown argument `{other}` (use --turns N, --out FILE, --idle SECONDS, --soak TURNS, \
                     --instructions RUNS)"
                ));
            }
        }
    }
    Ok(parsed)
}

/// The reference server (echo, and one with a fixed reply for the soak) and the fake Home
/// Assistant, on a thread of their own while this one waits for each child.
struct Servers {
    addr: std::net::SocketAddr,
    ha_url: String,
    soak_addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<Result<(), String>>,
}

impl Servers {
    fn start() -> Result<Self, String> {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || -> Result<(), String> {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            runtime.block_on(async move {
                let loopback = ([127, 0, 0, 1], 0).into();
                let server = server::start(ServerOptions::echo(loopback)).await.map_err(|e| e.to_string())?;
                let mut ha = FakeHaOptions::new(loopback, HA_TOKEN, REPLY_MP3.to_vec());
                ha.vary_answer = true;
                let ha = fake_ha::start(ha).await.map_err(|e| e.to_string())?;
                let reply = server::Reply::Fixed(soak::reply().into());
                let soak_server = server::start(ServerOptions { reply, ..ServerOptions::echo(loopback) })
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = addr_tx.send((server.addr, ha.url(), soak_server.addr));
                let _ = stop_rx.await;
                let violations = ha.report().violations;
                server.kill().await;
                soak_server.kill().await;
                ha.stop().await;
                if violations.is_empty() { Ok(()) } else { Err(format!("the fake HA saw violations: {violations:?}")) }
            })
        });
        let (addr, ha_url, soak_addr) = addr_rx.recv().map_err(|_| "the servers did not start".to_string())?;
        Ok(Self { addr, ha_url, soak_addr, stop, thread })
    }

    fn stop(self) -> Result<(), String> {
        let _ = self.stop.send(());
        self.thread.join().map_err(|_| "the server thread panicked".to_string())?
    }
}

fn run() -> Result<(), String> {
    let Args { turns, out, idle, soak_turns, instruction_runs } = parse_args(std::env::args().skip(1))?;
    let pivox = std::env::current_exe().map_err(|e| e.to_string())?.with_file_name("pivox");
    if !pivox.is_file() {
        return Err(format!("{} not found: build it first (cargo build --release -p pivox)", pivox.display()));
    }
    let dir = std::env::temp_dir().join(format!("pivox-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (mic, script) = write_microphone(&dir, turns)?;
    let opus = opus::measure(&speech()?)?;
    let servers = Servers::start()?;
    let addr = servers.addr;
    println!("pivox-bench: {turns} turns per variant against the reference server on ws://{addr}");

    let server = format!("url = \"ws://{addr}/\"\n");
    // pivox's defaults against the reference server; each run below changes what it needs.
    let defaults = Setup {
        pivox: &pivox,
        dir: &dir,
        name: VARIANTS[0].name,
        server: &server,
        audio: VARIANTS[0].audio,
        mic: &mic,
    };
    let mut results = Vec::new();
    for variant in &VARIANTS {
        let setup = Setup { name: variant.name, audio: variant.audio, ..defaults };
        let figures = measure(&setup, &script, turns)?;
        results.push((variant.name, figures));
    }
    if !idle.is_zero() {
        for (variant, (_, figures)) in VARIANTS.iter().zip(&mut results) {
            let setup = Setup { name: variant.name, audio: variant.audio, ..defaults };
            figures.idle = Some(measure_idle(&setup, idle)?);
        }
    }
    let ha_url = &servers.ha_url;
    println!("pivox-bench: {turns} turns against the fake Home Assistant at {ha_url}");
    let ha_server = format!("kind = \"homeassistant\"\nurl = \"{ha_url}\"\ntoken = \"{HA_TOKEN}\"\n");
    let setup = Setup { name: "homeassistant", server: &ha_server, ..defaults };
    let ha = measure(&setup, &script, turns)?;
    println!("pivox-bench: {turns} turns as an ESPHome satellite of the stand-in HA client");
    let esphome = esphome::measure(&pivox, &dir, &mic, &script, turns, idle)?;
    let soaked = match soak_turns {
        0 => None,
        n => Some(soak::run(&pivox, &dir, &format!("ws://{}/", servers.soak_addr), &speech()?, n)?),
    };
    let counted = match instruction_runs {
        0 => None,
        runs => {
            let setup = Setup { name: "callgrind", ..defaults };
            let config = setup.config("", &script)?;
            Some(instructions::measure(&pivox, &dir, &config, turns.min(INSTRUCTION_TURNS), runs)?)
        }
    };
    servers.stop()?;
    print_table(&results);
    print_idle(&results);
    print_homeassistant("Home Assistant (fake, loopback)", "tts-end", &ha);
    print_homeassistant("ESPHome satellite (stand-in HA client)", "TTS_END", &esphome);
    if let Some(soaked) = &soaked {
        soak::print(soaked);
    }
    opus::print(&opus, pivox::audio::codec::DEFAULT_COMPLEXITY);
    let mut extra = serde_json::Map::new();
    if let Some(counted) = &counted {
        instructions::print(counted);
        extra.insert("instructions".into(), instructions::summary(counted));
    }
    extra.insert("opus".into(), opus::summary(&opus, pivox::audio::codec::DEFAULT_COMPLEXITY));
    write_summary(&out, &results, &ha, &esphome, soaked.as_ref(), extra)?;
    println!("\nwritten: {}", out.display());
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

const HA_TOKEN: &str = "bench-token";
/// Turns per run under callgrind: a few are enough for a per-turn figure, and each is 5 s.
const INSTRUCTION_TURNS: usize = 4;
/// The reply the fake Home Assistant speaks: 1.76 s of espeak-ng speech as 32 kbit/s MP3.
pub(crate) const REPLY_MP3: &[u8] = include_bytes!("../../../../daemon/tests/fixtures/reply.mp3");

/// The bundled speech sample.
fn speech() -> Result<Vec<i16>, String> {
    WavMicrophone::decode(SPEECH_WAV, "speech.wav", CODEC_RATE).map_err(|e| e.to_string())
}

/// A WAV with the speech sample at the start of every period, and the matching button script.
fn write_microphone(dir: &Path, turns: usize) -> Result<(PathBuf, String), String> {
    let speech = speech()?;
    let period = (PERIOD * f64::from(CODEC_RATE)) as usize;
    let mut samples = vec![0i16; period * turns];
    for t in 0..turns {
        samples[t * period..t * period + speech.len()].copy_from_slice(&speech);
    }
    let path = dir.join("mic.wav");
    pivox_hal::sim::write_wav(&path, CODEC_RATE, &samples).map_err(|e| e.to_string())?;
    let speech_s = speech.len() as f64 / f64::from(CODEC_RATE);
    let script = (0..turns)
        .map(|t| {
            let start = t as f64 * PERIOD;
            format!("press {:.3}, release {:.3}", start + PRESS_AFTER, start + speech_s + 0.05)
        })
        .collect::<Vec<_>>()
        .join(", ");
    Ok((path, script))
}

/// One daemon set-up the bench runs: the binary, the folder for its files, its name in the
/// figures, and its config's server and audio sections and microphone.
struct Setup<'a> {
    pivox: &'a Path,
    dir: &'a Path,
    name: &'a str,
    server: &'a str,
    audio: &'a str,
    mic: &'a Path,
}

impl Setup<'_> {
    /// Writes the config with the button `script` as NAME`suffix`.toml; returns its path.
    fn config(&self, suffix: &str, script: &str) -> Result<PathBuf, String> {
        let path = self.dir.join(format!("{}{suffix}.toml", self.name));
        let text = config_text(self.server, self.audio, self.mic, script);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }
}

fn measure(setup: &Setup<'_>, script: &str, turns: usize) -> Result<Figures, String> {
    let Setup { pivox, dir, name, .. } = *setup;
    let config = setup.config("", script)?;
    let metrics = dir.join(format!("{name}.jsonl"));
    println!("  running {name} ({:.0} s)...", turns as f64 * PERIOD);
    let started = Instant::now();
    let child = spawn_pivox(pivox, &config, &metrics, &["--turns", &turns.to_string()])?;
    let usage = wait_with_usage(child.id() as i32)?;
    let wall = started.elapsed();
    let lines = std::fs::read_to_string(&metrics).map_err(|e| format!("{}: {e}", metrics.display()))?;
    let turns: Vec<TurnMetrics> = lines
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", metrics.display()))?;
    let completed: Vec<&TurnMetrics> = turns.iter().filter(|t| t.outcome == Outcome::Completed).collect();
    if completed.is_empty() {
        return Err(format!("{name}: no completed turn"));
    }
    let pick = |f: fn(&TurnMetrics) -> Option<f64>| percentiles(completed.iter().filter_map(|t| f(t)).collect());
    let bytes_up: u64 = completed.iter().map(|t| t.bytes_up).sum();
    let audio_s: f64 = completed.iter().map(|t| t.audio_sent_ms / 1000.0).sum();
    Ok(Figures {
        press_to_first_frame: pick(|t| t.press_to_first_frame_ms),
        release_to_end: pick(|t| t.release_to_end_ms),
        reply_to_first_sample: pick(|t| t.reply_to_first_sample_ms),
        announced_to_first_sample: pick(|t| t.announced_to_first_sample_ms),
        upstream_bytes_per_s: bytes_up as f64 / audio_s,
        cpu_s_per_audio_s: usage.0.as_secs_f64() / wall.as_secs_f64(),
        cpu_s_per_turn: usage.0.as_secs_f64() / completed.len() as f64,
        peak_rss_kb: usage.1,
        turns: completed.len(),
        idle: None,
    })
}

/// `pivox run` with `config`, its turns' figures going to `metrics`, warnings only on stderr.
fn spawn_pivox(pivox: &Path, config: &Path, metrics: &Path, more: &[&str]) -> Result<std::process::Child, String> {
    std::process::Command::new(pivox)
        .arg("run")
        .args(more)
        .arg("--config")
        .arg(config)
        .arg("--metrics")
        .arg(metrics)
        .env("PIVOX_LOG", "warn")
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", pivox.display()))
}

/// Sim devices, `server` and `audio`, and the button `script`, as a config file's text.
fn config_text(server: &str, audio: &str, mic: &Path, script: &str) -> String {
    format!(
        "[server]\n{server}[audio]\n{audio}earcon_volume = 0.3\n[microphone]\nbackend = \"sim\"\ndevice = {:?}\n\
         [speaker]\nbackend = \"sim\"\n[button]\nbackend = \"sim\"\ndevice = \"{script}\"\n[led]\nbackend = \"sim\"\n",
        mic.display().to_string()
    )
}
