//! The daemon against a protocol-faithful fake Home Assistant on loopback
//! (`pivox_devtools::fake_ha`): whole turns, and every failure a user can meet, each with the turn's
//! outcome, the earcon/LED it shows and what the fake saw on the wire.

mod common;

use std::time::Duration;

use common::*;
use pivox::daemon::{Probes, RunReport};
use pivox_devtools::fake_ha::{FakeHaHandle, FakeHaOptions, FakeHaReport, Scenario};
use pivox_hal::LedState;

const TOKEN: &str = "ha-token-5be2c0d4-do-not-log";

async fn fake(scenario: Scenario, tweak: impl FnOnce(&mut FakeHaOptions)) -> FakeHaHandle {
    ha_fake(TOKEN, scenario, tweak).await
}

/// Runs the daemon until `turns` turns completed, or for `for_at_most` when `turns` is None.
async fn run(config: pivox::config::Config, turns: Option<u32>, for_at_most: Duration) -> (RunReport, Probes) {
    let (report, probes, _) = run_daemon(config, turns, for_at_most).await;
    (report, probes)
}

/// The last state the LED showed before the daemon turned it off at shutdown.
fn last_shown(leds: &[LedState]) -> Option<LedState> {
    leds.iter().rev().find(|s| **s != LedState::Off).copied()
}

fn outcomes(report: &RunReport) -> Vec<&str> {
    report.turns.iter().map(|t| t.outcome.as_str()).collect()
}

fn no_violations(seen: &FakeHaReport) {
    assert!(seen.violations.is_empty(), "the fake HA saw protocol violations: {:?}", seen.violations);
}

#[tokio::test]
async fn a_turn_reaches_home_assistant_whole_and_its_mp3_answer_is_played() {
    // run-start comes 300 ms after the run command: everything before it must be held back.
    let ha = fake(Scenario::Answer, |o| o.run_start_delay = Duration::from_millis(300)).await;
    let config = ha_config(&ha.url(), TOKEN, "press 0.25, release 2.1", "");
    let (report, probes) = run(config, Some(1), TURN_LIMIT).await;
    let seen = ha.report();
    ha.stop().await;

    no_violations(&seen);
    assert_eq!((seen.connections, seen.runs.len()), (1, 1));
    let run = &seen.runs[0];
    assert_eq!(run.handler, 1);
    assert!(run.end_marker, "the end-of-audio marker was sent");
    assert_eq!(run.command["input"]["no_vad"], true, "push-to-talk: the button ends the speech");
    // Bit-exact: the pre-roll reaches back to the start of the speech, and nothing sent
    // before run-start was lost.
    let speech = speech();
    assert!(run.samples.len() >= speech.len(), "{} samples arrived", run.samples.len());
    assert_eq!(&run.samples[..speech.len()], &speech[..], "HA got the spoken samples exactly");

    // The answer is the MP3, decoded and played.
    let expected = pivox::audio::media::decode_all(reply_mp3(), Some("audio/mpeg")).unwrap();
    let played = probes.speaker.lock().samples.clone();
    let (r, _) = best_correlation(&expected[2_000..18_000], &played, 16_000);
    assert!(r > 0.95, "played reply: correlation {r:.3}");

    let turn = &report.turns[0];
    assert_eq!(turn.outcome, "Completed");
    assert!(turn.release_to_end_ms.is_some() && turn.announced_to_first_sample_ms.is_some(), "{turn:?}");
    let states = probes.led.states();
    for expected in [LedState::Listening, LedState::Thinking, LedState::Speaking, LedState::Idle] {
        assert!(states.contains(&expected), "{expected:?} missing from {states:?}");
    }
}

#[tokio::test]
async fn turns_on_one_connection_get_new_handlers_keep_the_conversation_and_reuse_the_reply() {
    let ha = fake(Scenario::Answer, |_| {}).await;
    let config = ha_config(&ha.url(), TOKEN, "press 0.25, release 1.5, press 4.5, release 5.5", "");
    let (report, _) = run(config, Some(2), TURN_LIMIT).await;
    let seen = ha.report();
    ha.stop().await;

    no_violations(&seen);
    assert_eq!(outcomes(&report), ["Completed", "Completed"]);
    assert_eq!(seen.connections, 1, "one connection kept open between turns");
    let handlers: Vec<u8> = seen.runs.iter().map(|r| r.handler).collect();
    assert_eq!(handlers, [1, 2], "a new handler id per run");
    assert!(seen.runs[1].id > seen.runs[0].id);
    let first = format!("conv-{}", seen.runs[0].id);
    assert_eq!(seen.runs[1].command["conversation_id"], first.as_str(), "the second turn continues the conversation");
    // Same answer, same voice: the second reply came from the cache, not a download.
    assert_eq!(seen.downloads.len(), 1, "downloads: {:?}", seen.downloads);
}

#[tokio::test]
async fn a_slow_download_starts_playing_before_it_has_finished() {
    // 7.3 KB in 400-byte pieces every 100 ms: about 1.8 s to download 1.8 s of speech.
    let ha = fake(Scenario::Answer, |o| o.trickle = Some((400, Duration::from_millis(100)))).await;
    let config = ha_config(&ha.url(), TOKEN, "press 0.25, release 1.5", "");
    let (report, _) = run(config, Some(1), TURN_LIMIT).await;
    let seen = ha.report();
    ha.stop().await;

    let turn = &report.turns[0];
    assert_eq!(turn.outcome, "Completed");
    let download_ms = seen.downloads[0].1.as_secs_f64() * 1000.0;
    let first_sample_ms = turn.announced_to_first_sample_ms.unwrap();
    assert!(
        first_sample_ms < download_ms / 2.0,
        "first sample after {first_sample_ms:.0} ms of a {download_ms:.0} ms download"
    );
}

/// One press against a fake that fails in `scenario`; returns the outcome and LED states.
async fn failing_turn(scenario: Scenario, server: &str) -> (Vec<String>, Vec<LedState>, FakeHaReport) {
    let ha = fake(scenario, |_| {}).await;
    let config = ha_config(&ha.url(), TOKEN, "press 0.25, release 1.5", server);
    // Long enough for a whole reply (release at 1.5 s, then 1.76 s of it) where the turn
    // completes; short enough that the error light of a failed one is still on at the end.
    let limit = if scenario == Scenario::Garbage { 4_500 } else { 3_500 };
    let (report, probes) = run(config, None, Duration::from_millis(limit)).await;
    let seen = ha.report();
    ha.stop().await;
    (report.turns.iter().map(|t| t.outcome.to_string()).collect(), probes.led.states(), seen)
}

#[tokio::test]
async fn each_home_assistant_failure_ends_the_turn_its_own_way() {
    // No words recognised: "didn't catch that", and the LED goes back to idle, not error.
    let (outcome, leds, seen) = failing_turn(Scenario::NothingHeard, "").await;
    assert_eq!(outcome, ["NotUnderstood"]);
    assert!(!leds.contains(&LedState::Error), "{leds:?}");
    no_violations(&seen);

    // Text-to-speech failed after the answer was found.
    let (outcome, leds, _) = failing_turn(Scenario::TtsFails, "").await;
    assert_eq!(outcome, ["ServerError"]);
    assert_eq!(last_shown(&leds), Some(LedState::Error), "{leds:?}");

    // A run timeout: HA sends run-end before the error; the turn is still an error.
    let (outcome, _, _) = failing_turn(Scenario::Timeout, "").await;
    assert_eq!(outcome, ["ServerError"]);

    // A pipeline id HA does not have: refused in the run's result.
    let (outcome, _, seen) = failing_turn(Scenario::Answer, "pipeline = \"no-such-pipeline\"\n").await;
    assert_eq!(outcome, ["ServerError"]);
    assert!(seen.runs.is_empty());

    // Garbage and an event for a run that does not exist are skipped; the turn completes.
    let (outcome, _, seen) = failing_turn(Scenario::Garbage, "").await;
    assert_eq!(outcome, ["Completed"]);
    no_violations(&seen);
}

#[tokio::test]
async fn home_assistant_closing_the_socket_mid_run_loses_the_turn_then_reconnects() {
    let (outcome, leds, seen) = failing_turn(Scenario::CloseMidRun, "").await;
    assert_eq!(outcome, ["LinkLost"]);
    assert!(leds.contains(&LedState::Disconnected), "{leds:?}");
    assert!(seen.connections >= 2, "pivox reconnected: {} connections", seen.connections);
}

#[tokio::test]
async fn a_rejected_token_is_not_retried_and_shows_the_error_light() {
    let ha = fake(Scenario::Answer, |_| {}).await;
    let config = ha_config(&ha.url(), "not-the-token", "press 1.0, release 1.5", "");
    let (report, probes) = run(config, None, Duration::from_millis(2_500)).await;
    let seen = ha.report();
    ha.stop().await;

    assert_eq!(seen.auth_failures, 1, "one failed login, no hammering (backoff minimum is 50 ms here)");
    assert!(report.turns.is_empty());
    let leds = probes.led.states();
    assert_eq!(last_shown(&leds), Some(LedState::Error), "{leds:?}");
    assert!(!leds.contains(&LedState::Listening), "a press while refused records nothing: {leds:?}");
}

#[tokio::test]
async fn the_error_light_of_a_rejected_token_stays_past_the_error_time() {
    // No press: nothing but the refusal sets the LED, and it must still show the error well
    // after the 2 s an ordinary error shows for (docs/homeassistant.md: "it stays").
    let ha = fake(Scenario::Answer, |_| {}).await;
    let config = ha_config(&ha.url(), "not-the-token", "", "");
    let (_, probes) = run(config, None, Duration::from_millis(3_500)).await;
    ha.stop().await;
    let leds = probes.led.states();
    assert_eq!(last_shown(&leds), Some(LedState::Error), "{leds:?}");
    assert!(!leds.contains(&LedState::Idle), "never back to idle while refused: {leds:?}");
}

#[tokio::test]
async fn a_streamed_answer_is_fetched_as_soon_as_home_assistant_starts_the_stream() {
    let ha = fake(Scenario::Answer, |o| o.streaming_lead = Some(Duration::from_millis(400))).await;
    let config = ha_config(&ha.url(), TOKEN, "press 0.25, release 1.5", "");
    let (report, _) = run(config, Some(1), TURN_LIMIT).await;
    let seen = ha.report();
    ha.stop().await;

    no_violations(&seen);
    assert_eq!(outcomes(&report), ["Completed"]);
    let (download_started, _) = seen.downloads[0];
    let tts_end = seen.tts_ends[0];
    assert!(
        download_started + Duration::from_millis(300) < tts_end,
        "the download began {:?} before tts-end",
        tts_end.saturating_duration_since(download_started)
    );
}

#[tokio::test]
async fn a_replaced_token_file_is_picked_up_without_a_restart() {
    let ha = fake(Scenario::Answer, |_| {}).await;
    let dir = temp_dir("ha-token-swap");
    let token_file = dir.join("ha-token");
    std::fs::write(&token_file, "revoked-token\n").unwrap();
    let text = config_text(&ha.url(), "press 8.0, release 9.0", "[audio]\nearcon_volume = 0.0\n").replace(
        "[server]\n",
        &format!("[server]\nkind = \"homeassistant\"\ntoken_file = {:?}\n", token_file.display().to_string()),
    );
    let config = pivox::config::Config::parse(&text, "test.toml", &dir).unwrap().config;
    let swap = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    });
    let (report, probes) = run(config, Some(1), TURN_LIMIT).await;
    swap.await.unwrap();
    let seen = ha.report();
    ha.stop().await;

    assert_eq!(seen.auth_failures, 1, "the revoked token was tried once");
    assert_eq!(outcomes(&report), ["Completed"], "the new token was used without a restart");
    let leds = probes.led.states();
    let error = leds.iter().position(|s| *s == LedState::Error).expect("the rejected token was shown");
    assert!(leds[error..].contains(&LedState::Idle), "{leds:?}");
}

#[tokio::test]
async fn a_press_during_the_answer_stops_its_download_and_starts_a_new_turn() {
    // The answer downloads slowly (about 1.8 s); the second press comes while it plays.
    // Each answer is different, so the second cannot come from the reply cache.
    let ha = fake(Scenario::Answer, |o| {
        o.trickle = Some((400, Duration::from_millis(100)));
        o.vary_answer = true;
    })
    .await;
    let config = ha_config(&ha.url(), TOKEN, "press 0.25, release 1.5, press 2.3, release 3.5", "");
    let (report, _) = run(config, Some(1), TURN_LIMIT).await;
    let seen = ha.report();
    ha.stop().await;

    no_violations(&seen);
    assert_eq!(outcomes(&report), ["BargedIn", "Completed"]);
    assert_eq!(seen.runs.len(), 2);
    // The first answer's download was abandoned; only the second one ran to its end.
    assert_eq!(seen.downloads.len(), 1, "completed downloads: {:?}", seen.downloads);
}
