//! pivox-hal: the devices a voice appliance talks to — microphone, speaker, push button and
//! status LED — as small synchronous traits, plus the backends that implement them.
//!
//! Rules every backend follows (see `shared/STYLE.md`):
//! - traits are object-safe and take `&mut self`; nothing here knows about tokio;
//! - construction is separate from the trait: a backend is built from a spec through the
//!   backend tables in [`backend`], on the thread that will own it;
//! - errors carry an [`ErrorKind`] so the daemon can decide between retrying and giving up.
//!
//! The simulated backends in [`sim`] are always compiled and selectable at run time; they
//! share their state with the caller so tests can inspect what happened.

pub mod alsa;
pub mod backend;
pub mod button_mode;
mod error;
pub mod gpio;
pub mod resample;
pub mod sim;

use std::time::{Duration, Instant};

pub use error::{Error, ErrorKind, Result};

/// The rate samples cross between the devices and the daemon, in both directions: 16 kHz
/// wideband speech. The ALSA backends resample to and from it; the sim devices run at it.
pub const STREAM_RATE: u32 = 16_000;

/// A source of mono 16-bit samples at a fixed rate.
pub trait Microphone: Send {
    /// Sample rate of the samples [`Microphone::read`] returns, in Hz.
    fn sample_rate(&self) -> u32;

    /// Fills `frame` with the next `frame.len()` samples, blocking until they have been
    /// captured. Returns how many samples were written: `frame.len()`, or 0 once the
    /// source has ended (only a file-backed microphone ever ends).
    fn read(&mut self, frame: &mut [i16]) -> Result<usize>;
}

/// A sink for mono 16-bit samples at a fixed rate.
pub trait Speaker: Send {
    /// Sample rate the speaker plays at, in Hz.
    fn sample_rate(&self) -> u32;

    /// Hands `samples` to the device. Blocks while the device buffer is full, which is what
    /// paces playback to real time.
    fn write(&mut self, samples: &[i16]) -> Result<()>;

    /// Blocks until everything handed over has been played.
    fn drain(&mut self) -> Result<()>;

    /// Discards what was handed over but not played yet (barge-in: stop at once).
    fn discard(&mut self) -> Result<()>;
}

/// Which way the button went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    Pressed,
    Released,
}

/// One debounced button edge and when it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ButtonEvent {
    pub edge: Edge,
    pub at: Instant,
}

/// The push-to-talk button.
pub trait Button: Send {
    /// Waits at most `timeout` for the next edge; `Ok(None)` when none came.
    fn next_event(&mut self, timeout: Duration) -> Result<Option<ButtonEvent>>;
}

/// What the status LED shows. Each backend maps a state to its own pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedState {
    Off,
    Idle,
    Listening,
    Thinking,
    Speaking,
    Error,
    Disconnected,
    /// Idle, with a timer counting down.
    TimerRunning,
    /// A timer has finished and rings until the button is pressed.
    TimerRinging,
}

/// The status LED.
pub trait Led: Send {
    fn set(&mut self, state: LedState) -> Result<()>;
}
