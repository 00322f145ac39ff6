//! The `pivox-devtools` binary: its option checks say what is wrong in one line before
//! anything listens. (This file is also what makes `cargo test --workspace` build the binary
//! that `pivox serve` and daemon/tests run.)

use std::process::Command;

const DEVTOOLS: &str = env!("CARGO_BIN_EXE_pivox-devtools");

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pivox-devtools-test-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `pivox-devtools ARGS`, which must fail; returns its stderr.
fn refused(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(DEVTOOLS).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

#[test]
fn a_reply_wav_that_is_not_16_khz_mono_is_refused_with_the_sox_line() {
    let dir = temp_dir("reply-wav");
    let wav = dir.join("8k.wav");
    pivox_hal::sim::write_wav(&wav, 8_000, &[0; 800]).unwrap();
    let stderr = refused(&["serve".as_ref(), "--reply-wav".as_ref(), wav.as_os_str()]);
    assert!(
        stderr.contains("it must be 16000 Hz mono 16-bit") && stderr.contains("sox IN.wav -r 16000 -c 1 -b 16 OUT.wav"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_homeassistant_reply_pivox_could_not_play_is_refused_before_listening() {
    let dir = temp_dir("ha-reply");
    std::fs::write(dir.join("token"), "tok\n").unwrap();
    std::fs::write(dir.join("reply.mp3"), "<html>502 Bad Gateway</html>").unwrap();
    let stderr = refused(&[
        "serve-homeassistant".as_ref(),
        "--token-file".as_ref(),
        dir.join("token").as_os_str(),
        "--reply".as_ref(),
        dir.join("reply.mp3").as_os_str(),
    ]);
    assert!(stderr.contains("--reply ") && stderr.contains("not an audio file"), "{stderr}");
    assert!(!stderr.contains("listening"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
