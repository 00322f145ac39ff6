//! Fault suite, Home Assistant side (issue 11): each fault a Home Assistant (or the network
//! to it) can produce, against the fake HA on loopback, with the outcome it must have and the
//! time it must take at most. The daemon runs in-process with simulated devices.

mod common;

use std::time::Duration;

use common::*;
use pivox::daemon::RunReport;
use pivox_devtools::fake_ha::{FakeHaHandle, FakeHaOptions, Scenario};

const TOKEN: &str = "ha-token-fault-suite-do-not-log";

async fn fake(scenario: Scenario, tweak: impl FnOnce(&mut FakeHaOptions)) -> FakeHaHandle {
    ha_fake(TOKEN, scenario, tweak).await
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
    let (report, probes, took) = run_daemon(config, Some(1), Duration::from_secs(20)).await;
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
    let (report, _, _) = run_daemon(config, None, Duration::from_secs(4)).await;
    ha.stop().await;
    assert_eq!(outcomes(&report), ["NoReply"], "{report:?}");
}

/// 11.4: a rejected token is answered with a clean WebSocket close, so HA logs the failed login.
#[tokio::test]
async fn a_rejected_token_closes_the_websocket_cleanly() {
    let ha = fake(Scenario::Answer, |_| {}).await;
    let config = ha_config(&ha.url(), "not-the-token", "", "");
    let (_, _, _) = run_daemon(config, None, Duration::from_millis(1500)).await;
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
    let (report, _, took) = run_daemon(config, Some(1), Duration::from_secs(25)).await;
    ha.stop().await;
    assert_eq!(outcomes(&report), ["BargedIn", "Completed"], "{report:?}");
    assert!(took < Duration::from_secs(12), "the second reply waited behind the first: {took:?}");

    // Alone, the trickling reply ends in bounded time with the reason.
    let ha = fake(Scenario::Answer, |o| o.trickle = Some((1, Duration::from_secs(2)))).await;
    let config = ha_config(&ha.url(), TOKEN, "press 0.2, release 1.5", "");
    let (report, _, _) = run_daemon(config, None, Duration::from_secs(16)).await;
    ha.stop().await;
    assert_eq!(outcomes(&report), ["ServerError"], "{report:?}");
}
