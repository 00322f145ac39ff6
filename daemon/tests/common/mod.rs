//! Helpers shared by the integration tests: configs for simulated devices against a server
//! on loopback, the speech sample, and signal comparison.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pivox::config::Config;
use pivox::daemon::{self, Probes, RunOptions, RunReport};
use pivox_devtools::fake_ha::{self, FakeHaHandle, FakeHaOptions, Scenario};

pub fn speech_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/speech.wav")
}

pub fn speech() -> Vec<i16> {
    hound::WavReader::open(speech_path()).unwrap().into_samples().map(Result::unwrap).collect()
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pivox-test-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A config for simulated devices against `url`; `extra` is appended (later keys win by section).
pub fn config_text(url: &str, button: &str, extra: &str) -> String {
    format!(
        "[server]\nurl = \"{url}\"\nping_interval_ms = 200\nping_timeout_ms = 800\nreconnect_min_ms = 50\nreconnect_max_ms = 200\n\
         [microphone]\nbackend = \"sim\"\ndevice = {:?}\n[speaker]\nbackend = \"sim\"\n[button]\nbackend = \"sim\"\ndevice = \"{button}\"\n\
         [led]\nbackend = \"sim\"\n{extra}",
        speech_path().display().to_string()
    )
}

pub fn config(url: &str, button: &str, extra: &str) -> Config {
    let text = config_text(url, button, extra);
    Config::parse(&text, "test.toml", Path::new(".")).unwrap_or_else(|e| panic!("{e}\n{text}")).config
}

#[allow(unused_imports)] // Not every test file compares audio.
pub use pivox_devtools::compare::best_correlation;

pub const TURN_LIMIT: Duration = Duration::from_secs(30);

/// Runs the daemon in-process until `turns` turns completed, or for `limit` (then it is stopped
/// as by SIGTERM); simulated devices start 100 ms after the call. Returns what it did, the
/// simulated devices' probes and how long it ran.
pub async fn run_daemon(config: Config, turns: Option<u32>, limit: Duration) -> (RunReport, Probes, Duration) {
    let probes = Probes::default();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let options = RunOptions {
        turns,
        probes: probes.clone(),
        epoch: Instant::now() + Duration::from_millis(100),
        stop: Some(stop),
        ..Default::default()
    };
    let started = Instant::now();
    let daemon = tokio::spawn(daemon::run(config, options));
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(limit).await;
        let _ = stop_tx.send(true);
        // Keep the sender alive until the daemon has seen it.
        tokio::time::sleep(TURN_LIMIT).await;
    });
    let report = tokio::time::timeout(limit + TURN_LIMIT, daemon).await.expect("the daemon stopped in time");
    stopper.abort();
    (report.unwrap().unwrap(), probes, started.elapsed())
}

/// The MP3 reply the fake Home Assistant serves (what HA's TTS gives, ID3 tag included).
pub fn reply_mp3() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reply.mp3")).unwrap()
}

/// The fake Home Assistant on loopback, answering with the MP3 fixture, as `tweak` sets it up.
pub async fn ha_fake(token: &str, scenario: Scenario, tweak: impl FnOnce(&mut FakeHaOptions)) -> FakeHaHandle {
    let mut options = FakeHaOptions::new(([127, 0, 0, 1], 0).into(), token, reply_mp3());
    options.scenario = scenario;
    tweak(&mut options);
    fake_ha::start(options).await.unwrap()
}

/// Simulated devices against a Home Assistant at `url`; `server` lines go into `[server]`.
pub fn ha_config(url: &str, token: &str, button: &str, server: &str) -> Config {
    let text = config_text(url, button, "[audio]\nearcon_volume = 0.5\n")
        .replace("[server]\n", &format!("[server]\nkind = \"homeassistant\"\ntoken = \"{token}\"\n{server}"));
    Config::parse(&text, "test.toml", Path::new(".")).unwrap_or_else(|e| panic!("{e}\n{text}")).config
}
