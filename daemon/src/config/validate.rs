//! Checking each section and resolving it into its part of [`Config`]. Every problem is
//! recorded on the [`Document`] and checking goes on, so one run finds them all; where a value
//! is wrong, a harmless stand-in keeps the rest of the check going (the config is never used).

use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use pivox_hal::backend::Pull;
use pivox_hal::sim::WavMicrophone;
use std::collections::BTreeSet;
use std::sync::Arc;

use super::document::Document;
use super::raw::{RawAudio, RawButton, RawDevice, RawFile, RawKind, RawLed, RawOpus, RawPlayback, RawSession};
use super::{AudioConfig, ButtonConfig, Config, DeviceConfig, LedConfig, PRESETS, PlaybackConfig};
use crate::audio::CODEC_RATE;
use crate::audio::codec::{Codec, OpusSettings};
use crate::files;
use crate::link::{BACKENDS, ServerSpec};
use crate::session::Limits;
use crate::settings::{Section, Silent};
use crate::text::{QUOTE_CHARS, quote, shorten};

/// A value from the file, quoted for a message.
fn q(value: &str) -> String {
    quote(value, QUOTE_CHARS)
}

/// A path from the file, for a message.
fn shown(path: &Path) -> String {
    shorten(&path.display().to_string(), 2 * QUOTE_CHARS)
}

/// A message from elsewhere (hal, the codec table) that quotes `value` whole: quoted short.
fn foreign(message: String, value: &str) -> String {
    message.replace(&format!("`{value}`"), &q(value))
}

impl Document<'_> {
    pub(super) fn validate(&self, mut raw: RawFile) -> Config {
        self.preset(&mut raw);
        Config {
            server: self.server(raw.server),
            audio: self.audio(raw.audio),
            opus: self.opus(raw.opus),
            playback: self.playback(raw.playback),
            session: self.session(raw.session),
            microphone: self.device("microphone", raw.microphone, pivox_hal::backend::MICROPHONES),
            speaker: self.device("speaker", raw.speaker, pivox_hal::backend::SPEAKERS),
            button: self.button(raw.button),
            led: self.led(raw.led),
        }
    }

    fn preset(&self, raw: &mut RawFile) {
        match raw.preset.as_str() {
            "" => {}
            "respeaker-2mic" => {
                // Button on GPIO17 to ground; three APA102 LEDs on SPI0, chip select 1.
                if raw.button.backend.is_empty() {
                    raw.button.backend = "gpio".into();
                    raw.button.device = "17".into();
                }
                if raw.led.backend.is_empty() {
                    raw.led.backend = "apa102".into();
                    raw.led.device = "/dev/spidev0.1".into();
                    raw.led.count = 3;
                }
            }
            other => self.report("preset", format!("unknown preset {} (known: {})", q(other), PRESETS.join(", "))),
        }
    }

    /// Seconds as a `Duration`, if within `range` (NaN never is); zero otherwise.
    fn seconds(&self, key: &str, value: f64, range: RangeInclusive<f64>, allowed: &str) -> Duration {
        if self.check(range.contains(&value), key, || allowed.into()) {
            Duration::try_from_secs_f64(value).unwrap_or_default()
        } else {
            Duration::ZERO
        }
    }

    /// The backend `server.kind` names reads the rest of the section itself.
    fn server(&self, table: toml::Table) -> Arc<dyn ServerSpec> {
        let mut section = Section::new("server", table);
        let kind = section.str("kind").unwrap_or(BACKENDS[0].kind).to_string();
        let row = BACKENDS.iter().find(|row| row.kind == kind).unwrap_or_else(|| {
            let known: Vec<&str> = BACKENDS.iter().map(|row| row.kind).collect();
            self.report("server.kind", format!("unknown server kind {} (known: {})", q(&kind), known.join(", ")));
            &BACKENDS[0]
        });
        let _: RawKind = section.part(self);
        let spec = (row.settings)(&mut section, self);
        // A key another backend reads is named as such, not as unknown.
        let others: Vec<(&str, BTreeSet<String>)> = BACKENDS
            .iter()
            .filter(|other| other.kind != row.kind)
            .map(|other| {
                let mut probe = Section::new("server", section.table().clone());
                (other.settings)(&mut probe, &Silent);
                (other.kind, probe.unread())
            })
            .collect();
        let kind = row.kind;
        section.finish(self, |key| {
            let owner = others.iter().find(|(_, unread)| !unread.contains(key))?.0;
            Some(format!("a key of kind = \"{owner}\", not used with kind = \"{kind}\"; ignored"))
        });
        spec
    }

    fn audio(&self, a: RawAudio) -> AudioConfig {
        let mut codecs = Vec::new();
        let mut all_known = true;
        for name in &a.codecs {
            match name.parse::<Codec>() {
                Err(e) => {
                    all_known = false;
                    self.report("audio.codecs", foreign(e, name));
                }
                Ok(codec) => {
                    if self.check(!codecs.contains(&codec), "audio.codecs", || format!("{} is listed twice", q(name))) {
                        codecs.push(codec);
                    }
                }
            }
        }
        self.check(!all_known || !codecs.is_empty(), "audio.codecs", || {
            "list at least one of \"opus\", \"pcm\"".into()
        });
        let opus = codecs.contains(&Codec::Opus);
        let frame_ok = if opus { matches!(a.frame_ms, 10 | 20) } else { (10..=100).contains(&a.frame_ms) };
        self.check(frame_ok, "audio.frame_ms", || {
            if opus {
                format!("{} ms: Opus frames are 10 or 20 ms", a.frame_ms)
            } else {
                format!("{} ms: PCM frames are 10 to 100 ms", a.frame_ms)
            }
        });
        self.check(a.preroll_ms <= 2_000, "audio.preroll_ms", || "at most 2000 ms".into());
        self.check((0.0..=1.0).contains(&a.earcon_volume), "audio.earcon_volume", || {
            format!("{} is outside 0.0 (off) to 1.0", a.earcon_volume)
        });
        AudioConfig { codecs, frame_ms: a.frame_ms, preroll_ms: a.preroll_ms, earcon_volume: a.earcon_volume }
    }

    fn opus(&self, o: RawOpus) -> OpusSettings {
        self.check((6_000..=128_000).contains(&o.bitrate), "opus.bitrate", || {
            format!("{} bit/s is outside 6000..128000 (24000 suits speech)", o.bitrate)
        });
        self.check(o.complexity <= 10, "opus.complexity", || format!("{} is outside 0..10", o.complexity));
        OpusSettings { bitrate: o.bitrate, complexity: o.complexity, fec: o.fec, dtx: o.dtx }
    }

    fn playback(&self, p: RawPlayback) -> PlaybackConfig {
        self.check(p.jitter_max_ms >= p.jitter_min_ms, "playback.jitter_max_ms", || {
            format!("must be at least jitter_min_ms ({})", p.jitter_min_ms)
        });
        self.check(p.jitter_max_ms <= 2_000, "playback.jitter_max_ms", || "at most 2000 ms".into());
        self.check((10..=5_000).contains(&p.jitter_max_age_ms), "playback.jitter_max_age_ms", || {
            "10 to 5000 ms".into()
        });
        self.check((10..=1_000).contains(&p.buffer_ms), "playback.buffer_ms", || "10 to 1000 ms".into());
        PlaybackConfig {
            jitter_min: Duration::from_millis(p.jitter_min_ms),
            jitter_max: Duration::from_millis(p.jitter_max_ms),
            jitter_max_age: Duration::from_millis(p.jitter_max_age_ms),
            buffer_ms: p.buffer_ms,
        }
    }

    fn session(&self, s: RawSession) -> Limits {
        let max_turn = self.seconds("session.max_turn_s", s.max_turn_s, 1.0..=300.0, "1 to 300 seconds");
        let reply_timeout = self.seconds("session.reply_timeout_s", s.reply_timeout_s, 1.0..=300.0, "1 to 300 seconds");
        let max_reply = self.seconds("session.max_reply_s", s.max_reply_s, 5.0..=3_600.0, "5 to 3600 seconds");
        let min_press = Duration::from_millis(s.min_press_ms);
        self.check(max_turn.is_zero() || min_press < max_turn, "session.min_press_ms", || {
            "must be shorter than max_turn_s".into()
        });
        let ring_for = self.seconds("session.timer_ring_s", s.timer_ring_s, 1.0..=3_600.0, "1 to 3600 seconds");
        Limits { min_press, max_turn, reply_timeout, max_reply, ring_for }
    }

    fn device<B: Copy>(&self, kind: &str, d: RawDevice, table: pivox_hal::backend::Table<B>) -> DeviceConfig {
        let backend =
            if d.backend.is_empty() { pivox_hal::backend::default_name(table).to_string() } else { d.backend };
        if let Err(e) = pivox_hal::backend::find(table, &backend) {
            self.report(&format!("{kind}.backend"), foreign(e.to_string(), &backend));
        }
        self.check((8_000..=192_000).contains(&d.sample_rate), &format!("{kind}.sample_rate"), || {
            format!("{} Hz is outside 8000..192000", d.sample_rate)
        });
        let mut device = d.device;
        if backend == "sim" {
            self.check(d.sample_rate == CODEC_RATE, &format!("{kind}.sample_rate"), || {
                format!("the sim devices run at {CODEC_RATE} Hz only")
            });
            device = self.sim_device(kind, device);
        }
        DeviceConfig { backend, device, sample_rate: d.sample_rate, realtime: d.realtime }
    }

    fn button(&self, b: RawButton) -> ButtonConfig {
        let raw = RawDevice { backend: b.backend, device: b.device, ..Default::default() };
        let DeviceConfig { backend, device, .. } = self.device("button", raw, pivox_hal::backend::BUTTONS);
        let pull = match b.pull.as_str() {
            "up" => Pull::Up,
            "down" => Pull::Down,
            "off" => Pull::Off,
            other => {
                self.report("button.pull", format!("{}: use up, down or off", q(other)));
                Pull::Up
            }
        };
        self.check(b.debounce_ms <= 500, "button.debounce_ms", || "must be at most 500".into());
        let mode = b.mode.parse().unwrap_or_else(|e: pivox_hal::Error| {
            self.report("button.mode", foreign(e.to_string(), b.mode.trim()));
            Default::default()
        });
        self.gpio_device("button.device", &backend, &device);
        let debounce = Duration::from_millis(b.debounce_ms);
        ButtonConfig { backend, device, pull, active_low: b.active_low, debounce, mode }
    }

    fn led(&self, l: RawLed) -> LedConfig {
        let raw = RawDevice { backend: l.backend, device: l.device, ..Default::default() };
        let DeviceConfig { backend, device, .. } = self.device("led", raw, pivox_hal::backend::LEDS);
        self.check((1..=255).contains(&l.count), "led.count", || "must be 1 to 255".into());
        self.check((0.0..=1.0).contains(&l.brightness), "led.brightness", || "must be 0.0 to 1.0".into());
        self.gpio_device("led.device", &backend, &device);
        LedConfig { backend, device, active_low: l.active_low, count: l.count, brightness: l.brightness }
    }

    /// A `gpio` device is a BCM pin number; a `gpiocdev` one a line name or `gpiochipN:OFFSET`.
    fn gpio_device(&self, key: &str, backend: &str, device: &str) {
        match backend {
            "gpio" => {
                self.check(pivox_hal::gpio::parse_pin(key, device).is_ok(), key, || {
                    format!("{}: a BCM pin number 0-27 is expected", q(device))
                });
            }
            "gpiocdev" => {
                if let Err(why) = pivox_hal::gpio::cdev::line_name(device) {
                    self.report(key, format!("{}: {why}", q(device)));
                }
            }
            _ => {}
        }
    }

    /// `sim` devices name files (or a button script): make paths absolute and check what can be.
    fn sim_device(&self, kind: &str, device: String) -> String {
        let key = format!("{kind}.device");
        match kind {
            "microphone" => {
                if !self.check(!device.is_empty(), &key, || "the sim microphone needs a WAV file to play".into()) {
                    return device;
                }
                if let Some(pipe) = device.strip_prefix(pivox_hal::sim::PIPE_PREFIX) {
                    let path = self.path(pipe);
                    if self.files_are_here()
                        && let Err(e) = pivox_hal::sim::pipe_mic_check(&path.display().to_string())
                    {
                        self.report(&key, e.to_string());
                    }
                    return format!("{}{}", pivox_hal::sim::PIPE_PREFIX, path.display());
                }
                let path = self.path(&device);
                if self.files_are_here() {
                    self.sim_wav(&key, &path);
                }
                path.display().to_string()
            }
            "speaker" if !device.is_empty() => {
                let path = self.path(&device);
                if self.files_are_here() {
                    if let Err(e) = files::check_output_path(&path) {
                        self.report(&key, format!("{}: {e}", shown(&path)));
                    }
                }
                path.display().to_string()
            }
            "button" if device != "stdin" => {
                if let Err(e) = pivox_hal::sim::parse_script(&device) {
                    self.report(&key, e.to_string());
                }
                device
            }
            _ => device,
        }
    }

    /// The sim microphone's WAV, read through as `pivox run` will play it (16 kHz mono 16-bit,
    /// complete), without keeping it.
    fn sim_wav(&self, key: &str, path: &Path) {
        if let Err(e) = files::open_regular(path) {
            self.report(key, format!("{}: {e}", shown(path)));
        } else if let Err(e) = WavMicrophone::check(&path.to_string_lossy(), CODEC_RATE) {
            self.report(key, e.to_string().replace(&*path.to_string_lossy(), &shown(path)));
        }
    }
}
