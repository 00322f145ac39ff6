//! A microphone that plays a WAV file: the file's samples, then silence, paced in real time
//! from an epoch — or, for tests that only want the samples, as fast as they are read, ending
//! with the file.
//!
//! The file is streamed, not loaded: a run of any length holds one small read buffer, so the
//! daemon's memory figures in `make bench` are the daemon's own (issue 14).

use std::fs::File;
use std::io::{BufReader, Read};
use std::thread;
use std::time::{Duration, Instant};

use crate::backend::MicSpec;
use crate::{Error, ErrorKind, Microphone, Result};

pub struct WavMicrophone {
    path: String,
    /// The file, at the next sample of its data; `None` once it has ended: silence from then on.
    data: Option<BufReader<File>>,
    /// Samples of the data chunk not read yet.
    left: u64,
    /// The bytes of one read, reused.
    bytes: Vec<u8>,
    sample_rate: u32,
    realtime: bool,
    epoch: Instant,
    delivered: u64,
}

impl WavMicrophone {
    /// Opens `spec.device` after reading it through once (without keeping it), so that a file
    /// that is not a complete 16-bit mono WAV at the spec's rate is refused here, with the
    /// reason, rather than ending the microphone halfway through a run.
    pub fn open(spec: &MicSpec) -> Result<Self> {
        let in_words = |e: Error| Error::new(e.kind(), format!("sim microphone: {e}"));
        let (data, left) = complete_stream(&spec.device, spec.sample_rate).map_err(in_words)?;
        Ok(Self {
            path: spec.device.clone(),
            data: Some(data),
            left,
            bytes: Vec::new(),
            sample_rate: spec.sample_rate,
            realtime: spec.realtime,
            epoch: spec.epoch,
            delivered: 0,
        })
    }

    /// Checks the WAV file at `path` as [`WavMicrophone::open`] will play it: a regular file,
    /// mono, 16-bit, at `sample_rate`, complete (the file holds every sample its header
    /// announces). Returns how many samples it holds. Reads the header only; the daemon's
    /// config check calls this too.
    pub fn check(path: &str, sample_rate: u32) -> Result<u64> {
        complete_stream(path, sample_rate).map(|(_, samples)| samples)
    }
}

impl WavMicrophone {
    /// The largest WAV file [`WavMicrophone::decode`]'s callers read into memory (a server's
    /// fixed reply): 32 MiB, about 17 minutes at 16 kHz mono 16-bit. The microphone itself
    /// streams its file and has no limit.
    pub const MAX_FILE_BYTES: u64 = 32 << 20;

    /// The samples of a WAV file held in memory, exactly as [`WavMicrophone::open`] would
    /// accept it: mono, 16-bit, at `sample_rate`, complete. `name` names it in the error.
    pub fn decode(bytes: &[u8], name: &str, sample_rate: u32) -> Result<Vec<i16>> {
        if bytes.is_empty() {
            return Err(invalid(format!("{name} is empty: a {sample_rate} Hz mono 16-bit WAV file is expected")));
        }
        checked_reader(bytes, name, sample_rate)?
            .into_samples::<i16>()
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| truncated(name, e))
    }
}

fn invalid(why: String) -> Error {
    Error::new(ErrorKind::InvalidConfig, why)
}

fn truncated(name: &str, e: hound::Error) -> Error {
    invalid(format!("{name} is truncated or corrupt: {e}"))
}

/// A WAV reader over `source` whose format has been checked: mono, 16-bit integer, at
/// `sample_rate`; an error that says how to convert the file otherwise.
fn checked_reader<R: Read>(source: R, name: &str, sample_rate: u32) -> Result<hound::WavReader<R>> {
    let reader = hound::WavReader::new(source).map_err(|e| match e {
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
    Ok(reader)
}

/// The WAV file at `path`, opened for streaming. Its type is looked at before it is opened,
/// as opening a FIFO would wait for a writer; a missing file is a config mistake, not a
/// device to wait for.
fn stream(path: &str, sample_rate: u32) -> Result<hound::WavReader<BufReader<File>>> {
    let metadata = std::fs::metadata(path).map_err(|e| invalid(format!("cannot open {path}: {e}")))?;
    if !metadata.is_file() {
        return Err(invalid(format!("{path} is not a file")));
    }
    if metadata.len() == 0 {
        return Err(invalid(format!("{path} is empty: a {sample_rate} Hz mono 16-bit WAV file is expected")));
    }
    let file = File::open(path).map_err(|e| invalid(format!("cannot open {path}: {e}")))?;
    checked_reader(BufReader::with_capacity(8 << 10, file), path, sample_rate)
}

/// The WAV file at `path`, checked ([`WavMicrophone::check`]) and at its first sample, with
/// the number of samples its data holds.
fn complete_stream(path: &str, sample_rate: u32) -> Result<(BufReader<File>, u64)> {
    use std::io::Seek;
    let reader = stream(path, sample_rate)?;
    let samples = u64::from(reader.len());
    // hound has read the header: the file is at the first sample.
    let mut data = reader.into_inner();
    let unreadable = |e: std::io::Error| invalid(format!("cannot read {path}: {e}"));
    let start = data.stream_position().map_err(unreadable)?;
    let size = data.get_ref().metadata().map_err(unreadable)?.len();
    let present = size.saturating_sub(start) / 2;
    if present < samples {
        return Err(invalid(format!(
            "{path} is truncated or corrupt: its header announces {samples} samples, it holds {present}"
        )));
    }
    Ok((data, samples))
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
        } else if self.data.is_none() {
            return Ok(0);
        }
        let mut filled = 0;
        if let Some(data) = &mut self.data {
            // Whole samples, read in one go (an odd trailing byte is not a sample).
            filled = frame.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
            self.bytes.resize(filled * 2, 0);
            if let Err(e) = data.read_exact(&mut self.bytes) {
                // Checked at open; only a file changed since could get here.
                log::warn!("sim microphone: {} ended early ({e}); silence from here on", self.path);
                filled = 0;
            }
            for (slot, pair) in frame.iter_mut().zip(self.bytes[..filled * 2].chunks_exact(2)) {
                *slot = i16::from_le_bytes([pair[0], pair[1]]);
            }
            self.left -= filled as u64;
            if filled < frame.len() {
                self.data = None;
            }
        }
        if filled == 0 && self.data.is_none() && !self.realtime {
            return Ok(0);
        }
        frame[filled..].fill(0);
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

    /// A fresh folder for one test's files.
    fn test_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("pivox-mic-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn spec(path: &std::path::Path, realtime: bool) -> MicSpec {
        MicSpec { device: path.to_str().unwrap().into(), sample_rate: 16000, realtime, epoch: Instant::now() }
    }

    #[test]
    fn fast_mode_returns_the_file_then_ends() {
        let dir = test_dir("fast");
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
        let dir = test_dir("rt");
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
        let dir = test_dir("fmt");
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
    fn a_truncated_file_is_refused_at_open_and_check_counts_a_whole_one() {
        let dir = test_dir("trunc");
        let path = dir.join("whole.wav");
        write_wav(&path, 16000, 1, &[3; 1000]);
        assert_eq!(WavMicrophone::check(path.to_str().unwrap(), 16000).unwrap(), 1000);
        let bytes = std::fs::read(&path).unwrap();
        let cut = dir.join("cut.wav");
        std::fs::write(&cut, &bytes[..bytes.len() - 501]).unwrap();
        let err = WavMicrophone::open(&spec(&cut, false)).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(err.to_string().contains("truncated") && err.to_string().contains("cut.wav"), "{err}");
        let empty = dir.join("empty.wav");
        std::fs::write(&empty, b"").unwrap();
        let err = WavMicrophone::check(empty.to_str().unwrap(), 16000).unwrap_err();
        assert!(err.to_string().contains("is empty"), "{err}");
    }

    #[test]
    fn sample_counts_of_any_size_turn_into_durations() {
        assert_eq!(samples_to_duration(16_000, 16_000), Duration::from_secs(1));
        assert_eq!(samples_to_duration(8, 16_000), Duration::from_micros(500));
        // Regression: `samples * 1e9` overflowed after 13 days of a real-time microphone.
        assert_eq!(samples_to_duration(u64::MAX / 16_000 * 16_000, 16_000).as_secs(), u64::MAX / 16_000);
    }
}
