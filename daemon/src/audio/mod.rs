//! Audio cores with no I/O: pre-roll ring, codecs, jitter buffer, earcons, and the media
//! decoder for replies that arrive as files.
//!
//! Everything that runs per frame works in buffers allocated once, up front (the media
//! decoder, which runs once per reply on its own thread, is the exception).

pub mod codec;
pub mod earcon;
pub mod jitter;
pub mod media;
pub mod preroll;

use std::time::{Duration, Instant};

/// The rate pivox streams at in both directions: 16 kHz wideband speech.
pub const CODEC_RATE: u32 = pivox_hal::STREAM_RATE;

/// The longest frame pivox handles: 100 ms at 16 kHz (PCM frames up to 100 ms are allowed).
pub const MAX_FRAME_SAMPLES: usize = 1_600;

/// Samples of one frame, stored inline so frames move between threads without allocating.
pub type FrameBuf = heapless::Vec<i16, MAX_FRAME_SAMPLES>;

/// One frame from the microphone and the instant its last sample was captured.
#[derive(Debug, Clone)]
pub struct CapturedFrame {
    pub samples: FrameBuf,
    pub captured_at: Instant,
}

/// Number of samples in `ms` milliseconds at `rate`.
pub const fn samples_in(ms: u32, rate: u32) -> usize {
    (ms as u64 * rate as u64 / 1000) as usize
}

/// Duration of `samples` samples at `rate`.
pub fn duration_of(samples: usize, rate: u32) -> Duration {
    Duration::from_nanos(samples as u64 * 1_000_000_000 / u64::from(rate))
}
