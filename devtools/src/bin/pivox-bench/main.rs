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
//! Last, the idle cost: each of pivox and the baseline connected to the reference server and
//! left alone (no press) for `--idle SECONDS` (default 10): CPU time per minute idle and
//! wake-ups per second (context switches summed over the daemon's threads, from
//! `/proc/PID/task/*/status`), with the threads that wake most. Under `"idle"` in each
//! variant's summary.
//!
//! Then the soak (`--soak TURNS`, default 300; 0 skips it): that many short turns in one run,
//! with memory, open files and threads sampled every second (soak.rs). Under `"soak"`.

mod soak;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pivox::metrics::TurnMetrics;
use pivox_devtools::demo::SPEECH_WAV;
use pivox_devtools::fake_ha::{self, FakeHaOptions};
use pivox_devtools::server::{self, ServerOptions};
use serde_json::json;

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
}

fn main() {
    if let Err(e) = run() {
        eprintln!("pivox-bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut turns = 10usize;
    let mut out = PathBuf::from("target/bench/summary.json");
    let mut idle = Duration::from_secs(10);
    let mut soak_turns = 300usize;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--turns" => {
                turns = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or("--turns takes a positive number")?
            }
            "--out" => out = args.next().map(PathBuf::from).ok_or("--out takes a path")?,
            "--idle" => {
                idle = args
                    .next()
                    .and_then(|s| s.parse::<f64>().ok())
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .ok_or("--idle takes seconds (0: no idle measurement)")?
            }
            "--soak" => {
                soak_turns = args.next().and_then(|n| n.parse().ok()).ok_or("--soak takes a number of turns")?
            }
            other => {
                return Err(format!(
                    "unknown argument `{other}` (use --turns N, --out FILE, --idle SECONDS, --soak TURNS)"
                ));
            }
        }
    }
    let pivox = std::env::current_exe().map_err(|e| e.to_string())?.with_file_name("pivox");
    if !pivox.is_file() {
        return Err(format!("{} not found: build it first (cargo build --release -p pivox)", pivox.display()));
    }
    let dir = std::env::temp_dir().join(format!("pivox-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (mic, script) = write_microphone(&dir, turns)?;

    // The reference server and the fake Home Assistant run on their own thread while this
    // one waits for each child.
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_thread = std::thread::spawn(move || -> Result<(), String> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        runtime.block_on(async move {
            let loopback = ([127, 0, 0, 1], 0).into();
            let server = server::start(ServerOptions::echo(loopback)).await.map_err(|e| e.to_string())?;
            let mut ha = FakeHaOptions::new(loopback, HA_TOKEN, REPLY_MP3.to_vec());
            ha.vary_answer = true;
            let ha = fake_ha::start(ha).await.map_err(|e| e.to_string())?;
            let fixed =
                ServerOptions { reply: server::Reply::Fixed(soak::reply().into()), ..ServerOptions::echo(loopback) };
            let soak_server = server::start(fixed).await.map_err(|e| e.to_string())?;
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
    println!("pivox-bench: {turns} turns per variant against the reference server on ws://{addr}");

    let mut results = Vec::new();
    for variant in &VARIANTS {
        let server = format!("url = \"ws://{addr}/\"\n");
        let figures = measure(&pivox, &dir, variant.name, &server, variant.audio, &mic, &script, turns)?;
        results.push((variant.name, figures));
    }
    if !idle.is_zero() {
        for (variant, (_, figures)) in VARIANTS.iter().zip(&mut results) {
            let server = format!("url = \"ws://{addr}/\"\n");
            figures.idle = Some(measure_idle(&pivox, &dir, variant.name, &server, variant.audio, &mic, idle)?);
        }
    }
    println!("pivox-bench: {turns} turns against the fake Home Assistant at {ha_url}");
    let server = format!("kind = \"homeassistant\"\nurl = \"{ha_url}\"\ntoken = \"{HA_TOKEN}\"\n");
    let ha = measure(&pivox, &dir, "homeassistant", &server, VARIANTS[0].audio, &mic, &script, turns)?;
    let soaked = if soak_turns > 0 {
        Some(soak::run(&pivox, &dir, &format!("ws://{soak_addr}/"), &speech()?, soak_turns)?)
    } else {
        None
    };
    let _ = stop_tx.send(());
    server_thread.join().map_err(|_| "the server thread panicked".to_string())??;
    print_table(&results);
    print_idle(&results);
    print_homeassistant(&ha);
    if let Some(soaked) = &soaked {
        soak::print(soaked);
    }
    write_summary(&out, &results, &ha, soaked.as_ref())?;
    println!("\nwritten: {}", out.display());
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

const HA_TOKEN: &str = "bench-token";
/// The reply the fake Home Assistant speaks: 1.76 s of espeak-ng speech as 32 kbit/s MP3.
const REPLY_MP3: &[u8] = include_bytes!("../../../../daemon/tests/fixtures/reply.mp3");

/// The bundled speech sample.
fn speech() -> Result<Vec<i16>, String> {
    hound::WavReader::new(SPEECH_WAV)
        .map_err(|e| e.to_string())?
        .into_samples()
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())
}

/// Writes 16 kHz mono samples as a WAV file.
fn write_wav(path: &Path, samples: &[i16]) -> Result<(), String> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).map_err(|e| e.to_string())?;
    samples.iter().try_for_each(|s| w.write_sample(*s)).map_err(|e| e.to_string())?;
    w.finalize().map_err(|e| e.to_string())
}

/// A WAV with the speech sample at the start of every period, and the matching button script.
fn write_microphone(dir: &Path, turns: usize) -> Result<(PathBuf, String), String> {
    let speech = speech()?;
    let period = (PERIOD * 16_000.0) as usize;
    let mut samples = vec![0i16; period * turns];
    for t in 0..turns {
        samples[t * period..t * period + speech.len()].copy_from_slice(&speech);
    }
    let path = dir.join("mic.wav");
    write_wav(&path, &samples)?;
    let speech_s = speech.len() as f64 / 16_000.0;
    let script = (0..turns)
        .map(|t| {
            let start = t as f64 * PERIOD;
            format!("press {:.3}, release {:.3}", start + PRESS_AFTER, start + speech_s + 0.05)
        })
        .collect::<Vec<_>>()
        .join(", ");
    Ok((path, script))
}

#[allow(clippy::too_many_arguments)]
fn measure(
    pivox: &Path,
    dir: &Path,
    name: &str,
    server: &str,
    audio: &str,
    mic: &Path,
    script: &str,
    turns: usize,
) -> Result<Figures, String> {
    let config = dir.join(format!("{name}.toml"));
    let metrics = dir.join(format!("{name}.jsonl"));
    std::fs::write(&config, config_text(server, audio, mic, script)).map_err(|e| e.to_string())?;
    println!("  running {name} ({:.0} s)...", turns as f64 * PERIOD);
    let started = Instant::now();
    let child = std::process::Command::new(pivox)
        .args(["run", "--turns", &turns.to_string(), "--config"])
        .arg(&config)
        .arg("--metrics")
        .arg(&metrics)
        .env("PIVOX_LOG", "warn")
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", pivox.display()))?;
    let usage = wait_with_usage(child.id() as i32)?;
    let wall = started.elapsed();
    let lines = std::fs::read_to_string(&metrics).map_err(|e| format!("{}: {e}", metrics.display()))?;
    let turns: Vec<TurnMetrics> = lines
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", metrics.display()))?;
    let completed: Vec<&TurnMetrics> = turns.iter().filter(|t| t.outcome == "Completed").collect();
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

/// Sim devices, `server` and `audio`, and the button `script`, as a config file's text.
fn config_text(server: &str, audio: &str, mic: &Path, script: &str) -> String {
    format!(
        "[server]\n{server}[audio]\n{audio}earcon_volume = 0.3\n[microphone]\nbackend = \"sim\"\ndevice = {:?}\n\
         [speaker]\nbackend = \"sim\"\n[button]\nbackend = \"sim\"\ndevice = \"{script}\"\n[led]\nbackend = \"sim\"\n",
        mic.display().to_string()
    )
}

/// Runs the daemon with a button that is never pressed and, once it is connected (its log says
/// so) and has settled, measures its CPU time and context switches over `idle`.
fn measure_idle(
    pivox: &Path,
    dir: &Path,
    name: &str,
    server: &str,
    audio: &str,
    mic: &Path,
    idle: Duration,
) -> Result<Idle, String> {
    let config = dir.join(format!("{name}-idle.toml"));
    std::fs::write(&config, config_text(server, audio, mic, "")).map_err(|e| e.to_string())?;
    let log_path = dir.join(format!("{name}-idle.log"));
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    println!("  {name} connected and idle ({:.0} s)...", idle.as_secs_f64());
    let mut child = std::process::Command::new(pivox)
        .args(["run", "--config"])
        .arg(&config)
        .env("PIVOX_LOG", "info")
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", pivox.display()))?;
    let pid = child.id();
    let measured = (|| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !read_bounded(&log_path)?.contains("ready: connected to") {
            if Instant::now() > deadline || child.try_wait().map_err(|e| e.to_string())?.is_some() {
                return Err(format!("{name}: not connected within 10 s: {}", read_bounded(&log_path)?));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The connection's earcon and first pre-roll frames are not idle.
        std::thread::sleep(Duration::from_secs(1));
        let before = ProcSample::take(pid)?;
        std::thread::sleep(idle);
        let after = ProcSample::take(pid)?;
        Ok(after.since(&before))
    })();
    // SAFETY: kill(2) on our own child, which has not been waited for yet.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let status = child.wait().map_err(|e| e.to_string())?;
    let idle = measured?;
    if !status.success() {
        return Err(format!("{name}: pivox run exited with {status} after SIGTERM"));
    }
    Ok(idle)
}

/// A whole small file (a /proc entry, the idle run's log), read at most 64 KiB of.
fn read_bounded(path: &Path) -> Result<String, String> {
    pivox::files::read_text_bounded(path, 64 * 1024).map_err(|e| pivox::files::in_words(path, &e))
}

/// A process's CPU time and each thread's context switches at one instant.
struct ProcSample {
    at: Instant,
    cpu: Duration,
    /// Thread id → (name, voluntary + involuntary context switches).
    switches: BTreeMap<u32, (String, u64)>,
}

impl ProcSample {
    /// CPU time is the threads' `schedstat` run time (nanoseconds) where the kernel keeps it,
    /// else `/proc/PID/stat`'s utime + stime (clock ticks, 10 ms).
    fn take(pid: u32) -> Result<Self, String> {
        let at = Instant::now();
        let tasks = Path::new("/proc").join(pid.to_string()).join("task");
        let mut switches = BTreeMap::new();
        let mut run_ns: Option<u64> = Some(0);
        for entry in std::fs::read_dir(&tasks).map_err(|e| format!("{}: {e}", tasks.display()))? {
            let dir = entry.map_err(|e| e.to_string())?.path();
            let Some(tid) = dir.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse().ok()) else { continue };
            // A thread may end between the listing and the read: it is then left out.
            let Ok(status) = read_bounded(&dir.join("status")) else { continue };
            let field = |key: &str| status.lines().find_map(|l| l.strip_prefix(key)).map(str::trim);
            let count = |key: &str| field(key).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            let name = field("Name:").unwrap_or("?").to_string();
            switches.insert(tid, (name, count("voluntary_ctxt_switches:") + count("nonvoluntary_ctxt_switches:")));
            let ns: Option<u64> =
                read_bounded(&dir.join("schedstat")).ok().and_then(|s| s.split_whitespace().next()?.parse().ok());
            run_ns = run_ns.zip(ns).map(|(a, b)| a + b);
        }
        let cpu = match run_ns {
            Some(ns) => Duration::from_nanos(ns),
            None => {
                let stat = read_bounded(&Path::new("/proc").join(pid.to_string()).join("stat"))?;
                // Fields after the command name (which may hold spaces): utime and stime are
                // the 12th and 13th.
                let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
                let ticks: u64 = rest.split_whitespace().skip(11).take(2).filter_map(|t| t.parse::<u64>().ok()).sum();
                // SAFETY: sysconf has no preconditions.
                let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
                Duration::from_nanos(ticks * 1_000_000_000 / hz)
            }
        };
        Ok(Self { at, cpu, switches })
    }

    /// The cost between `before` and this sample. A thread started in between counts from zero.
    fn since(&self, before: &ProcSample) -> Idle {
        let seconds = (self.at - before.at).as_secs_f64();
        let mut by_name: BTreeMap<&str, u64> = BTreeMap::new();
        for (tid, (name, now)) in &self.switches {
            let then = before.switches.get(tid).map_or(0, |(_, n)| *n);
            *by_name.entry(name).or_default() += now.saturating_sub(then);
        }
        let total: u64 = by_name.values().sum();
        let mut threads: Vec<(String, f64)> =
            by_name.into_iter().map(|(name, n)| (name.to_string(), n as f64 / seconds)).collect();
        threads.sort_by(|a, b| b.1.total_cmp(&a.1));
        Idle {
            seconds,
            cpu_ms_per_min: self.cpu.saturating_sub(before.cpu).as_secs_f64() * 1000.0 * 60.0 / seconds,
            wakeups_per_s: total as f64 / seconds,
            threads,
        }
    }
}

/// Waits for `pid` and returns its CPU time (user + system) and peak RSS in KiB.
fn wait_with_usage(pid: i32) -> Result<(Duration, i64), String> {
    let mut status = 0;
    // SAFETY: rusage is plain data, fully written by wait4 on success.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child; both pointers are valid for the call.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if waited != pid {
        return Err(format!("wait4 failed: {}", std::io::Error::last_os_error()));
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!("pivox run exited with status {status}"));
    }
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    Ok((tv(usage.ru_utime) + tv(usage.ru_stime), usage.ru_maxrss))
}

/// (p50, p95) by nearest rank.
fn percentiles(mut v: Vec<f64>) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    (rank(0.50), rank(0.95))
}

fn print_table(results: &[(&str, Figures)]) {
    println!("\n{:<44} {:>16} {:>16}", "figure", results[0].0, results[1].0);
    let row = |name: &str, f: &dyn Fn(&Figures) -> String| {
        println!("{name:<44} {:>16} {:>16}", f(&results[0].1), f(&results[1].1));
    };
    row("turns completed", &|f| f.turns.to_string());
    row("press → first frame on the wire p50/p95 ms", &|f| {
        format!("{:.2}/{:.2}", f.press_to_first_frame.0, f.press_to_first_frame.1)
    });
    row("release → end message on the wire p50/p95 ms", &|f| {
        format!("{:.2}/{:.2}", f.release_to_end.0, f.release_to_end.1)
    });
    row("first reply packet → first sample p50/p95 ms", &|f| {
        format!("{:.2}/{:.2}", f.reply_to_first_sample.0, f.reply_to_first_sample.1)
    });
    row("upstream bytes/s (WebSocket framing incl.)", &|f| format!("{:.0}", f.upstream_bytes_per_s));
    row("CPU s per s of audio", &|f| format!("{:.4}", f.cpu_s_per_audio_s));
    row("peak RSS KiB", &|f| f.peak_rss_kb.to_string());
}

fn print_idle(results: &[(&str, Figures)]) {
    let (Some(a), Some(b)) = (&results[0].1.idle, &results[1].1.idle) else { return };
    println!(
        "\n{:<44} {:>16} {:>16}",
        format!("connected, idle {:.0} s (no press)", a.seconds),
        results[0].0,
        results[1].0
    );
    let row = |name: &str, a: String, b: String| println!("{name:<44} {a:>16} {b:>16}");
    row("CPU ms per minute idle", format!("{:.1}", a.cpu_ms_per_min), format!("{:.1}", b.cpu_ms_per_min));
    row("wake-ups per second (all threads)", format!("{:.1}", a.wakeups_per_s), format!("{:.1}", b.wakeups_per_s));
    let per_s = |idle: &Idle, name: &str| idle.threads.iter().find(|(n, _)| n == name).map_or(0.0, |(_, w)| *w);
    for (name, _) in a.threads.iter().filter(|(_, w)| *w >= 0.5) {
        row(&format!("  {name}"), format!("{:.1}", per_s(a, name)), format!("{:.1}", per_s(b, name)));
    }
}

fn idle_summary(idle: &Option<Idle>) -> serde_json::Value {
    match idle {
        None => serde_json::Value::Null,
        Some(idle) => json!({
            "seconds": idle.seconds,
            "cpu_ms_per_min": idle.cpu_ms_per_min,
            "wakeups_per_s": idle.wakeups_per_s,
            "wakeups_per_s_by_thread": idle.threads.iter().map(|(n, w)| (n.clone(), json!(w))).collect::<serde_json::Map<_, _>>(),
        }),
    }
}

fn print_homeassistant(f: &Figures) {
    println!("\n{:<44} {:>16}", "Home Assistant (fake, loopback)", "pivox");
    let row = |name: &str, value: String| println!("{name:<44} {value:>16}");
    row("turns completed", f.turns.to_string());
    row("release → end marker on the wire p50/p95 ms", format!("{:.2}/{:.2}", f.release_to_end.0, f.release_to_end.1));
    row(
        "tts-end → first sample p50/p95 ms",
        format!("{:.2}/{:.2}", f.announced_to_first_sample.0, f.announced_to_first_sample.1),
    );
    row("CPU s per turn", format!("{:.4}", f.cpu_s_per_turn));
    row("peak RSS KiB", f.peak_rss_kb.to_string());
}

fn homeassistant_summary(f: &Figures) -> serde_json::Value {
    json!({
        "turns": f.turns,
        "release_to_end_marker_ms_p50": f.release_to_end.0,
        "release_to_end_marker_ms_p95": f.release_to_end.1,
        "tts_end_to_first_sample_ms_p50": f.announced_to_first_sample.0,
        "tts_end_to_first_sample_ms_p95": f.announced_to_first_sample.1,
        "cpu_s_per_turn": f.cpu_s_per_turn,
        "peak_rss_kb": f.peak_rss_kb,
    })
}

fn summary(f: &Figures) -> serde_json::Value {
    json!({
        "turns": f.turns,
        "press_to_first_frame_ms_p50": f.press_to_first_frame.0,
        "press_to_first_frame_ms_p95": f.press_to_first_frame.1,
        "release_to_end_ms_p50": f.release_to_end.0,
        "release_to_end_ms_p95": f.release_to_end.1,
        "reply_to_first_sample_ms_p50": f.reply_to_first_sample.0,
        "reply_to_first_sample_ms_p95": f.reply_to_first_sample.1,
        "upstream_bytes_per_s": f.upstream_bytes_per_s,
        "cpu_s_per_audio_s": f.cpu_s_per_audio_s,
        "peak_rss_kb": f.peak_rss_kb,
        "idle": idle_summary(&f.idle),
    })
}

fn write_summary(
    out: &Path,
    results: &[(&str, Figures)],
    homeassistant: &Figures,
    soaked: Option<&soak::Soak>,
) -> Result<(), String> {
    let mut doc = summary(&results[0].1);
    doc["baseline"] = summary(&results[1].1);
    doc["homeassistant"] = homeassistant_summary(homeassistant);
    doc["soak"] = soaked.map_or(serde_json::Value::Null, soak::summary);
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    std::fs::write(out, serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n")
        .map_err(|e| format!("{}: {e}", out.display()))
}
