//! The whole daemon with simulated devices against the reference server on loopback.

mod common;

use std::time::{Duration, Instant};

use common::*;
use pivox::audio::codec::Codec;
use pivox::daemon::{self, Probes, RunOptions};
use pivox_devtools::server::{self, ServerOptions};
use pivox_hal::LedState;

fn loopback() -> std::net::SocketAddr {
    ([127, 0, 0, 1], 0).into()
}

async fn one_turn(extra: &str) -> (Vec<server::Utterance>, Probes, daemon::RunReport) {
    let server = server::start(ServerOptions::echo(loopback())).await.unwrap();
    // The speech starts at the epoch; the user presses 250 ms in, inside the 300 ms pre-roll.
    let config = config(&format!("ws://{}/", server.addr), "press 0.25, release 2.1", extra);
    let probes = Probes::default();
    let options = RunOptions {
        turns: Some(1),
        probes: probes.clone(),
        epoch: Instant::now() + Duration::from_millis(100),
        ..Default::default()
    };
    let report = tokio::time::timeout(TURN_LIMIT, daemon::run(config, options))
        .await
        .expect("the turn finished in time")
        .unwrap();
    let heard = server.utterances();
    server.kill().await;
    (heard, probes, report)
}

#[tokio::test]
async fn an_opus_turn_reaches_the_server_with_its_preroll_and_the_echo_is_played() {
    let (heard, probes, report) = one_turn("[audio]\nearcon_volume = 0.0\n").await;
    let speech = speech();
    assert_eq!(heard.len(), 1);
    let u = &heard[0];
    assert_eq!(u.codec, Codec::Opus);
    assert!(u.preroll_ms >= 200, "the press came 250 ms into the speech: {} ms of pre-roll", u.preroll_ms);
    // The first 250 ms were spoken before the press: the pre-roll must carry them.
    let before_press = &speech[..4_000];
    let (r, delay) = best_correlation(before_press, &u.samples, 800);
    assert!(r > 0.9, "speech before the press: correlation {r:.3} at {delay}");
    // The whole utterance, through Opus (threshold justified in the codec tests).
    let (r, _) = best_correlation(&speech, &u.samples, 800);
    assert!(r > 0.9, "whole utterance: correlation {r:.3}");

    // The speaker played the echo: the utterance through Opus twice.
    let played = probes.speaker.lock().samples.clone();
    let (r, _) = best_correlation(&speech[..16_000], &played, 1_600);
    assert!(r > 0.85, "played reply: correlation {r:.3}");

    let states = probes.led.states();
    for expected in [LedState::Listening, LedState::Thinking, LedState::Speaking, LedState::Idle] {
        assert!(states.contains(&expected), "{expected:?} missing from {states:?}");
    }
    let turn = &report.turns[0];
    assert_eq!(turn.outcome, "Completed");
    assert!(
        turn.press_to_first_frame_ms.is_some()
            && turn.release_to_end_ms.is_some()
            && turn.reply_to_first_sample_ms.is_some(),
        "{turn:?}"
    );
    assert_eq!(turn.frames_dropped, 0);
}

#[tokio::test]
async fn the_pcm_path_is_bit_exact_from_microphone_to_server() {
    let (heard, _, report) = one_turn("[audio]\ncodecs = [\"pcm\"]\nearcon_volume = 0.0\n").await;
    let speech = speech();
    let u = &heard[0];
    assert_eq!(u.codec, Codec::Pcm);
    // The microphone started with the speech, and the pre-roll reaches back to its start.
    assert_eq!(&u.samples[..speech.len()], &speech[..], "the server got the samples exactly");
    assert!(u.samples[speech.len()..].iter().all(|s| *s == 0), "then the silence after the speech");
    assert_eq!(report.turns[0].outcome, "Completed");
}

#[tokio::test]
async fn the_daemon_recovers_when_the_server_dies_mid_turn() {
    let server = server::start(ServerOptions::echo(loopback())).await.unwrap();
    let addr = server.addr;
    let config = config(
        &format!("ws://{addr}/"),
        "press 0.2, release 1.5, press 3.0, release 4.5",
        "[audio]\nearcon_volume = 0.0\n",
    );
    let probes = Probes::default();
    let options = RunOptions { turns: Some(1), probes: probes.clone(), ..Default::default() };
    let daemon = tokio::spawn(daemon::run(config, options));
    // Kill the server while the button is held, bring it back before the second press.
    tokio::time::sleep(Duration::from_millis(800)).await;
    server.kill().await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let revived = server::start(ServerOptions::echo(addr)).await.unwrap();
    let report = tokio::time::timeout(TURN_LIMIT, daemon).await.expect("finished in time").unwrap().unwrap();
    let outcomes: Vec<&str> = report.turns.iter().map(|t| t.outcome.as_str()).collect();
    assert_eq!(outcomes, ["LinkLost", "Completed"]);
    assert_eq!(revived.utterances().len(), 1, "the second turn reached the revived server");
    let states = probes.led.states();
    let listening = states.iter().position(|s| *s == LedState::Listening).expect("the first turn listened");
    let down = listening
        + states[listening..].iter().position(|s| *s == LedState::Disconnected).expect("the link loss was shown");
    assert!(states[down..].contains(&LedState::Speaking), "{states:?}");
    revived.kill().await;
}
