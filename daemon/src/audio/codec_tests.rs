//! The codec on the bundled speech sample: silence left out (DTX), loss concealed, bad packets
//! refused. The round trips that compare waveforms are in `tests/round_trips.rs`.

use super::*;

pub(crate) fn speech() -> Vec<i16> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/speech.wav");
    hound::WavReader::open(path).unwrap().into_samples().map(Result::unwrap).collect()
}

#[test]
fn opus_dtx_skips_silence_and_loss_is_concealed() {
    let mut input = vec![0i16; 16_000];
    input.extend(speech());
    let settings = OpusSettings { bitrate: 24_000, complexity: 5, fec: false, dtx: true };
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
