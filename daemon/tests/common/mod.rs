//! Helpers shared by the integration tests: configs for simulated devices against a server
//! on loopback, the speech sample, and signal comparison.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use pivox::config::Config;

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
pub use pivox::audio::compare::best_correlation;

pub const TURN_LIMIT: Duration = Duration::from_secs(30);
