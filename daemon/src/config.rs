//! The configuration: one TOML file, read once into a validated [`Config`].
//!
//! Every problem in the file is reported, each on one line naming the file, the line, the key
//! and what to change, and with any value it quotes cut short; keys pivox does not know are
//! warned about (with their line) and ignored. Relative paths in the file are taken relative
//! to the file's own folder. The file and the files it names are read bounded in size and
//! never wait on a FIFO ([`crate::files`]). The `[server]` keys belong to the backend `kind`
//! names: it reads and checks them itself (`link::BACKENDS`, through [`crate::settings`]).
//! Every key is documented in `docs/configuration.md`, and `pivox.example.toml` is parsed by a test.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::audio::codec::{Codec, OpusSettings};
use crate::link::ServerSpec;
use crate::session::Limits;

mod document;
mod raw;
mod validate;

use document::Document;
pub use document::MAX_REPORTED;

/// Where pivox looks for its config when none is given, first match wins.
pub const DEFAULT_PATHS: &[&str] = &["/boot/firmware/pivox.toml", "/etc/pivox/pivox.toml"];

#[derive(Debug, Clone)]
pub struct Config {
    /// The server backend, its settings checked: what the link is built from.
    pub server: Arc<dyn ServerSpec>,
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

/// Every problem found in a config, in the order of the file; shown one per line.
#[derive(Debug, Clone)]
pub struct ConfigErrors {
    /// The problems, the first [`MAX_REPORTED`] of them; never empty.
    pub errors: Vec<ConfigError>,
    /// How many more there were.
    pub more: usize,
    /// Warnings about unknown keys, as [`Loaded::warnings`] would have held them.
    pub warnings: Vec<String>,
}

impl ConfigErrors {
    fn new(mut errors: Vec<ConfigError>, warnings: Vec<String>) -> Self {
        // A problem without a line (a key that is missing) after those with one.
        errors.sort_by_key(|e| (e.line.is_none(), e.line));
        let more = errors.len().saturating_sub(MAX_REPORTED);
        errors.truncate(MAX_REPORTED);
        Self { errors, more, warnings }
    }

    /// The first problem in the file.
    pub fn first(&self) -> &ConfigError {
        &self.errors[0]
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        if self.more > 0 {
            write!(f, "\n{}: {} more problems", self.first().file, self.more)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A config read from a file, with warnings about keys that were ignored.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

// ---- reading --------------------------------------------------------------------------

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Loaded, ConfigErrors> {
        Self::load_with(path, Files::Check)
    }

    /// Reads and validates `path`; with [`Files::Elsewhere`], the files it names (token file,
    /// CA file, a sim microphone's WAV) are not looked for: they are on the machine the config
    /// is for. The image recipe checks a Pi's config this way on the build machine.
    pub fn load_with(path: &Path, files: Files) -> Result<Loaded, ConfigErrors> {
        let file = path.display().to_string();
        let text = crate::files::read_text_bounded(path, crate::files::CONFIG_MAX).map_err(|message| {
            ConfigErrors::new(vec![ConfigError { file: file.clone(), line: None, key: String::new(), message }], vec![])
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse_with(&text, &file, base, files)
    }

    /// Validates `text` as if read from `file`, resolving relative paths against `base`.
    pub fn parse(text: &str, file: &str, base: &Path) -> Result<Loaded, ConfigErrors> {
        Self::parse_with(text, file, base, Files::Check)
    }

    /// [`Config::parse`], looking at the files the config names or not (see [`Files`]).
    pub fn parse_with(text: &str, file: &str, base: &Path, files: Files) -> Result<Loaded, ConfigErrors> {
        let (root, syntax) = toml::de::DeTable::parse_recoverable(text);
        if !syntax.is_empty() {
            // What follows a syntax error is guesswork: its values are not checked.
            return Err(document::syntax_errors(text, file, &syntax));
        }
        let doc = Document::new(text, file, base, files, root.get_ref());
        let raw = doc.raw_file(root.into_inner());
        let config = doc.validate(raw);
        doc.finish(config)
    }
}

/// Whether validation looks at the files a config names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Files {
    /// They must exist here (the daemon, `pivox check-config`).
    Check,
    /// They are on another machine (`pivox check-config --elsewhere`).
    Elsewhere,
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
