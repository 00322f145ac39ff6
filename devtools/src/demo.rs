//! `pivox demo` (`pivox-devtools demo`): the whole appliance on this machine with nothing to
//! set up. Starts the reference server on loopback, runs the daemon against it with simulated
//! devices — the bundled speech sample as the microphone, a button held for the sample's
//! length, the speaker writing to a WAV file — for one turn, then prints a timeline and the
//! figures.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pivox::audio::CODEC_RATE;
use pivox::config::Config;
use pivox::daemon::{self, Probes, RunOptions};
use pivox::files;
use pivox::session::Outcome;
use pivox_hal::sim::WavMicrophone;

use crate::server::{self, ServerOptions};

/// The bundled speech sample: 1.94 s of espeak-ng, 16 kHz mono (daemon/assets/speech.wav).
pub const SPEECH_WAV: &[u8] = include_bytes!("../../daemon/assets/speech.wav");

/// The user starts talking this long before pressing: pre-roll keeps it.
const PRESS_AFTER: Duration = Duration::from_millis(250);

pub async fn run(out: &Path) -> Result<(), String> {
    // Before anything runs: a reply that cannot be written is an error, not a claim it is there.
    files::check_writable(out).map_err(|e| format!("--out: {e}"))?;
    let dir = std::env::temp_dir().join(format!("pivox-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let speech = dir.join("speech.wav");
    std::fs::write(&speech, SPEECH_WAV).map_err(|e| format!("{}: {e}", speech.display()))?;
    let sample = WavMicrophone::decode(SPEECH_WAV, "speech.wav", CODEC_RATE).map_err(|e| e.to_string())?.len();
    let release = PRESS_AFTER + Duration::from_secs_f64(sample as f64 / f64::from(CODEC_RATE));

    let server = server::start(ServerOptions::echo(([127, 0, 0, 1], 0).into()))
        .await
        .map_err(|e| format!("cannot start the reference server: {e}"))?;
    let toml = format!(
        "[server]\nurl = \"ws://{}/\"\n[microphone]\nbackend = \"sim\"\ndevice = {:?}\n[speaker]\nbackend = \"sim\"\ndevice = {:?}\n\
         [button]\nbackend = \"sim\"\ndevice = \"press {:.3}, release {:.3}\"\n[led]\nbackend = \"sim\"\n",
        server.addr,
        speech.display().to_string(),
        absolute(out).display().to_string(),
        PRESS_AFTER.as_secs_f64(),
        release.as_secs_f64()
    );
    let config = Config::parse(&toml, "demo", &dir).map_err(|e| e.to_string())?.config;
    println!(
        "pivox demo: reference server on ws://{}; speech sample {:.2} s, button held {:.2}–{:.2} s",
        server.addr,
        sample as f64 / f64::from(CODEC_RATE),
        PRESS_AFTER.as_secs_f64(),
        release.as_secs_f64()
    );
    let probes = Probes::default();
    let epoch = Instant::now() + Duration::from_millis(300);
    let options = RunOptions { turns: Some(1), epoch, probes: probes.clone(), ..RunOptions::default() };
    let report = tokio::time::timeout(Duration::from_secs(30), daemon::run(config, options))
        .await
        .map_err(|_| "the demo turn did not finish within 30 s".to_string())??;
    let heard = server.utterances();
    server.kill().await;
    let _ = std::fs::remove_dir_all(&dir);

    println!("\nTimeline (seconds from the start of the speech sample):");
    let at = |t: Instant| t.saturating_duration_since(epoch).as_secs_f64();
    for (t, state) in probes.led.lock().iter() {
        println!("  {:6.3}  LED {state:?}", at(*t));
    }
    let speaker = probes.speaker.lock();
    if let (Some(first), Some(last)) = (speaker.handovers.first(), speaker.handovers.last()) {
        println!("  {:6.3}  speaker: first samples handed over", at(first.at));
        println!("  {:6.3}  speaker: last samples handed over ({} samples in all)", at(last.at), speaker.samples.len());
    }
    if let Some(u) = heard.first() {
        println!(
            "\nThe server heard {:.2} s of {} audio in {} frames ({} ms of it pre-roll).",
            u.samples.len() as f64 / f64::from(CODEC_RATE),
            u.codec,
            u.frames,
            u.preroll_ms
        );
    }
    for turn in &report.turns {
        println!("\n{turn}");
    }
    check_reply(out, speaker.samples.len())?;
    println!("\nThe played reply (earcons included) is in {}", out.display());
    if report.turns.iter().any(|t| t.outcome == Outcome::Completed) {
        Ok(())
    } else {
        Err("the demo turn did not complete".into())
    }
}

/// The reply as the simulated speaker wrote it: a write that failed after the start-up check
/// (a full disk, a folder removed) is reported here rather than claimed done.
fn check_reply(out: &Path, played: usize) -> Result<(), String> {
    let failed = |e: String| format!("--out: the reply was not written to {}: {e}", out.display());
    let bytes = files::read_bounded(out, REPLY_MAX).map_err(failed)?;
    let shown = out.display().to_string();
    let written = WavMicrophone::decode(&bytes, &shown, CODEC_RATE).map_err(|e| failed(e.to_string()))?.len();
    if written < played {
        return Err(failed(format!("it holds {written} of the {played} samples played")));
    }
    Ok(())
}

/// A demo reply lasts a few seconds: 64 MiB is over half an hour of it.
const REPLY_MAX: u64 = 64 << 20;

fn absolute(path: &Path) -> PathBuf {
    std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_that_was_not_written_is_reported() {
        let dir = std::env::temp_dir().join(format!("pivox-demo-reply-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("reply.wav");
        std::fs::write(&out, "").unwrap();
        let err = check_reply(&out, 100).unwrap_err();
        assert!(err.starts_with("--out: the reply was not written to") && !err.contains('\n'), "{err}");
        std::fs::write(&out, SPEECH_WAV).unwrap();
        check_reply(&out, 100).unwrap();
        let samples = WavMicrophone::decode(SPEECH_WAV, "speech.wav", CODEC_RATE).unwrap().len();
        assert!(check_reply(&out, samples + 1).unwrap_err().contains("samples played"));
    }
}
