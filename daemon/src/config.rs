//! The configuration: one TOML file, read once into a validated [`Config`].
//!
//! Every error is one line naming the file, the line, the key and what to change; keys
//! pivox does not know are warned about (with their line) and ignored. Relative paths in
//! the file are taken relative to the file's own folder. Every key is documented in
//! `docs/configuration.md`, and `pivox.example.toml` is parsed by a test.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::audio::codec::{Codec, OpusSettings};
use crate::session::Limits;

/// Where pivox looks for its config when none is given, first match wins.
pub const DEFAULT_PATHS: &[&str] = &["/boot/firmware/pivox.toml", "/etc/pivox/pivox.toml"];

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub audio: AudioConfig,
    pub opus: OpusSettings,
    pub playback: PlaybackConfig,
    pub session: Limits,
    pub microphone: DeviceConfig,
    pub speaker: DeviceConfig,
    pub button: ButtonConfig,
    pub led: LedConfig,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub kind: String,
    pub url: String,
    pub token: Option<Secret>,
    /// Where the token came from, when it was a file (Home Assistant re-reads it after
    /// rejecting a token).
    pub token_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Home Assistant: the pipeline id (`None`: HA's preferred pipeline).
    pub pipeline: Option<String>,
    /// Home Assistant: the device id runs are attributed to.
    pub device_id: Option<String>,
    /// Home Assistant: let HA's voice-activity detection end the speech (off: the button does).
    pub server_vad: bool,
    /// Home Assistant: a turn within this long of the last answer continues its conversation.
    pub conversation_timeout: Duration,
}

/// The path HA's WebSocket API lives at.
pub const HOMEASSISTANT_PATH: &str = "/api/websocket";

#[derive(Debug, Clone)]
pub struct AudioConfig {
    /// Codecs offered to the server, preferred first.
    pub codecs: Vec<Codec>,
    pub frame_ms: u32,
    pub preroll_ms: u32,
    pub earcon_volume: f32,
}

#[derive(Debug, Clone, Copy)]
pub struct PlaybackConfig {
    pub jitter_min: Duration,
    pub jitter_max: Duration,
    pub jitter_max_age: Duration,
    pub buffer_ms: u32,
}

#[derive(Debug, Clone)]
pub struct DeviceConfig {
    pub backend: String,
    /// Backend-specific; for `sim` devices a path has already been made absolute.
    pub device: String,
    pub sample_rate: u32,
    pub realtime: bool,
}

#[derive(Debug, Clone)]
pub struct ButtonConfig {
    pub backend: String,
    /// `sim`: a script or `stdin`; `gpio`: the BCM pin.
    pub device: String,
    pub pull: pivox_hal::backend::Pull,
    pub active_low: bool,
    pub debounce: Duration,
    pub mode: pivox_hal::button_mode::PressMode,
}

#[derive(Debug, Clone)]
pub struct LedConfig {
    pub backend: String,
    /// `gpio`: the BCM pin; `apa102`: the SPI device.
    pub device: String,
    pub active_low: bool,
    pub count: usize,
    pub brightness: f32,
}

/// Hardware presets: `preset = "respeaker-2mic"` fills in the button and LED sections the
/// file leaves without a backend.
pub const PRESETS: &[&str] = &["respeaker-2mic"];

/// A credential: its `Debug` and `Display` never show it, so it cannot reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

fn is_token(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic())
}

/// Reads a token file: one token, surrounding whitespace ignored.
pub fn read_token_file(path: &Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    if !is_token(token) {
        return Err(format!("{} holds characters a token cannot have (spaces, control or non-ASCII)", path.display()));
    }
    Ok(Secret(token.to_string()))
}

/// Home Assistant's WebSocket URL from what a user is likely to write: HA's web address
/// (`http://homeassistant.local:8123`) or the WebSocket URL itself.
fn homeassistant_url(url: &str) -> String {
    let url = url.trim_end_matches('/');
    let (scheme, rest) = match url.split_once("://") {
        Some(("http", rest)) => ("ws", rest),
        Some(("https", rest)) => ("wss", rest),
        Some((scheme, rest)) => (scheme, rest),
        None => ("ws", url),
    };
    let rest = rest.strip_suffix(HOMEASSISTANT_PATH).unwrap_or(rest);
    format!("{scheme}://{rest}{HOMEASSISTANT_PATH}")
}

/// A config problem, on one line: `FILE:LINE: KEY: what is wrong`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// A config read from a file, with warnings about keys that were ignored.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

// ---- the file as written -------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawFile {
    preset: String,
    server: RawServer,
    audio: RawAudio,
    opus: RawOpus,
    playback: RawPlayback,
    session: RawSession,
    microphone: RawDevice,
    speaker: RawDevice,
    button: RawButton,
    led: RawLed,
}

#[derive(Deserialize)]
#[serde(default)]
struct RawServer {
    kind: String,
    url: String,
    token: String,
    token_file: String,
    ca_file: String,
    ping_interval_ms: u64,
    ping_timeout_ms: u64,
    reconnect_min_ms: u64,
    reconnect_max_ms: u64,
    pipeline: String,
    device_id: String,
    server_vad: bool,
    conversation_timeout_s: f64,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            kind: "pivox".into(),
            url: String::new(),
            token: String::new(),
            token_file: String::new(),
            ca_file: String::new(),
            ping_interval_ms: 2_000,
            ping_timeout_ms: 5_000,
            reconnect_min_ms: 500,
            reconnect_max_ms: 30_000,
            pipeline: String::new(),
            device_id: String::new(),
            server_vad: false,
            conversation_timeout_s: 300.0,
        }
    }
}

#[derive(Deserialize)]
#[serde(default)]
struct RawAudio {
    codecs: Vec<String>,
    frame_ms: u32,
    preroll_ms: u32,
    earcon_volume: f32,
}

impl Default for RawAudio {
    fn default() -> Self {
        Self { codecs: vec!["opus".into(), "pcm".into()], frame_ms: 20, preroll_ms: 300, earcon_volume: 0.3 }
    }
}

#[derive(Deserialize)]
#[serde(default)]
struct RawOpus {
    bitrate: u32,
    complexity: u8,
    fec: bool,
    dtx: bool,
}

impl Default for RawOpus {
    fn default() -> Self {
        Self { bitrate: 24_000, complexity: 5, fec: false, dtx: true }
    }
}

#[derive(Deserialize)]
#[serde(default)]
struct RawPlayback {
    jitter_min_ms: u64,
    jitter_max_ms: u64,
    jitter_max_age_ms: u64,
    buffer_ms: u32,
}

impl Default for RawPlayback {
    fn default() -> Self {
        Self { jitter_min_ms: 40, jitter_max_ms: 300, jitter_max_age_ms: 200, buffer_ms: 60 }
    }
}

#[derive(Deserialize)]
#[serde(default)]
struct RawSession {
    min_press_ms: u64,
    max_turn_s: f64,
    reply_timeout_s: f64,
}

impl Default for RawSession {
    fn default() -> Self {
        Self { min_press_ms: 150, max_turn_s: 30.0, reply_timeout_s: 15.0 }
    }
}

#[derive(Deserialize)]
#[serde(default)]
struct RawDevice {
    backend: String,
    device: String,
    sample_rate: u32,
    realtime: bool,
}

impl Default for RawDevice {
    fn default() -> Self {
        Self { backend: String::new(), device: String::new(), sample_rate: 16_000, realtime: true }
    }
}

#[derive(Deserialize)]
#[serde(default)]
struct RawButton {
    backend: String,
    device: String,
    pull: String,
    active_low: bool,
    debounce_ms: u64,
    mode: String,
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
struct RawLed {
    backend: String,
    device: String,
    active_low: bool,
    count: usize,
    brightness: f32,
}

impl Default for RawLed {
    fn default() -> Self {
        Self { backend: String::new(), device: String::new(), active_low: false, count: 3, brightness: 0.3 }
    }
}

// ---- reading and validating ----------------------------------------------------------

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
        Self::load_with(path, Files::Check)
    }

    /// Reads and validates `path`; with [`Files::Elsewhere`], the files it names (token file,
    /// CA file, a sim microphone's WAV) are not looked for: they are on the machine the config
    /// is for. The image recipe checks a Pi's config this way on the build machine.
    pub fn load_with(path: &Path, files: Files) -> Result<Loaded, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: None,
            key: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse_with(&text, &file, base, files)
    }

    /// Validates `text` as if read from `file`, resolving relative paths against `base`.
    pub fn parse(text: &str, file: &str, base: &Path) -> Result<Loaded, ConfigError> {
        Self::parse_with(text, file, base, Files::Check)
    }

    fn parse_with(text: &str, file: &str, base: &Path, files: Files) -> Result<Loaded, ConfigError> {
        let mut ignored = Vec::new();
        let deserializer =
            toml::de::Deserializer::parse(text).map_err(|e| toml_error(text, file, String::new(), &e))?;
        let mut note_unknown = |path: serde_ignored::Path<'_>| ignored.push(path.to_string());
        let tracked = serde_ignored::Deserializer::new(deserializer, &mut note_unknown);
        let raw: RawFile = serde_path_to_error::deserialize(tracked).map_err(|e| {
            let key = e.path().to_string();
            toml_error(text, file, if key == "." { String::new() } else { key }, e.inner())
        })?;
        let doc = Document { text, file, base, files };
        let warnings = ignored
            .iter()
            .map(|key| doc.error(key, "unknown key, ignored (see docs/configuration.md)".into()).to_string())
            .collect();
        Ok(Loaded { config: doc.validate(raw)?, warnings })
    }
}

fn toml_error(text: &str, file: &str, key: String, e: &toml::de::Error) -> ConfigError {
    let line = e.span().map(|span| line_at(text, span.start));
    ConfigError { file: file.into(), line, key, message: e.message().trim().replace('\n', " ") }
}

fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

struct Document<'a> {
    text: &'a str,
    file: &'a str,
    base: &'a Path,
    files: Files,
}

/// Whether validation looks at the files a config names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Files {
    /// They must exist here (the daemon, `pivox check-config`).
    Check,
    /// They are on another machine (`pivox check-config --elsewhere`).
    Elsewhere,
}

impl Document<'_> {
    /// Whether the files the config names should exist on this machine (see [`Files`]).
    fn files_are_here(&self) -> bool {
        self.files == Files::Check
    }

    /// The line where dotted `key` is written, if it is written at all.
    fn line_of(&self, key: &str) -> Option<usize> {
        let doc = toml::de::DeTable::parse(self.text).ok()?;
        let mut table = doc.get_ref();
        let mut parts = key.split('.').peekable();
        while let Some(part) = parts.next() {
            let (k, v) = table.iter().find(|(k, _)| k.get_ref().as_ref() == part)?;
            if parts.peek().is_none() {
                return Some(line_at(self.text, k.span().start));
            }
            table = match v.get_ref() {
                toml::de::DeValue::Table(t) => t,
                _ => return Some(line_at(self.text, k.span().start)),
            };
        }
        None
    }

    fn error(&self, key: &str, message: String) -> ConfigError {
        ConfigError { file: self.file.into(), line: self.line_of(key), key: key.into(), message }
    }

    fn check(&self, ok: bool, key: &str, message: impl FnOnce() -> String) -> Result<(), ConfigError> {
        if ok { Ok(()) } else { Err(self.error(key, message())) }
    }

    fn path(&self, value: &str) -> PathBuf {
        self.base.join(value)
    }

    fn validate(&self, mut raw: RawFile) -> Result<Config, ConfigError> {
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
            other => {
                return Err(self.error("preset", format!("unknown preset `{other}` (known: {})", PRESETS.join(", "))));
            }
        }
        Ok(Config {
            server: self.server(raw.server)?,
            audio: self.audio(raw.audio)?,
            opus: self.opus(raw.opus)?,
            playback: self.playback(raw.playback)?,
            session: self.session(raw.session)?,
            microphone: self.device("microphone", raw.microphone, pivox_hal::backend::MICROPHONES)?,
            speaker: self.device("speaker", raw.speaker, pivox_hal::backend::SPEAKERS)?,
            button: self.button(raw.button)?,
            led: self.led(raw.led)?,
        })
    }

    fn server(&self, s: RawServer) -> Result<ServerConfig, ConfigError> {
        self.check(crate::link::find(&s.kind).is_some(), "server.kind", || {
            format!("unknown server kind `{}` (known: {})", s.kind, crate::link::names().join(", "))
        })?;
        self.check(!s.url.is_empty(), "server.url", || {
            "missing: the voice server's address, e.g. ws://192.168.1.10:8765/".into()
        })?;
        let homeassistant = s.kind == "homeassistant";
        let url = if homeassistant { homeassistant_url(&s.url) } else { s.url.clone() };
        let uri: Result<tokio_tungstenite::tungstenite::http::Uri, _> = url.parse();
        let scheme_ok = uri.as_ref().is_ok_and(|u| matches!(u.scheme_str(), Some("ws" | "wss")) && u.host().is_some());
        self.check(scheme_ok, "server.url", || {
            if homeassistant {
                format!("`{}` is not Home Assistant's address, e.g. http://homeassistant.local:8123", s.url)
            } else {
                format!("`{}` is not a ws:// or wss:// address with a host", s.url)
            }
        })?;
        self.check(s.token.is_empty() || s.token_file.is_empty(), "server.token", || {
            "set token or token_file, not both".into()
        })?;
        let token_file = (!s.token_file.is_empty()).then(|| self.path(&s.token_file));
        let token = match &token_file {
            Some(_) if !self.files_are_here() => None,
            Some(path) => Some(read_token_file(path).map_err(|e| self.error("server.token_file", e))?),
            None if s.token.is_empty() => None,
            None => {
                self.check(is_token(&s.token), "server.token", || {
                    "holds characters a token cannot have (spaces, control or non-ASCII)".into()
                })?;
                Some(Secret(s.token))
            }
        };
        self.check(!homeassistant || token.is_some() || token_file.is_some(), "server.token_file", || {
            "missing: Home Assistant needs a long-lived access token (docs/homeassistant.md)".into()
        })?;
        let optional = |value: String| (!value.is_empty()).then_some(value);
        self.check((0.0..=86_400.0).contains(&s.conversation_timeout_s), "server.conversation_timeout_s", || {
            "0 (never continue) to 86400 seconds".into()
        })?;
        let ca_file = (!s.ca_file.is_empty()).then(|| self.path(&s.ca_file));
        if let Some(ca) = ca_file.as_ref().filter(|_| self.files_are_here()) {
            self.check(ca.is_file(), "server.ca_file", || format!("{} does not exist", ca.display()))?;
        }
        self.check(s.ping_interval_ms >= 100, "server.ping_interval_ms", || "must be at least 100".into())?;
        self.check(s.ping_timeout_ms > s.ping_interval_ms, "server.ping_timeout_ms", || {
            format!("must be longer than ping_interval_ms ({})", s.ping_interval_ms)
        })?;
        self.check(s.reconnect_min_ms >= 10, "server.reconnect_min_ms", || "must be at least 10".into())?;
        self.check(s.reconnect_max_ms >= s.reconnect_min_ms, "server.reconnect_max_ms", || {
            format!("must be at least reconnect_min_ms ({})", s.reconnect_min_ms)
        })?;
        Ok(ServerConfig {
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
            conversation_timeout: Duration::from_secs_f64(s.conversation_timeout_s),
        })
    }

    fn audio(&self, a: RawAudio) -> Result<AudioConfig, ConfigError> {
        let mut codecs = Vec::new();
        for name in &a.codecs {
            let codec = name.parse::<Codec>().map_err(|e| self.error("audio.codecs", e))?;
            self.check(!codecs.contains(&codec), "audio.codecs", || format!("`{name}` is listed twice"))?;
            codecs.push(codec);
        }
        self.check(!codecs.is_empty(), "audio.codecs", || "list at least one of \"opus\", \"pcm\"".into())?;
        let opus_ok = matches!(a.frame_ms, 10 | 20);
        let pcm_ok = (10..=100).contains(&a.frame_ms);
        self.check(if codecs.contains(&Codec::Opus) { opus_ok } else { pcm_ok }, "audio.frame_ms", || {
            if codecs.contains(&Codec::Opus) {
                format!("{} ms: Opus frames are 10 or 20 ms", a.frame_ms)
            } else {
                format!("{} ms: PCM frames are 10 to 100 ms", a.frame_ms)
            }
        })?;
        self.check(a.preroll_ms <= 2_000, "audio.preroll_ms", || "at most 2000 ms".into())?;
        self.check((0.0..=1.0).contains(&a.earcon_volume), "audio.earcon_volume", || {
            format!("{} is outside 0.0 (off) to 1.0", a.earcon_volume)
        })?;
        Ok(AudioConfig { codecs, frame_ms: a.frame_ms, preroll_ms: a.preroll_ms, earcon_volume: a.earcon_volume })
    }

    fn opus(&self, o: RawOpus) -> Result<OpusSettings, ConfigError> {
        self.check((6_000..=128_000).contains(&o.bitrate), "opus.bitrate", || {
            format!("{} bit/s is outside 6000..128000 (24000 suits speech)", o.bitrate)
        })?;
        self.check(o.complexity <= 10, "opus.complexity", || format!("{} is outside 0..10", o.complexity))?;
        Ok(OpusSettings { bitrate: o.bitrate, complexity: o.complexity, fec: o.fec, dtx: o.dtx })
    }

    fn playback(&self, p: RawPlayback) -> Result<PlaybackConfig, ConfigError> {
        self.check(p.jitter_max_ms >= p.jitter_min_ms, "playback.jitter_max_ms", || {
            format!("must be at least jitter_min_ms ({})", p.jitter_min_ms)
        })?;
        self.check(p.jitter_max_ms <= 2_000, "playback.jitter_max_ms", || "at most 2000 ms".into())?;
        self.check((10..=5_000).contains(&p.jitter_max_age_ms), "playback.jitter_max_age_ms", || {
            "10 to 5000 ms".into()
        })?;
        self.check((10..=1_000).contains(&p.buffer_ms), "playback.buffer_ms", || "10 to 1000 ms".into())?;
        Ok(PlaybackConfig {
            jitter_min: Duration::from_millis(p.jitter_min_ms),
            jitter_max: Duration::from_millis(p.jitter_max_ms),
            jitter_max_age: Duration::from_millis(p.jitter_max_age_ms),
            buffer_ms: p.buffer_ms,
        })
    }

    fn session(&self, s: RawSession) -> Result<Limits, ConfigError> {
        self.check((1.0..=300.0).contains(&s.max_turn_s), "session.max_turn_s", || "1 to 300 seconds".into())?;
        self.check((1.0..=300.0).contains(&s.reply_timeout_s), "session.reply_timeout_s", || {
            "1 to 300 seconds".into()
        })?;
        self.check((s.min_press_ms as f64) < s.max_turn_s * 1000.0, "session.min_press_ms", || {
            "must be shorter than max_turn_s".into()
        })?;
        Ok(Limits {
            min_press: Duration::from_millis(s.min_press_ms),
            max_turn: Duration::from_secs_f64(s.max_turn_s),
            reply_timeout: Duration::from_secs_f64(s.reply_timeout_s),
        })
    }

    fn device<B: Copy>(
        &self,
        kind: &str,
        d: RawDevice,
        table: pivox_hal::backend::Table<B>,
    ) -> Result<DeviceConfig, ConfigError> {
        let backend =
            if d.backend.is_empty() { pivox_hal::backend::default_name(table).to_string() } else { d.backend };
        pivox_hal::backend::find(table, &backend).map_err(|e| self.error(&format!("{kind}.backend"), e.to_string()))?;
        self.check((8_000..=192_000).contains(&d.sample_rate), &format!("{kind}.sample_rate"), || {
            format!("{} Hz is outside 8000..192000", d.sample_rate)
        })?;
        let mut device = d.device;
        if backend == "sim" {
            self.check(d.sample_rate == 16_000, &format!("{kind}.sample_rate"), || {
                "the sim devices run at 16000 Hz only".into()
            })?;
            device = self.sim_device(kind, device)?;
        }
        Ok(DeviceConfig { backend, device, sample_rate: d.sample_rate, realtime: d.realtime })
    }

    fn button(&self, b: RawButton) -> Result<ButtonConfig, ConfigError> {
        use pivox_hal::backend::Pull;
        let raw = RawDevice { backend: b.backend, device: b.device, ..Default::default() };
        let DeviceConfig { backend, device, .. } = self.device("button", raw, pivox_hal::backend::BUTTONS)?;
        let pull = match b.pull.as_str() {
            "up" => Pull::Up,
            "down" => Pull::Down,
            "off" => Pull::Off,
            other => return Err(self.error("button.pull", format!("`{other}`: use up, down or off"))),
        };
        self.check(b.debounce_ms <= 500, "button.debounce_ms", || "must be at most 500".into())?;
        let mode = b.mode.parse().map_err(|e: pivox_hal::Error| self.error("button.mode", e.to_string()))?;
        if backend == "gpio" {
            self.check(pivox_hal::gpio::parse_pin("button.device", &device).is_ok(), "button.device", || {
                format!("`{device}`: a BCM pin number 0-27 is expected")
            })?;
        }
        Ok(ButtonConfig {
            backend,
            device,
            pull,
            active_low: b.active_low,
            debounce: Duration::from_millis(b.debounce_ms),
            mode,
        })
    }

    fn led(&self, l: RawLed) -> Result<LedConfig, ConfigError> {
        let raw = RawDevice { backend: l.backend, device: l.device, ..Default::default() };
        let DeviceConfig { backend, device, .. } = self.device("led", raw, pivox_hal::backend::LEDS)?;
        self.check((1..=255).contains(&l.count), "led.count", || "must be 1 to 255".into())?;
        self.check((0.0..=1.0).contains(&l.brightness), "led.brightness", || "must be 0.0 to 1.0".into())?;
        if backend == "gpio" {
            self.check(pivox_hal::gpio::parse_pin("led.device", &device).is_ok(), "led.device", || {
                format!("`{device}`: a BCM pin number 0-27 is expected")
            })?;
        }
        Ok(LedConfig { backend, device, active_low: l.active_low, count: l.count, brightness: l.brightness })
    }

    /// `sim` devices name files (or a button script): make paths absolute and check what can be.
    fn sim_device(&self, kind: &str, device: String) -> Result<String, ConfigError> {
        let key = format!("{kind}.device");
        match kind {
            "microphone" => {
                self.check(!device.is_empty(), &key, || "the sim microphone needs a WAV file to play".into())?;
                let path = self.path(&device);
                self.check(!self.files_are_here() || path.is_file(), &key, || {
                    format!("{} does not exist", path.display())
                })?;
                Ok(path.display().to_string())
            }
            "speaker" if !device.is_empty() => Ok(self.path(&device).display().to_string()),
            "button" if device != "stdin" => {
                pivox_hal::sim::parse_script(&device).map_err(|e| self.error(&key, e.to_string()))?;
                Ok(device)
            }
            _ => Ok(device),
        }
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
