//! Streaming sample-rate conversion of mono i16 audio, for sound cards that do not run at
//! the codec's 16 kHz (many USB and I2S devices only do 44.1 or 48 kHz) and for replies that
//! arrive at another rate (Home Assistant's 22.05 or 24 kHz speech).
//!
//! A thin layer over rubato's band-limited sinc resampler: samples go in in any amount, come
//! out as soon as a whole input chunk has been converted. The chunk is one device period,
//! so the resampler adds one chunk plus its filter delay (reported by [`Resampler::delay`]).
//! Buffers are allocated once, at construction.
//!
//! Why sinc and not rubato's FFT resampler: the FFT code (rustfft's butterflies for every
//! size) was 340 KiB of the Pi binary, a tenth of it (issue 14). A 128-tap windowed sinc with
//! linearly interpolated coefficients keeps speech as it was (the tests check pitch, level, a
//! 7 kHz tone passing 48 → 16 kHz and a 12 kHz one not folding back to 4 kHz); what it costs
//! per reply is in BENCHMARKS.md.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Async, FixedAsync, Resampler as _, SincInterpolationParameters, SincInterpolationType, WindowFunction};

use crate::{Error, ErrorKind, Result};

/// Taps of the sinc filter, and its cut-off relative to the lower of the two Nyquist
/// frequencies (7.6 kHz when either side is 16 kHz): the fewest taps, and the highest cut-off,
/// that pass the tests' 7 kHz tone and stop their 12 kHz one.
const SINC_TAPS: usize = 128;
const CUTOFF: f32 = 0.95;

pub struct Resampler {
    inner: Async<f32>,
    from: u32,
    to: u32,
    /// Input gathered until a whole chunk is there.
    pending: Vec<f32>,
    chunk: usize,
    out: Vec<f32>,
}

impl Resampler {
    /// A converter from `from` Hz to `to` Hz taking `chunk` input samples at a time.
    pub fn new(from: u32, to: u32, chunk: usize) -> Result<Self> {
        let mut sinc = SincInterpolationParameters::new(SINC_TAPS, WindowFunction::BlackmanHarris2);
        sinc.interpolation = SincInterpolationType::Linear;
        sinc.oversampling_factor = 256;
        sinc.f_cutoff = Some(CUTOFF);
        if from == 0 || to == 0 {
            return Err(Error::new(ErrorKind::Unsupported, format!("cannot resample {from} Hz to {to} Hz")));
        }
        let ratio = f64::from(to) / f64::from(from);
        let inner = Async::<f32>::new_sinc(ratio, 1.0, &sinc, chunk.max(1), 1, FixedAsync::Input)
            .map_err(|e| Error::new(ErrorKind::Unsupported, format!("cannot resample {from} Hz to {to} Hz: {e}")))?;
        let out = vec![0.0; inner.output_frames_max()];
        Ok(Self { chunk: inner.input_frames_next(), inner, from, to, pending: Vec::with_capacity(chunk), out })
    }

    pub fn rates(&self) -> (u32, u32) {
        (self.from, self.to)
    }

    /// How many output samples an input sample is delayed by.
    pub fn delay(&self) -> usize {
        self.inner.output_delay()
    }

    /// Converts `input`, appending every sample that is ready to `output`.
    pub fn process(&mut self, input: &[i16], output: &mut Vec<i16>) -> Result<()> {
        for &sample in input {
            self.pending.push(f32::from(sample) / 32768.0);
            if self.pending.len() == self.chunk {
                self.convert_pending(output)?;
            }
        }
        Ok(())
    }

    /// Pushes what is still buffered through (padded with silence) and appends it: the end
    /// of a stream.
    pub fn flush(&mut self, output: &mut Vec<i16>) -> Result<()> {
        if !self.pending.is_empty() {
            self.pending.resize(self.chunk, 0.0);
            self.convert_pending(output)?;
        }
        Ok(())
    }

    /// Forgets buffered audio (barge-in, or a device reopened).
    pub fn reset(&mut self) {
        self.pending.clear();
        self.inner.reset();
    }

    fn convert_pending(&mut self, output: &mut Vec<i16>) -> Result<()> {
        let fail = |e: &dyn std::fmt::Display| Error::new(ErrorKind::Io, format!("resampler: {e}"));
        let frames_out = self.out.len();
        let input = InterleavedSlice::new(&self.pending[..], 1, self.chunk).map_err(|e| fail(&e))?;
        let mut out = InterleavedSlice::new_mut(&mut self.out[..], 1, frames_out).map_err(|e| fail(&e))?;
        let (_, written) = self.inner.process_into_buffer(&input, &mut out, None).map_err(|e| fail(&e))?;
        output.extend(self.out[..written].iter().map(|&s| (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16));
        self.pending.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, hz: f32, samples: usize) -> Vec<i16> {
        (0..samples)
            .map(|n| (8000.0 * (2.0 * std::f32::consts::PI * hz * n as f32 / rate as f32).sin()) as i16)
            .collect()
    }

    /// Amplitude of `hz` in `signal` (a single-bin DFT), relative to full scale.
    fn level_at(signal: &[i16], rate: u32, hz: f32) -> f32 {
        let (mut re, mut im) = (0.0f64, 0.0f64);
        for (n, &s) in signal.iter().enumerate() {
            let phase = 2.0 * std::f64::consts::PI * f64::from(hz) * n as f64 / f64::from(rate);
            re += f64::from(s) * phase.cos();
            im += f64::from(s) * phase.sin();
        }
        (2.0 * (re * re + im * im).sqrt() / signal.len() as f64 / 32768.0) as f32
    }

    #[test]
    fn a_tone_keeps_its_pitch_and_level_through_48k_to_16k_and_back() {
        let tone = sine(48_000, 1_000.0, 48_000);
        let mut down = Resampler::new(48_000, 16_000, 480).unwrap();
        let mut at_16k = Vec::new();
        // Fed in odd-sized pieces, as a device would deliver them.
        for piece in tone.chunks(333) {
            down.process(piece, &mut at_16k).unwrap();
        }
        down.flush(&mut at_16k).unwrap();
        assert!((15_990..=16_160).contains(&at_16k.len()), "{} samples", at_16k.len());
        let steady = &at_16k[down.delay() + 160..15_000];
        let level = level_at(steady, 16_000, 1_000.0);
        assert!((level - 8000.0 / 32768.0).abs() < 0.01, "1 kHz at {level}");

        let mut up = Resampler::new(16_000, 44_100, 160).unwrap();
        let mut at_44k = Vec::new();
        up.process(steady, &mut at_44k).unwrap();
        let level = level_at(&at_44k[up.delay() + 441..at_44k.len() - 441], 44_100, 1_000.0);
        assert!((level - 8000.0 / 32768.0).abs() < 0.01, "1 kHz at {level} after 16k→44.1k");
    }

    #[test]
    fn content_above_the_new_nyquist_is_filtered_out() {
        // 7 kHz survives 48k→16k; 12 kHz would alias to 4 kHz if not filtered.
        let tone: Vec<i16> = sine(48_000, 7_000.0, 24_000)
            .iter()
            .zip(sine(48_000, 12_000.0, 24_000))
            .map(|(a, b)| a / 2 + b / 2)
            .collect();
        let mut down = Resampler::new(48_000, 16_000, 480).unwrap();
        let mut out = Vec::new();
        down.process(&tone, &mut out).unwrap();
        let steady = &out[down.delay() + 160..];
        assert!(level_at(steady, 16_000, 7_000.0) > 0.1, "7 kHz at {}", level_at(steady, 16_000, 7_000.0));
        assert!(level_at(steady, 16_000, 4_000.0) < 0.002, "12 kHz aliased to 4 kHz");
    }

    #[test]
    fn rates_it_cannot_convert_are_an_error_not_a_panic() {
        assert_eq!(Resampler::new(0, 16_000, 160).err().map(|e| e.kind()), Some(ErrorKind::Unsupported));
    }
}
