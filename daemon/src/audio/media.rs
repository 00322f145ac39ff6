//! Spoken replies that arrive as a media file (Home Assistant's text-to-speech: MP3, WAV,
//! FLAC or Ogg Vorbis), decoded with symphonia into the 16 kHz mono PCM the rest of pivox
//! plays. Streaming: each call to [`MediaDecoder::next_chunk`] reads only as much of the
//! source as one packet needs, so playback can start while the file is still downloading.
//!
//! Stereo is mixed down; any sample rate is converted with the same resampler the sound
//! card path uses, and its filter delay is trimmed from the front so the reply starts at
//! once.

use std::io::Read;

use pivox_hal::resample::Resampler;
use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::{MediaSourceStream, ReadOnlySource};
use symphonia::core::meta::MetadataOptions;

use super::CODEC_RATE;

/// Input samples per resampler chunk: about 20 ms at 48 kHz.
const RESAMPLE_CHUNK: usize = 960;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("not an audio file pivox can play ({0}); MP3, WAV, FLAC and Ogg Vorbis are")]
    Unsupported(String),
    #[error("the audio is damaged: {0}")]
    Corrupt(String),
    #[error("reading the audio failed: {0}")]
    Io(String),
}

impl From<SymphoniaError> for MediaError {
    fn from(e: SymphoniaError) -> Self {
        match e {
            SymphoniaError::IoError(e) => MediaError::Io(e.to_string()),
            SymphoniaError::Unsupported(what) => MediaError::Unsupported(what.to_string()),
            other => MediaError::Corrupt(other.to_string()),
        }
    }
}

pub struct MediaDecoder {
    format: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track: u32,
    /// Source rate → 16 kHz, made when the first packet tells the rate (None: already 16 kHz).
    resampler: Option<Resampler>,
    rate: Option<u32>,
    /// Resampler output samples still to drop from the front (its filter delay).
    trim: usize,
    interleaved: Vec<i16>,
    mono: Vec<i16>,
    finished: bool,
}

impl MediaDecoder {
    /// Reads the container header from `source`. `mime_type` (e.g. `audio/mpeg`) and
    /// `extension` are hints; the content decides.
    pub fn new<R: Read + Send + Sync + 'static>(
        source: R,
        mime_type: Option<&str>,
        extension: Option<&str>,
    ) -> Result<Self, MediaError> {
        let stream = MediaSourceStream::new(Box::new(ReadOnlySource::new(source)), Default::default());
        let mut hint = Hint::new();
        if let Some(mime) = mime_type {
            hint.mime_type(mime);
        }
        if let Some(ext) = extension {
            hint.with_extension(ext);
        }
        let format = symphonia::default::get_probe()
            .probe(&hint, stream, FormatOptions::default(), MetadataOptions::default())
            .map_err(|e| match e {
                SymphoniaError::IoError(e) if e.kind() != std::io::ErrorKind::UnexpectedEof => {
                    MediaError::Io(e.to_string())
                }
                SymphoniaError::IoError(_) => MediaError::Unsupported("it ends before any audio".into()),
                other => MediaError::Unsupported(other.to_string()),
            })?;
        let track = format
            .default_track(TrackType::Audio)
            .ok_or_else(|| MediaError::Unsupported("it holds no audio track".into()))?;
        let params = track
            .codec_params
            .as_ref()
            .and_then(|p| p.audio())
            .ok_or_else(|| MediaError::Unsupported("its audio track has no codec parameters".into()))?;
        let decoder = symphonia::default::get_codecs().make_audio_decoder(params, &AudioDecoderOptions::default())?;
        let track = track.id;
        Ok(Self {
            format,
            decoder,
            track,
            resampler: None,
            rate: None,
            trim: 0,
            interleaved: Vec::new(),
            mono: Vec::new(),
            finished: false,
        })
    }

    /// Decodes the next packet and appends its audio, as 16 kHz mono, to `out` (which may
    /// get nothing from one packet while the resampler fills a chunk). `Ok(false)`: the
    /// stream has ended and everything has been appended.
    pub fn next_chunk(&mut self, out: &mut Vec<i16>) -> Result<bool, MediaError> {
        if self.finished {
            return Ok(false);
        }
        let packet = match self.format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => return self.finish(out),
            // A download cut short mid-packet: play what came, then report it.
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                self.finish(out)?;
                return Err(MediaError::Io("the audio ended in the middle of a packet".into()));
            }
            Err(e) => return Err(e.into()),
        };
        if packet.track_id != self.track {
            return Ok(true);
        }
        let audio = match self.decoder.decode(&packet) {
            Ok(audio) => audio,
            // One bad packet is skipped (a glitch), as players do.
            Err(SymphoniaError::DecodeError(e)) => {
                log::debug!("skipping an undecodable audio packet: {e}");
                return Ok(true);
            }
            Err(e) => return Err(e.into()),
        };
        let rate = audio.spec().rate();
        let channels = audio.spec().channels().count().max(1);
        self.interleaved.resize(audio.samples_interleaved(), 0);
        audio.copy_to_slice_interleaved(&mut self.interleaved[..]);
        self.mono.clear();
        self.mono.extend(
            self.interleaved
                .chunks_exact(channels)
                .map(|frame| (frame.iter().map(|&s| i32::from(s)).sum::<i32>() / channels as i32) as i16),
        );
        if self.rate != Some(rate) {
            self.set_rate(rate, out)?;
        }
        match self.resampler.as_mut() {
            None => out.extend_from_slice(&self.mono),
            Some(resampler) => {
                let start = out.len();
                resampler.process(&self.mono, out).map_err(|e| MediaError::Corrupt(e.to_string()))?;
                self.trim_front(out, start);
            }
        }
        Ok(true)
    }

    /// The source's sample rate, once the first packet has been decoded.
    pub fn source_rate(&self) -> Option<u32> {
        self.rate
    }

    fn set_rate(&mut self, rate: u32, out: &mut Vec<i16>) -> Result<(), MediaError> {
        if rate == 0 {
            return Err(MediaError::Corrupt("a sample rate of 0 Hz".into()));
        }
        // A rate change mid-stream (rare, legal in MP3): finish the old conversion first.
        if let Some(mut old) = self.resampler.take() {
            let start = out.len();
            old.flush(out).map_err(|e| MediaError::Corrupt(e.to_string()))?;
            self.trim_front(out, start);
        }
        self.rate = Some(rate);
        if rate != CODEC_RATE {
            let resampler =
                Resampler::new(rate, CODEC_RATE, RESAMPLE_CHUNK).map_err(|e| MediaError::Unsupported(e.to_string()))?;
            self.trim = resampler.delay();
            self.resampler = Some(resampler);
        }
        Ok(())
    }

    fn trim_front(&mut self, out: &mut Vec<i16>, start: usize) {
        let drop = self.trim.min(out.len() - start);
        out.drain(start..start + drop);
        self.trim -= drop;
    }

    fn finish(&mut self, out: &mut Vec<i16>) -> Result<bool, MediaError> {
        self.finished = true;
        if let Some(resampler) = self.resampler.as_mut() {
            let start = out.len();
            resampler.flush(out).map_err(|e| MediaError::Corrupt(e.to_string()))?;
            self.trim_front(out, start);
        }
        Ok(false)
    }
}

/// Decodes a whole media file in memory (tests, tools).
pub fn decode_all(bytes: Vec<u8>, mime_type: Option<&str>) -> Result<Vec<i16>, MediaError> {
    let mut decoder = MediaDecoder::new(std::io::Cursor::new(bytes), mime_type, None)?;
    let mut out = Vec::new();
    while decoder.next_chunk(&mut out)? {}
    Ok(out)
}

#[cfg(test)]
#[path = "media_tests.rs"]
mod tests;
