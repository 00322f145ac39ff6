//! The media player HA sees on the device: the loudness of replies, announcements and earcons
//! (volume and mute, kept across restarts in the state directory), and the audio formats pivox
//! decodes, so that HA renders its speech in one of them (FLAC, 16 kHz mono: no resampling,
//! no lossy step) instead of converting it for the device.

use std::path::Path;

use super::messages::{
    ListEntitiesMediaPlayerResponse, MediaPlayerCommandRequest, MediaPlayerStateResponse, MediaPlayerSupportedFormat,
};

/// The media player's entity key.
pub const MEDIA_PLAYER_KEY: u32 = 2;
/// HA's `MediaPlayerEntityFeature` bits pivox supports: volume set, mute, volume step, play
/// media (an URL played like an announcement), announcements.
pub const FEATURES: u32 = 4 | 8 | 1024 | 512 | (1 << 20);
/// `MediaPlayerState`: idle (HA's ESPHome integration knows no "announcing").
const IDLE: i32 = 1;
/// One step of volume up / down.
const STEP: f32 = 0.1;

/// Volume and mute, as HA set them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Loudness {
    pub volume: f32,
    pub muted: bool,
}

impl Default for Loudness {
    fn default() -> Self {
        Self { volume: 1.0, muted: false }
    }
}

impl Loudness {
    /// The gain playback applies.
    pub fn gain(self) -> f32 {
        if self.muted { 0.0 } else { self.volume }
    }

    /// What a command changes; `None`: nothing about loudness.
    pub fn after(self, command: &MediaPlayerCommandRequest) -> Option<Loudness> {
        let mut next = self;
        if command.has_volume && command.volume.is_finite() {
            next.volume = command.volume.clamp(0.0, 1.0);
        }
        if command.has_command {
            match command.command {
                3 => next.muted = true,
                4 => next.muted = false,
                6 => next.volume = (next.volume + STEP).min(1.0),
                7 => next.volume = (next.volume - STEP).max(0.0),
                _ => {}
            }
        }
        (next != self).then_some(next)
    }

    pub fn state(self) -> MediaPlayerStateResponse {
        MediaPlayerStateResponse { key: MEDIA_PLAYER_KEY, state: IDLE, volume: self.volume, muted: self.muted }
    }

    /// Reads the kept loudness (`volume muted`, e.g. `0.6 0`); the default when there is none.
    pub fn load(file: &Path) -> Self {
        let Ok(text) = crate::files::read_text_bounded(file, 64) else { return Self::default() };
        let mut words = text.split_whitespace();
        let volume = words.next().and_then(|w| w.parse::<f32>().ok()).filter(|v| (0.0..=1.0).contains(v));
        let muted = words.next() == Some("1");
        volume.map_or_else(Self::default, |volume| Self { volume, muted })
    }

    /// Keeps the loudness for the next start; a failure is logged, not fatal.
    pub fn save(self, file: &Path) {
        let text = format!("{:.3} {}\n", self.volume, u8::from(self.muted));
        if let Err(e) = crate::files::write_atomic(file, &text, 0o644) {
            log::warn!(
                "cannot keep the volume in {}: {e}; it is back to {:.0} % after a restart",
                file.display(),
                Self::load(file).volume * 100.0
            );
        }
    }
}

/// The media player as HA lists it, with the formats pivox decodes.
pub fn entity() -> ListEntitiesMediaPlayerResponse {
    let format = |format: &str, purpose| MediaPlayerSupportedFormat {
        format: format.into(),
        sample_rate: 16_000,
        num_channels: 1,
        purpose,
        sample_bytes: 2,
    };
    ListEntitiesMediaPlayerResponse {
        object_id: "speaker".into(),
        key: MEDIA_PLAYER_KEY,
        name: "Speaker".into(),
        icon: String::new(),
        supports_pause: false,
        // Announcements first: HA renders the satellite's speech in the first of those.
        supported_formats: vec![format("flac", 1), format("flac", 0), format("mp3", 0), format("wav", 0)],
        feature_flags: FEATURES,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(f: impl FnOnce(&mut MediaPlayerCommandRequest)) -> MediaPlayerCommandRequest {
        let mut c = MediaPlayerCommandRequest { key: MEDIA_PLAYER_KEY, ..Default::default() };
        f(&mut c);
        c
    }

    #[test]
    fn volume_and_mute_commands_change_the_gain_and_survive_a_restart() {
        let start = Loudness::default();
        let half = start.after(&command(|c| (c.has_volume, c.volume) = (true, 0.5))).unwrap();
        assert_eq!(half.gain(), 0.5);
        let muted = half.after(&command(|c| (c.has_command, c.command) = (true, 3))).unwrap();
        assert_eq!((muted.gain(), muted.volume), (0.0, 0.5));
        assert_eq!(muted.after(&command(|c| (c.has_command, c.command) = (true, 3))), None, "no change");
        let up = half.after(&command(|c| (c.has_command, c.command) = (true, 6))).unwrap();
        assert!((up.volume - 0.6).abs() < 1e-6);
        assert_eq!(start.after(&command(|c| (c.has_volume, c.volume) = (true, f32::NAN))), None);

        let file = std::env::temp_dir().join(format!("pivox-volume-{}", std::process::id()));
        muted.save(&file);
        assert_eq!(Loudness::load(&file), Loudness { volume: 0.5, muted: true });
        std::fs::write(&file, "loud\n").unwrap();
        assert_eq!(Loudness::load(&file), Loudness::default(), "a broken file is the default");
        std::fs::remove_file(&file).unwrap();
    }
}
