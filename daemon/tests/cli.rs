//! The `pivox` binary itself: `check-config` messages, a scripted `run --turns 1` against
//! `pivox serve` with a bearer token, and that the token never reaches the log.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const PIVOX: &str = env!("CARGO_BIN_EXE_pivox");

#[test]
fn check_config_accepts_the_example_and_explains_a_broken_file_in_one_line() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../pivox.example.toml");
    let ok = Command::new(PIVOX).arg("check-config").arg(&example).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("OK"));

    let dir = temp_dir("cli-bad");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[server]\nurl = \"ws://127.0.0.1:1/\"\n\n[audio]\nframe_ms = 33\n").unwrap();
    let out = Command::new(PIVOX).arg("check-config").arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains(&format!("{}:5: audio.frame_ms: 33 ms: Opus frames are 10 or 20 ms", bad.display())),
        "{stderr}"
    );
    let missing = Command::new(PIVOX).args(["check-config", "/nonexistent/pivox.toml"]).output().unwrap();
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
    let usage = Command::new(PIVOX).args(["run", "--turns", "many"]).output().unwrap();
    assert!(!usage.status.success() && String::from_utf8_lossy(&usage.stderr).contains("invalid value"));
}

struct Killed(std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn a_scripted_turn_with_a_token_completes_and_the_token_is_never_logged() {
    let dir = temp_dir("cli-token");
    let token = "tok-7f3a9c1e-never-log-me";
    std::fs::write(dir.join("token"), format!("{token}\n")).unwrap();
    let port = free_port();
    let server = Killed(
        Command::new(PIVOX)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--token-file"])
            .arg(dir.join("token"))
            .env("PIVOX_LOG", "trace")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let text =
        config_text(&format!("ws://127.0.0.1:{port}/"), "press 0.6, release 1.6", "[audio]\nearcon_volume = 0.0\n")
            .replace("[server]\n", "[server]\ntoken_file = \"token\"\n")
            .replace("[speaker]\nbackend = \"sim\"\n", "[speaker]\nbackend = \"sim\"\ndevice = \"reply.wav\"\n");
    std::fs::write(dir.join("pivox.toml"), text).unwrap();
    let started = Instant::now();
    let run = Command::new(PIVOX)
        .args(["run", "--turns", "1", "--config"])
        .arg(dir.join("pivox.toml"))
        .env("PIVOX_LOG", "trace")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{log}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(log.contains("Completed"), "{log}");
    assert!(!log.contains(token) && !log.contains("tok-7f3a"), "the token leaked into the log");
    let reply = hound::WavReader::open(dir.join("reply.wav")).unwrap();
    assert!(reply.duration() > 8_000, "the reply was written to the speaker's WAV");
    drop(server);

    // The wrong token: refused with a message that says what to fix, and not logged either.
    let port = free_port();
    std::fs::write(dir.join("other"), "a-different-token").unwrap();
    let _server = Killed(
        Command::new(PIVOX)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--token-file"])
            .arg(dir.join("other"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let text = with_port(&std::fs::read_to_string(dir.join("pivox.toml")).unwrap(), port);
    std::fs::write(dir.join("wrong.toml"), text).unwrap();
    let mut daemon = Command::new(PIVOX)
        .args(["run", "--config"])
        .arg(dir.join("wrong.toml"))
        .env("PIVOX_LOG", "trace")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let _ = daemon.kill();
    let output = String::from_utf8_lossy(&daemon.wait_with_output().unwrap().stderr).into_owned();
    assert!(output.contains("refused the token"), "{output}");
    assert!(!output.contains(token));
}

/// Points a config's server url at `port`.
fn with_port(text: &str, port: u16) -> String {
    text.lines()
        .map(|l| if l.starts_with("url = ") { format!("url = \"ws://127.0.0.1:{port}/\"") } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n")
}
