//! Fault suite, whole binary (issue 11): what a user sees in the log and in time when the
//! server is down, when a signal comes, when a peer floods, and whatever the log filter is.
//! Runs the `pivox` binary with simulated devices against servers on loopback.

mod common;

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::*;

const PIVOX: &str = env!("CARGO_BIN_EXE_pivox");

/// A child process killed when dropped, with its stderr lines and when each came.
struct Running {
    child: Child,
    lines: Receiver<(Instant, String)>,
    seen: Vec<(Instant, String)>,
}

impl Running {
    fn start(args: &[&str], config: Option<&Path>, log: &str) -> Self {
        let mut command = Command::new(PIVOX);
        command.args(args).env("PIVOX_LOG", log).stderr(Stdio::piped()).stdout(Stdio::null());
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send((Instant::now(), line));
            }
        });
        Self { child, lines, seen: Vec::new() }
    }

    /// When a line containing `needle` came (counting from now on), within `limit`.
    fn wait_for(&mut self, needle: &str, limit: Duration) -> Option<Instant> {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok((at, line)) = self.lines.recv_timeout(left) else { break };
            let hit = line.contains(needle);
            self.seen.push((at, line));
            if hit {
                return Some(at);
            }
        }
        None
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Waits for the exit (bounded) and returns the status and the whole log.
    fn finish(mut self, limit: Duration) -> (Option<std::process::ExitStatus>, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break Some(status);
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(50));
        self.seen.extend(self.lines.try_iter());
        (status, self.seen.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>().join("\n"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A config with the default reconnect settings (config_text's are for quick tests); `server`
/// lines go into `[server]`, `extra` is appended.
fn write_config(dir: &Path, url: &str, button: &str, server: &str, extra: &str) -> std::path::PathBuf {
    let text = config_text(url, button, extra)
        .replace("reconnect_min_ms = 50\nreconnect_max_ms = 200\n", "")
        .replace("ping_interval_ms = 200\nping_timeout_ms = 800\n", server);
    let path = dir.join("pivox.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// 11.2: with the server down for 10 s at start-up, pivox is connected within about a
/// second of the server coming back (it was 14 s), without a retry storm meanwhile.
#[test]
fn reconnects_within_a_second_of_the_server_coming_back() {
    let dir = temp_dir("fault-reconnect");
    let port = free_port();
    let config = write_config(&dir, &format!("ws://127.0.0.1:{port}/"), "", "", "");
    let mut daemon = Running::start(&["run"], Some(&config), "debug");
    assert!(daemon.wait_for("cannot connect", Duration::from_secs(5)).is_some());
    std::thread::sleep(Duration::from_secs(10));
    let server_up = Instant::now();
    let server = Running::start(&["serve", "--listen", &format!("127.0.0.1:{port}")], None, "info");
    let connected = daemon.wait_for("ready: connected", Duration::from_secs(5));
    drop(server);
    let after = connected.expect("connected").saturating_duration_since(server_up);
    assert!(after < Duration::from_millis(1500), "connected {after:?} after the server came back");
    let (_, log) = daemon.finish(Duration::ZERO);
    let attempts = log.lines().filter(|l| l.contains("to connect to")).count();
    assert!((5..=40).contains(&attempts), "{attempts} attempts in 10 s:\n{log}");
}

/// 11.8: no log filter puts the token in the log, including targeted trace filters.
#[test]
fn no_log_filter_puts_the_token_in_the_log() {
    let dir = temp_dir("fault-token");
    let token = "tok-fault-suite-7d1e-never-log";
    std::fs::write(dir.join("token"), token).unwrap();
    let mut server = Running::start(
        &["serve", "--listen", "127.0.0.1:0", "--token-file", dir.join("token").to_str().unwrap()],
        None,
        "info",
    );
    server.wait_for("listening on", Duration::from_secs(10)).expect("server up");
    let url = server.seen.last().unwrap().1.split("listening on ").nth(1).unwrap().trim().to_string();
    let config = write_config(&dir, &url, "press 0.3, release 1.0", "token_file = \"token\"\n", "");
    for filter in
        ["info,tungstenite::handshake=trace", "info,tungstenite::protocol=trace,tokio_tungstenite=trace", "trace"]
    {
        let mut daemon = Running::start(&["run", "--turns", "1"], Some(&config), filter);
        let done = daemon.wait_for("turn 1", Duration::from_secs(15));
        let (_, log) = daemon.finish(Duration::from_secs(10));
        assert!(done.is_some(), "{filter}: {log}");
        assert!(!log.contains("never-log"), "{filter}: the token reached the log");
    }
}

/// 11.10: SIGHUP reads the config again and carries on; SIGTERM mid-turn stops cleanly.
#[test]
fn sighup_reloads_and_sigterm_mid_turn_stops_cleanly() {
    let dir = temp_dir("fault-signals");
    let mut server = Running::start(&["serve", "--listen", "127.0.0.1:0"], None, "info");
    server.wait_for("listening on", Duration::from_secs(10)).expect("server up");
    let url = server.seen.last().unwrap().1.split("listening on ").nth(1).unwrap().trim().to_string();
    let config = write_config(&dir, &url, "press 2.0, release 12", "", "");
    let mut daemon = Running::start(&["run"], Some(&config), "info");
    daemon.wait_for("ready: connected", Duration::from_secs(10)).expect("connected");
    daemon.signal(libc::SIGHUP);
    daemon.wait_for("config read again", Duration::from_secs(5)).expect("reloaded");
    daemon.wait_for("ready: connected", Duration::from_secs(5)).expect("connected again");
    daemon.wait_for("listening", Duration::from_secs(5)).expect("a turn started");
    daemon.signal(libc::SIGTERM);
    let stopped = Instant::now();
    let (status, log) = daemon.finish(Duration::from_secs(5));
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{log}");
    assert!(stopped.elapsed() < Duration::from_secs(4), "{log}");
    assert!(log.contains("stopping: SIGTERM"), "{log}");

    // A config broken before SIGHUP: the error is said, the running config kept.
    let mut daemon = Running::start(&["run"], Some(&config), "info");
    daemon.wait_for("ready: connected", Duration::from_secs(10)).expect("connected");
    std::fs::write(&config, "[server]\nurl = 5\n").unwrap();
    daemon.signal(libc::SIGHUP);
    daemon.wait_for("the one in use is kept", Duration::from_secs(5)).expect("kept");
    daemon.wait_for("ready: connected", Duration::from_secs(5)).expect("still connected");
}

/// 11.5: a normal Home Assistant reply (an MP3 with an ID3 tag) logs no warning.
#[test]
fn a_normal_home_assistant_turn_logs_no_warning() {
    let dir = temp_dir("fault-ha-warn");
    std::fs::write(dir.join("ha-token"), "tok").unwrap();
    let reply = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reply.mp3");
    let token_file = dir.join("ha-token");
    let mut ha = Running::start(
        &[
            "serve-homeassistant",
            "--listen",
            "127.0.0.1:0",
            "--token-file",
            token_file.to_str().unwrap(),
            "--reply",
            reply.to_str().unwrap(),
        ],
        None,
        "info",
    );
    ha.wait_for("listening on", Duration::from_secs(10)).expect("fake HA up");
    let url = ha.seen.last().unwrap().1.split("listening on ").nth(1).unwrap().trim().to_string();
    let config =
        write_config(&dir, &url, "press 0.3, release 1.6", "kind = \"homeassistant\"\ntoken_file = \"ha-token\"\n", "");
    let daemon = Running::start(&["run", "--turns", "1"], Some(&config), "info");
    let (status, log) = daemon.finish(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{log}");
    assert!(log.contains("Completed"), "{log}");
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
    assert!(warnings.is_empty(), "{warnings:?}");
}

/// 11.7: a server that sends 200 malformed frames and a 10 KB error text costs the journal a
/// few short lines, not 200 long ones.
#[test]
fn a_flooding_server_costs_the_log_a_few_short_lines() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    // The flooding server runs on a thread of its own; it ends when the daemon goes away.
    std::thread::spawn(move || {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message as Ws;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            let _hello = ws.next().await;
            let welcome =
                r#"{"type":"welcome","version":1,"server":"flood","codec":"pcm","sample_rate":16000,"frame_ms":20}"#;
            ws.send(Ws::text(welcome)).await.unwrap();
            for i in 0..200u32 {
                let bad = if i % 2 == 0 { Ws::text("{not json") } else { Ws::binary(vec![1, 2, 3]) };
                let _ = ws.send(bad).await;
            }
            let long = "x".repeat(10_000);
            let error = format!(r#"{{"type":"error","code":"flood","message":"{long}"}}"#);
            let _ = ws.send(Ws::text(error)).await;
            while ws.next().await.is_some() {}
        });
    });
    let dir = temp_dir("fault-flood");
    let config = write_config(&dir, &url, "", "", "[audio]\ncodecs = [\"pcm\"]\n");
    let mut daemon = Running::start(&["run"], Some(&config), "info");
    let logged = daemon.wait_for("server error", Duration::from_secs(10));
    assert!(logged.is_some(), "the error was not logged: {:?}", daemon.seen);
    std::thread::sleep(Duration::from_millis(300));
    daemon.signal(libc::SIGTERM);
    let (_, log) = daemon.finish(Duration::from_secs(5));
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).collect();
    assert!(warnings.len() <= 4, "{} warnings:\n{log}", warnings.len());
    assert!(log.lines().all(|l| l.len() < 1000), "a line over 1000 characters:\n{log}");
}

/// A server name that does not resolve: one line saying so, retried, no panic.
#[test]
fn an_unresolvable_server_name_is_one_line_and_retried() {
    let dir = temp_dir("fault-dns");
    let config = write_config(&dir, "ws://pivox-test.invalid:8765/", "", "", "");
    let mut daemon = Running::start(&["run"], Some(&config), "info");
    assert!(daemon.wait_for("cannot connect", Duration::from_secs(10)).is_some());
    std::thread::sleep(Duration::from_secs(2));
    daemon.signal(libc::SIGTERM);
    let (status, log) = daemon.finish(Duration::from_secs(5));
    assert!(status.is_some_and(|s| s.success()), "{log}");
    assert_eq!(log.lines().filter(|l| l.contains("cannot connect")).count(), 1, "{log}");
    assert!(!log.contains("panicked"), "{log}");
}
