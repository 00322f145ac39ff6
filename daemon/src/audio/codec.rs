//! Codecs for the audio pivox sends and receives: Opus (16 kHz mono, VOIP) or raw PCM
//! (16-bit little-endian). Both sides of a link agree on one at `hello` time.
//!
//! Encoders and decoders write into caller-provided buffers; nothing here allocates per frame.

use std::fmt;
use std::str::FromStr;

use audiopus::coder::{Decoder as OpusDecoder, Encoder as OpusEncoder};
use audiopus::{Application, Bitrate, Channels, MutSignals, SampleRate, packet::Packet};

use super::CODEC_RATE;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    Opus,
    Pcm,
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Codec::Opus => "opus",
            Codec::Pcm => "pcm",
        })
    }
}

impl FromStr for Codec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "opus" => Ok(Codec::Opus),
            "pcm" => Ok(Codec::Pcm),
            other => Err(format!("unknown codec `{other}` (opus or pcm)")),
        }
    }
}

/// The default `[opus] complexity` (0–10): chosen by measuring, in `make bench`, the encoder's
/// CPU time and the decoded speech's log-spectral distance at each complexity (BENCHMARKS.md).
pub const DEFAULT_COMPLEXITY: u8 = 1;

/// Opus encoder settings (see docs/configuration.md, `[opus]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusSettings {
    pub bitrate: u32,
    pub complexity: u8,
    pub fec: bool,
    pub dtx: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("opus: {0}")]
    Opus(#[from] audiopus::Error),
    #[error("PCM packet of {0} bytes is not whole 16-bit samples")]
    OddPcm(usize),
    #[error("packet holds {got} samples, more than the {room} the frame has room for")]
    TooLong { got: usize, room: usize },
}

/// Largest encoded frame: 100 ms of PCM (3,200 bytes) is more than any Opus frame.
pub const MAX_PACKET: usize = super::MAX_FRAME_SAMPLES * 2;

pub enum Encoder {
    Opus(OpusEncoder),
    Pcm,
}

impl Encoder {
    pub fn new(codec: Codec, opus: &OpusSettings) -> Result<Self, CodecError> {
        Ok(match codec {
            Codec::Pcm => Encoder::Pcm,
            Codec::Opus => {
                let mut enc = OpusEncoder::new(SampleRate::Hz16000, Channels::Mono, Application::Voip)?;
                enc.set_bitrate(Bitrate::BitsPerSecond(opus.bitrate as i32))?;
                enc.set_complexity(opus.complexity)?;
                enc.set_inband_fec(opus.fec)?;
                enc.set_dtx(opus.dtx)?;
                Encoder::Opus(enc)
            }
        })
    }

    /// Encodes one frame into `out`. Returns the packet length, or `None` when Opus DTX
    /// says the frame is silence that need not be sent (a packet of at most 2 bytes).
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<Option<usize>, CodecError> {
        match self {
            Encoder::Pcm => {
                let room = out.len() / 2;
                let out = out.get_mut(..pcm.len() * 2).ok_or(CodecError::TooLong { got: pcm.len(), room })?;
                for (bytes, s) in out.chunks_exact_mut(2).zip(pcm) {
                    bytes.copy_from_slice(&s.to_le_bytes());
                }
                Ok(Some(pcm.len() * 2))
            }
            Encoder::Opus(enc) => {
                let n = enc.encode(pcm, out)?;
                Ok((n > 2).then_some(n))
            }
        }
    }
}

pub enum Decoder {
    Opus(OpusDecoder),
    Pcm,
}

impl Decoder {
    pub fn new(codec: Codec) -> Result<Self, CodecError> {
        Ok(match codec {
            Codec::Pcm => Decoder::Pcm,
            Codec::Opus => Decoder::Opus(OpusDecoder::new(SampleRate::Hz16000, Channels::Mono)?),
        })
    }

    /// Decodes `packet` into `out` and returns the number of samples. `None` is a lost
    /// packet: Opus conceals it from its state, PCM gives silence; `out.len()` samples either way.
    pub fn decode(&mut self, packet: Option<&[u8]>, out: &mut [i16]) -> Result<usize, CodecError> {
        match (self, packet) {
            (Decoder::Pcm, None) => {
                out.fill(0);
                Ok(out.len())
            }
            (Decoder::Pcm, Some(bytes)) => {
                if bytes.len() % 2 != 0 {
                    return Err(CodecError::OddPcm(bytes.len()));
                }
                let n = bytes.len() / 2;
                let room = out.len();
                let out = out.get_mut(..n).ok_or(CodecError::TooLong { got: n, room })?;
                for (s, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *s = i16::from_le_bytes([b[0], b[1]]);
                }
                Ok(n)
            }
            (Decoder::Opus(dec), packet) => {
                let packet = packet.map(Packet::try_from).transpose()?;
                Ok(dec.decode(packet, MutSignals::try_from(out)?, false)?)
            }
        }
    }
}

/// Samples in one frame of `frame_ms` at the codec rate.
pub fn frame_samples(frame_ms: u32) -> usize {
    super::samples_in(frame_ms, CODEC_RATE)
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
