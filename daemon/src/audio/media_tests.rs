//! The media decoder on real files: MP3, FLAC and Ogg Vorbis made here from one espeak-ng
//! phrase (22,050 Hz mono, 1.76 s; see daemon/tests/fixtures/README.md), and WAVs written
//! by the test.

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/").to_string() + name).unwrap()
}

/// The phrase is 38,884 samples at 22,050 Hz: 28,215 at 16 kHz.
const PHRASE_16K: usize = 38_884 * 16_000 / 22_050;

fn wav(rate: u32, channels: u16, samples: &[i16]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let spec =
        hound::WavSpec { channels, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut writer = hound::WavWriter::new(&mut out, spec).unwrap();
    for &s in samples {
        writer.write_sample(s).unwrap();
    }
    writer.finalize().unwrap();
    out.into_inner()
}

#[test]
fn a_16_khz_mono_wav_passes_through_sample_exact() {
    let samples: Vec<i16> = (0..8_000).map(|i| ((i * 37) % 2_000 - 1_000) as i16).collect();
    assert_eq!(decode_all(wav(16_000, 1, &samples), Some("audio/wav")).unwrap(), samples);
}

#[test]
fn a_stereo_48_khz_wav_is_mixed_down_and_resampled() {
    // Left 1 kHz at 8,000, right silent: mono is 1 kHz at 4,000.
    let frames = 48_000;
    let mut samples = Vec::with_capacity(frames * 2);
    for i in 0..frames {
        let t = i as f64 / 48_000.0;
        samples.push((8_000.0 * (2.0 * std::f64::consts::PI * 1_000.0 * t).sin()) as i16);
        samples.push(0);
    }
    let out = decode_all(wav(48_000, 2, &samples), None).unwrap();
    assert!(out.len().abs_diff(16_000) < 1_000, "{} samples", out.len());
    let middle = &out[2_000..14_000];
    let peak = middle.iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!((3_800..=4_200).contains(&peak), "peak {peak}");
    // 1 kHz at 16 kHz: 2 zero crossings per 16 samples.
    let crossings = middle.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    assert!((1_480..=1_520).contains(&crossings), "{crossings} zero crossings in 0.75 s");
}

#[test]
fn a_cut_off_download_plays_what_came_then_says_so() {
    let mut mp3 = fixture("reply.mp3");
    mp3.truncate(mp3.len() / 2);
    let mut decoder = MediaDecoder::new(std::io::Cursor::new(mp3), Some("audio/mpeg"), None).unwrap();
    let mut out = Vec::new();
    let ended = loop {
        match decoder.next_chunk(&mut out) {
            Ok(true) => {}
            Ok(false) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    // Either the stream ends cleanly at a frame boundary or it reports the cut; the first
    // half of the phrase is there in both cases.
    if let Err(e) = ended {
        assert!(matches!(e, MediaError::Io(_)), "{e}");
    }
    assert!(out.len() > PHRASE_16K / 3, "{} samples", out.len());
    assert_eq!(decoder.source_rate(), Some(22_050));
}

#[test]
fn what_is_not_audio_is_refused_in_one_line() {
    for bytes in [Vec::new(), b"<html>502 Bad Gateway</html>".to_vec(), vec![0u8; 4096]] {
        let err = decode_all(bytes, Some("audio/mpeg")).unwrap_err().to_string();
        assert!(!err.contains('\n') && err.contains("not an audio file"), "{err}");
    }
}

#[test]
fn an_mp3_with_an_id3_tag_in_front_decodes_like_one_without() {
    // Home Assistant's MP3s come out of ffmpeg with an ID3v2 tag ahead of the first frame.
    let tagged = decode_all(fixture("reply-id3.mp3"), Some("audio/mpeg")).unwrap();
    let plain = decode_all(fixture("reply.mp3"), Some("audio/mpeg")).unwrap();
    assert_eq!(tagged, plain);
}
