//! The config file as written: every key with its default, before validation.
//!
//! Each section is read on its own (see `Document::raw_file`), so a type error in one does
//! not hide the problems of the others.

use serde::Deserialize;

/// The whole file; each section is read on its own.
#[derive(Default)]
pub(super) struct RawFile {
    pub(super) preset: String,
    /// Read by the backend `kind` names (`link::BACKENDS`).
    pub(super) server: toml::Table,
    pub(super) audio: RawAudio,
    pub(super) opus: RawOpus,
    pub(super) playback: RawPlayback,
    pub(super) session: RawSession,
    pub(super) microphone: RawDevice,
    pub(super) speaker: RawDevice,
    pub(super) button: RawButton,
    pub(super) led: RawLed,
}

/// `[server] kind`: which backend reads the rest of the section.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct RawKind {
    #[allow(dead_code)]
    pub(super) kind: String,
}

#[derive(Deserialize)]
#[serde(default)]
pub(super) struct RawAudio {
    pub(super) codecs: Vec<String>,
    pub(super) frame_ms: u32,
    pub(super) preroll_ms: u32,
    pub(super) earcon_volume: f32,
}

impl Default for RawAudio {
    fn default() -> Self {
        Self { codecs: vec!["opus".into(), "pcm".into()], frame_ms: 20, preroll_ms: 300, earcon_volume: 0.3 }
    }
}

#[derive(Deserialize)]
#[serde(default)]
pub(super) struct RawOpus {
    pub(super) bitrate: u32,
    pub(super) complexity: u8,
    pub(super) fec: bool,
    pub(super) dtx: bool,
}

impl Default for RawOpus {
    fn default() -> Self {
        Self { bitrate: 24_000, complexity: crate::audio::codec::DEFAULT_COMPLEXITY, fec: false, dtx: true }
    }
}

#[derive(Deserialize)]
#[serde(default)]
pub(super) struct RawPlayback {
    pub(super) jitter_min_ms: u64,
    pub(super) jitter_max_ms: u64,
    pub(super) jitter_max_age_ms: u64,
    pub(super) buffer_ms: u32,
}

impl Default for RawPlayback {
    fn default() -> Self {
        Self { jitter_min_ms: 40, jitter_max_ms: 300, jitter_max_age_ms: 200, buffer_ms: 60 }
    }
}

#[derive(Deserialize)]
#[serde(default)]
pub(super) struct RawSession {
    pub(super) min_press_ms: u64,
    pub(super) max_turn_s: f64,
    pub(super) reply_timeout_s: f64,
    pub(super) max_reply_s: f64,
    pub(super) timer_ring_s: f64,
}

impl Default for RawSession {
    fn default() -> Self {
        Self { min_press_ms: 150, max_turn_s: 30.0, reply_timeout_s: 15.0, max_reply_s: 300.0, timer_ring_s: 60.0 }
    }
}

#[derive(Deserialize)]
#[serde(default)]
pub(super) struct RawDevice {
    pub(super) backend: String,
    pub(super) device: String,
    pub(super) sample_rate: u32,
    pub(super) realtime: bool,
}

impl Default for RawDevice {
    fn default() -> Self {
        Self { backend: String::new(), device: String::new(), sample_rate: crate::audio::CODEC_RATE, realtime: true }
    }
}

#[derive(Deserialize)]
#[serde(default)]
pub(super) struct RawButton {
    pub(super) backend: String,
    pub(super) device: String,
    pub(super) pull: String,
    pub(super) active_low: bool,
    pub(super) debounce_ms: u64,
    pub(super) mode: String,
}

impl Default for RawButton {
    fn default() -> Self {
        Self {
            backend: String::new(),
            device: String::new(),
            pull: "up".into(),
            active_low: true,
            debounce_ms: 20,
            mode: "hold".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(default)]
pub(super) struct RawLed {
    pub(super) backend: String,
    pub(super) device: String,
    pub(super) active_low: bool,
    pub(super) count: usize,
    pub(super) brightness: f32,
}

impl Default for RawLed {
    fn default() -> Self {
        Self { backend: String::new(), device: String::new(), active_low: false, count: 3, brightness: 0.3 }
    }
}
