//! Configs that are wrong in many places, in odd ways or at great length: every problem is
//! reported, each short and on its own line; files are read bounded and never waited on;
//! values that would overflow a `Duration` are refused.

use std::path::PathBuf;

use super::*;
use crate::files::tests::{mkfifo, temp_dir, within_5s};
use std::time::Instant;

fn wav(path: &Path, rate: u32, channels: u16) {
    let spec =
        hound::WavSpec { channels, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    (0..320).for_each(|_| writer.write_sample(0i16).unwrap());
    writer.finalize().unwrap();
}

/// A config in `dir` whose sim microphone plays `mic` and whose extra lines are `extra`.
fn with_mic(mic: &Path, extra: &str) -> String {
    format!(
        "[server]\nurl = \"ws://127.0.0.1:1/\"\n{extra}[microphone]\nbackend = \"sim\"\ndevice = {:?}\n",
        mic.display()
    )
}

fn problems(text: &str, base: &Path) -> Vec<ConfigError> {
    Config::parse(text, "t.toml", base).map(|_| ()).unwrap_err().errors
}

#[test]
fn every_problem_is_reported_each_with_its_line_in_file_order() {
    let text = "[server]\nurl = \"ws://127.0.0.1:1/\"\nkind = \"mqtt\"\n\
                [audio]\nframe_ms = \"twenty\"\nearcon_volume = 9.0\n\
                [opus]\ncomplexity = 11\n[session]\nmax_turn_s = 0\nfram = 1\n\
                [button]\nbackend = \"sim\"\ndevice = \"release 1\"\n[led]\ncount = 0\n";
    let errors = Config::parse(text, "t.toml", Path::new("/")).unwrap_err();
    let found: Vec<(&str, Option<usize>)> = errors.errors.iter().map(|e| (e.key.as_str(), e.line)).collect();
    // The type error in [audio] hides only the rest of [audio]; every other section is checked.
    assert_eq!(
        found,
        [
            ("server.kind", Some(3)),
            ("audio.frame_ms", Some(5)),
            ("opus.complexity", Some(8)),
            ("session.max_turn_s", Some(10)),
            ("button.device", Some(14)),
            ("led.count", Some(16)),
            // A problem with no line (a key not written) comes last.
            ("microphone.device", None),
        ],
        "{errors}"
    );
    let shown = errors.to_string();
    assert_eq!(shown.lines().count(), 7, "{shown}");
    assert!(shown.lines().all(|line| line.starts_with("t.toml:")), "{shown}");
    assert_eq!(errors.warnings, ["t.toml:11: session.fram: unknown key, ignored (see docs/configuration.md)"]);
}

#[test]
fn syntax_errors_are_all_reported_one_per_line() {
    let errors = parse_text("a = 1\nb = nope\nc = 3\nd = = 4\n[server]\nurl = \"ws://x/\n");
    let lines: Vec<Option<usize>> = errors.errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [Some(2), Some(4), Some(6)], "{errors}");
    assert_eq!(errors.to_string().lines().count(), 3);
}

fn parse_text(text: &str) -> ConfigErrors {
    Config::parse(text, "t.toml", Path::new("/")).unwrap_err()
}

/// `text` with a sim microphone, checked as for another machine.
fn elsewhere(text: &str) -> Result<Loaded, ConfigErrors> {
    let text = format!("{text}[microphone]\nbackend = \"sim\"\ndevice = \"/x.wav\"\n");
    Config::parse_with(&text, "t.toml", Path::new("/"), Files::Elsewhere)
}

#[test]
fn past_twenty_problems_the_rest_are_counted() {
    let codecs = (0..30).map(|i| format!("\"c{i}\"")).collect::<Vec<_>>().join(", ");
    let errors = elsewhere(&format!("[server]\nurl = \"ws://h/\"\n[audio]\ncodecs = [{codecs}]\n")).unwrap_err();
    assert_eq!((errors.errors.len(), errors.more), (MAX_REPORTED, 10));
    let shown = errors.to_string();
    assert_eq!(shown.lines().count(), MAX_REPORTED + 1);
    assert!(shown.ends_with("t.toml: 10 more problems"), "{shown}");
}

#[test]
fn ten_thousand_unknown_keys_are_checked_in_linear_time_and_summarised() {
    // Regression: each unknown key's line was found by parsing the whole file again, so
    // 6,000 unknown keys took 15 s. Now a key's line is a lookup.
    let keys: String = (0..10_000).map(|i| format!("unknown_{i} = {i}\n")).collect();
    let text = format!("[server]\nurl = \"ws://h/\"\n{keys}[microphone]\nbackend = \"sim\"\ndevice = \"/x.wav\"\n");
    let start = Instant::now();
    let loaded = Config::parse_with(&text, "t.toml", Path::new("/"), Files::Elsewhere).unwrap();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "10,000 unknown keys took {took:?}");
    assert_eq!(loaded.warnings.len(), MAX_REPORTED + 1);
    assert_eq!(loaded.warnings[0], "t.toml:3: server.unknown_0: unknown key, ignored (see docs/configuration.md)");
    assert_eq!(loaded.warnings[MAX_REPORTED], "t.toml: 9980 more unknown keys, ignored");
}

#[test]
fn an_oversized_value_is_quoted_short() {
    let huge = "x".repeat(100_000);
    let cases = [
        format!("[server]\nurl = \"ws://h/\"\nkind = \"{huge}\"\n"),
        format!("[server]\nurl = \"{huge}\"\n"),
        format!("preset = \"{huge}\"\n[server]\nurl = \"ws://h/\"\n"),
        format!("[server]\nurl = \"ws://h/\"\n[audio]\ncodecs = [\"{huge}\", \"{huge}\"]\n"),
        format!("[server]\nurl = \"ws://h/\"\n[audio]\nframe_ms = \"{huge}\"\n"),
        format!("[server]\nurl = \"ws://h/\"\n[speaker]\nbackend = \"{huge}\"\n"),
        format!("[server]\nurl = \"ws://h/\"\n[button]\nbackend = \"sim\"\ndevice = \"press {huge}\"\n"),
        format!("[server]\nurl = \"ws://h/\"\n[button]\nbackend = \"gpio\"\ndevice = \"{huge}\"\nmode = \"{huge}\"\n"),
        format!("[server]\nurl = \"ws://h/\"\n[button]\nbackend = \"sim\"\ndevice = \"stdin\"\npull = \"{huge}\"\n"),
        format!("[server]\nurl = \"ws://h/\"\n{huge} = 1\n"),
    ];
    for text in &cases {
        let shown = match elsewhere(text) {
            Err(errors) => errors.to_string(),
            Ok(loaded) => loaded.warnings.join("\n"),
        };
        assert!(!shown.is_empty() && shown.lines().all(|line| line.len() < 400), "{}", &shown[..shown.len().min(500)]);
        assert!(shown.contains('…'), "the value is shown cut: {shown}");
    }
}

#[test]
fn sim_microphone_files_that_run_would_refuse_are_refused_here() {
    let dir = temp_dir("config-wav");
    let (empty, text, stereo, slow, good) =
        (dir.join("empty.wav"), dir.join("text.wav"), dir.join("stereo.wav"), dir.join("8k.wav"), dir.join("ok.wav"));
    std::fs::write(&empty, "").unwrap();
    std::fs::write(&text, "[server]\nthis is not a WAV file\n").unwrap();
    wav(&stereo, 16_000, 2);
    wav(&slow, 8_000, 1);
    wav(&good, 16_000, 1);
    let fifo = dir.join("fifo.wav");
    mkfifo(&fifo);
    for (path, why) in [
        (&empty, "is empty"),
        (&text, "not a usable WAV file"),
        (&stereo, "2 channel(s)"),
        (&slow, "8000 Hz"),
        (&fifo, "a FIFO, not a file"),
        (&PathBuf::from("/dev/zero"), "a character device, not a file"),
    ] {
        let config = with_mic(path, "");
        let errors = within_5s(move || problems(&config, Path::new("/")));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!((errors[0].key.as_str(), errors[0].line), ("microphone.device", Some(5)));
        assert!(
            errors[0].message.contains(why) && errors[0].message.contains(&path.display().to_string()),
            "{}",
            errors[0]
        );
        // For a config checked on another machine, the file is not looked at.
        Config::parse_with(&with_mic(path, ""), "t.toml", Path::new("/"), Files::Elsewhere).unwrap();
    }
    Config::parse(&with_mic(&good, ""), "t.toml", Path::new("/")).unwrap();
}

#[test]
fn token_ca_and_speaker_files_are_read_bounded_and_never_waited_on() {
    let dir = temp_dir("config-files");
    let mic = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/speech.wav");
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    std::fs::write(dir.join("big-token"), "t".repeat(20_000)).unwrap();
    std::fs::write(dir.join("not-pem"), "hello").unwrap();
    for (extra, key, why) in [
        ("token_file = \"fifo\"\n", "server.token_file", "a FIFO, not a file"),
        ("token_file = \"/dev/zero\"\n", "server.token_file", "a character device, not a file"),
        ("token_file = \"big-token\"\n", "server.token_file", "larger than 16 KiB"),
        ("ca_file = \"fifo\"\n", "server.ca_file", "a FIFO, not a file"),
        ("ca_file = \"/dev/zero\"\n", "server.ca_file", "a character device, not a file"),
        ("ca_file = \"not-pem\"\n", "server.ca_file", "holds no certificate"),
        ("[speaker]\nbackend = \"sim\"\ndevice = \"fifo\"\n", "speaker.device", "a FIFO, not a file"),
    ] {
        let config = with_mic(&mic, extra);
        let base = dir.clone();
        let errors = within_5s(move || problems(&config, &base));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].key == key && errors[0].message.contains(why), "{}", errors[0]);
    }
}

#[test]
fn a_config_file_that_is_a_fifo_a_device_or_huge_is_refused_at_once() {
    let dir = temp_dir("config-load");
    let fifo = dir.join("pivox.toml");
    mkfifo(&fifo);
    let big = dir.join("big.toml");
    std::fs::write(&big, format!("# {}\n", "x".repeat(1 << 20))).unwrap();
    for (path, why) in
        [(fifo, "a FIFO, not a file"), (PathBuf::from("/dev/zero"), "a character device"), (big, "larger than 1 MiB")]
    {
        let shown = path.display().to_string();
        let errors = within_5s(move || Config::load(&path).unwrap_err());
        assert_eq!(errors.to_string(), format!("{shown}: {}", errors.first().message));
        assert!(errors.first().message.contains(why), "{errors}");
    }
}

#[test]
fn times_that_would_overflow_a_duration_are_refused_not_panicked_on() {
    for (section, key, value) in [
        ("session", "max_turn_s", "nan"),
        ("session", "max_turn_s", "1e19"),
        ("session", "reply_timeout_s", "-inf"),
        ("session", "max_reply_s", "-1.0"),
        ("server", "conversation_timeout_s", "1e19"),
        ("server", "conversation_timeout_s", "nan"),
        ("server", "ping_interval_ms", "9223372036854775807"),
        ("server", "ping_timeout_ms", "9223372036854775807"),
        ("server", "reconnect_max_ms", "9223372036854775807"),
    ] {
        let setting = format!("{key} = {value}\n");
        let text = match section {
            // conversation_timeout_s is Home Assistant's key: a pivox server does not read it.
            "server" if key.starts_with("conversation") => {
                format!("[server]\nkind = \"homeassistant\"\ntoken = \"t\"\nurl = \"ws://h/\"\n{setting}")
            }
            "server" => format!("[server]\nurl = \"ws://h/\"\n{setting}"),
            _ => format!("[server]\nurl = \"ws://h/\"\n[{section}]\n{setting}"),
        };
        let errors = elsewhere(&text).unwrap_err();
        assert!(errors.errors.iter().any(|e| e.key == format!("{section}.{key}")), "{setting}: {errors}");
    }
    let script = "[server]\nurl = \"ws://h/\"\n[button]\nbackend = \"sim\"\ndevice = \"press 1e19\"\n";
    let errors = elsewhere(script).unwrap_err();
    assert!(errors.to_string().contains("button.device: button script: `1e19` is not a time"), "{errors}");
}
