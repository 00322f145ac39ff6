//! Checking each section and resolving it into its part of [`Config`]. Every problem is
//! recorded on the [`Document`] and checking goes on, so one run finds them all; where a value
//! is wrong, a harmless stand-in keeps the rest of the check going (the config is never used).

use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use pivox_hal::backend::Pull;
use pivox_hal::sim::WavMicrophone;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::document::Document;
use super::raw::{RawAudio, RawButton, RawDevice, RawFile, RawLed, RawOpus, RawPlayback, RawServer, RawSession};
use super::{
    AudioConfig, ButtonConfig, Config, DeviceConfig, LedConfig, PRESETS, PlaybackConfig, Secret, ServerConfig,
    homeassistant_url, is_token, read_token_file,
};
use crate::audio::codec::{Codec, OpusSettings};
use crate::files;
use crate::session::Limits;
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

    fn server(&self, s: RawServer) -> ServerConfig {
        let url = self.server_url(&s);
        let (token, token_file) = self.token(&s);
        let written = !s.token.is_empty() || !s.token_file.is_empty();
        self.check(s.kind != "homeassistant" || written, "server.token_file", || {
            "missing: Home Assistant needs a long-lived access token (docs/homeassistant.md)".into()
        });
        let conversation_timeout = self.seconds(
            "server.conversation_timeout_s",
            s.conversation_timeout_s,
            0.0..=86_400.0,
            "0 (never continue) to 86400 seconds",
        );
        let ca_file = self.ca_file(&s.ca_file);
        self.heartbeat(&s);
        let optional = |value: String| (!value.is_empty()).then_some(value);
        ServerConfig {
            kind: s.kind,
            url,
            token,
            token_file,
            ca_file,
            ping_interval: Duration::from_millis(s.ping_interval_ms),
            ping_timeout: Duration::from_millis(s.ping_timeout_ms),
            reconnect_min: Duration::from_millis(s.reconnect_min_ms),
            reconnect_max: Duration::from_millis(s.reconnect_max_ms),
            pipeline: optional(s.pipeline),
            device_id: optional(s.device_id),
            server_vad: s.server_vad,
            conversation_timeout,
        }
    }

    fn server_url(&self, s: &RawServer) -> String {
        self.check(crate::link::find(&s.kind).is_some(), "server.kind", || {
            format!("unknown server kind {} (known: {})", q(&s.kind), crate::link::names().join(", "))
        });
        if !self.check(!s.url.is_empty(), "server.url", || {
            "missing: the voice server's address, e.g. ws://192.168.1.10:8765/".into()
        }) {
            return String::new();
        }
        let homeassistant = s.kind == "homeassistant";
        let url = if homeassistant { homeassistant_url(&s.url) } else { s.url.clone() };
        let uri: Result<tokio_tungstenite::tungstenite::http::Uri, _> = url.parse();
        let scheme_ok = uri.as_ref().is_ok_and(|u| matches!(u.scheme_str(), Some("ws" | "wss")) && u.host().is_some());
        self.check(scheme_ok, "server.url", || {
            if homeassistant {
                format!("{} is not Home Assistant's address, e.g. http://homeassistant.local:8123", q(&s.url))
            } else {
                format!("{} is not a ws:// or wss:// address with a host", q(&s.url))
            }
        });
        url
    }

    /// The token (never quoted in a message) and the file it came from.
    fn token(&self, s: &RawServer) -> (Option<Secret>, Option<std::path::PathBuf>) {
        self.check(s.token.is_empty() || s.token_file.is_empty(), "server.token", || {
            "set token or token_file, not both".into()
        });
        let token_file = (!s.token_file.is_empty()).then(|| self.path(&s.token_file));
        let token = match &token_file {
            Some(_) if !self.files_are_here() => None,
            Some(path) => read_token_file(path).map_err(|e| self.report("server.token_file", e)).ok(),
            None if s.token.is_empty() => None,
            None => self
                .check(is_token(&s.token), "server.token", || {
                    "holds characters a token cannot have (spaces, control or non-ASCII)".into()
                })
                .then(|| Secret(s.token.clone())),
        };
        (token, token_file)
    }

    /// `server.ca_file`, read as the TLS set-up will read it: bounded, PEM, a certificate at least.
    fn ca_file(&self, value: &str) -> Option<std::path::PathBuf> {
        let ca = (!value.is_empty()).then(|| self.path(value))?;
        if self.files_are_here() {
            let certs = files::read_bounded(&ca, files::CA_FILE_MAX).and_then(|pem| {
                let certs: Result<Vec<CertificateDer<'static>>, _> = CertificateDer::pem_slice_iter(&pem).collect();
                certs.map_err(|e| format!("not a PEM certificate file: {e}"))
            });
            match certs {
                Err(e) => self.report("server.ca_file", format!("{}: {e}", shown(&ca))),
                Ok(certs) => {
                    self.check(!certs.is_empty(), "server.ca_file", || format!("{}: holds no certificate", shown(&ca)));
                }
            }
        }
        Some(ca)
    }

    fn heartbeat(&self, s: &RawServer) {
        self.check((100..=60_000).contains(&s.ping_interval_ms), "server.ping_interval_ms", || {
            "100 to 60000 ms".into()
        });
        self.check(s.ping_timeout_ms > s.ping_interval_ms, "server.ping_timeout_ms", || {
            format!("must be longer than ping_interval_ms ({})", s.ping_interval_ms)
        });
        self.check(s.ping_timeout_ms <= 600_000, "server.ping_timeout_ms", || "at most 600000 ms".into());
        self.check((10..=60_000).contains(&s.reconnect_min_ms), "server.reconnect_min_ms", || "10 to 60000 ms".into());
        self.check(s.reconnect_max_ms >= s.reconnect_min_ms, "server.reconnect_max_ms", || {
            format!("must be at least reconnect_min_ms ({})", s.reconnect_min_ms)
        });
        self.check(s.reconnect_max_ms <= 3_600_000, "server.reconnect_max_ms", || {
            "at most 3600000 ms (an hour)".into()
        });
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
        Limits { min_press, max_turn, reply_timeout, max_reply }
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
            self.check(d.sample_rate == 16_000, &format!("{kind}.sample_rate"), || {
                "the sim devices run at 16000 Hz only".into()
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
        if backend == "gpio" {
            self.pin("button.device", &device);
        }
        let debounce = Duration::from_millis(b.debounce_ms);
        ButtonConfig { backend, device, pull, active_low: b.active_low, debounce, mode }
    }

    fn led(&self, l: RawLed) -> LedConfig {
        let raw = RawDevice { backend: l.backend, device: l.device, ..Default::default() };
        let DeviceConfig { backend, device, .. } = self.device("led", raw, pivox_hal::backend::LEDS);
        self.check((1..=255).contains(&l.count), "led.count", || "must be 1 to 255".into());
        self.check((0.0..=1.0).contains(&l.brightness), "led.brightness", || "must be 0.0 to 1.0".into());
        if backend == "gpio" {
            self.pin("led.device", &device);
        }
        LedConfig { backend, device, active_low: l.active_low, count: l.count, brightness: l.brightness }
    }

    fn pin(&self, key: &str, device: &str) {
        self.check(pivox_hal::gpio::parse_pin(key, device).is_ok(), key, || {
            format!("{}: a BCM pin number 0-27 is expected", q(device))
        });
    }

    /// `sim` devices name files (or a button script): make paths absolute and check what can be.
    fn sim_device(&self, kind: &str, device: String) -> String {
        let key = format!("{kind}.device");
        match kind {
            "microphone" => {
                if !self.check(!device.is_empty(), &key, || "the sim microphone needs a WAV file to play".into()) {
                    return device;
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

    /// The sim microphone's WAV, read and decoded as `pivox run` will (16 kHz mono 16-bit).
    fn sim_wav(&self, key: &str, path: &Path) {
        match files::read_bounded(path, WavMicrophone::MAX_FILE_BYTES) {
            Err(e) => self.report(key, format!("{}: {e}", shown(path))),
            Ok(bytes) => {
                if let Err(e) = WavMicrophone::decode(&bytes, &shown(path), 16_000) {
                    self.report(key, e.to_string());
                }
            }
        }
    }
}
