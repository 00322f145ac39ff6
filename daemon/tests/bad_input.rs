//! Bad input from the outside: configs with many problems, FIFOs and devices where files
//! belong, an unwritable demo output, and a fuzzer over valid configs. Each binary run is
//! bounded in time, so a read that blocks fails the test instead of hanging it.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::temp_dir;
use pivox::config::{Config, Files};

const PIVOX: &str = env!("CARGO_BIN_EXE_pivox");

/// Runs `pivox ARGS`, killing it (and failing) if it takes longer than 20 s.
fn pivox(args: &[&std::ffi::OsStr]) -> Output {
    let mut child = Command::new(PIVOX).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("pivox {args:?} still running after 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn check_config(path: &Path) -> (bool, String, String) {
    let out = pivox(&["check-config".as_ref(), path.as_os_str()]);
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

fn mkfifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

#[test]
fn check_config_explains_every_problem_one_per_line_and_fails() {
    let dir = temp_dir("bad-every");
    let path = dir.join("pivox.toml");
    let speech = common::speech_path();
    let text = format!(
        "[server]\nurl = \"ws://127.0.0.1:1/\"\nkind = \"mqtt\"\n[audio]\nframe_ms = 33\nfram_ms = 1\n\
         [microphone]\nbackend = \"sim\"\ndevice = {:?}\n[button]\nbackend = \"sim\"\ndevice = \"press 1e19\"\n",
        speech.display()
    );
    std::fs::write(&path, text).unwrap();
    let (ok, stdout, stderr) = check_config(&path);
    assert!(!ok);
    let lines: Vec<&str> = stderr.lines().collect();
    let shown = path.display();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(lines[0].contains(&format!("{shown}:3: server.kind: unknown server kind `mqtt`")), "{stderr}");
    assert!(lines[1].contains(&format!("{shown}:5: audio.frame_ms: 33 ms")), "{stderr}");
    // Regression: `press 1e19` passed check-config, then panicked the button thread.
    assert!(lines[2].contains(&format!("{shown}:12: button.device: button script: `1e19` is not a time")), "{stderr}");
    assert!(stdout.contains(&format!("warning: {shown}:6: audio.fram_ms: unknown key")), "{stdout}");
}

#[test]
fn check_config_refuses_a_fifo_or_a_device_at_once() {
    let dir = temp_dir("bad-fifo");
    let fifo = dir.join("fifo.toml");
    mkfifo(&fifo);
    let (ok, _, stderr) = check_config(&fifo);
    assert!(!ok && stderr.contains(&format!("{}: a FIFO, not a file", fifo.display())), "{stderr}");
    let (ok, _, stderr) = check_config(Path::new("/dev/zero"));
    assert!(!ok && stderr.contains("/dev/zero: a character device, not a file"), "{stderr}");

    let token = dir.join("token");
    mkfifo(&token);
    let config = dir.join("pivox.toml");
    let text = format!(
        "[server]\nurl = \"ws://127.0.0.1:1/\"\ntoken_file = \"token\"\n[microphone]\nbackend = \"sim\"\ndevice = {:?}\n",
        common::speech_path().display()
    );
    std::fs::write(&config, text).unwrap();
    let (ok, _, stderr) = check_config(&config);
    assert!(!ok && stderr.contains(":3: server.token_file: ") && stderr.contains("a FIFO, not a file"), "{stderr}");
}

#[test]
fn demo_with_an_unwritable_out_fails_at_once_with_one_line() {
    // Regression: `pivox demo --out /unwritable/place/reply.wav` exited 0 and said the reply
    // was there. A folder given as the file, and a path under a plain file, cannot be written
    // to, not even by root.
    let dir = temp_dir("bad-demo");
    let plain = dir.join("plain");
    std::fs::write(&plain, "not a folder").unwrap();
    for (out, why) in [(dir.clone(), "Is a directory"), (plain.join("reply.wav"), "cannot create")] {
        let run = pivox(&["demo".as_ref(), "--out".as_ref(), out.as_os_str()]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{}", out.display());
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(&format!("--out: cannot write {}", out.display())) && stderr.contains(why), "{stderr}");
        assert!(!String::from_utf8_lossy(&run.stdout).contains("is in"), "no claim that the reply is there");
    }
}

// ---- config fuzzing -------------------------------------------------------------------

/// Valid configs to mutate, with the folder their relative paths start from.
fn seeds() -> Vec<(String, PathBuf)> {
    let example = std::fs::read_to_string(repo().join("pivox.example.toml")).unwrap();
    let speech = common::speech_path().display().to_string();
    let mic = format!("[microphone]\nbackend = \"sim\"\ndevice = {speech:?}\nrealtime = false\n");
    let others = [
        format!(
            "[server]\nkind = \"homeassistant\"\nurl = \"https://ha.local:8123\"\ntoken = \"abc.def\"\npipeline = \"p1\"\n\
             conversation_timeout_s = 60.5\n[session]\nmax_turn_s = 12.5\nreply_timeout_s = 3\nmax_reply_s = 60\n{mic}"
        ),
        format!(
            "preset = \"respeaker-2mic\"\n[server]\nurl = \"wss://voice.example:443/pivox\"\n[audio]\ncodecs = [\"pcm\"]\n\
             frame_ms = 40\n[playback]\njitter_min_ms = 20\njitter_max_ms = 2000\n{mic}"
        ),
        format!(
            "[server]\nurl = \"ws://10.0.0.2:8765/\"\n{mic}[button]\nbackend = \"gpio\"\ndevice = \"27\"\npull = \"down\"\n\
             mode = \"tap\"\ndebounce_ms = 500\n[led]\nbackend = \"apa102\"\ndevice = \"/dev/spidev0.1\"\nbrightness = 1.0\ncount = 255\n"
        ),
    ];
    let mut all = vec![(example, repo())];
    all.extend(others.into_iter().map(|text| (text, repo())));
    all
}

const EXTREMES: &[&str] = &[
    "1e19",
    "-1",
    "nan",
    "-inf",
    "inf",
    "0",
    "-0.0",
    "18446744073709551615",
    "-9223372036854775808",
    "4294967296",
    "1e-320",
    "\"\"",
    "\"press 1e19\"",
    "\"press 0, release nan\"",
    "\"/dev/zero\"",
    "\"/\"",
    "\"/nonexistent/x\"",
    "[]",
    "{}",
    "[1, \"a\"]",
    "true",
    "1979-05-27T07:32:00Z",
    "\"\\u0000\\n\"",
    "{ a = { b = 1 } }",
    "'''x'''",
];

/// One deterministic mutation of `text`.
fn mutate(text: &str, rng: &mut fastrand::Rng) -> String {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    if lines.is_empty() {
        lines.push(String::new());
    }
    let at = rng.usize(..lines.len());
    match rng.u8(..8) {
        // A value replaced by an extreme one, a huge string, or a long list.
        0..=2 => {
            let value = match rng.u8(..6) {
                0 => format!("\"{}\"", "x".repeat(rng.usize(1..200_000))),
                1 => format!("[{}]", vec!["\"opus\""; rng.usize(1..5_000)].join(",")),
                _ => EXTREMES[rng.usize(..EXTREMES.len())].to_string(),
            };
            let key = lines[at].split_once('=').map_or("frame_ms", |(key, _)| key).trim().to_string();
            lines[at] = format!("{key} = {value}");
        }
        3 => drop(lines.remove(at)),
        4 => lines.insert(at, lines[at].clone()),
        5 => {
            let other = rng.usize(..lines.len());
            lines.swap(at, other);
        }
        6 => lines.insert(at, format!("unknown_{} = {}", rng.u32(..), EXTREMES[rng.usize(..EXTREMES.len())])),
        _ => {
            let joined = lines.join("\n");
            let chars = joined.chars().count();
            return joined.chars().take(rng.usize(..=chars)).collect();
        }
    }
    lines.join("\n") + "\n"
}

#[test]
fn mutated_configs_never_panic_and_are_checked_quickly() {
    let seeds = seeds();
    for (text, base) in &seeds {
        Config::parse(text, "seed.toml", base).unwrap_or_else(|e| panic!("a seed must be valid: {e}\n{text}"));
    }
    let start = Instant::now();
    for round in 0..600u64 {
        let mut rng = fastrand::Rng::with_seed(round);
        let (seed, base) = &seeds[rng.usize(..seeds.len())];
        let mut text = mutate(seed, &mut rng);
        for _ in 0..rng.usize(..3) {
            text = mutate(&text, &mut rng);
        }
        let one = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| Config::parse_with(&text, "fuzz.toml", base, Files::Check)));
        let took = one.elapsed();
        let shown: String = text.chars().take(600).collect();
        let errors = result.unwrap_or_else(|_| panic!("round {round}: checking this config panicked:\n{shown}"));
        assert!(took < Duration::from_secs(2), "round {round}: took {took:?}:\n{shown}");
        let lines = match errors {
            Ok(loaded) => loaded.warnings,
            Err(errors) => errors.to_string().lines().map(String::from).collect(),
        };
        for line in lines {
            assert!(line.chars().count() < 600, "round {round}: a {}-char message:\n{shown}", line.len());
        }
    }
    assert!(start.elapsed() < Duration::from_secs(20), "600 configs took {:?}", start.elapsed());
}
