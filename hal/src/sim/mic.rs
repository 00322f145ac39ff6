//! A microphone that plays a WAV file: the file's samples, then silence, paced in real time
//! from an epoch — or, for tests that only want the samples, as fast as they are read, ending
//! with the file.

use std::io::Read;
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

impl WavMicrophone {
    /// The largest WAV file it plays: 32 MiB, about 17 minutes at 16 kHz mono 16-bit.
    pub const MAX_FILE_BYTES: u64 = 32 << 20;

    /// The samples of a WAV file held in memory, exactly as [`WavMicrophone::open`] would
    /// accept it: mono, 16-bit, at `sample_rate`, complete. `name` names it in the error.
    /// The daemon's config check reads the file itself (bounded) and asks this.
    pub fn decode(bytes: &[u8], name: &str, sample_rate: u32) -> Result<Vec<i16>> {
        let invalid = |why: String| Error::new(ErrorKind::InvalidConfig, why);
        if bytes.is_empty() {
            return Err(invalid(format!("{name} is empty: a {sample_rate} Hz mono 16-bit WAV file is expected")));
        }
        let reader = hound::WavReader::new(bytes).map_err(|e| match e {
            hound::Error::IoError(_) => invalid(format!("{name} is not a WAV file: it ends inside the header")),
            other => invalid(format!("{name} is not a usable WAV file: {other}")),
        })?;
        let spec = reader.spec();
        if spec.channels != 1
            || spec.bits_per_sample != 16
            || spec.sample_format != hound::SampleFormat::Int
            || spec.sample_rate != sample_rate
        {
            return Err(invalid(format!(
                "{name} is {} Hz, {} channel(s), {} bit; it must be {sample_rate} Hz mono 16-bit \
                 (convert it with: sox IN.wav -r {sample_rate} -c 1 -b 16 OUT.wav)",
                spec.sample_rate, spec.channels, spec.bits_per_sample
            )));
        }
        reader
            .into_samples::<i16>()
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| invalid(format!("{name} is truncated or corrupt: {e}")))
    }
}

/// Reads a mono 16-bit WAV file at `sample_rate`, with an error that says what to fix.
pub(crate) fn read_wav(path: &str, sample_rate: u32) -> Result<Vec<i16>> {
    let in_words = |e: Error| Error::new(e.kind(), format!("sim microphone: {e}"));
    let bytes = read_file(path).map_err(in_words)?;
    WavMicrophone::decode(&bytes, path, sample_rate).map_err(in_words)
}

/// The file's bytes, if it is a regular file of at most [`WavMicrophone::MAX_FILE_BYTES`].
/// Its type is looked at before it is opened, as opening a FIFO would wait for a writer.
/// (The daemon has checked the file with its own bounded reader already; this keeps the
/// microphone safe for any other caller.)
fn read_file(path: &str) -> Result<Vec<u8>> {
    // A file that is not there is a config mistake, not a device to wait for.
    let invalid = |why: String| Error::new(ErrorKind::InvalidConfig, why);
    let metadata = std::fs::metadata(path).map_err(|e| invalid(format!("cannot open {path}: {e}")))?;
    if !metadata.is_file() {
        return Err(invalid(format!("{path} is not a file")));
    }
    let too_large = || invalid(format!("{path} is larger than {} MiB", WavMicrophone::MAX_FILE_BYTES >> 20));
    if metadata.len() > WavMicrophone::MAX_FILE_BYTES {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(WavMicrophone::MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| invalid(format!("cannot open {path}: {e}")))?;
    if bytes.len() as u64 > WavMicrophone::MAX_FILE_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
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

/// How long `samples` last at `sample_rate`; exact, and without overflow for any count (a
/// real-time microphone's count grows for as long as it runs).
pub(crate) fn samples_to_duration(samples: u64, sample_rate: u32) -> Duration {
    let rate = u64::from(sample_rate.max(1));
    let nanos = u128::from(samples % rate) * 1_000_000_000 / u128::from(rate);
    Duration::from_secs(samples / rate) + Duration::from_nanos(nanos as u64)
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

    #[test]
    fn empty_text_and_eight_khz_files_are_explained() {
        let eight_khz = std::env::temp_dir().join(format!("pivox-mic-8k-{}.wav", std::process::id()));
        write_wav(&eight_khz, 8000, 1, &[0; 16]);
        for (bytes, why) in [
            (Vec::new(), "is empty"),
            (b"[server]\nurl = 1\n".to_vec(), "not a usable WAV file"),
            (b"RIFF".to_vec(), "ends inside the header"),
            (std::fs::read(&eight_khz).unwrap(), "8000 Hz"),
        ] {
            let err = WavMicrophone::decode(&bytes, "x.wav", 16000).err().unwrap();
            assert_eq!(err.kind(), ErrorKind::InvalidConfig);
            assert!(err.to_string().contains(why) && err.to_string().contains("x.wav"), "{err}");
        }
        let dev_zero = WavMicrophone::open(&spec(std::path::Path::new("/dev/zero"), false)).err().unwrap();
        assert!(dev_zero.to_string().contains("is not a file"), "{dev_zero}");
    }

    #[test]
    fn sample_counts_of_any_size_turn_into_durations() {
        assert_eq!(samples_to_duration(16_000, 16_000), Duration::from_secs(1));
        assert_eq!(samples_to_duration(8, 16_000), Duration::from_micros(500));
        // Regression: `samples * 1e9` overflowed after 13 days of a real-time microphone.
        assert_eq!(samples_to_duration(u64::MAX / 16_000 * 16_000, 16_000).as_secs(), u64::MAX / 16_000);
    }
}
