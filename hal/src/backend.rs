//! Backend tables: one `(name, builder)` table per device kind, default first.
//!
//! Config validation, `pivox devices` and device construction all read these tables, so a
//! backend added here is selectable everywhere at once. A builder of `None` names a backend
//! this binary was compiled without, so the user hears "built without X support" rather
//! than "unknown backend".

use std::time::{Duration, Instant};

use crate::{Button, Error, ErrorKind, Led, Microphone, Result, Speaker, alsa, gpio, sim};

/// What a microphone backend is asked to open.
#[derive(Debug, Clone)]
pub struct MicSpec {
    /// Backend-specific device name; for `sim`, the WAV file to read.
    pub device: String,
    /// Sample rate the caller wants, in Hz.
    pub sample_rate: u32,
    /// `sim` only: pace reads in real time (true) or return them as fast as asked (false).
    pub realtime: bool,
    /// `sim` only: the instant the file starts "playing" into the microphone.
    pub epoch: Instant,
}

/// What a speaker backend is asked to open.
#[derive(Debug, Clone)]
pub struct SpeakerSpec {
    /// Backend-specific device name; for `sim`, the WAV file to write (empty: none).
    pub device: String,
    pub sample_rate: u32,
    /// How much audio the device may hold ahead of what it plays, in ms.
    pub buffer_ms: u32,
    /// `sim` only: pace writes in real time.
    pub realtime: bool,
    /// `sim` only: where the simulated speaker records what it played.
    pub probe: sim::SpeakerProbe,
}

/// The pin's internal bias resistor, for GPIO inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pull {
    #[default]
    Up,
    Down,
    Off,
}

/// What a button backend is asked to open.
#[derive(Debug, Clone)]
pub struct ButtonSpec {
    /// For `sim`: a script such as `press 0.25, release 2.2` (seconds after `epoch`),
    /// or `stdin` for Enter-to-toggle on a terminal. For `gpio`: the BCM pin number. For
    /// `gpiocdev`: a line name such as `GPIO17`, or `gpiochipN:OFFSET`.
    pub device: String,
    pub epoch: Instant,
    /// `gpio`, `gpiocdev`: the line's bias.
    pub pull: Pull,
    /// `gpio`, `gpiocdev`: the button pulls the line low when pressed (the usual wiring, to ground).
    pub active_low: bool,
    /// `gpio`, `gpiocdev`: a level must hold this long to count as an edge.
    pub debounce: Duration,
}

/// What an LED backend is asked to open.
#[derive(Debug, Clone)]
pub struct LedSpec {
    /// For `gpio`: the BCM pin number. For `gpiocdev`: a line name or `gpiochipN:OFFSET`. For
    /// `apa102`: the SPI device, e.g. `/dev/spidev0.1`.
    pub device: String,
    /// `gpio`, `gpiocdev`: the LED lights when the line is low.
    pub active_low: bool,
    /// `apa102`: how many LEDs are on the strip.
    pub count: usize,
    /// `apa102`: global brightness, 0.0 to 1.0.
    pub brightness: f32,
    /// `sim` only: where the simulated LED records its states.
    pub probe: sim::LedProbe,
}

pub type MicBuilder = fn(&MicSpec) -> Result<Box<dyn Microphone>>;
pub type SpeakerBuilder = fn(&SpeakerSpec) -> Result<Box<dyn Speaker>>;
pub type ButtonBuilder = fn(&ButtonSpec) -> Result<Box<dyn Button>>;
pub type LedBuilder = fn(&LedSpec) -> Result<Box<dyn Led>>;

/// A backend table: `(name, builder)`, the default first.
pub type Table<B> = &'static [(&'static str, Option<B>)];

pub const MICROPHONES: Table<MicBuilder> =
    &[("sim", Some(sim::open_microphone)), ("alsa", Some(alsa::open_microphone))];
pub const SPEAKERS: Table<SpeakerBuilder> = &[("sim", Some(sim::open_speaker)), ("alsa", Some(alsa::open_speaker))];
pub const BUTTONS: Table<ButtonBuilder> =
    &[("sim", Some(sim::open_button)), ("gpio", Some(gpio::open_button)), ("gpiocdev", Some(gpio::cdev::open_button))];
pub const LEDS: Table<LedBuilder> = &[
    ("sim", Some(sim::open_led)),
    ("gpio", Some(gpio::open_led)),
    ("gpiocdev", Some(gpio::cdev::open_led)),
    ("apa102", Some(gpio::open_apa102)),
];

/// The backend a table uses when the config names none.
pub fn default_name<B>(table: Table<B>) -> &'static str {
    table[0].0
}

/// Looks `name` up in `table`, telling an unknown name apart from one this binary was
/// built without.
pub fn find<B: Copy>(table: Table<B>, name: &str) -> Result<B> {
    match table.iter().find(|(n, _)| *n == name) {
        Some((_, Some(builder))) => Ok(*builder),
        Some((_, None)) => Err(Error::new(
            ErrorKind::Unsupported,
            format!("backend `{name}` is known but this pivox was built without support for it"),
        )),
        None => {
            let known: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
            Err(Error::new(ErrorKind::InvalidConfig, format!("unknown backend `{name}` (known: {})", known.join(", "))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(_: &LedSpec) -> Result<Box<dyn Led>> {
        Err(Error::new(ErrorKind::Io, "not used"))
    }

    const TABLE: Table<LedBuilder> = &[("real", None), ("sim", Some(build))];

    #[test]
    fn find_tells_unknown_from_not_built() {
        assert_eq!(find(TABLE, "real").err().unwrap().kind(), ErrorKind::Unsupported);
        let unknown = find(TABLE, "nope").err().unwrap();
        assert_eq!(unknown.kind(), ErrorKind::InvalidConfig);
        assert!(unknown.to_string().contains("known: real, sim"), "{unknown}");
        assert!(find(TABLE, "sim").is_ok());
        assert_eq!(default_name(TABLE), "real");
    }
}
