//! Codec round trips on the bundled speech sample — PCM bit-exact, Opus by waveform
//! similarity (`pivox_devtools::compare`) — and the lossy reply formats against the FLAC of the
//! same phrase. They were unit tests in src/audio/codec_tests.rs and media_tests.rs; a
//! library's own tests cannot use a crate built on that library, so they run here, asserting
//! the same things.

mod common;

use common::*;
use pivox::audio::codec::{Codec, Decoder, Encoder, MAX_PACKET, OpusSettings, frame_samples};
use pivox::audio::media::decode_all;

const OPUS: OpusSettings = OpusSettings { bitrate: 24_000, complexity: 5, fec: false, dtx: false };

/// Encodes and decodes `input` frame by frame; returns the decoded samples and the bytes
/// the encoder produced.
fn round_trip(codec: Codec, frame_ms: u32, settings: &OpusSettings, input: &[i16]) -> (Vec<i16>, usize) {
    let n = frame_samples(frame_ms);
    let mut enc = Encoder::new(codec, settings).unwrap();
    let mut dec = Decoder::new(codec).unwrap();
    let (mut packet, mut pcm) = ([0u8; MAX_PACKET], vec![0i16; n]);
    let (mut out, mut bytes) = (Vec::new(), 0);
    for frame in input.chunks_exact(n) {
        let got = enc.encode(frame, &mut packet).unwrap();
        bytes += got.unwrap_or(0);
        let decoded = dec.decode(got.map(|len| &packet[..len]), &mut pcm).unwrap();
        out.extend_from_slice(&pcm[..decoded]);
    }
    (out, bytes)
}

#[test]
fn pcm_round_trip_is_bit_exact() {
    let speech = speech();
    let whole = &speech[..speech.len() / 320 * 320];
    let (out, bytes) = round_trip(Codec::Pcm, 20, &OPUS, whole);
    assert_eq!(out, whole);
    assert_eq!(bytes, whole.len() * 2);
}

/// Opus is lossy, so the test asks for waveform similarity. Opus at 24 kbit/s wideband keeps
/// the waveform of speech closely (it is a waveform-matching codec at this rate, not a
/// parametric one), and measured here correlation is about 0.97 for 20 ms and 10 ms frames.
/// 0.9 leaves room for libopus versions while still failing on a wrong sample rate, a frame
/// dropped or duplicated, or byte-order mistakes, all of which fall below 0.5.
#[test]
fn opus_round_trip_keeps_speech_at_24_kbit() {
    let speech = speech();
    for frame_ms in [20, 10] {
        let n = frame_samples(frame_ms);
        let whole = &speech[..speech.len() / n * n];
        let (out, bytes) = round_trip(Codec::Opus, frame_ms, &OPUS, whole);
        assert_eq!(out.len(), whole.len());
        let (r, delay) = best_correlation(whole, &out, 400);
        assert!(r > 0.9, "{frame_ms} ms frames: correlation {r:.3} at delay {delay}");
        let kbit = bytes as f64 * 8.0 / (whole.len() as f64 / 16_000.0) / 1000.0;
        assert!((12.0..=26.0).contains(&kbit), "{frame_ms} ms frames: {kbit:.1} kbit/s");
    }
}

/// One espeak-ng phrase (22,050 Hz mono, 1.76 s; see tests/fixtures/README.md).
fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/").to_string() + name).unwrap()
}

/// The phrase is 38,884 samples at 22,050 Hz: 28,215 at 16 kHz.
const PHRASE_16K: usize = 38_884 * 16_000 / 22_050;

fn rms(samples: &[i16]) -> f64 {
    (samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len().max(1) as f64).sqrt()
}

#[test]
fn flac_mp3_and_vorbis_decode_to_the_same_phrase_at_16_khz() {
    let flac = decode_all(fixture("reply.flac"), Some("audio/flac")).unwrap();
    let mp3 = decode_all(fixture("reply.mp3"), Some("audio/mpeg")).unwrap();
    let ogg = decode_all(fixture("reply.ogg"), Some("audio/ogg")).unwrap();
    // FLAC is lossless: the length is the phrase's, give or take the resampler's last chunk.
    assert!(flac.len().abs_diff(PHRASE_16K) < 1_000, "flac: {} samples", flac.len());
    assert!(rms(&flac) > 1_000.0, "the phrase is speech, not silence: rms {}", rms(&flac));
    // The lossy codecs add their own padding and error, but it is the same speech.
    for (name, decoded) in [("mp3", &mp3), ("ogg", &ogg)] {
        assert!(decoded.len().abs_diff(PHRASE_16K) < 3_000, "{name}: {} samples", decoded.len());
        // The codecs' own delay (MP3 encoder padding) shifts the decoded audio later.
        let (r, _) = best_correlation(&flac[..20_000], decoded, 1_500);
        assert!(r > 0.8, "{name} correlates {r:.3} with the FLAC");
    }
}
