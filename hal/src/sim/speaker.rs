//! A speaker that records what it played, and when each sample was handed over.
//!
//! In real-time mode it behaves like a device with a `buffer_ms` buffer: `write` returns at
//! once while the buffer has room and blocks otherwise; `discard` drops what has not been
//! "played" yet, and the record keeps only what was. The record is written to a WAV file
//! (when a path is given) on every `drain` and when the speaker is dropped.
//!
//! Samples and handovers are recorded only when someone will look at them: a test holding a
//! recording [`SpeakerProbe`], or a WAV path to write. Otherwise (`pivox run` with a sim
//! speaker and no file, as in `make bench` and its soak) only counters are kept, so a long run
//! measures the daemon, not the simulator's record.

use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::mic::samples_to_duration;
use crate::backend::SpeakerSpec;
use crate::{Error, ErrorKind, Result, Speaker};

/// One `write` call: when it happened and which samples it handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handover {
    pub at: Instant,
    pub first_sample: usize,
    pub len: usize,
}

/// What the simulated speaker played.
#[derive(Debug, Default)]
pub struct SpeakerLog {
    /// Every sample played (recording probes and WAV files only).
    pub samples: Vec<i16>,
    /// How many samples were played, recorded or not.
    pub played: u64,
    pub handovers: Vec<Handover>,
    /// Samples handed over but discarded before they were played.
    pub discarded: u64,
    pub drains: u64,
}

/// Shared view of a [`SpeakerLog`]; clone it before building the speaker and keep it. The
/// default records every sample; [`SpeakerProbe::counting`] only counts.
#[derive(Debug, Clone)]
pub struct SpeakerProbe {
    log: Arc<Mutex<SpeakerLog>>,
    record: bool,
}

impl Default for SpeakerProbe {
    fn default() -> Self {
        Self { log: Arc::default(), record: true }
    }
}

impl SpeakerProbe {
    /// A probe nobody reads the samples of: counters only.
    pub fn counting() -> Self {
        Self { log: Arc::default(), record: false }
    }

    pub fn lock(&self) -> MutexGuard<'_, SpeakerLog> {
        // A panicking writer cannot leave the log half-updated in a harmful way.
        self.log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub struct SimSpeaker {
    probe: SpeakerProbe,
    /// Keep every sample and handover: a recording probe, or a WAV file to write.
    record: bool,
    wav_path: Option<String>,
    sample_rate: u32,
    buffer: Duration,
    realtime: bool,
    /// When the audio handed over so far will have finished playing.
    played_until: Instant,
}

impl SimSpeaker {
    pub fn open(spec: &SpeakerSpec) -> Self {
        let wav_path = (!spec.device.is_empty()).then(|| spec.device.clone());
        Self {
            probe: spec.probe.clone(),
            record: spec.probe.record || wav_path.is_some(),
            wav_path,
            sample_rate: spec.sample_rate,
            buffer: Duration::from_millis(u64::from(spec.buffer_ms)),
            realtime: spec.realtime,
            played_until: Instant::now(),
        }
    }

    fn save(&self) -> Result<()> {
        let Some(path) = &self.wav_path else { return Ok(()) };
        let log = self.probe.lock();
        write_wav(std::path::Path::new(path), self.sample_rate, &log.samples)
            .map_err(|e| Error::new(e.kind(), format!("sim speaker: {e}")))
    }
}

/// Writes mono 16-bit samples as a WAV file (the sim speaker's recording, a server's saved
/// utterance): pivox's one WAV writer.
pub fn write_wav(path: &std::path::Path, sample_rate: u32, samples: &[i16]) -> Result<()> {
    let spec =
        hound::WavSpec { channels: 1, sample_rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let failed = |e: hound::Error| Error::new(ErrorKind::Io, format!("cannot write {}: {e}", path.display()));
    let mut writer = hound::WavWriter::create(path, spec).map_err(failed)?;
    let mut out = writer.get_i16_writer(samples.len() as u32);
    samples.iter().for_each(|s| out.write_sample(*s));
    out.flush().map_err(failed)?;
    writer.finalize().map_err(failed)
}

impl Speaker for SimSpeaker {
    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    fn write(&mut self, samples: &[i16]) -> Result<()> {
        let now = Instant::now();
        {
            let mut log = self.probe.lock();
            if self.record {
                let first_sample = log.samples.len();
                log.handovers.push(Handover { at: now, first_sample, len: samples.len() });
                log.samples.extend_from_slice(samples);
            }
            log.played += samples.len() as u64;
        }
        if !self.realtime {
            return Ok(());
        }
        self.played_until = self.played_until.max(now) + samples_to_duration(samples.len() as u64, self.sample_rate);
        let ahead = self.played_until - now;
        if ahead > self.buffer {
            thread::sleep(ahead - self.buffer);
        }
        Ok(())
    }

    fn drain(&mut self) -> Result<()> {
        if let Some(wait) = self.played_until.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        self.probe.lock().drains += 1;
        self.save()
    }

    fn discard(&mut self) -> Result<()> {
        let now = Instant::now();
        let unplayed = self.played_until.saturating_duration_since(now);
        let unplayed_samples = (unplayed.as_secs_f64() * f64::from(self.sample_rate)) as usize;
        let mut log = self.probe.lock();
        let dropped = (unplayed_samples as u64).min(log.played);
        log.played -= dropped;
        log.discarded += dropped;
        let keep = log.samples.len().saturating_sub(unplayed_samples);
        log.samples.truncate(keep);
        self.played_until = now;
        Ok(())
    }
}

impl Drop for SimSpeaker {
    fn drop(&mut self) {
        if let Err(e) = self.save() {
            log::warn!("{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn speaker(realtime: bool, probe: &SpeakerProbe, device: String) -> SimSpeaker {
        SimSpeaker::open(&SpeakerSpec { device, sample_rate: 16000, buffer_ms: 40, realtime, probe: probe.clone() })
    }

    #[test]
    fn records_samples_and_handover_times_and_writes_wav() {
        let path = std::env::temp_dir().join(format!("pivox-spk-{}.wav", std::process::id()));
        let probe = SpeakerProbe::default();
        let mut spk = speaker(false, &probe, path.to_str().unwrap().into());
        spk.write(&[1, 2, 3]).unwrap();
        spk.write(&[4]).unwrap();
        spk.drain().unwrap();
        let log = probe.lock();
        assert_eq!(log.samples, [1, 2, 3, 4]);
        assert_eq!(log.handovers.iter().map(|h| (h.first_sample, h.len)).collect::<Vec<_>>(), [(0, 3), (3, 1)]);
        assert!(log.handovers[0].at <= log.handovers[1].at);
        let written: Vec<i16> = hound::WavReader::open(&path).unwrap().into_samples().map(|s| s.unwrap()).collect();
        assert_eq!(written, [1, 2, 3, 4]);
    }

    #[test]
    fn realtime_write_blocks_past_the_buffer_and_discard_drops_the_unplayed_rest() {
        let probe = SpeakerProbe::default();
        let mut spk = speaker(true, &probe, String::new());
        let start = Instant::now();
        // 200 ms of audio into a 40 ms buffer: write returns once 160 ms have played.
        spk.write(&[1; 3200]).unwrap();
        let blocked = start.elapsed();
        assert!(blocked >= Duration::from_millis(150), "write blocked {blocked:?}");
        spk.discard().unwrap();
        let log = probe.lock();
        assert!(log.discarded >= 400 && log.discarded <= 640, "about 40 ms discarded: {}", log.discarded);
        assert_eq!(log.samples.len() as u64 + log.discarded, 3200);
        assert_eq!(log.played, log.samples.len() as u64);
    }

    /// Issue 11: a speaker nobody records (no probe reader, no WAV file) keeps counters only,
    /// so a long run's memory figure measures the daemon, not the simulator.
    #[test]
    fn a_counting_probe_keeps_no_samples() {
        let probe = SpeakerProbe::counting();
        let mut spk = speaker(false, &probe, String::new());
        for _ in 0..100 {
            spk.write(&[7; 320]).unwrap();
        }
        let log = probe.lock();
        assert_eq!(log.played, 32_000);
        assert!(log.samples.is_empty() && log.handovers.is_empty());
        assert_eq!(log.samples.capacity(), 0);
    }
}
