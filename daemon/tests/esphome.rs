//! The daemon as an ESPHome-API voice satellite, driven by a stand-in for Home Assistant's
//! client (`pivox_devtools::fake_esphome`) on loopback: greeting in plaintext and Noise, key
//! provisioning, press-to-talk turns, announcements, conversations HA starts or continues,
//! and the faults HA cannot be made to produce on cue. The real Home Assistant runs the same
//! paths in `tests/ha-esphome.sh`.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use pivox::daemon::{Probes, RunReport};
use pivox::link::esphome::messages::*;
use pivox_devtools::fake_esphome::{FakeClient, MediaServer};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn key_bytes() -> [u8; 32] {
    std::array::from_fn(|i| i as u8)
}

/// A free loopback port for pivox to listen on.
fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// Simulated devices, pivox listening on `addr`; `server` lines go into `[server]`.
fn esphome_config(addr: SocketAddr, button: &str, server: &str) -> pivox::config::Config {
    let text = config_text("ws://unused/", button, "")
        .replace("url = \"ws://unused/\"\n", "")
        .replace("ping_interval_ms = 200\nping_timeout_ms = 800\nreconnect_min_ms = 50\nreconnect_max_ms = 200\n", "")
        .replace(
            "[server]\n",
            &format!("[server]\nkind = \"esphome\"\nlisten = \"{addr}\"\nname = \"pivox-test\"\nmac = \"02:00:00:00:00:42\"\nmdns = false\n{server}"),
        );
    pivox::config::Config::parse(&text, "test.toml", std::path::Path::new("."))
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .config
}

/// Connects as soon as pivox listens (it starts with the daemon).
async fn connect(addr: SocketAddr, key: Option<[u8; 32]>) -> FakeClient {
    for _ in 0..400 {
        if let Ok(client) = FakeClient::connect(addr, key).await {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("pivox never listened on {addr}");
}

fn outcomes(report: &RunReport) -> Vec<&str> {
    report.turns.iter().map(|t| t.outcome.as_str()).collect()
}

/// Where `needle` occurs exactly in `haystack`.
fn find(haystack: &[i16], needle: &[i16]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn media() -> MediaServer {
    MediaServer::start(vec![
        ("/api/tts_proxy/reply.mp3".into(), reply_mp3()),
        ("/chime.mp3".into(), reply_mp3()),
        ("/announcement.mp3".into(), reply_mp3()),
    ])
    .await
    .unwrap()
}

/// HA's side of one run, from the device's start request to the reply's URL: returns the audio
/// HA got. `continue_conversation` as HA would set it.
async fn answer_run(ha: &mut FakeClient, media: &MediaServer, continues: bool) -> Vec<i16> {
    let start = ha.wait_for::<VoiceAssistantRequest>().await.unwrap();
    assert!(start.start, "a turn starts with start: true");
    let url = media.url("/api/tts_proxy/reply.mp3");
    ha.send(&VoiceAssistantResponse { port: 0, error: false }).await.unwrap();
    ha.event(event::RUN_START, &[("url", &url)]).await.unwrap();
    ha.event(event::STT_START, &[]).await.unwrap();
    let audio = ha.audio_until_end().await.unwrap();
    ha.event(event::STT_END, &[("text", "turn on the kitchen lights")]).await.unwrap();
    ha.event(event::INTENT_START, &[]).await.unwrap();
    let continues = if continues { "1" } else { "0" };
    ha.event(event::INTENT_END, &[("conversation_id", "c1"), ("continue_conversation", continues)]).await.unwrap();
    ha.event(event::TTS_START, &[("text", "Turned on the light")]).await.unwrap();
    ha.event(event::TTS_END, &[("url", &url)]).await.unwrap();
    ha.event(event::RUN_END, &[]).await.unwrap();
    audio
}

/// HA announces "Dinner is ready" with its chime first.
async fn announce(ha: &mut FakeClient, media: &MediaServer, start_conversation: bool) {
    ha.send(&VoiceAssistantAnnounceRequest {
        media_id: media.url("/announcement.mp3"),
        text: "Dinner is ready".into(),
        preannounce_media_id: media.url("/chime.mp3"),
        start_conversation,
    })
    .await
    .unwrap();
}

async fn daemon(config: pivox::config::Config, turns: u32) -> tokio::task::JoinHandle<(RunReport, Probes, Duration)> {
    tokio::spawn(run_daemon(config, Some(turns), TURN_LIMIT))
}

#[tokio::test]
async fn a_press_to_talk_turn_reaches_home_assistant_whole_and_its_reply_is_played() {
    let addr = free_port();
    let media = media().await;
    let run = daemon(esphome_config(addr, "press 0.6, release 2.1", "plaintext = true\n"), 1).await;
    let mut ha = connect(addr, None).await;
    let (info, entities) = ha.greet().await.unwrap();
    assert_eq!((info.name.as_str(), info.mac_address.as_str()), ("pivox-test", "02:00:00:00:00:42"));
    assert_eq!(
        info.voice_assistant_feature_flags,
        1 | 4 | 8 | 16 | 32,
        "voice, API audio, timers, announce, conversation"
    );
    assert!(!info.api_encryption_supported, "plaintext = true");
    assert_eq!(
        entities,
        [ListEntitiesBinarySensorResponse::TYPE, ListEntitiesMediaPlayerResponse::TYPE],
        "button, speaker"
    );

    let audio = answer_run(&mut ha, &media, false).await;
    let finished = ha.wait_for::<VoiceAssistantAnnounceFinished>().await.unwrap();
    let (report, probes, _) = run.await.unwrap();

    assert!(finished.success, "the reply played to its end");
    assert_eq!(outcomes(&report), ["Completed"]);
    // Bit-exact PCM: from the pre-roll (300 ms before the press) to the release.
    let speech = speech();
    let at = find(&audio, &speech[5_000..6_600]).expect("HA got the spoken samples exactly");
    assert!(audio.len() - at >= 16_000, "{} samples after the pre-roll's start", audio.len() - at);
    assert_eq!(media.fetched(), ["/api/tts_proxy/reply.mp3"]);
    let expected = pivox::audio::media::decode_all(reply_mp3(), Some("audio/mpeg")).unwrap();
    let played = probes.speaker.lock().samples.clone();
    let (r, _) = best_correlation(&expected[2_000..18_000], &played, 16_000);
    assert!(r > 0.95, "played reply: correlation {r:.3}");
    // No abort on a normal release: one start request, never start: false.
    let requests = ha.received.iter().filter(|t| **t == VoiceAssistantRequest::TYPE).count();
    assert_eq!(requests, 1);
    // The button's state reached HA as the binary sensor's.
    assert!(ha.received.iter().filter(|t| **t == BinarySensorStateResponse::TYPE).count() >= 3, "{:?}", ha.received);
}

#[tokio::test]
async fn noise_with_the_configured_key_carries_a_turn_and_a_wrong_key_is_told_so() {
    let addr = free_port();
    let media = media().await;
    let run = daemon(esphome_config(addr, "press 0.6, release 1.6", &format!("encryption_key = \"{KEY}\"\n")), 1).await;
    let mut wrong = FakeClient::connect(addr, None).await.ok();
    for _ in 0..400 {
        if wrong.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        wrong = FakeClient::connect(addr, None).await.ok();
    }
    // A plaintext client is told the device wants encryption (a frame starting 0x01).
    let mut plain = wrong.unwrap();
    plain
        .send(&HelloRequest { client_info: "probe".into(), api_version_major: 1, api_version_minor: 14 })
        .await
        .unwrap();
    assert_eq!(plain.raw().await.unwrap()[0], 0x01);
    // A client with another key is rejected with the text aioesphomeapi knows.
    let error = FakeClient::connect(addr, Some([7u8; 32])).await.err().unwrap();
    assert!(error.contains("Handshake MAC failure"), "{error}");

    let mut ha = connect(addr, Some(key_bytes())).await;
    let hello = ha.server_hello.clone().unwrap();
    assert_eq!(hello, b"\x01pivox-test\x00020000000042\x00");
    let (info, _) = ha.greet().await.unwrap();
    assert!(info.api_encryption_supported);
    answer_run(&mut ha, &media, false).await;
    assert!(ha.wait_for::<VoiceAssistantAnnounceFinished>().await.unwrap().success);
    let (report, _, _) = run.await.unwrap();
    assert_eq!(outcomes(&report), ["Completed"]);
}

#[tokio::test]
async fn home_assistant_provisions_a_key_that_is_kept_and_used_from_then_on() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("esphome-provision");
    let key_file = dir.join("esphome-key");
    let _ = std::fs::remove_file(&key_file);
    let addr = free_port();
    let server = format!("state_dir = \"{}\"\n", dir.display());
    let run =
        tokio::spawn(run_daemon(esphome_config(addr, "press 60, release 61", &server), None, Duration::from_secs(4)));
    let mut ha = connect(addr, None).await;
    let (info, _) = ha.greet().await.unwrap();
    assert!(info.api_encryption_supported && info.api_encryption_provisionable);
    // As HA 2026.2 sends it: the base64 text.
    ha.send(&NoiseEncryptionSetKeyRequest { key: KEY.as_bytes().to_vec() }).await.unwrap();
    assert!(ha.wait_for::<NoiseEncryptionSetKeyResponse>().await.unwrap().success);
    // The plaintext connection says goodbye, as ESPHome does, so that HA comes back encrypted.
    ha.wait_for::<DisconnectRequest>().await.unwrap();
    ha.send(&DisconnectResponse {}).await.unwrap();
    let closed = ha.wait_for::<PingRequest>().await.unwrap_err();
    assert!(closed.contains("closed"), "{closed}");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap().trim(), KEY);
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);

    let mut again = FakeClient::connect(addr, None).await.unwrap();
    again
        .send(&HelloRequest { client_info: "plain".into(), api_version_major: 1, api_version_minor: 14 })
        .await
        .unwrap();
    assert_eq!(again.raw().await.unwrap()[0], 0x01, "plaintext is refused now");
    let mut ha = FakeClient::connect(addr, Some(key_bytes())).await.unwrap();
    let (info, _) = ha.greet().await.unwrap();
    assert!(!info.api_encryption_provisionable, "provisioned once");
    // HA removing the device takes the key back (an empty key): plaintext again.
    ha.send(&NoiseEncryptionSetKeyRequest { key: Vec::new() }).await.unwrap();
    assert!(ha.wait_for::<NoiseEncryptionSetKeyResponse>().await.unwrap().success);
    assert!(!key_file.exists());
    let mut plain = FakeClient::connect(addr, None).await.unwrap();
    assert!(plain.hello("aioesphomeapi").await.unwrap().api_encryption_provisionable);
    drop(ha);
    run.await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn an_announcement_plays_chime_then_message_and_a_started_conversation_listens_after_it() {
    let addr = free_port();
    let media = media().await;
    // No button presses: HA starts everything.
    let run = daemon(esphome_config(addr, "press 60, release 61", "plaintext = true\n"), 1).await;
    let mut ha = connect(addr, None).await;
    ha.greet().await.unwrap();
    announce(&mut ha, &media, true).await;
    assert!(ha.wait_for::<VoiceAssistantAnnounceFinished>().await.unwrap().success);
    assert_eq!(media.fetched(), ["/chime.mp3", "/announcement.mp3"], "the chime first, then the message");
    // start_conversation: pivox opens the microphone for one turn, which HA's VAD ends.
    let start = ha.wait_for::<VoiceAssistantRequest>().await.unwrap();
    assert!(start.start && start.flags & 2 == 0, "a turn without the wake word");
    ha.send(&VoiceAssistantResponse { port: 0, error: false }).await.unwrap();
    ha.event(event::RUN_START, &[]).await.unwrap();
    let first = ha.wait_for::<VoiceAssistantAudio>().await.unwrap();
    assert!(!first.data.is_empty() && !first.end);
    ha.event(event::STT_VAD_END, &[]).await.unwrap();
    ha.event(event::STT_END, &[("text", "yes please")]).await.unwrap();
    ha.event(event::INTENT_END, &[("conversation_id", "c2"), ("continue_conversation", "0")]).await.unwrap();
    ha.event(event::TTS_END, &[("url", &media.url("/api/tts_proxy/reply.mp3"))]).await.unwrap();
    ha.event(event::RUN_END, &[]).await.unwrap();
    assert!(ha.wait_for::<VoiceAssistantAnnounceFinished>().await.unwrap().success);
    let (report, probes, _) = run.await.unwrap();
    // The conversation's turn (announcements are not the user's turns).
    assert_eq!(outcomes(&report), ["Completed"]);
    assert!(probes.led.states().contains(&pivox_hal::LedState::Listening));
}

#[tokio::test]
async fn continue_conversation_opens_the_microphone_again_after_the_reply() {
    let addr = free_port();
    let media = media().await;
    let run = daemon(esphome_config(addr, "press 0.6, release 1.6", "plaintext = true\n"), 2).await;
    let mut ha = connect(addr, None).await;
    ha.greet().await.unwrap();
    answer_run(&mut ha, &media, true).await;
    assert!(ha.wait_for::<VoiceAssistantAnnounceFinished>().await.unwrap().success);
    // The follow-up turn: HA's VAD ends it, and this time the answer needs no follow-up.
    let start = ha.wait_for::<VoiceAssistantRequest>().await.unwrap();
    assert!(start.start);
    ha.send(&VoiceAssistantResponse { port: 0, error: false }).await.unwrap();
    ha.wait_for::<VoiceAssistantAudio>().await.unwrap();
    ha.event(event::STT_VAD_END, &[]).await.unwrap();
    ha.event(event::TTS_END, &[("url", &media.url("/api/tts_proxy/reply.mp3"))]).await.unwrap();
    ha.event(event::RUN_END, &[]).await.unwrap();
    assert!(ha.wait_for::<VoiceAssistantAnnounceFinished>().await.unwrap().success);
    let (report, _, _) = run.await.unwrap();
    assert_eq!(outcomes(&report), ["Completed", "Completed"]);
}

#[tokio::test]
async fn a_second_connection_during_a_turn_does_not_disturb_it() {
    let addr = free_port();
    let media = media().await;
    let run = daemon(esphome_config(addr, "press 0.6, release 2.1", "plaintext = true\n"), 1).await;
    let mut ha = connect(addr, None).await;
    ha.greet().await.unwrap();
    ha.wait_for::<VoiceAssistantRequest>().await.unwrap();
    // HA's config-flow probe (or anyone) connects, asks who this is, and hangs up mid-turn.
    let mut probe = FakeClient::connect(addr, None).await.unwrap();
    let info = probe.hello("aioesphomeapi").await.unwrap();
    assert_eq!(info.name, "pivox-test");
    probe.send(&DisconnectRequest { reason: 0 }).await.unwrap();
    probe.expect::<DisconnectResponse>().await.unwrap();
    drop(probe);
    // A stray client sending garbage is closed without touching the voice connection.
    let mut stray = FakeClient::connect(addr, None).await.unwrap();
    stray.write_raw(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    assert!(stray.raw().await.is_err() || stray.raw().await.is_err(), "closed");

    let url = media.url("/api/tts_proxy/reply.mp3");
    ha.send(&VoiceAssistantResponse { port: 0, error: false }).await.unwrap();
    ha.audio_until_end().await.unwrap();
    ha.event(event::TTS_END, &[("url", &url)]).await.unwrap();
    ha.event(event::RUN_END, &[]).await.unwrap();
    assert!(ha.wait_for::<VoiceAssistantAnnounceFinished>().await.unwrap().success);
    let (report, _, _) = run.await.unwrap();
    assert_eq!(outcomes(&report), ["Completed"]);
}

#[tokio::test]
async fn a_client_that_vanishes_mid_turn_ends_the_turn_and_the_next_one_is_served_at_once() {
    let addr = free_port();
    let media = media().await;
    let run =
        daemon(esphome_config(addr, "press 0.6, release 1.4, press 3.0, release 4.0", "plaintext = true\n"), 1).await;
    let mut ha = connect(addr, None).await;
    ha.greet().await.unwrap();
    ha.wait_for::<VoiceAssistantRequest>().await.unwrap();
    drop(ha);
    // HA comes back (a restart): the next press is a whole turn.
    let mut ha = connect(addr, None).await;
    ha.greet().await.unwrap();
    answer_run(&mut ha, &media, false).await;
    assert!(ha.wait_for::<VoiceAssistantAnnounceFinished>().await.unwrap().success);
    let (report, _, _) = run.await.unwrap();
    assert_eq!(outcomes(&report), ["LinkLost", "Completed"]);
}

#[tokio::test]
async fn malformed_and_oversized_frames_close_only_their_connection() {
    let addr = free_port();
    let run = tokio::spawn(run_daemon(
        esphome_config(addr, "press 60, release 61", "plaintext = true\n"),
        None,
        Duration::from_secs(3),
    ));
    let mut ha = connect(addr, None).await;
    ha.greet().await.unwrap();
    let oversized = [0x00, 0xff, 0xff, 0xff, 0x0f, 1];
    let undecodable = [0x00, 0x03, 0x01, 0xff, 0xff, 0xff]; // a hello whose string runs off its end
    let before_hello = [0x00, 0x00, 0x07]; // a ping before the hello
    for garbage in [&oversized[..], &undecodable[..], &before_hello[..]] {
        let mut bad = FakeClient::connect(addr, None).await.unwrap();
        bad.write_raw(garbage).await.unwrap();
        let answer = bad.raw().await;
        assert!(answer.is_err() || bad.raw().await.is_err(), "{garbage:?}: the connection is closed");
    }
    // The voice connection is still served.
    ha.send(&PingRequest {}).await.unwrap();
    ha.wait_for::<PingResponse>().await.unwrap();
    let (report, _, elapsed) = run.await.unwrap();
    assert!(report.turns.is_empty());
    assert!(elapsed < Duration::from_secs(10), "stopped on time");
}

#[tokio::test]
async fn timers_run_on_the_light_a_cancelled_one_is_forgotten_and_a_finished_one_rings_until_the_press() {
    use pivox_hal::LedState;
    let addr = free_port();
    // The press at 2.0 s silences the alarm; it starts no turn.
    let run = tokio::spawn(run_daemon(
        esphome_config(addr, "press 2.0, release 2.2", "plaintext = true\n"),
        None,
        Duration::from_secs(3),
    ));
    let mut ha = connect(addr, None).await;
    ha.greet().await.unwrap();
    let timer = |event_type, id: &str, left, active| VoiceAssistantTimerEventResponse {
        event_type,
        timer_id: id.into(),
        name: "pasta".into(),
        total_seconds: 600,
        seconds_left: left,
        is_active: active,
    };
    ha.send(&timer(timer::STARTED, "t1", 600, true)).await.unwrap();
    ha.send(&timer(timer::STARTED, "t2", 300, true)).await.unwrap();
    ha.send(&timer(timer::CANCELLED, "t2", 300, false)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    ha.send(&timer(timer::FINISHED, "t1", 0, false)).await.unwrap();
    let (report, probes, _) = run.await.unwrap();

    assert!(report.turns.is_empty(), "the press only silenced the alarm");
    assert!(!ha.received.contains(&VoiceAssistantRequest::TYPE));
    let states = probes.led.states();
    let at = |s: LedState| states.iter().position(|x| *x == s).unwrap_or_else(|| panic!("{s:?} missing: {states:?}"));
    assert!(at(LedState::TimerRunning) < at(LedState::TimerRinging));
    assert_eq!(states[at(LedState::TimerRinging) + 1..].first(), Some(&LedState::Idle), "silenced: {states:?}");
    let alarm = pivox::audio::earcon::Earcon::Alarm.render(16_000, 0.3);
    let played = probes.speaker.lock().samples.clone();
    assert!(played.len() >= alarm.len() && played.iter().any(|s| s.abs() > 1000), "the alarm sounded");
}

#[tokio::test]
async fn the_media_player_sets_volume_and_mute_keeps_them_and_plays_a_url() {
    let dir = temp_dir("esphome-volume");
    let _ = std::fs::remove_file(dir.join("volume"));
    let addr = free_port();
    let media = media().await;
    let server = format!("plaintext = true\nstate_dir = \"{}\"\n", dir.display());
    let config = esphome_config(addr, "press 60, release 61", &server);
    let run = tokio::spawn(run_daemon(config, None, Duration::from_secs(5)));
    let mut ha = connect(addr, None).await;
    ha.greet().await.unwrap();
    let state = ha.wait_for::<MediaPlayerStateResponse>().await.unwrap();
    assert_eq!((state.volume, state.muted), (1.0, false));
    let command = |f: &dyn Fn(&mut MediaPlayerCommandRequest)| {
        let mut c = MediaPlayerCommandRequest { key: 2, ..Default::default() };
        f(&mut c);
        c
    };
    ha.send(&command(&|c| (c.has_volume, c.volume) = (true, 0.25))).await.unwrap();
    let state = ha.wait_for::<MediaPlayerStateResponse>().await.unwrap();
    assert_eq!((state.volume, state.muted), (0.25, false));
    // play_media: the URL is played, at a quarter of the volume.
    ha.send(&command(&|c| (c.has_media_url, c.media_url) = (true, media.url("/announcement.mp3")))).await.unwrap();
    let (_, probes, _) = run.await.unwrap();
    assert_eq!(media.fetched(), ["/announcement.mp3"]);
    assert!(!ha.received.contains(&VoiceAssistantAnnounceFinished::TYPE), "play_media is no announcement");
    let expected = pivox::audio::media::decode_all(reply_mp3(), Some("audio/mpeg")).unwrap();
    let played = probes.speaker.lock().samples.clone();
    let peak = |s: &[i16]| s.iter().map(|v| i32::from(*v).abs()).max().unwrap_or(0);
    let ratio = f64::from(peak(&played)) / f64::from(peak(&expected));
    assert!((0.2..0.3).contains(&ratio), "played at {ratio:.2} of full volume");
    assert_eq!(std::fs::read_to_string(dir.join("volume")).unwrap().trim(), "0.250 0", "kept for the next start");

    // Muted, and restarted: the kept volume is HA's state again.
    let run =
        tokio::spawn(run_daemon(esphome_config(addr, "press 60, release 61", &server), None, Duration::from_secs(2)));
    let mut ha = connect(addr, None).await;
    ha.greet().await.unwrap();
    assert_eq!(ha.wait_for::<MediaPlayerStateResponse>().await.unwrap().volume, 0.25);
    ha.send(&command(&|c| (c.has_command, c.command) = (true, 3))).await.unwrap();
    assert!(ha.wait_for::<MediaPlayerStateResponse>().await.unwrap().muted);
    run.await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_press_during_an_announcement_stops_it_and_starts_a_turn() {
    let addr = free_port();
    // A chime served slowly enough to still be playing at the press.
    let media = media().await;
    let run = daemon(esphome_config(addr, "press 1.2, release 2.4", "plaintext = true\n"), 1).await;
    let mut ha = connect(addr, None).await;
    ha.greet().await.unwrap();
    announce(&mut ha, &media, false).await;
    // The press cuts the chime short: HA hears the announcement is over, not a success.
    let finished = ha.wait_for::<VoiceAssistantAnnounceFinished>().await.unwrap();
    assert!(!finished.success);
    answer_run(&mut ha, &media, false).await;
    assert!(ha.wait_for::<VoiceAssistantAnnounceFinished>().await.unwrap().success);
    let (report, _, _) = run.await.unwrap();
    assert_eq!(outcomes(&report), ["Completed"]);
    assert!(!media.fetched().contains(&"/announcement.mp3".to_string()), "the message after the chime is not played");
}

#[tokio::test]
async fn the_goodbye_after_a_provisioned_key_waits_for_home_assistants_set_up() {
    let dir = temp_dir("esphome-goodbye");
    let _ = std::fs::remove_file(dir.join("esphome-key"));
    let addr = free_port();
    let server = format!("state_dir = \"{}\"\n", dir.display());
    let run =
        tokio::spawn(run_daemon(esphome_config(addr, "press 60, release 61", &server), None, Duration::from_secs(3)));
    let mut ha = connect(addr, None).await;
    // As HA 2026.2: the key is set before HA has subscribed to states (its last set-up step).
    ha.hello("Home Assistant 2026.2.3").await.unwrap();
    ha.send(&NoiseEncryptionSetKeyRequest { key: KEY.as_bytes().to_vec() }).await.unwrap();
    assert!(ha.expect::<NoiseEncryptionSetKeyResponse>().await.unwrap().success);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Still served: the set-up goes on over the plaintext connection.
    ha.send(&PingRequest {}).await.unwrap();
    ha.expect::<PingResponse>().await.unwrap();
    ha.send(&SubscribeStatesRequest {}).await.unwrap();
    // Set-up done: now the goodbye.
    ha.wait_for::<DisconnectRequest>().await.unwrap();
    run.await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_client_that_unsubscribes_from_voice_keeps_its_connection() {
    let addr = free_port();
    let run = tokio::spawn(run_daemon(
        esphome_config(addr, "press 60, release 61", "plaintext = true\n"),
        None,
        Duration::from_secs(2),
    ));
    let mut ha = connect(addr, None).await;
    ha.greet().await.unwrap();
    // HA unloading the device unsubscribes first and disconnects itself after.
    ha.send(&SubscribeVoiceAssistantRequest { subscribe: false, flags: 0 }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    ha.send(&PingRequest {}).await.unwrap();
    ha.wait_for::<PingResponse>().await.unwrap();
    run.await.unwrap();
}

#[tokio::test]
async fn an_announcement_while_a_reply_plays_cuts_the_reply_and_is_played_whole() {
    let addr = free_port();
    let media = media().await;
    let run = tokio::spawn(run_daemon(
        esphome_config(addr, "press 0.6, release 1.6", "plaintext = true\n"),
        None,
        Duration::from_secs(6),
    ));
    let mut ha = connect(addr, None).await;
    ha.greet().await.unwrap();
    answer_run(&mut ha, &media, false).await;
    // The reply (1.8 s) is playing: HA announces over it.
    tokio::time::sleep(Duration::from_millis(400)).await;
    announce(&mut ha, &media, false).await;
    let finished = ha.wait_for::<VoiceAssistantAnnounceFinished>().await.unwrap();
    assert!(!finished.success, "the cut reply");
    let finished = ha.wait_for::<VoiceAssistantAnnounceFinished>().await.unwrap();
    assert!(finished.success, "the announcement, chime and message, played to the end");
    let (report, _, _) = run.await.unwrap();
    assert_eq!(outcomes(&report), ["BargedIn"]);
    assert_eq!(media.fetched(), ["/api/tts_proxy/reply.mp3", "/chime.mp3", "/announcement.mp3"]);
}
