//! The shipped example config, and broken configs that must each give a one-line error.
//! Every problem at once, bounded reads and short messages: `config_input_tests.rs`.

use std::path::PathBuf;

use super::*;
use crate::link::endpoint::Endpoint;
use crate::link::homeassistant;
use crate::secret::Secret;

/// The connection settings of a config whose backend dials a server.
fn endpoint(c: &Config) -> &Endpoint {
    c.server.endpoint().expect("a dialling backend")
}

/// The settings of a Home Assistant config.
fn ha_settings(c: &Config) -> &homeassistant::Settings {
    c.server.as_any().downcast_ref().expect("kind = \"homeassistant\"")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn parse(text: &str) -> Result<Loaded, ConfigErrors> {
    Config::parse(text, "test.toml", &repo())
}

/// The one problem `text` has.
fn error(text: &str) -> ConfigError {
    let errors = parse(text).unwrap_err();
    assert_eq!((errors.errors.len(), errors.more), (1, 0), "{errors}");
    errors.errors[0].clone()
}

const MINIMAL: &str =
    "[server]\nurl = \"ws://127.0.0.1:1/\"\n[microphone]\nbackend = \"sim\"\ndevice = \"daemon/assets/speech.wav\"\n";

#[test]
fn the_shipped_example_config_parses_without_warnings() {
    let loaded = Config::load(&repo().join("pivox.example.toml")).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = loaded.config;
    assert_eq!(endpoint(&c).url, "ws://127.0.0.1:8765/");
    assert_eq!(c.audio.codecs, [Codec::Opus, Codec::Pcm]);
    assert_eq!((c.audio.frame_ms, c.audio.preroll_ms), (20, 300));
    assert_eq!(c.session.min_press, Duration::from_millis(150));
    assert!(Path::new(&c.microphone.device).is_absolute());
    assert_eq!(c.button.device, "press 0.25, release 2.2");
}

#[test]
fn defaults_fill_in_everything_but_the_url() {
    let c = parse(MINIMAL).unwrap().config;
    assert_eq!(c.opus, OpusSettings { bitrate: 24_000, complexity: 1, fec: false, dtx: true });
    assert_eq!(c.session.max_turn, Duration::from_secs(30));
    assert_eq!(c.speaker.backend, "sim");
    assert!(endpoint(&c).token.is_none());
}

#[test]
fn broken_configs_name_the_key_and_the_line() {
    let cases: &[(&str, &str, usize, &str)] = &[
        ("[audio]\nframe_ms = 30\n", "audio.frame_ms", 8, "10 or 20"),
        ("[audio]\nframe_ms = \"twenty\"\n", "audio.frame_ms", 8, "invalid type"),
        ("[audio]\ncodecs = [\"mp3\"]\n", "audio.codecs", 8, "unknown codec"),
        ("[audio]\nearcon_volume = 2.0\n", "audio.earcon_volume", 8, "outside"),
        ("[opus]\ncomplexity = 11\n", "opus.complexity", 8, "0..10"),
        ("[session]\nmax_turn_s = 0\n", "session.max_turn_s", 8, "1 to 300"),
        ("[playback]\njitter_min_ms = 500\njitter_max_ms = 100\n", "playback.jitter_max_ms", 9, "at least"),
        ("[speaker]\nbackend = \"pulse\"\n", "speaker.backend", 8, "unknown backend"),
        ("[button]\ndevice = \"release 1\"\n", "button.device", 8, "alternate"),
    ];
    for (extra, key, line, words) in cases {
        let text = format!("{MINIMAL}\n{extra}");
        let err = error(&text);
        let shown = err.to_string();
        assert_eq!((err.key.as_str(), err.line), (*key, Some(*line)), "{shown}");
        assert!(shown.contains(words) && !shown.contains('\n'), "{shown}");
        assert!(shown.starts_with(&format!("test.toml:{line}: {key}: ")), "{shown}");
    }
}

#[test]
fn server_problems_are_explained() {
    let url = |u: &str| error(&MINIMAL.replace("ws://127.0.0.1:1/", u));
    assert!(url("http://x/").to_string().contains("test.toml:2: server.url: `http://x/` is not a ws://"));
    assert!(parse("[server]\n").unwrap_err().to_string().contains("server.url: missing"));
    let ping = error(&MINIMAL.replace("[server]\n", "[server]\nping_timeout_ms = 10\n"));
    assert_eq!((ping.key.as_str(), ping.line), ("server.ping_timeout_ms", Some(2)));
    assert!(ping.to_string().contains("longer than ping_interval_ms"));
    let kind = error(&MINIMAL.replace("[server]\n", "[server]\nkind = \"mqtt\"\n"));
    assert!(
        kind.to_string()
            .starts_with("test.toml:2: server.kind: unknown server kind `mqtt` (known: pivox, homeassistant, esphome)"),
        "{kind}"
    );
    let dup = error(&format!("{MINIMAL}[server]\n"));
    assert!(dup.line.is_some() && !dup.to_string().contains('\n'), "{dup}");
    let token = error(&MINIMAL.replace("[server]\n", "[server]\ntoken_file = \"nope\"\n"));
    assert_eq!((token.key.as_str(), token.line), ("server.token_file", Some(2)));
}

#[test]
fn syntax_errors_have_a_line_and_one_line_of_text() {
    let err = parse("[server]\nurl = \"ws://x/\n").unwrap_err();
    assert_eq!(err.first().line, Some(2));
    assert!(!err.to_string().contains('\n'));
}

#[test]
fn unknown_keys_are_warned_about_with_their_line() {
    let loaded = parse(&format!("{MINIMAL}[audio]\nframe_ms = 20\nfram_ms = 10\n")).unwrap();
    assert_eq!(loaded.warnings, ["test.toml:8: audio.fram_ms: unknown key, ignored (see docs/configuration.md)"]);
}

#[test]
fn a_key_of_another_server_kind_is_named_as_such() {
    let text = MINIMAL.replace("[server]\n", "[server]\npipeline = \"01h\"\npiplene = 1\n");
    let loaded = parse(&text).unwrap();
    assert_eq!(
        loaded.warnings,
        [
            "test.toml:3: server.piplene: unknown key, ignored (see docs/configuration.md)",
            "test.toml:2: server.pipeline: a key of kind = \"homeassistant\", not used with kind = \"pivox\"; ignored",
        ]
    );
}

#[test]
fn the_token_is_read_from_its_file_and_never_shown() {
    let dir = std::env::temp_dir().join(format!("pivox-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token"), "s3cr3t-t0ken\n").unwrap();
    let text = MINIMAL
        .replace("[server]\n", "[server]\ntoken_file = \"token\"\n")
        .replace("daemon/assets", &repo().join("daemon/assets").display().to_string());
    let c = Config::parse(&text, "t.toml", &dir).unwrap().config;
    let token = endpoint(&c).token.clone().unwrap();
    assert_eq!(token.expose(), "s3cr3t-t0ken");
    assert!(!format!("{c:?}").contains("s3cr3t"));
}

#[test]
fn gpio_buttons_and_leds_are_configured_and_checked() {
    use pivox_hal::backend::Pull;
    use pivox_hal::button_mode::PressMode;
    let text = format!(
        "{MINIMAL}[button]\nbackend = \"gpio\"\ndevice = \"27\"\npull = \"down\"\nactive_low = false\ndebounce_ms = 30\nmode = \"tap\"\n\
         [led]\nbackend = \"gpio\"\ndevice = \"12\"\nactive_low = true\n"
    );
    let c = parse(&text).unwrap().config;
    assert_eq!((c.button.backend.as_str(), c.button.device.as_str()), ("gpio", "27"));
    assert_eq!((c.button.pull, c.button.active_low, c.button.mode), (Pull::Down, false, PressMode::Tap));
    assert_eq!(c.button.debounce, Duration::from_millis(30));
    assert_eq!((c.led.backend.as_str(), c.led.device.as_str(), c.led.active_low), ("gpio", "12", true));

    for (section, bad, key) in [
        ("[button]\nbackend = \"gpio\"\ndevice = \"40\"\n", "BCM pin", "button.device"),
        ("[button]\nbackend = \"gpio\"\ndevice = \"17\"\npull = \"sideways\"\n", "use up, down or off", "button.pull"),
        ("[button]\nbackend = \"gpio\"\ndevice = \"17\"\nmode = \"toggle\"\n", "hold", "button.mode"),
        (
            "[led]\nbackend = \"apa102\"\ndevice = \"/dev/spidev0.1\"\nbrightness = 2.0\n",
            "0.0 to 1.0",
            "led.brightness",
        ),
        ("[led]\nbackend = \"apa102\"\ndevice = \"/dev/spidev0.1\"\ncount = 0\n", "1 to 255", "led.count"),
    ] {
        let e = error(&format!("{MINIMAL}{section}")).to_string();
        assert!(e.contains(key) && e.contains(bad) && !e.contains('\n'), "{e}");
    }
}

#[test]
fn gpiocdev_lines_are_named_or_given_by_chip_and_checked() {
    let text = format!(
        "{MINIMAL}[button]\nbackend = \"gpiocdev\"\ndevice = \"GPIO17\"\n[led]\nbackend = \"gpiocdev\"\ndevice = \"gpiochip4:12\"\n"
    );
    let c = parse(&text).unwrap().config;
    assert_eq!((c.button.backend.as_str(), c.button.device.as_str()), ("gpiocdev", "GPIO17"));
    assert_eq!((c.led.backend.as_str(), c.led.device.as_str()), ("gpiocdev", "gpiochip4:12"));
    for (section, bad, key) in [
        ("[button]\nbackend = \"gpiocdev\"\ndevice = \"gpiochip0:x\"\n", "the offset after the colon", "button.device"),
        ("[button]\nbackend = \"gpiocdev\"\ndevice = \"GPIO 17\"\n", "no spaces", "button.device"),
        ("[led]\nbackend = \"gpiocdev\"\ndevice = \"chip0:3\"\n", "the chip is gpiochipN", "led.device"),
    ] {
        let e = error(&format!("{MINIMAL}{section}")).to_string();
        assert!(e.contains(key) && e.contains(bad) && !e.contains('\n'), "{e}");
    }
}

#[test]
fn the_respeaker_preset_fills_in_button_and_leds_unless_the_file_says_otherwise() {
    let c = parse(&format!("preset = \"respeaker-2mic\"\n{MINIMAL}")).unwrap().config;
    assert_eq!((c.button.backend.as_str(), c.button.device.as_str()), ("gpio", "17"));
    assert!(c.button.active_low);
    assert_eq!((c.led.backend.as_str(), c.led.device.as_str(), c.led.count), ("apa102", "/dev/spidev0.1", 3));
    let own = parse(&format!("preset = \"respeaker-2mic\"\n{MINIMAL}[led]\nbackend = \"sim\"\n")).unwrap().config;
    assert_eq!(own.led.backend, "sim");
    let e = error(&format!("preset = \"respeaker-4mic\"\n{MINIMAL}")).to_string();
    assert!(e.contains("test.toml:1: preset: unknown preset `respeaker-4mic` (known: respeaker-2mic)"), "{e}");
}

#[test]
fn home_assistant_takes_its_web_address_and_needs_a_token() {
    let ha = |url: &str, extra: &str| {
        MINIMAL.replace(
            "[server]\nurl = \"ws://127.0.0.1:1/\"\n",
            &format!("[server]\nkind = \"homeassistant\"\nurl = \"{url}\"\n{extra}"),
        )
    };
    let token = "token = \"abc.def\"\n";
    for (given, ws) in [
        ("http://homeassistant.local:8123", "ws://homeassistant.local:8123/api/websocket"),
        ("https://ha.example/", "wss://ha.example/api/websocket"),
        ("ws://10.0.0.2:8123/api/websocket", "ws://10.0.0.2:8123/api/websocket"),
        ("homeassistant.local:8123", "ws://homeassistant.local:8123/api/websocket"),
    ] {
        let c = parse(&ha(given, token)).unwrap().config;
        assert_eq!(endpoint(&c).url, ws, "{given}");
        assert_eq!(endpoint(&c).token.as_ref().map(Secret::expose), Some("abc.def"));
    }
    let c =
        parse(&ha("http://ha:8123", &format!("{token}pipeline = \"01h\"\ndevice_id = \"d1\"\nserver_vad = true\n")))
            .unwrap()
            .config;
    assert_eq!((ha_settings(&c).pipeline.as_deref(), ha_settings(&c).device_id.as_deref()), (Some("01h"), Some("d1")));
    assert!(ha_settings(&c).server_vad);
    assert_eq!(ha_settings(&c).conversation_timeout, Duration::from_secs(300));

    let missing = error(&ha("http://ha:8123", "")).to_string();
    assert!(
        missing.contains("server.token_file: missing: Home Assistant needs a long-lived access token"),
        "{missing}"
    );
    let both = parse(&ha("http://ha:8123", "token = \"a\"\ntoken_file = \"t\"\n")).unwrap_err().to_string();
    assert!(both.contains("server.token: set token or token_file, not both"), "{both}");
    let spaced = error(&ha("http://ha:8123", "token = \"a b\"\n"));
    assert!(!spaced.to_string().contains("a b"), "the bad token is not echoed: {spaced}");
    let bad = error(&ha("ftp://ha", token)).to_string();
    assert!(bad.contains("is not Home Assistant's address"), "{bad}");
}

#[test]
fn a_config_for_another_machine_is_checked_without_its_files() {
    let text = "[server]\nkind = \"homeassistant\"\nurl = \"http://ha.local:8123\"\ntoken_file = \"/nonexistent/ha-token\"\n\
                ca_file = \"/nonexistent/ca.pem\"\n[microphone]\nbackend = \"sim\"\ndevice = \"/nonexistent/speech.wav\"\n";
    let here = Config::parse_with(text, "pi.toml", &repo(), Files::Check).unwrap_err();
    let keys: Vec<&str> = here.errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["server.token_file", "server.ca_file", "microphone.device"], "{here}");
    let elsewhere = Config::parse_with(text, "pi.toml", &repo(), Files::Elsewhere).unwrap();
    assert_eq!(endpoint(&elsewhere.config).token_file.as_deref(), Some(Path::new("/nonexistent/ha-token")));
    assert_eq!(elsewhere.config.microphone.device, "/nonexistent/speech.wav");
    // Everything else is still checked.
    let broken = text.replace("[microphone]", "[audio]\nframe_ms = 33\n[microphone]");
    let error = Config::parse_with(&broken, "pi.toml", &repo(), Files::Elsewhere).unwrap_err();
    assert_eq!(error.first().key, "audio.frame_ms");
    // Home Assistant still needs a token or a token file.
    let tokenless = text.replace("token_file = \"/nonexistent/ha-token\"\n", "");
    let error = Config::parse_with(&tokenless, "pi.toml", &repo(), Files::Elsewhere).unwrap_err();
    assert_eq!(error.first().key, "server.token_file");
}

#[cfg(test)]
#[path = "config_input_tests.rs"]
mod input;

#[test]
fn the_esphome_link_listens_encrypted_by_default_and_checks_its_keys() {
    use crate::link::esphome::{self, device::Encryption};
    let config =
        |extra: &str| MINIMAL.replace("url = \"ws://127.0.0.1:1/\"\n", &format!("kind = \"esphome\"\n{extra}"));
    let loaded = parse(&config("")).unwrap();
    let settings: &esphome::Settings = loaded.config.server.as_any().downcast_ref().unwrap();
    assert_eq!(settings.listen.to_string(), "0.0.0.0:6053");
    assert!(settings.mdns && !settings.name.is_empty() && settings.mac.len() == 17);
    assert_eq!(
        settings.encryption,
        Encryption::Provision { file: std::path::Path::new(esphome::DEFAULT_STATE_DIR).join(esphome::KEY_FILE) }
    );
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let keyed = parse(&config(&format!("encryption_key = \"{key}\"\nname = \"Kitchen Pi\"\n"))).unwrap();
    let settings: &esphome::Settings = keyed.config.server.as_any().downcast_ref().unwrap();
    assert!(matches!(settings.encryption, Encryption::Key(k) if k[1] == 1));
    assert_eq!((settings.name.as_str(), settings.friendly_name.as_str()), ("kitchen-pi", "kitchen-pi"));

    let short = error(&config("encryption_key = \"AAEC\"\n"));
    assert_eq!((short.key.as_str(), short.line), ("server.encryption_key", Some(3)));
    assert!(short.to_string().contains("3 bytes, not 32"), "{short}");
    let both = error(&config(&format!("encryption_key = \"{key}\"\nplaintext = true\n")));
    assert_eq!(both.key, "server.plaintext");
    assert!(error(&config("listen = \"6053\"\n")).to_string().contains("not an address and port"));
    assert!(error(&config("mac = \"aa-bb\"\n")).to_string().contains("not a MAC address"));
    let url = parse(&config("url = \"ws://x/\"\n")).unwrap();
    assert!(url.warnings.iter().any(|w| w.to_string().contains("server.url")), "{:?}", url.warnings);
}
