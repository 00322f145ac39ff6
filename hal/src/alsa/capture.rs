//! ALSA capture: whole periods in, 16 kHz mono frames out. See the module notes in
//! `alsa/mod.rs` for buffer sizes and fault handling.

use alsa::Direction;
use alsa::pcm::PCM;

use super::{CAPTURE_PERIODS, MAX_CAPTURE_BATCH, Negotiated, PERIOD_MS, SampleFormat, describe, downmix, open_pcm};
use crate::backend::MicSpec;
use crate::resample::Resampler;
use crate::{Microphone, Result};

/// The rate the daemon gets samples at.
const OUTPUT_RATE: u32 = crate::STREAM_RATE;

pub struct AlsaMicrophone {
    device: String,
    requested_rate: u32,
    pcm: PCM,
    negotiated: Negotiated,
    raw16: Vec<i16>,
    raw32: Vec<i32>,
    mono: Vec<i16>,
    resampler: Option<Resampler>,
    /// 16 kHz samples converted but not handed out yet, and how many of them were.
    ready: Vec<i16>,
    taken: usize,
    xruns: u64,
    /// The periods ALSA's `avail_min` is set to: how many the thread waits for at once.
    wake_periods: usize,
}

impl AlsaMicrophone {
    pub fn open(spec: &MicSpec) -> Result<Self> {
        let (pcm, negotiated) =
            open_pcm(&spec.device, Direction::Capture, spec.sample_rate, CAPTURE_PERIODS * PERIOD_MS)?;
        log::info!("microphone `{}`: {negotiated}", spec.device);
        let mut mic = Self {
            device: spec.device.clone(),
            requested_rate: spec.sample_rate,
            pcm,
            negotiated,
            raw16: Vec::new(),
            raw32: Vec::new(),
            mono: Vec::new(),
            resampler: None,
            ready: Vec::new(),
            taken: 0,
            xruns: 0,
            wake_periods: 1,
        };
        mic.size_buffers()?;
        mic.pcm.start().map_err(|e| describe(e, "microphone", &mic.device, Direction::Capture))?;
        Ok(mic)
    }

    /// Overruns recovered so far.
    pub fn xruns(&self) -> u64 {
        self.xruns
    }

    pub fn negotiated(&self) -> Negotiated {
        self.negotiated
    }

    fn size_buffers(&mut self) -> Result<()> {
        let n = self.negotiated;
        let samples = MAX_CAPTURE_BATCH * n.period * n.channels as usize;
        match n.format {
            SampleFormat::S16 => self.raw16.resize(samples, 0),
            SampleFormat::S32 => self.raw32.resize(samples, 0),
        }
        self.mono = Vec::with_capacity(MAX_CAPTURE_BATCH * n.period);
        self.resampler = match n.rate {
            OUTPUT_RATE => None,
            rate => {
                log::info!("microphone `{}`: resampling {rate} Hz to {OUTPUT_RATE} Hz", self.device);
                Some(Resampler::new(rate, OUTPUT_RATE, n.period)?)
            }
        };
        let out_period = n.period * OUTPUT_RATE as usize / n.rate as usize + 1;
        self.ready = Vec::with_capacity((MAX_CAPTURE_BATCH + 4) * out_period.max(OUTPUT_RATE as usize / 50));
        self.taken = 0;
        self.wake_periods = 1;
        Ok(())
    }

    /// Reads `periods` whole periods from the card (at one wake-up: ALSA's `avail_min` is set
    /// to them) into `self.ready`, as 16 kHz mono.
    fn read_periods(&mut self, periods: usize) -> Result<()> {
        let n = self.negotiated;
        if periods != self.wake_periods {
            self.set_avail_min(periods * n.period)?;
            self.wake_periods = periods;
        }
        let channels = n.channels as usize;
        let frames = periods * n.period;
        let mut got = 0;
        while got < frames {
            let result = match n.format {
                SampleFormat::S16 => {
                    self.pcm.io_i16().and_then(|io| io.readi(&mut self.raw16[got * channels..frames * channels]))
                }
                SampleFormat::S32 => {
                    self.pcm.io_i32().and_then(|io| io.readi(&mut self.raw32[got * channels..frames * channels]))
                }
            };
            match result {
                Ok(read) => got += read,
                Err(e) => {
                    // What was read of this batch goes with the overrun; the caller reads
                    // again (from a reopened device, its buffers sized anew).
                    return self.recover(e);
                }
            }
        }
        self.mono.clear();
        match n.format {
            SampleFormat::S16 => downmix(&self.raw16[..frames * channels], channels, 0, &mut self.mono),
            SampleFormat::S32 => downmix(&self.raw32[..frames * channels], channels, 16, &mut self.mono),
        }
        // Keep `ready` from growing: drop what has been handed out already.
        self.ready.drain(..self.taken);
        self.taken = 0;
        match &mut self.resampler {
            Some(resampler) => resampler.process(&self.mono, &mut self.ready),
            None => {
                self.ready.extend_from_slice(&self.mono);
                Ok(())
            }
        }
    }

    /// The thread is woken when `frames` frames can be read.
    fn set_avail_min(&mut self, frames: usize) -> Result<()> {
        let fail = |e| describe(e, "microphone", &self.device, Direction::Capture);
        let sw = self.pcm.sw_params_current().map_err(fail)?;
        sw.set_avail_min(frames as alsa::pcm::Frames).map_err(fail)?;
        self.pcm.sw_params(&sw).map_err(fail)
    }

    /// An overrun is recovered in place; anything else, or a failed recovery, reopens the
    /// device once. If that fails, the error goes up (the daemon retries with backoff).
    fn recover(&mut self, e: alsa::Error) -> Result<()> {
        self.xruns += 1;
        if self.pcm.try_recover(e, true).is_ok() && self.pcm.start().is_ok() {
            log::warn!("microphone `{}`: overrun ({} so far), recovered", self.device, self.xruns);
            return Ok(());
        }
        log::warn!("microphone `{}`: {e}; reopening", self.device);
        let spec_rate = self.requested_rate;
        let (pcm, negotiated) = open_pcm(&self.device, Direction::Capture, spec_rate, CAPTURE_PERIODS * PERIOD_MS)?;
        self.pcm = pcm;
        self.negotiated = negotiated;
        self.size_buffers()?;
        self.pcm.start().map_err(|e| describe(e, "microphone", &self.device, Direction::Capture))
    }
}

/// How many periods to read at one wake-up for `missing` samples at 16 kHz: the card frames
/// they take, in whole periods, at most [`MAX_CAPTURE_BATCH`] and never so many that the buffer
/// has less than two periods of room left when the thread wakes (a card that negotiated long
/// periods or a short buffer is then read in smaller batches, never waited on past an overrun).
fn batch_periods(missing: usize, n: Negotiated) -> usize {
    let wanted = (missing * n.rate as usize).div_ceil(OUTPUT_RATE as usize * n.period.max(1));
    let fits = (n.buffer / n.period.max(1)).saturating_sub(2);
    wanted.min(fits).clamp(1, MAX_CAPTURE_BATCH)
}

impl Microphone for AlsaMicrophone {
    fn sample_rate(&self) -> u32 {
        OUTPUT_RATE
    }

    /// A long `frame` (the daemon's 100 ms reads between presses) is read at one wake-up.
    fn read(&mut self, frame: &mut [i16]) -> Result<usize> {
        let n = self.negotiated;
        while self.ready.len() - self.taken < frame.len() {
            let missing = frame.len() - (self.ready.len() - self.taken);
            self.read_periods(batch_periods(missing, n))?;
        }
        frame.copy_from_slice(&self.ready[self.taken..self.taken + frame.len()]);
        self.taken += frame.len();
        Ok(frame.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(rate: u32, period: usize, buffer: usize) -> Negotiated {
        Negotiated { rate, channels: 1, format: SampleFormat::S16, period, buffer }
    }

    #[test]
    fn a_read_waits_for_the_periods_it_needs_as_far_as_the_buffer_allows() {
        // 16 kHz, 10 ms periods, 160 ms buffer: a 20 ms frame is two periods, 100 ms is ten.
        let usual = card(16_000, 160, 2_560);
        assert_eq!(batch_periods(320, usual), 2);
        assert_eq!(batch_periods(1_600, usual), 10);
        assert_eq!(batch_periods(1, usual), 1);
        assert_eq!(batch_periods(100_000, usual), MAX_CAPTURE_BATCH);
        // 48 kHz with 21 ms periods and a 160 ms buffer (7 periods): at most 5 at once.
        let long_periods = card(48_000, 1_024, 7_680);
        assert_eq!(batch_periods(320, long_periods), 1);
        assert_eq!(batch_periods(1_600, long_periods), 5);
        // A buffer of two periods: one at a time.
        assert_eq!(batch_periods(1_600, card(16_000, 160, 320)), 1);
    }
}
