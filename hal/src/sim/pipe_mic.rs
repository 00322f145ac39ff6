//! A microphone fed through a named pipe (`device = "pipe:/path/to/fifo"`): whatever raw
//! 16-bit little-endian mono PCM at the configured rate a test (or `sox … -t raw - > fifo`)
//! writes into the pipe is "spoken" as it arrives, paced in real time; silence when nothing
//! is written. The pipe is opened without waiting for a writer, and its read end stays usable
//! after a writer closes it, so one test can speak several times, one writer after another.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::thread;
use std::time::Instant;

use super::mic::samples_to_duration;
use crate::{Error, ErrorKind, Microphone, Result};

/// The prefix of a pipe microphone's device.
pub const PIPE_PREFIX: &str = "pipe:";

#[derive(Debug)]
pub struct PipeMicrophone {
    path: String,
    pipe: Option<std::fs::File>,
    sample_rate: u32,
    epoch: Instant,
    delivered: u64,
    /// A byte of a sample split across two reads.
    odd: Option<u8>,
    bytes: Vec<u8>,
}

impl PipeMicrophone {
    pub fn open(path: &str, sample_rate: u32) -> Result<Self> {
        check(path)?;
        let mut mic = Self {
            path: path.into(),
            pipe: None,
            sample_rate,
            epoch: Instant::now(),
            delivered: 0,
            odd: None,
            bytes: Vec::new(),
        };
        mic.open_pipe()?;
        Ok(mic)
    }

    fn open_pipe(&mut self) -> Result<()> {
        // O_NONBLOCK: no waiting for a writer, and reads return at once when it is empty.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.path)
            .map_err(|e| Error::new(ErrorKind::Io, format!("sim microphone: cannot open {}: {e}", self.path)))?;
        self.pipe = Some(file);
        Ok(())
    }
}

/// The path must be a FIFO (a regular file would be read through at once).
pub fn check(path: &str) -> Result<()> {
    let invalid = |why: String| Error::new(ErrorKind::InvalidConfig, format!("sim microphone: {why}"));
    let metadata = std::fs::metadata(path).map_err(|e| invalid(format!("cannot open {path}: {e}")))?;
    if !metadata.file_type().is_fifo() {
        return Err(invalid(format!("{path} is not a named pipe (make one with: mkfifo {path})")));
    }
    Ok(())
}

impl Microphone for PipeMicrophone {
    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    fn read(&mut self, frame: &mut [i16]) -> Result<usize> {
        let done_at = self.epoch + samples_to_duration(self.delivered + frame.len() as u64, self.sample_rate);
        if let Some(wait) = done_at.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        frame.fill(0);
        // A byte left over from the last read comes first.
        let carried = usize::from(self.odd.is_some());
        self.bytes.resize(frame.len() * 2, 0);
        if let Some(byte) = self.odd.take() {
            self.bytes[0] = byte;
        }
        let mut got = carried;
        // No writer (0) or nothing written yet (WouldBlock): silence. A FIFO's read end stays
        // usable: the next writer's bytes arrive on it.
        if let Some(pipe) = self.pipe.as_mut() {
            match pipe.read(&mut self.bytes[carried..]) {
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(Error::new(ErrorKind::Io, format!("sim microphone: {}: {e}", self.path))),
            }
        }
        for (sample, pair) in frame.iter_mut().zip(self.bytes[..got].chunks_exact(2)) {
            *sample = i16::from_le_bytes([pair[0], pair[1]]);
        }
        if got % 2 == 1 {
            self.odd = Some(self.bytes[got - 1]);
        }
        self.delivered += frame.len() as u64;
        Ok(frame.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_into_the_pipe_is_heard_and_silence_otherwise() {
        let dir = std::env::temp_dir().join(format!("pivox-pipe-mic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("mic");
        let _ = std::fs::remove_file(&fifo);
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let path = fifo.to_str().unwrap();
        let mut mic = PipeMicrophone::open(path, 16_000).unwrap();
        let mut frame = [1i16; 160];
        mic.read(&mut frame).unwrap();
        assert!(frame.iter().all(|&s| s == 0), "silence while nobody writes");

        let mut writer = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        let speech: Vec<u8> = (0..160i16).flat_map(|s| (s * 100).to_le_bytes()).collect();
        std::io::Write::write_all(&mut writer, &speech).unwrap();
        drop(writer);
        mic.read(&mut frame).unwrap();
        assert_eq!(frame[1], 100);
        assert_eq!(frame[159], 15_900);
        mic.read(&mut frame).unwrap();
        assert!(frame.iter().all(|&s| s == 0), "silence again once the writer is gone");

        assert!(
            PipeMicrophone::open(dir.to_str().unwrap(), 16_000).unwrap_err().to_string().contains("not a named pipe")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
