//! Fault suite, Home Assistant side (issue 11): each fault a Home Assistant (or the network
//! to it) can produce, against the fake HA on loopback, with the outcome it must have and the
//! time it must take at most. The daemon runs in-process with simulated devices.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use pivox::daemon::{self, Probes, RunOptions, RunReport};
use pivox::fake_ha::{self, FakeHaHandle, FakeHaOptions, Scenario};

const TOKEN: &str = "ha-token-fault-suite-do-not-log";

async fn fake(scenario: Scenario, tweak: impl FnOnce(&mut FakeHaOptions)) -> FakeHaHandle {
    let reply = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reply.mp3")).unwrap();
    let mut options = FakeHaOptions::new(([127, 0, 0, 1], 0).into(), TOKEN, reply);
    options.scenario = scenario;
    tweak(&mut options);
    fake_ha::start(options).await.unwrap()
}

/// `server` lines go into `[server]`.
fn ha_config(url: &str, token: &str, button: &str, server: &str) -> pivox::config::Config {
    let text = config_text(url, button, "[audio]\nearcon_volume = 0.5\n")
        .replace("[server]\n", &format!("[server]\nkind = \"homeassistant\"\ntoken = \"{token}\"\n{server}"));
    pivox::config::Config::parse(&text, "test.toml", Path::new(".")).unwrap_or_else(|e| panic!("{e}\n{text}")).config
}

/// Runs the daemon until `turns` turns completed or `limit` passed; returns what it did and
/// how long it ran.
async fn run(config: pivox::config::Config, turns: Option<u32>, limit: Duration) -> (RunReport, Probes, Duration) {
    let probes = Probes::default();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let options = RunOptions { turns, probes: probes.clone(), stop: Some(stop), ..Default::default() };
    let started = Instant::now();
    let daemon = tokio::spawn(daemon::run(config, options));
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(limit).await;
        let _ = stop_tx.send(true);
        tokio::time::sleep(TURN_LIMIT).await;
    });
    let report = tokio::time::timeout(limit + Duration::from_secs(10), daemon).await.expect("stopped in time");
    stopper.abort();
    (report.unwrap().unwrap(), probes, started.elapsed())
}

fn outcomes(report: &RunReport) -> Vec<&str> {
    report.turns.iter().map(|t| t.outcome.as_str()).collect()
}

/// 11.3: HA's end-of-speech detection ends the listening while the button is still held; the
/// reply is played, the turn completes (so `--turns 1` exits), and the turn counts only the
/// frames HA took.
#[tokio::test]
async fn server_vad_while_the_button_is_held_completes_the_turn() {
    let ha = fake(Scenario::ServerVad { after_frames: 40 }, |_| {}).await;
    let config = ha_config(&ha.url(), TOKEN, "press 0.2, release 4.0", "server_vad = true\n");
    let (report, probes, took) = run(config, Some(1), Duration::from_secs(20)).await;
    let seen = ha.report();
    ha.stop().await;
    assert_eq!(outcomes(&report), ["Completed"], "{report:?}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(seen.violations.is_empty(), "{:?}", seen.violations);
    assert!(probes.speaker.lock().samples.len() > 16_000, "the reply was played");
    let frames_on_wire = seen.runs[0].frames;
    let logged = report.turns[0].frames_sent;
    assert!(logged == frames_on_wire, "the turn says {logged} frames, HA received {frames_on_wire}");
}

/// 11.6: `run-end` before `run-start` while the button is held ends the turn at once.
#[tokio::test]
async fn run_end_before_run_start_ends_the_turn_at_once() {
    let ha = fake(Scenario::RunEndFirst, |_| {}).await;
    let config = ha_config(&ha.url(), TOKEN, "press 0.2, release 2.5", "");
    let (report, _, _) = run(config, None, Duration::from_secs(4)).await;
    ha.stop().await;
    assert_eq!(outcomes(&report), ["NoReply"], "{report:?}");
}

/// 11.4: a rejected token is answered with a clean WebSocket close, so HA logs the failed login.
#[tokio::test]
async fn a_rejected_token_closes_the_websocket_cleanly() {
    let ha = fake(Scenario::Answer, |_| {}).await;
    let config = ha_config(&ha.url(), "not-the-token", "", "");
    let (_, _, _) = run(config, None, Duration::from_millis(1500)).await;
    let seen = ha.report();
    ha.stop().await;
    assert_eq!(seen.auth_failures, 1, "one attempt, no retry with the same token");
    assert_eq!(seen.auth_failures_closed_cleanly, 1, "pivox answered auth_invalid with a close frame");
}

/// 11.6: a download that trickles one byte every 2 s is given up within the reply bounds,
/// with an error, and never makes a later turn wait: a press during it gets its own reply.
#[tokio::test]
async fn a_trickling_reply_download_is_bounded_and_never_blocks_the_next_turn() {
    let ha = fake(Scenario::Answer, |o| {
        o.trickle = Some((1, Duration::from_secs(2)));
        o.trickle_first_only = true;
        o.vary_answer = true;
    })
    .await;
    // Turn 1 ends at 1.5 s; its download trickles. Turn 2 (a barge-in at 4 s) must complete.
    let config = ha_config(&ha.url(), TOKEN, "press 0.2, release 1.5, press 4.0, release 5.5", "");
    let (report, _, took) = run(config, Some(1), Duration::from_secs(25)).await;
    ha.stop().await;
    assert_eq!(outcomes(&report), ["BargedIn", "Completed"], "{report:?}");
    assert!(took < Duration::from_secs(12), "the second reply waited behind the first: {took:?}");

    // Alone, the trickling reply ends in bounded time with the reason.
    let ha = fake(Scenario::Answer, |o| o.trickle = Some((1, Duration::from_secs(2)))).await;
    let config = ha_config(&ha.url(), TOKEN, "press 0.2, release 1.5", "");
    let (report, _, _) = run(config, None, Duration::from_secs(16)).await;
    ha.stop().await;
    assert_eq!(outcomes(&report), ["ServerError"], "{report:?}");
}
