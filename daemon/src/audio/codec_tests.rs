//! Codec round trips on the bundled speech sample.

use super::*;

pub(crate) fn speech() -> Vec<i16> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/speech.wav");
    hound::WavReader::open(path).unwrap().into_samples().map(Result::unwrap).collect()
}

const OPUS: OpusSettings = OpusSettings { bitrate: 24_000, complexity: 5, fec: false, dtx: false };

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

#[test]
fn opus_dtx_skips_silence_and_loss_is_concealed() {
    let mut input = vec![0i16; 16_000];
    input.extend(speech());
    let settings = OpusSettings { dtx: true, ..OPUS };
    let mut enc = Encoder::new(Codec::Opus, &settings).unwrap();
    let mut packet = [0u8; MAX_PACKET];
    let skipped = input.chunks_exact(320).filter(|f| enc.encode(f, &mut packet).unwrap().is_none()).count();
    assert!(skipped >= 30, "a second of silence should be mostly skipped, skipped {skipped}");
    let mut dec = Decoder::new(Codec::Opus).unwrap();
    let mut pcm = [0i16; 320];
    assert_eq!(dec.decode(None, &mut pcm).unwrap(), 320);
}

#[test]
fn bad_packets_are_errors_not_panics() {
    let mut pcm = [0i16; 320];
    let mut dec = Decoder::new(Codec::Pcm).unwrap();
    assert!(matches!(dec.decode(Some(&[1, 2, 3]), &mut pcm), Err(CodecError::OddPcm(3))));
    assert!(matches!(dec.decode(Some(&[0; 700]), &mut pcm), Err(CodecError::TooLong { got: 350, room: 320 })));
    let mut opus = Decoder::new(Codec::Opus).unwrap();
    assert!(opus.decode(Some(&[0xff; 40]), &mut pcm).is_err());
    assert!(opus.decode(Some(&[]), &mut pcm).is_err());
}
