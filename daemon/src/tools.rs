//! Hobbyist tools for checking the hardware before running the daemon:
//! `pivox devices` (what this machine has, with the names to put in the config),
//! `pivox test-button` (prints each press and release with timing: a wiring check) and
//! `pivox test-audio` (records a few seconds, plays them back, reports level and clipping).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use pivox_hal::backend::{self, BUTTONS, MICROPHONES, SPEAKERS};
use pivox_hal::{Edge, alsa};

use crate::config::Config;
use crate::devices;

/// The report `pivox devices` prints.
pub fn devices_report() -> String {
    let mut out = String::new();
    for (title, direction, section) in [
        ("Microphones (ALSA capture)", alsa::Direction::Capture, "microphone"),
        ("Speakers (ALSA playback)", alsa::Direction::Playback, "speaker"),
    ] {
        let found = alsa::devices(direction);
        let _ = writeln!(out, "{title}: put the name in [{section}] device, with backend = \"alsa\"");
        if found.is_empty() {
            let _ = writeln!(out, "  none found");
        }
        for d in found {
            let _ = writeln!(out, "  {:<40} {}", d.name, d.description);
        }
    }
    let pi = pivox_hal::gpio::is_raspberry_pi();
    let _ = writeln!(
        out,
        "GPIO: {}",
        if pi {
            "this is a Raspberry Pi: backend = \"gpio\" takes a BCM pin number, \"gpiocdev\" a line below"
        } else {
            "not a Raspberry Pi: backend = \"gpiocdev\" with a line below, or the sim backends"
        }
    );
    let chips = pivox_hal::gpio::cdev::chips();
    let _ = writeln!(out, "GPIO chips: put a line's name (or gpiochipN:OFFSET) in [button] or [led] device");
    if chips.is_empty() {
        let _ = writeln!(out, "  none found (or none this user may open: the gpio group)");
    }
    for chip in &chips {
        let _ = writeln!(out, "  {}  {}, {} lines", chip.path.display(), chip.label, chip.lines);
        out.push_str(&named_lines(chip));
    }
    let mut spi: Vec<String> = std::fs::read_dir("/dev")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("spidev"))
                .map(|n| format!("/dev/{n}"))
                .collect()
        })
        .unwrap_or_default();
    spi.sort();
    let listed = if spi.is_empty() { "none".to_string() } else { spi.join(", ") };
    let _ = writeln!(out, "SPI devices (for apa102 LEDs): {listed}");
    out
}

/// A chip's named lines, wrapped, those in use marked with their user; or how to name its
/// lines when it has no names.
fn named_lines(chip: &pivox_hal::gpio::cdev::ChipSummary) -> String {
    let name = chip.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if chip.named.is_empty() {
        return format!("    no named lines: use {name}:OFFSET (0 to {})\n", chip.lines.saturating_sub(1));
    }
    let mut out = String::new();
    let mut line = String::from("   ");
    for (_, line_name, consumer) in &chip.named {
        let word = if consumer.is_empty() { line_name.clone() } else { format!("{line_name} (used by {consumer})") };
        if line.len() + 1 + word.len() > 96 && line.len() > 3 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("   ");
        }
        line.push(' ');
        line.push_str(&word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// `pivox test-button`: prints each edge of the configured button (in its press mode) with
/// the time since start and how long it was held, until `count` edges (or forever).
pub fn test_button(config: &Config, count: Option<u32>, print: &mut dyn FnMut(String)) -> Result<(), String> {
    let start = Instant::now();
    let open = backend::find(BUTTONS, &config.button.backend).map_err(|e| e.to_string())?;
    let button = open(&devices::button_spec(config, start)).map_err(|e| format!("button: {e}"))?;
    let mut button = config.button.mode.wrap(button);
    print(format!(
        "button `{}` ({} backend, {:?} mode): press it; Ctrl-C to stop",
        config.button.device, config.button.backend, config.button.mode
    ));
    let mut pressed_at = None;
    let mut seen = 0;
    while count.is_none_or(|n| seen < n) {
        let Some(event) = button.next_event(Duration::from_millis(200)).map_err(|e| format!("button: {e}"))? else {
            continue;
        };
        seen += 1;
        let t = event.at.duration_since(start).as_secs_f64();
        match event.edge {
            Edge::Pressed => {
                pressed_at = Some(event.at);
                print(format!("{t:8.3} s  pressed"));
            }
            Edge::Released => {
                let held = pressed_at.take().map(|p| event.at.duration_since(p).as_secs_f64());
                let held = held.map(|h| format!(" (held {h:.3} s)")).unwrap_or_default();
                print(format!("{t:8.3} s  released{held}"));
            }
        }
    }
    Ok(())
}

/// What `pivox test-audio` measured.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioCheck {
    pub samples: usize,
    pub rms_dbfs: f64,
    pub peak_dbfs: f64,
    /// Samples at full scale: the input gain is too high when this is not zero.
    pub clipped: usize,
}

impl AudioCheck {
    pub fn measure(samples: &[i16]) -> Self {
        let dbfs = |x: f64| if x > 0.0 { 20.0 * (x / 32768.0).log10() } else { f64::NEG_INFINITY };
        let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
        let rms = if samples.is_empty() { 0.0 } else { (sum / samples.len() as f64).sqrt() };
        let peak = samples.iter().map(|&s| f64::from(s).abs()).fold(0.0, f64::max);
        let clipped = samples.iter().filter(|&&s| s == i16::MAX || s == i16::MIN).count();
        Self { samples: samples.len(), rms_dbfs: dbfs(rms), peak_dbfs: dbfs(peak), clipped }
    }

    /// One line for a person: the figures and what to do about them.
    pub fn verdict(&self) -> String {
        let advice = if self.clipped > 0 {
            "clipping: lower the capture gain (alsamixer, F4)"
        } else if self.rms_dbfs < -50.0 {
            "almost silence: is the right microphone selected, and its gain up?"
        } else if self.peak_dbfs < -20.0 {
            "quiet: raise the capture gain for better recognition"
        } else {
            "level looks good"
        };
        format!(
            "{:.1} s recorded: level {:.1} dBFS RMS, peak {:.1} dBFS, {} clipped sample(s): {advice}",
            self.samples as f64 / f64::from(crate::audio::CODEC_RATE),
            self.rms_dbfs,
            self.peak_dbfs,
            self.clipped
        )
    }
}

/// `pivox test-audio`: records `seconds` from the configured microphone, plays them back on
/// the configured speaker, and measures the recording.
pub fn test_audio(config: &Config, seconds: f64, print: &mut dyn FnMut(String)) -> Result<AudioCheck, String> {
    let open_mic = backend::find(MICROPHONES, &config.microphone.backend).map_err(|e| e.to_string())?;
    let open_speaker = backend::find(SPEAKERS, &config.speaker.backend).map_err(|e| e.to_string())?;
    let mut mic = open_mic(&devices::mic_spec(config, Instant::now())).map_err(|e| format!("microphone: {e}"))?;
    let mut speaker =
        open_speaker(&devices::speaker_spec(config, Default::default())).map_err(|e| format!("speaker: {e}"))?;
    let total = (seconds * f64::from(mic.sample_rate())) as usize;
    print(format!("recording {seconds:.1} s from `{}`: speak now", config.microphone.device));
    let mut recorded = vec![0i16; total];
    for chunk in recorded.chunks_mut(320) {
        if mic.read(chunk).map_err(|e| format!("microphone: {e}"))? == 0 {
            return Err("the microphone source ended before the recording did".into());
        }
    }
    drop(mic);
    print(format!("playing it back on `{}`", config.speaker.device));
    for chunk in recorded.chunks(320) {
        speaker.write(chunk).map_err(|e| format!("speaker: {e}"))?;
    }
    speaker.drain().map_err(|e| format!("speaker: {e}"))?;
    Ok(AudioCheck::measure(&recorded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_clipping_are_measured() {
        let full: Vec<i16> = (0..1600).map(|n| if n % 2 == 0 { i16::MAX } else { i16::MIN }).collect();
        let check = AudioCheck::measure(&full);
        assert_eq!(check.clipped, 1600);
        assert!(check.rms_dbfs > -0.01 && check.peak_dbfs > -0.01);
        assert!(check.verdict().contains("clipping"));
        let quiet = AudioCheck::measure(&vec![1000i16; 1600]);
        assert!((quiet.rms_dbfs - 20.0 * (1000.0f64 / 32768.0).log10()).abs() < 1e-9);
        assert!(quiet.verdict().contains("quiet"), "{}", quiet.verdict());
        assert!(AudioCheck::measure(&[0; 10]).verdict().contains("silence"));
        assert_eq!(AudioCheck::measure(&[]).samples, 0);
    }
}
