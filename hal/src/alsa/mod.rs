//! ALSA microphone and speaker (`backend = "alsa"`), through the system's libasound.
//!
//! Device names are ALSA's: `default`, `hw:CARD=…,DEV=…` (the card as it is, no conversion),
//! `plughw:CARD=…,DEV=…` (ALSA converts format, rate and channels), or any PCM defined in
//! asound.conf. `pivox devices` lists what exists. Each device is opened at the rate the
//! config asks for (16 kHz by default); whatever the card really gives — rate, channels,
//! S16 or S32 samples — is read back, logged, and converted here: channels are mixed down
//! to mono (or mono copied to every channel for playback) and a rate other than 16 kHz is
//! resampled, so the daemon always sees 16 kHz mono i16.
//!
//! Buffer sizes (latency against robustness):
//! - period ≈ 10 ms: the unit ALSA wakes us up for; small enough that a 20 ms frame is
//!   ready within 10 ms of its last sample being captured.
//! - capture buffer = 16 periods ≈ 160 ms: room for a read of up to
//!   [`MAX_CAPTURE_BATCH`] periods at one wake-up (the daemon reads 100 ms at a time between
//!   presses, when it only keeps the pre-roll) and still 60 ms for a late thread (a busy Pi
//!   Zero) before the card overruns. A read of many periods sets ALSA's `avail_min` to them,
//!   so the thread wakes once per read, not once per period.
//! - playback buffer = `buffer_ms` (default 50 ms, 40–60 is sensible) = 5 periods: what is
//!   queued ahead of the DAC. Less risks underruns on a busy Pi; more delays barge-in,
//!   since queued audio must be dropped when the user presses during a reply.
//!
//! Faults: an xrun (overrun/underrun) is recovered in place once; if that fails the device
//! is reopened; if that fails too the error goes to the daemon, which retries with backoff
//! and shows the LED's error state. A device that does not exist is reported with the list
//! of devices that do.

mod capture;
mod playback;

/// Capture or playback, for [`devices`].
pub use alsa::Direction;
pub use capture::AlsaMicrophone;
pub use playback::AlsaSpeaker;

use std::ffi::CString;
use std::fmt;

use alsa::ValueOr;
use alsa::pcm::{Access, Format, HwParams, PCM};

use crate::backend::{MicSpec, SpeakerSpec};
use crate::{Error, ErrorKind, Microphone, Result, Speaker};

pub fn open_microphone(spec: &MicSpec) -> Result<Box<dyn Microphone>> {
    Ok(Box::new(AlsaMicrophone::open(spec)?))
}

pub fn open_speaker(spec: &SpeakerSpec) -> Result<Box<dyn Speaker>> {
    Ok(Box::new(AlsaSpeaker::open(spec)?))
}

/// Target period length; see the module notes.
pub const PERIOD_MS: u32 = 10;
/// Capture buffer, in periods.
pub const CAPTURE_PERIODS: u32 = 16;
/// The most periods one capture read waits for (at one wake-up).
pub const MAX_CAPTURE_BATCH: usize = 10;

/// The sample formats pivox reads and writes. `hw:` devices of I2S microphones often offer
/// only S32; everything else offers S16. (`plughw:` converts anything to S16.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFormat {
    S16,
    S32,
}

/// What the device really gave, read back after negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub rate: u32,
    pub channels: u32,
    pub format: SampleFormat,
    /// Frames per period.
    pub period: usize,
    /// Frames in the whole buffer.
    pub buffer: usize,
}

impl fmt::Display for Negotiated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |frames: usize| frames as f64 * 1000.0 / f64::from(self.rate);
        write!(
            f,
            "{} Hz, {} channel(s), {:?}, period {} frames ({:.1} ms), buffer {} frames ({:.1} ms)",
            self.rate,
            self.channels,
            self.format,
            self.period,
            ms(self.period),
            self.buffer,
            ms(self.buffer)
        )
    }
}

/// Opens `device` and negotiates: the rate nearest `rate`, mono if possible (else the
/// fewest channels), S16 else S32, a ~10 ms period and a buffer of about `buffer_ms`.
pub fn open_pcm(device: &str, direction: Direction, rate: u32, buffer_ms: u32) -> Result<(PCM, Negotiated)> {
    let what = match direction {
        Direction::Capture => "microphone",
        Direction::Playback => "speaker",
    };
    let fail = |e: alsa::Error| describe(e, what, device, direction);
    let pcm = PCM::new(device, direction, false).map_err(fail)?;
    let negotiated = {
        let hw = HwParams::any(&pcm).map_err(fail)?;
        hw.set_access(Access::RWInterleaved).map_err(fail)?;
        let format = if hw.test_format(Format::s16()).is_ok() {
            hw.set_format(Format::s16()).map_err(fail)?;
            SampleFormat::S16
        } else if hw.test_format(Format::s32()).is_ok() {
            hw.set_format(Format::s32()).map_err(fail)?;
            SampleFormat::S32
        } else {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("{what} `{device}` offers neither S16 nor S32 samples; use plughw:… so that ALSA converts"),
            ));
        };
        let channels = hw.set_channels_near(1).map_err(fail)?;
        let rate = hw.set_rate_near(rate, ValueOr::Nearest).map_err(fail)?;
        let period = hw.set_period_size_near(i64::from(rate * PERIOD_MS / 1000), ValueOr::Nearest).map_err(fail)?;
        hw.set_buffer_size_near(i64::from(rate * buffer_ms.max(2 * PERIOD_MS) / 1000)).map_err(fail)?;
        pcm.hw_params(&hw).map_err(fail)?;
        let current = pcm.hw_params_current().map_err(fail)?;
        let buffer = current.get_buffer_size().map_err(fail)?;
        Negotiated { rate, channels, format, period: period as usize, buffer: buffer as usize }
    };
    if negotiated.channels == 0 || negotiated.period == 0 || negotiated.rate == 0 {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!("{what} `{device}`: the device negotiated {negotiated}"),
        ));
    }
    Ok((pcm, negotiated))
}

/// One-line error for an ALSA failure on `device`, with the devices that exist when the
/// device is missing.
pub(crate) fn describe(e: alsa::Error, what: &str, device: &str, direction: Direction) -> Error {
    let errno = e.errno().abs();
    let (kind, why) = match errno {
        libc_errno::ENOENT | libc_errno::ENODEV | libc_errno::ENXIO => {
            let names = devices(direction).into_iter().map(|d| d.name).collect::<Vec<_>>();
            let listed = if names.is_empty() { "none found".to_string() } else { names.join(", ") };
            (ErrorKind::NotFound, format!("no such device (devices here: {listed})"))
        }
        libc_errno::EBUSY => (ErrorKind::Busy, "in use by another program (stop it, or use a dmix/dsnoop PCM)".into()),
        libc_errno::EACCES | libc_errno::EPERM => {
            (ErrorKind::PermissionDenied, "permission denied (the user must be in the `audio` group)".into())
        }
        libc_errno::EPIPE | libc_errno::ESTRPIPE | libc_errno::EIO => (ErrorKind::Disconnected, e.to_string()),
        _ => (ErrorKind::Io, e.to_string()),
    };
    Error::new(kind, format!("{what} `{device}`: {why}"))
}

/// The errno values ALSA returns, without a libc dependency for five constants.
mod libc_errno {
    pub const EPERM: i32 = 1;
    pub const ENOENT: i32 = 2;
    pub const EIO: i32 = 5;
    pub const ENXIO: i32 = 6;
    pub const EACCES: i32 = 13;
    pub const EBUSY: i32 = 16;
    pub const ENODEV: i32 = 19;
    pub const EPIPE: i32 = 32;
    pub const ESTRPIPE: i32 = 86;
}

/// A PCM device as ALSA lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// What to put in the config.
    pub name: String,
    /// ALSA's description, first line.
    pub description: String,
}

/// The PCM devices usable in `direction`: the names to put in the config. Skips ALSA's
/// plumbing entries (`null`, surround layouts) that are no use for a voice appliance.
pub fn devices(direction: Direction) -> Vec<DeviceInfo> {
    let Ok(pcm) = CString::new("pcm") else { return Vec::new() };
    let Ok(hints) = alsa::device_name::HintIter::new(None, &pcm) else { return Vec::new() };
    hints
        .filter(|h| h.direction.is_none_or(|d| d == direction))
        .filter_map(|h| {
            let name = h.name?;
            let skip = name == "null"
                || ["surround", "iec958", "spdif", "front:", "rear:", "center_lfe:", "side:", "dmix:", "usbstream:"]
                    .iter()
                    .any(|p| name.starts_with(p));
            let description = h.desc.unwrap_or_default().lines().next().unwrap_or_default().to_string();
            (!skip).then_some(DeviceInfo { name, description })
        })
        .collect()
}

/// Mixes interleaved frames of `channels` channels down to mono, appending to `mono`.
pub fn downmix<S: Copy + Into<i64>>(interleaved: &[S], channels: usize, scale_shift: u32, mono: &mut Vec<i16>) {
    let channels = channels.max(1);
    for frame in interleaved.chunks_exact(channels) {
        let sum: i64 = frame.iter().map(|&s| s.into()).sum();
        let mean = (sum / channels as i64) >> scale_shift;
        mono.push(mean.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16);
    }
}

/// Copies mono samples to every channel, appending interleaved frames to `out`.
pub fn upmix<S: Copy>(mono: &[i16], channels: usize, convert: impl Fn(i16) -> S, out: &mut Vec<S>) {
    for &sample in mono {
        let s = convert(sample);
        out.extend(std::iter::repeat_n(s, channels.max(1)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stereo_is_mixed_to_mono_and_s32_scaled_to_s16() {
        let mut mono = Vec::new();
        downmix(&[100i16, 300, -5, -7, i16::MAX, i16::MAX], 2, 0, &mut mono);
        assert_eq!(mono, [200, -6, i16::MAX]);
        mono.clear();
        downmix(&[0x1234_0000i32, 0x1234_0000, i32::MIN, i32::MIN], 2, 16, &mut mono);
        assert_eq!(mono, [0x1234, i16::MIN]);
        mono.clear();
        downmix(&[1i16, 2, 3], 1, 0, &mut mono);
        assert_eq!(mono, [1, 2, 3]);
    }

    #[test]
    fn mono_is_copied_to_every_channel() {
        let mut out = Vec::new();
        upmix(&[1, -2], 2, |s| i32::from(s) << 16, &mut out);
        assert_eq!(out, [1 << 16, 1 << 16, -2 << 16, -2 << 16]);
    }
}
