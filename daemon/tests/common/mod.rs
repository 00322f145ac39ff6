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

/// Pearson correlation of `a` against `b` delayed by `delay` samples, over `a`'s length.
pub fn correlation(a: &[i16], b: &[i16], delay: usize) -> f64 {
    let n = a.len().min(b.len().saturating_sub(delay));
    let (x, y) = (&a[..n], &b[delay..delay + n]);
    let mean = |v: &[i16]| v.iter().map(|s| f64::from(*s)).sum::<f64>() / n as f64;
    let (mx, my) = (mean(x), mean(y));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (p, q) in x.iter().zip(y) {
        let (dp, dq) = (f64::from(*p) - mx, f64::from(*q) - my);
        sxy += dp * dq;
        sxx += dp * dp;
        syy += dq * dq;
    }
    sxy / (sxx * syy).sqrt()
}

/// The best correlation over delays up to `max_delay`, with that delay.
pub fn best_correlation(a: &[i16], b: &[i16], max_delay: usize) -> (f64, usize) {
    (0..=max_delay.min(b.len()))
        .map(|d| (correlation(a, b, d), d))
        .fold((f64::MIN, 0), |best, c| if c.0 > best.0 { c } else { best })
}

pub const TURN_LIMIT: Duration = Duration::from_secs(30);
