//! A microphone that plays a WAV file: the file's samples, then silence, paced in real time
//! from an epoch — or, for tests that only want the samples, as fast as they are read, ending
//! with the file.

use std::thread;
use std::time::{Duration, Instant};

use crate::backend::MicSpec;
use crate::{Error, ErrorKind, Microphone, Result};

pub struct WavMicrophone {
    samples: Vec<i16>,
    position: usize,
    sample_rate: u32,
    realtime: bool,
    epoch: Instant,
    delivered: u64,
}

impl WavMicrophone {
    pub fn open(spec: &MicSpec) -> Result<Self> {
        let samples = read_wav(&spec.device, spec.sample_rate)?;
        Ok(Self {
            samples,
            position: 0,
            sample_rate: spec.sample_rate,
            realtime: spec.realtime,
            epoch: spec.epoch,
            delivered: 0,
        })
    }
}

/// Reads a mono 16-bit WAV file at `sample_rate`, with an error that says what to fix.
pub(crate) fn read_wav(path: &str, sample_rate: u32) -> Result<Vec<i16>> {
    let reader = hound::WavReader::open(path).map_err(|e| match e {
        // A file that is not there is a config mistake, not a device to wait for.
        hound::Error::IoError(io) => {
            Error::new(ErrorKind::InvalidConfig, format!("sim microphone: cannot open {path}: {io}"))
        }
        other => {
            Error::new(ErrorKind::InvalidConfig, format!("sim microphone: {path} is not a usable WAV file: {other}"))
        }
    })?;
    let spec = reader.spec();
    if spec.channels != 1
        || spec.bits_per_sample != 16
        || spec.sample_format != hound::SampleFormat::Int
        || spec.sample_rate != sample_rate
    {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            format!(
                "sim microphone: {path} is {} Hz, {} channel(s), {} bit; it must be {sample_rate} Hz mono 16-bit \
                 (convert it with: sox IN.wav -r {sample_rate} -c 1 -b 16 OUT.wav)",
                spec.sample_rate, spec.channels, spec.bits_per_sample
            ),
        ));
    }
    reader.into_samples::<i16>().collect::<Result<Vec<_>, _>>().map_err(|e| {
        Error::new(ErrorKind::InvalidConfig, format!("sim microphone: {path} is truncated or corrupt: {e}"))
    })
}

impl Microphone for WavMicrophone {
    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    fn read(&mut self, frame: &mut [i16]) -> Result<usize> {
        if self.realtime {
            // The frame is complete once its last sample has been "spoken".
            let done_at = self.epoch + samples_to_duration(self.delivered + frame.len() as u64, self.sample_rate);
            if let Some(wait) = done_at.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
        } else if self.position >= self.samples.len() {
            return Ok(0);
        }
        let available = self.samples.len().saturating_sub(self.position).min(frame.len());
        frame[..available].copy_from_slice(&self.samples[self.position..self.position + available]);
        frame[available..].fill(0);
        self.position += available;
        self.delivered += frame.len() as u64;
        Ok(frame.len())
    }
}

pub(crate) fn samples_to_duration(samples: u64, sample_rate: u32) -> Duration {
    Duration::from_nanos(samples * 1_000_000_000 / u64::from(sample_rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_wav(path: &std::path::Path, rate: u32, channels: u16, samples: &[i16]) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        samples.iter().for_each(|s| w.write_sample(*s).unwrap());
        w.finalize().unwrap();
    }

    fn spec(path: &std::path::Path, realtime: bool) -> MicSpec {
        MicSpec { device: path.to_str().unwrap().into(), sample_rate: 16000, realtime, epoch: Instant::now() }
    }

    #[test]
    fn fast_mode_returns_the_file_then_ends() {
        let dir = std::env::temp_dir().join(format!("pivox-mic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ramp.wav");
        let ramp: Vec<i16> = (0..500).collect();
        write_wav(&path, 16000, 1, &ramp);
        let mut mic = WavMicrophone::open(&spec(&path, false)).unwrap();
        let mut frame = [0i16; 320];
        assert_eq!(mic.read(&mut frame).unwrap(), 320);
        assert_eq!(&frame[..], &ramp[..320]);
        assert_eq!(mic.read(&mut frame).unwrap(), 320);
        assert_eq!(&frame[..180], &ramp[320..]);
        assert!(frame[180..].iter().all(|s| *s == 0), "the last frame is padded with silence");
        assert_eq!(mic.read(&mut frame).unwrap(), 0);
    }

    #[test]
    fn realtime_mode_paces_and_continues_with_silence() {
        let dir = std::env::temp_dir().join(format!("pivox-mic-rt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("short.wav");
        write_wav(&path, 16000, 1, &[7; 160]);
        let spec = spec(&path, true);
        let mut mic = WavMicrophone::open(&spec).unwrap();
        let mut frame = [0i16; 160];
        for _ in 0..3 {
            assert_eq!(mic.read(&mut frame).unwrap(), 160);
        }
        assert!(frame.iter().all(|s| *s == 0));
        assert!(spec.epoch.elapsed() >= Duration::from_millis(30), "three 10 ms frames take 30 ms");
    }

    #[test]
    fn wrong_format_is_explained() {
        let dir = std::env::temp_dir().join(format!("pivox-mic-fmt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stereo.wav");
        write_wav(&path, 48000, 2, &[0; 16]);
        let err = WavMicrophone::open(&spec(&path, false)).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(err.to_string().contains("sox"), "{err}");
        let missing = WavMicrophone::open(&spec(&dir.join("none.wav"), false)).err().unwrap();
        assert_eq!(missing.kind(), ErrorKind::InvalidConfig);
    }
}
