//! ALSA playback: 16 kHz mono in, whole periods out at whatever the card runs at. The
//! device is opened on the first write and released after `drain` or `discard`, so other
//! programs can use the speaker while pivox is idle. See `alsa/mod.rs` for buffer sizes.

use alsa::Direction;
use alsa::pcm::PCM;

use super::{Negotiated, PERIOD_MS, SampleFormat, describe, open_pcm, upmix};
use crate::backend::SpeakerSpec;
use crate::resample::Resampler;
use crate::{Result, Speaker};

/// The rate the daemon hands samples over at.
const INPUT_RATE: u32 = crate::STREAM_RATE;

pub struct AlsaSpeaker {
    device: String,
    requested_rate: u32,
    buffer_ms: u32,
    open: Option<Open>,
    resampled: Vec<i16>,
    out16: Vec<i16>,
    out32: Vec<i32>,
    underruns: u64,
}

/// The device while it is held.
struct Open {
    pcm: PCM,
    negotiated: Negotiated,
    resampler: Option<Resampler>,
}

impl AlsaSpeaker {
    /// Checks that the device can be opened (so a wrong name is reported at start-up), then
    /// releases it until there is something to play.
    pub fn open(spec: &SpeakerSpec) -> Result<Self> {
        let mut speaker = Self {
            device: spec.device.clone(),
            requested_rate: spec.sample_rate,
            buffer_ms: spec.buffer_ms,
            open: None,
            resampled: Vec::new(),
            out16: Vec::new(),
            out32: Vec::new(),
            underruns: 0,
        };
        let negotiated = speaker.acquire()?.negotiated;
        log::info!("speaker `{}`: {negotiated}", speaker.device);
        speaker.release();
        Ok(speaker)
    }

    /// Underruns recovered so far.
    pub fn underruns(&self) -> u64 {
        self.underruns
    }

    fn acquire(&mut self) -> Result<&mut Open> {
        if self.open.is_none() {
            let (pcm, negotiated) = open_pcm(&self.device, Direction::Playback, self.requested_rate, self.buffer_ms)?;
            // Start as soon as two periods are queued: sooner risks an underrun on the
            // first frame, later only adds delay.
            let fail = |e| describe(e, "speaker", &self.device, Direction::Playback);
            {
                let sw = pcm.sw_params_current().map_err(fail)?;
                let start = (2 * negotiated.period).min(negotiated.buffer) as i64;
                sw.set_start_threshold(start).map_err(fail)?;
                pcm.sw_params(&sw).map_err(fail)?;
            }
            let resampler = match negotiated.rate {
                INPUT_RATE => None,
                rate => Some(Resampler::new(INPUT_RATE, rate, (INPUT_RATE * PERIOD_MS / 1000) as usize)?),
            };
            self.open = Some(Open { pcm, negotiated, resampler });
        }
        // Just set above when it was empty.
        self.open.as_mut().ok_or_else(|| crate::Error::new(crate::ErrorKind::Io, "speaker not open"))
    }

    fn release(&mut self) {
        self.open = None;
    }

    /// Converts and writes `samples` (16 kHz mono); `flush` pushes the resampler's tail out.
    fn play(&mut self, samples: &[i16], flush: bool) -> Result<()> {
        let mut resampled = std::mem::take(&mut self.resampled);
        resampled.clear();
        let open = self.acquire()?;
        let source = match &mut open.resampler {
            Some(r) => {
                r.process(samples, &mut resampled)?;
                if flush {
                    r.flush(&mut resampled)?;
                }
                &resampled[..]
            }
            None => samples,
        };
        let result = self.write_frames(source);
        self.resampled = resampled;
        result
    }

    fn write_frames(&mut self, mono: &[i16]) -> Result<()> {
        let Some(open) = &self.open else { return Ok(()) };
        let n = open.negotiated;
        let channels = n.channels as usize;
        self.out16.clear();
        self.out32.clear();
        match n.format {
            SampleFormat::S16 => upmix(mono, channels, |s| s, &mut self.out16),
            SampleFormat::S32 => upmix(mono, channels, |s| i32::from(s) << 16, &mut self.out32),
        }
        let total = mono.len();
        let mut written = 0;
        while written < total {
            let Some(open) = &self.open else { return Ok(()) };
            let result = match n.format {
                SampleFormat::S16 => open.pcm.io_i16().and_then(|io| io.writei(&self.out16[written * channels..])),
                SampleFormat::S32 => open.pcm.io_i32().and_then(|io| io.writei(&self.out32[written * channels..])),
            };
            match result {
                Ok(frames) => written += frames,
                Err(e) => {
                    self.underruns += 1;
                    if open.pcm.try_recover(e, true).is_ok() {
                        log::warn!("speaker `{}`: underrun ({} so far), recovered", self.device, self.underruns);
                    } else {
                        // Reopen once; what did not fit is dropped rather than played late.
                        log::warn!("speaker `{}`: {e}; reopening", self.device);
                        self.release();
                        self.acquire()?;
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }
}

impl Speaker for AlsaSpeaker {
    fn sample_rate(&self) -> u32 {
        INPUT_RATE
    }

    fn write(&mut self, samples: &[i16]) -> Result<()> {
        self.play(samples, false)
    }

    fn drain(&mut self) -> Result<()> {
        if self.open.is_none() {
            return Ok(());
        }
        self.play(&[], true)?;
        if let Some(open) = &self.open {
            let _ = open.pcm.drain();
        }
        self.release();
        Ok(())
    }

    fn discard(&mut self) -> Result<()> {
        if let Some(open) = &self.open {
            let _ = open.pcm.drop();
        }
        self.release();
        Ok(())
    }
}
