//! The ALSA backends through the real ALSA library, with no sound card: ALSA's `file`
//! plugin reads a capture stream from a raw file and writes a playback stream to one, over
//! the `null` plugin. These plugins do not pace in real time, and past the end of the input
//! file capture returns whatever the buffer held last (alsa-lib 1.2.8), so the tests count
//! samples rather than time and compare only what the file holds.
//!
//! The PCMs live in a config file this test writes, loaded with
//! `ALSA_CONFIG_PATH=/usr/share/alsa/alsa.conf:<that file>` (set before ALSA first runs).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use pivox_hal::alsa::{AlsaMicrophone, AlsaSpeaker};
use pivox_hal::backend::{MicSpec, SpeakerSpec};
use pivox_hal::sim::SpeakerProbe;
use pivox_hal::{ErrorKind, Microphone, Speaker};

/// The test PCMs: `capture_<name>` reads `<dir>/<name>.in.raw`; `playback_<name>` writes
/// `<dir>/<name>.out.raw`; the `_stereo` ones take exactly two channels (a `multi` PCM with
/// two bindings), like a stereo-only codec. For capture, a `route` sits between `multi` and
/// `file`: `multi` straight over `file` never makes the file plugin read its input file
/// (alsa-lib 1.2.8 hands back silence).
const NAMES: &[&str] = &["exact", "stereo48", "stereo16"];

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("pivox-alsa-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut conf = String::new();
        for name in NAMES {
            let d = dir.display();
            conf += &format!(
                "pcm.capture_{name} {{ type file slave.pcm \"null\" file \"/dev/null\" infile \"{d}/{name}.in.raw\" format \"raw\" }}\n\
                 pcm.playback_{name} {{ type file slave.pcm \"null\" file \"{d}/{name}.out.raw\" format \"raw\" }}\n\
                 pcm.route_{name} {{ type route slave {{ pcm \"capture_{name}\" channels 2 }} ttable.0.0 1 ttable.1.1 1 }}\n\
                 pcm.capture_{name}_stereo {{ type multi slaves.a {{ pcm \"route_{name}\" channels 2 }} \
                 bindings.0 {{ slave a channel 0 }} bindings.1 {{ slave a channel 1 }} }}\n\
                 pcm.playback_{name}_stereo {{ type multi slaves.a {{ pcm \"playback_{name}\" channels 2 }} \
                 bindings.0 {{ slave a channel 0 }} bindings.1 {{ slave a channel 1 }} }}\n"
            );
        }
        let conf_path = dir.join("asound-test.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let system = ["/usr/share/alsa/alsa.conf", "/etc/alsa/alsa.conf"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("alsa.conf (package libasound2-data)");
        // SAFETY: set once, before any thread of this test binary calls into ALSA (every
        // test goes through this function first) and nothing else reads the variable.
        unsafe { std::env::set_var("ALSA_CONFIG_PATH", format!("{system}:{}", conf_path.display())) };
        dir
    })
}

fn write_raw(path: PathBuf, samples: &[i16]) {
    std::fs::write(path, samples.iter().flat_map(|s| s.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
}

fn read_raw(path: PathBuf) -> Vec<i16> {
    std::fs::read(path).unwrap().chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}

/// A deterministic test signal that no off-by-one could match: a chirp plus a ramp.
fn signal(samples: usize) -> Vec<i16> {
    (0..samples).map(|n| ((n as f32 * n as f32 * 0.0001).sin() * 12_000.0) as i16 ^ (n as i16 & 7)).collect()
}

fn mic_spec(device: &str, sample_rate: u32) -> MicSpec {
    MicSpec { device: device.into(), sample_rate, realtime: false, epoch: Instant::now() }
}

fn speaker_spec(device: &str) -> SpeakerSpec {
    SpeakerSpec {
        device: device.into(),
        sample_rate: 16_000,
        buffer_ms: 50,
        realtime: false,
        probe: SpeakerProbe::default(),
    }
}

#[test]
fn capture_is_sample_exact() {
    let dir = dir();
    let input = signal(16_000 + 123);
    write_raw(dir.join("exact.in.raw"), &input);
    let mut mic = AlsaMicrophone::open(&mic_spec("capture_exact", 16_000)).unwrap();
    assert_eq!(mic.sample_rate(), 16_000);
    let n = mic.negotiated();
    assert_eq!((n.rate, n.channels), (16_000, 1));
    assert_eq!(n.period, 160, "a 10 ms period: {n}");
    let mut captured = Vec::new();
    // 20 ms frames, with 100 ms reads among them (the daemon's between presses, ten periods
    // at one wake-up) and one larger than a batch.
    let mut frame = [0i16; 2_000];
    for size in [320, 1_600, 320, 320, 2_000, 1_600].into_iter().cycle().take(30) {
        assert_eq!(mic.read(&mut frame[..size]).unwrap(), size);
        captured.extend_from_slice(&frame[..size]);
    }
    assert!(captured.len() > input.len());
    assert_eq!(&captured[..input.len()], &input[..], "every sample, in order");
}

#[test]
fn playback_is_sample_exact_and_the_device_is_released_when_drained() {
    let dir = dir();
    let output = signal(8_000 + 77);
    let mut speaker = AlsaSpeaker::open(&speaker_spec("playback_exact")).unwrap();
    for chunk in output.chunks(320) {
        speaker.write(chunk).unwrap();
    }
    speaker.drain().unwrap();
    let played = read_raw(dir.join("exact.out.raw"));
    assert!(played.len() >= output.len(), "{} of {} samples written", played.len(), output.len());
    assert_eq!(&played[..output.len()], &output[..]);
    // Released: the file is complete and a second turn reopens the device.
    speaker.write(&output[..320]).unwrap();
    speaker.discard().unwrap();
}

#[test]
fn a_stereo_48k_device_is_mixed_down_and_resampled_to_16k_mono() {
    let dir = dir();
    // 1 kHz in the left channel, silence in the right: the mono mix is half the level.
    let seconds = 1;
    let frames = 48_000 * seconds;
    let tone: Vec<i16> = (0..frames)
        .map(|n| (16_000.0 * (2.0 * std::f32::consts::PI * 1_000.0 * n as f32 / 48_000.0).sin()) as i16)
        .collect();
    let interleaved: Vec<i16> = tone.iter().flat_map(|&s| [s, 0]).collect();
    write_raw(dir.join("stereo48.in.raw"), &interleaved);
    let mut mic = AlsaMicrophone::open(&mic_spec("capture_stereo48_stereo", 48_000)).unwrap();
    let n = mic.negotiated();
    assert_eq!((n.rate, n.channels), (48_000, 2), "{n}");
    let mut captured = Vec::new();
    let mut frame = [0i16; 320];
    for _ in 0..50 {
        mic.read(&mut frame).unwrap();
        captured.extend_from_slice(&frame);
    }
    // Steady part, past the resampler's start-up and before the end of the file.
    let steady = &captured[1_000..14_000];
    let (mut re, mut im) = (0.0f64, 0.0f64);
    for (i, &s) in steady.iter().enumerate() {
        let phase = 2.0 * std::f64::consts::PI * 1_000.0 * i as f64 / 16_000.0;
        re += f64::from(s) * phase.cos();
        im += f64::from(s) * phase.sin();
    }
    let level = 2.0 * (re * re + im * im).sqrt() / steady.len() as f64;
    assert!((level - 8_000.0).abs() < 200.0, "1 kHz at 16 kHz with amplitude {level:.0}, expected 8000");
}

#[test]
fn playback_to_a_stereo_device_puts_the_voice_in_both_channels() {
    let dir = dir();
    let output = signal(3_200);
    let mut speaker = AlsaSpeaker::open(&speaker_spec("playback_stereo16_stereo")).unwrap();
    speaker.write(&output).unwrap();
    speaker.drain().unwrap();
    let played = read_raw(dir.join("stereo16.out.raw"));
    let left: Vec<i16> = played.iter().step_by(2).copied().collect();
    let right: Vec<i16> = played.iter().skip(1).step_by(2).copied().collect();
    assert_eq!(&left[..output.len()], &output[..]);
    assert_eq!(&right[..output.len()], &output[..]);
}

#[test]
fn a_missing_device_names_the_devices_that_exist() {
    dir();
    let error = AlsaMicrophone::open(&mic_spec("hw:CARD=NoSuchCard,DEV=0", 16_000)).err().expect("no such card");
    assert_eq!(error.kind(), ErrorKind::NotFound, "{error}");
    let message = error.to_string();
    assert!(message.starts_with("microphone `hw:CARD=NoSuchCard,DEV=0`: no such device"), "{message}");
    assert!(message.contains("devices here:") && !message.contains('\n'), "{message}");
    let error = AlsaSpeaker::open(&speaker_spec("no_such_pcm")).err().expect("no such PCM");
    assert_eq!(error.kind(), ErrorKind::NotFound, "{error}");
}
