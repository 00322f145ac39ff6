//! Earcons: short tones synthesized at start-up, so no sound files ship with pivox.
//!
//! Each is one or two sine tones with 5 ms raised-cosine fades (no clicks). Rising for
//! press, falling for release, two low beeps for an error, a rising pair for reconnected.

use std::f32::consts::PI;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Earcon {
    Press,
    Release,
    Error,
    Reconnected,
    /// The server heard nothing it could turn into words: "didn't catch that".
    NotUnderstood,
    /// A timer has finished: repeated until the button is pressed.
    Alarm,
}

impl Earcon {
    pub const ALL: [Earcon; 6] =
        [Earcon::Press, Earcon::Release, Earcon::Error, Earcon::Reconnected, Earcon::NotUnderstood, Earcon::Alarm];

    /// (frequency Hz, duration ms) of each tone, with 0 Hz as a pause.
    fn tones(self) -> &'static [(f32, u32)] {
        match self {
            Earcon::Press => &[(660.0, 40), (880.0, 50)],
            Earcon::Release => &[(880.0, 40), (660.0, 50)],
            Earcon::Error => &[(330.0, 120), (0.0, 60), (330.0, 120)],
            Earcon::Reconnected => &[(523.0, 80), (784.0, 100)],
            // A questioning rise, softer than the error's repeated low tone.
            Earcon::NotUnderstood => &[(440.0, 90), (0.0, 40), (554.0, 140)],
            // Three bright beeps, an alarm clock's rhythm.
            Earcon::Alarm => &[(988.0, 120), (0.0, 80), (988.0, 120), (0.0, 80), (988.0, 120)],
        }
    }

    /// The earcon as samples at `rate`, `volume` in 0.0..=1.0 (1.0 is half of full scale).
    pub fn render(self, rate: u32, volume: f32) -> Vec<i16> {
        let amplitude = volume.clamp(0.0, 1.0) * 0.5 * f32::from(i16::MAX);
        let fade = (rate as usize * 5 / 1000).max(1);
        let mut out = Vec::new();
        for &(freq, ms) in self.tones() {
            let n = rate as usize * ms as usize / 1000;
            out.extend((0..n).map(|i| {
                if freq == 0.0 || amplitude == 0.0 {
                    return 0;
                }
                let edge = i.min(n - 1 - i);
                let envelope = if edge < fade { 0.5 - 0.5 * (PI * edge as f32 / fade as f32).cos() } else { 1.0 };
                (amplitude * envelope * (2.0 * PI * freq * i as f32 / rate as f32).sin()) as i16
            }));
        }
        out
    }
}

/// All earcons rendered once for one speaker rate and volume.
#[derive(Debug, Clone)]
pub struct EarconBank {
    sounds: [Vec<i16>; 6],
}

impl EarconBank {
    pub fn new(rate: u32, volume: f32) -> Self {
        Self { sounds: Earcon::ALL.map(|e| e.render(rate, volume)) }
    }

    /// The samples of `earcon`; empty when the volume is 0.
    pub fn get(&self, earcon: Earcon) -> &[i16] {
        let samples = &self.sounds[earcon as usize];
        if samples.iter().all(|s| *s == 0) { &[] } else { samples }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earcons_have_their_length_level_and_no_clicks() {
        let bank = EarconBank::new(16_000, 1.0);
        assert_eq!(bank.get(Earcon::Press).len(), 16 * 90);
        assert_eq!(bank.get(Earcon::Error).len(), 16 * 300);
        for e in Earcon::ALL {
            let s = bank.get(e);
            let peak = s.iter().map(|x| x.unsigned_abs()).max().unwrap();
            assert!((15_000..=16_400).contains(&peak), "{e:?} peak {peak}");
            assert!(
                s[0].unsigned_abs() < 100 && s[s.len() - 1].unsigned_abs() < 500,
                "{e:?} starts and ends near zero"
            );
        }
    }

    #[test]
    fn volume_scales_and_zero_is_silent() {
        let loud = Earcon::Press.render(16_000, 1.0);
        let quiet = Earcon::Press.render(16_000, 0.25);
        let peak = |s: &[i16]| s.iter().map(|x| x.unsigned_abs()).max().unwrap();
        assert!((peak(&quiet) as f32 / peak(&loud) as f32 - 0.25).abs() < 0.01);
        assert!(EarconBank::new(16_000, 0.0).get(Earcon::Error).is_empty());
    }
}
