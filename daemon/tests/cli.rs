//! The `pivox` binary itself: `check-config` messages, a scripted `run --turns 1` against
//! `pivox serve` with a bearer token, and that the token never reaches the log; `serve`,
//! `serve-homeassistant` and `demo` handed to `pivox-devtools`, or refused in one line where
//! it is not installed.
//!
//! `pivox serve` runs the `pivox-devtools` built next to `pivox`: `cargo test --workspace`
//! builds both (with `cargo test -p pivox` alone, build it first: `cargo build -p pivox-devtools`).

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
    let mic = format!("[microphone]\nbackend = \"sim\"\ndevice = {:?}\n", speech_path().display().to_string());
    std::fs::write(&bad, format!("[server]\nurl = \"ws://127.0.0.1:1/\"\n\n[audio]\nframe_ms = 33\n{mic}")).unwrap();
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

/// Starts `pivox serve` on a port the kernel picks (tests run in parallel, so a port
/// chosen beforehand could be taken by another test) and returns it with its URL.
fn reference_server(args: &[&std::ffi::OsStr]) -> (Killed, String) {
    let mut all: Vec<&std::ffi::OsStr> = vec!["serve".as_ref()];
    all.extend_from_slice(args);
    server(&all)
}

/// Starts `pivox ARGS --listen 127.0.0.1:0` and returns it with the URL it logs.
fn server(args: &[&std::ffi::OsStr]) -> (Killed, String) {
    let mut child = Command::new(PIVOX)
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .env("PIVOX_LOG", "trace")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = log_lines(child.stderr.take().unwrap());
    let server = Killed(child);
    let seen = wait_for_line(&lines, "listening on ", Duration::from_secs(10));
    let url = seen.last().unwrap().split("listening on ").nth(1).unwrap().trim().to_string();
    // Keep draining its log so that it never blocks on a full pipe.
    std::thread::spawn(move || lines.into_iter().for_each(drop));
    (server, url)
}

/// The lines of a child's log, as they come.
fn log_lines(stderr: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    lines
}

#[test]
fn a_scripted_turn_with_a_token_completes_and_the_token_is_never_logged() {
    let dir = temp_dir("cli-token");
    let token = "tok-7f3a9c1e-never-log-me";
    std::fs::write(dir.join("token"), format!("{token}\n")).unwrap();
    let (server, url) = reference_server(&["--token-file".as_ref(), dir.join("token").as_os_str()]);
    let text = config_text(&url, "press 0.6, release 1.6", "[audio]\nearcon_volume = 0.0\n")
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
    std::fs::write(dir.join("other"), "a-different-token").unwrap();
    let (_server, other_url) = reference_server(&["--token-file".as_ref(), dir.join("other").as_os_str()]);
    let text = std::fs::read_to_string(dir.join("pivox.toml")).unwrap().replace(&url, &other_url);
    std::fs::write(dir.join("wrong.toml"), text).unwrap();
    let output = run_for(&dir.join("wrong.toml"), Duration::from_millis(1500));
    assert!(output.contains("refused the token"), "{output}");
    assert!(!output.contains(token));
}

#[test]
fn a_scripted_home_assistant_turn_completes_and_the_token_is_never_logged() {
    let dir = temp_dir("cli-ha");
    let token = "eyJhbGciOiJIUzI1NiJ9.ha-long-lived-never-log";
    std::fs::write(dir.join("ha-token"), format!("{token}\n")).unwrap();
    let reply = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reply.mp3");
    let (ha, url) = server(&[
        "serve-homeassistant".as_ref(),
        "--token-file".as_ref(),
        dir.join("ha-token").as_os_str(),
        "--reply".as_ref(),
        reply.as_os_str(),
    ]);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let text = config_text(&url, "press 0.3, release 1.6", "[audio]\nearcon_volume = 0.0\n")
        .replace("[server]\n", "[server]\nkind = \"homeassistant\"\ntoken_file = \"ha-token\"\n")
        .replace("[speaker]\nbackend = \"sim\"\n", "[speaker]\nbackend = \"sim\"\ndevice = \"reply.wav\"\n");
    std::fs::write(dir.join("ha.toml"), &text).unwrap();
    let run = Command::new(PIVOX)
        .args(["run", "--turns", "1", "--config"])
        .arg(dir.join("ha.toml"))
        .env("PIVOX_LOG", "trace")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{log}");
    assert!(log.contains("ready: connected to Home Assistant 2025.11.0"), "{log}");
    assert!(log.contains("reply \"It is twenty past three.\""), "{log}");
    assert!(log.contains("Completed"), "{log}");
    assert!(!log.contains(token) && !log.contains("never-log"), "the token leaked into the log");
    // The speaker's WAV holds the decoded MP3 (1.76 s of speech at 16 kHz).
    let written = hound::WavReader::open(dir.join("reply.wav")).unwrap();
    assert!(written.duration() > 25_000, "{} samples", written.duration());

    // A token HA rejects: one line that says what to do, no retry storm, no token.
    std::fs::write(dir.join("wrong-token"), "a-token-ha-never-issued\n").unwrap();
    std::fs::write(dir.join("wrong.toml"), text.replace("\"ha-token\"", "\"wrong-token\"")).unwrap();
    let output = run_for(&dir.join("wrong.toml"), Duration::from_millis(1500));
    let rejected: Vec<&str> = output.lines().filter(|l| l.contains("rejected the access token")).collect();
    assert_eq!(rejected.len(), 1, "said once, not retried: {output}");
    assert!(rejected[0].contains("not retrying") && rejected[0].contains("wrong-token"), "{output}");
    assert!(!output.contains("a-token-ha-never-issued") && !output.contains(token), "{output}");
    drop(ha);
}

/// Runs `pivox run --config CONFIG` at trace level for `time`, then kills it; returns its log.
fn run_for(config: &std::path::Path, time: Duration) -> String {
    let mut daemon = Command::new(PIVOX)
        .args(["run", "--config"])
        .arg(config)
        .env("PIVOX_LOG", "trace")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(time);
    let _ = daemon.kill();
    String::from_utf8_lossy(&daemon.wait_with_output().unwrap().stderr).into_owned()
}

/// Starts `pivox run` on `config` with stdin piped and waits (bounded) until it is ready
/// for a press. Returns the child and a channel with the rest of its log.
fn start_connected(config: &std::path::Path) -> (Killed, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(PIVOX)
        .args(["run", "--config"])
        .arg(config)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = log_lines(child.stderr.take().unwrap());
    let child = Killed(child);
    wait_for_line(&lines, "ready:", Duration::from_secs(10));
    (child, lines)
}

/// Reads log lines until one contains `needle`; panics with what was seen after `limit`.
fn wait_for_line(lines: &std::sync::mpsc::Receiver<String>, needle: &str, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(needle);
                seen.push(line);
                if found {
                    return seen;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no log line with {needle:?} within {limit:?}:\n{}", seen.join("\n"))
}

#[test]
fn enter_on_stdin_starts_and_ends_a_turn() {
    use std::io::Write;
    let dir = temp_dir("cli-stdin");
    let (_server, url) = reference_server(&[]);
    let text = config_text(&url, "stdin", "[audio]\nearcon_volume = 0.0\n");
    std::fs::write(dir.join("pivox.toml"), text).unwrap();
    let (mut daemon, lines) = start_connected(&dir.join("pivox.toml"));
    let mut stdin = daemon.0.stdin.take().unwrap();
    stdin.write_all(b"\n").unwrap();
    wait_for_line(&lines, "listening", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(800));
    stdin.write_all(b"\n").unwrap();
    wait_for_line(&lines, "ended (Released)", Duration::from_secs(5));
    wait_for_line(&lines, "Completed", Duration::from_secs(10));
}

#[test]
fn sigterm_stops_the_daemon_cleanly_and_promptly() {
    let dir = temp_dir("cli-sigterm");
    let (_server, url) = reference_server(&[]);
    let text = config_text(&url, "", "");
    std::fs::write(dir.join("pivox.toml"), text).unwrap();
    let (mut daemon, lines) = start_connected(&dir.join("pivox.toml"));
    let sent = Instant::now();
    // SAFETY: kill(2) on our own child's pid, which has not been waited for yet.
    assert_eq!(unsafe { libc::kill(daemon.0.id() as libc::pid_t, libc::SIGTERM) }, 0);
    let deadline = sent + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = daemon.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "still running 5 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "SIGTERM is a normal stop for a service: {status:?}");
    assert!(sent.elapsed() < Duration::from_secs(3), "stopped in {:?}", sent.elapsed());
    let log: Vec<String> = lines.try_iter().collect();
    assert!(log.iter().any(|l| l.contains("stopping: SIGTERM")), "{log:?}");
}

#[test]
fn gpio_off_a_pi_stops_the_daemon_with_a_message_that_says_why() {
    let dir = temp_dir("cli-gpio");
    let text = config_text("ws://127.0.0.1:9/", "", "")
        .replace("[button]\nbackend = \"sim\"\ndevice = \"\"\n", "[button]\nbackend = \"gpio\"\ndevice = \"17\"\n");
    assert!(text.contains("backend = \"gpio\""), "{text}");
    std::fs::write(dir.join("pivox.toml"), text).unwrap();
    let out = Command::new(PIVOX).args(["run", "--config"]).arg(dir.join("pivox.toml")).output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    if std::path::Path::new("/proc/device-tree/model").exists() {
        return; // On a real Pi this opens the pin instead.
    }
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(log.contains("GPIO needs a Raspberry Pi (this machine is not one); use backend = \"sim\""), "{log}");
}

#[test]
fn the_hardware_tools_report_devices_button_edges_and_audio_levels() {
    let devices = Command::new(PIVOX).arg("devices").output().unwrap();
    let text = String::from_utf8_lossy(&devices.stdout);
    assert!(devices.status.success(), "{}", String::from_utf8_lossy(&devices.stderr));
    for section in ["Microphones (ALSA capture)", "Speakers (ALSA playback)", "GPIO:", "GPIO chips:", "SPI devices"] {
        assert!(text.contains(section), "{text}");
    }

    let dir = temp_dir("cli-tools");
    let text = config_text("ws://127.0.0.1:9/", "press 0.1, release 0.35, press 0.5, release 0.6", "");
    std::fs::write(dir.join("pivox.toml"), text).unwrap();
    let out = Command::new(PIVOX)
        .args(["test-button", "--count", "4", "--config"])
        .arg(dir.join("pivox.toml"))
        .output()
        .unwrap();
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    assert!(out.status.success() && lines.len() == 5, "{lines:?}");
    assert!(lines[2].contains("released (held 0.250 s)"), "{lines:?}");
    assert!(lines[4].contains("released (held 0.100 s)"), "{lines:?}");

    // test-audio through the real ALSA library: a file-plugin microphone reading the speech
    // sample and a file-plugin speaker, so the loop back is checked sample for sample.
    let speech = speech();
    let raw = |samples: &[i16]| samples.iter().flat_map(|s| s.to_le_bytes()).collect::<Vec<u8>>();
    std::fs::write(dir.join("in.raw"), raw(&speech)).unwrap();
    let d = dir.display();
    std::fs::write(
        dir.join("asound.conf"),
        format!(
            "pcm.testmic {{ type file slave.pcm \"null\" file \"/dev/null\" infile \"{d}/in.raw\" format \"raw\" }}\n\
             pcm.testspk {{ type file slave.pcm \"null\" file \"{d}/out.raw\" format \"raw\" }}\n"
        ),
    )
    .unwrap();
    let text = "[server]\nurl = \"ws://127.0.0.1:9/\"\n[microphone]\nbackend = \"alsa\"\ndevice = \"testmic\"\n\
         [speaker]\nbackend = \"alsa\"\ndevice = \"testspk\"\n[button]\nbackend = \"sim\"\n[led]\nbackend = \"sim\"\n";
    std::fs::write(dir.join("alsa.toml"), text).unwrap();
    let out = Command::new(PIVOX)
        .args(["test-audio", "--seconds", "1", "--config"])
        .arg(dir.join("alsa.toml"))
        .env("ALSA_CONFIG_PATH", format!("/usr/share/alsa/alsa.conf:{d}/asound.conf"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("1.0 s recorded: level") && stdout.contains("0 clipped"), "{stdout}");
    let played: Vec<i16> =
        std::fs::read(dir.join("out.raw")).unwrap().chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
    assert!(played.len() >= 16_000, "{} samples played", played.len());
    assert_eq!(&played[..16_000], &speech[..16_000], "recorded and played back sample for sample");
}

#[test]
fn systemd_hears_ready_then_watchdog_pings_from_the_main_loop_then_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = temp_dir("cli-notify");
    let (_server, url) = reference_server(&[]);
    std::fs::write(dir.join("pivox.toml"), config_text(&url, "", "")).unwrap();
    let notify = UnixDatagram::bind(dir.join("notify")).unwrap();
    notify.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let daemon = Command::new(PIVOX)
        .args(["run", "--config"])
        .arg(dir.join("pivox.toml"))
        .env("NOTIFY_SOCKET", dir.join("notify"))
        // A 200 ms watchdog: pings every 100 ms.
        .env("WATCHDOG_USEC", "200000")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let daemon = Killed(daemon);
    let mut buf = [0u8; 512];
    let mut next = || {
        let n = notify.recv(&mut buf).expect("a notification within 5 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let first = next();
    assert!(first.contains("READY=1\n") && first.contains("STATUS=connecting to ws://"), "{first}");

    let started = Instant::now();
    let (mut pings, mut connected) = (0, false);
    for _ in 0..100 {
        let message = next();
        pings += usize::from(message == "WATCHDOG=1\n");
        connected |= message.starts_with("STATUS=connected to ");
        if pings >= 8 && connected {
            break;
        }
    }
    let elapsed = started.elapsed();
    assert!(pings >= 8 && connected, "{pings} pings, connected: {connected}");
    // Eight pings at 100 ms apart take about 0.8 s; far fewer in that time would trip systemd.
    assert!(elapsed < Duration::from_secs(3), "8 pings took {elapsed:?}");

    // SAFETY: kill(2) on our own child's pid, which has not been waited for yet.
    assert_eq!(unsafe { libc::kill(daemon.0.id() as libc::pid_t, libc::SIGTERM) }, 0);
    let stopping = (0..100).map(|_| next()).find(|m| m.contains("STOPPING=1"));
    assert!(stopping.is_some(), "no STOPPING=1 after SIGTERM");
}

#[test]
fn serve_and_demo_are_handed_to_pivox_devtools_with_their_arguments() {
    for (command, flag) in [("serve", "--reply-wav"), ("serve-homeassistant", "--token-file"), ("demo", "--out")] {
        let help = Command::new(PIVOX).args([command, "--help"]).output().unwrap();
        let stdout = String::from_utf8_lossy(&help.stdout);
        assert!(help.status.success(), "{command}: {}", String::from_utf8_lossy(&help.stderr));
        assert!(stdout.contains(&format!("Usage: pivox-devtools {command}")) && stdout.contains(flag), "{stdout}");
    }
    // pivox-devtools' own exit code and message come through unchanged (clap's usage error: 2).
    let wrong = Command::new(PIVOX).args(["serve", "--no-such-flag"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert_eq!(wrong.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("'--no-such-flag'") && stderr.contains("pivox-devtools serve"), "{stderr}");
}

#[test]
fn without_pivox_devtools_the_development_commands_say_so_in_one_line() {
    // A folder holding only `pivox` (as /usr/local/bin on a Pi), and a PATH without pivox-devtools.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("pi-{}", std::process::id()));
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let alone = dir.join("pivox");
    let _ = std::fs::remove_file(&alone);
    if std::fs::hard_link(PIVOX, &alone).is_err() {
        std::fs::copy(PIVOX, &alone).unwrap();
    }
    for command in ["serve", "serve-homeassistant", "demo"] {
        let out = Command::new(&alone).args([command, "--help"]).env("PATH", &empty).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(&format!("`pivox {command}` is a development tool and is not installed here"))
                && stderr.contains("build it with `cargo build -p pivox-devtools`"),
            "{stderr}"
        );
        assert!(out.stdout.is_empty());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
