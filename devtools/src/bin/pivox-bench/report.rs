//! The bench's figures as a table on the terminal and as `target/bench/summary.json`.

use std::path::Path;

use serde_json::json;

use super::{Figures, Idle, soak};

/// (p50, p95) by nearest rank.
pub(super) fn percentiles(mut v: Vec<f64>) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    (rank(0.50), rank(0.95))
}

pub(super) fn print_table(results: &[(&str, Figures)]) {
    println!("\n{:<44} {:>16} {:>16}", "figure", results[0].0, results[1].0);
    let row = |name: &str, f: &dyn Fn(&Figures) -> String| {
        println!("{name:<44} {:>16} {:>16}", f(&results[0].1), f(&results[1].1));
    };
    row("turns completed", &|f| f.turns.to_string());
    row("press → first frame on the wire p50/p95 ms", &|f| {
        format!("{:.2}/{:.2}", f.press_to_first_frame.0, f.press_to_first_frame.1)
    });
    row("release → end message on the wire p50/p95 ms", &|f| {
        format!("{:.2}/{:.2}", f.release_to_end.0, f.release_to_end.1)
    });
    row("first reply packet → first sample p50/p95 ms", &|f| {
        format!("{:.2}/{:.2}", f.reply_to_first_sample.0, f.reply_to_first_sample.1)
    });
    row("upstream bytes/s (WebSocket framing incl.)", &|f| format!("{:.0}", f.upstream_bytes_per_s));
    row("CPU s per s of audio", &|f| format!("{:.4}", f.cpu_s_per_audio_s));
    row("peak RSS KiB", &|f| f.peak_rss_kb.to_string());
}

pub(super) fn print_idle(results: &[(&str, Figures)]) {
    let (Some(a), Some(b)) = (&results[0].1.idle, &results[1].1.idle) else { return };
    println!(
        "\n{:<44} {:>16} {:>16}",
        format!("connected, idle {:.0} s (no press)", a.seconds),
        results[0].0,
        results[1].0
    );
    let row = |name: &str, a: String, b: String| println!("{name:<44} {a:>16} {b:>16}");
    row("CPU ms per minute idle", format!("{:.1}", a.cpu_ms_per_min), format!("{:.1}", b.cpu_ms_per_min));
    row("wake-ups per second (all threads)", format!("{:.1}", a.wakeups_per_s), format!("{:.1}", b.wakeups_per_s));
    let per_s = |idle: &Idle, name: &str| idle.threads.iter().find(|(n, _)| n == name).map_or(0.0, |(_, w)| *w);
    for (name, _) in a.threads.iter().filter(|(_, w)| *w >= 0.5) {
        row(&format!("  {name}"), format!("{:.1}", per_s(a, name)), format!("{:.1}", per_s(b, name)));
    }
    row(
        "RSS KiB (PSS)",
        format!("{} ({})", a.memory.rss, a.memory.pss),
        format!("{} ({})", b.memory.rss, b.memory.pss),
    );
    row("  anonymous (heap, stacks, buffers)", a.memory.anonymous.to_string(), b.memory.anonymous.to_string());
    row("  the pivox executable's pages", a.memory.binary.to_string(), b.memory.binary.to_string());
    row("  shared libraries' pages", a.memory.libraries.to_string(), b.memory.libraries.to_string());
}

pub(super) fn idle_summary(idle: &Option<Idle>) -> serde_json::Value {
    match idle {
        None => serde_json::Value::Null,
        Some(idle) => json!({
            "seconds": idle.seconds,
            "cpu_ms_per_min": idle.cpu_ms_per_min,
            "wakeups_per_s": idle.wakeups_per_s,
            "wakeups_per_s_by_thread": idle.threads.iter().map(|(n, w)| (n.clone(), json!(w))).collect::<serde_json::Map<_, _>>(),
            "rss_kb": idle.memory.rss,
            "pss_kb": idle.memory.pss,
            "anonymous_kb": idle.memory.anonymous,
            "executable_kb": idle.memory.binary,
            "libraries_kb": idle.memory.libraries,
        }),
    }
}

pub(super) fn print_homeassistant(title: &str, tts_end: &str, f: &Figures) {
    println!("\n{title:<44} {:>16}", "pivox");
    let row = |name: &str, value: String| println!("{name:<44} {value:>16}");
    row("turns completed", f.turns.to_string());
    row("release → end marker on the wire p50/p95 ms", format!("{:.2}/{:.2}", f.release_to_end.0, f.release_to_end.1));
    row(
        &format!("{tts_end} → first sample p50/p95 ms"),
        format!("{:.2}/{:.2}", f.announced_to_first_sample.0, f.announced_to_first_sample.1),
    );
    row("CPU s per turn", format!("{:.4}", f.cpu_s_per_turn));
    row("peak RSS KiB", f.peak_rss_kb.to_string());
    if let Some(idle) = &f.idle {
        row(&format!("idle {:.0} s: CPU ms per minute", idle.seconds), format!("{:.1}", idle.cpu_ms_per_min));
        row("idle: wake-ups per second", format!("{:.1}", idle.wakeups_per_s));
        row("idle: RSS KiB (anonymous)", format!("{} ({})", idle.memory.rss, idle.memory.anonymous));
    }
}

pub(super) fn homeassistant_summary(f: &Figures) -> serde_json::Value {
    json!({
        "turns": f.turns,
        "release_to_end_marker_ms_p50": f.release_to_end.0,
        "release_to_end_marker_ms_p95": f.release_to_end.1,
        "tts_end_to_first_sample_ms_p50": f.announced_to_first_sample.0,
        "tts_end_to_first_sample_ms_p95": f.announced_to_first_sample.1,
        "cpu_s_per_turn": f.cpu_s_per_turn,
        "peak_rss_kb": f.peak_rss_kb,
        "idle": idle_summary(&f.idle),
    })
}

pub(super) fn summary(f: &Figures) -> serde_json::Value {
    json!({
        "turns": f.turns,
        "press_to_first_frame_ms_p50": f.press_to_first_frame.0,
        "press_to_first_frame_ms_p95": f.press_to_first_frame.1,
        "release_to_end_ms_p50": f.release_to_end.0,
        "release_to_end_ms_p95": f.release_to_end.1,
        "reply_to_first_sample_ms_p50": f.reply_to_first_sample.0,
        "reply_to_first_sample_ms_p95": f.reply_to_first_sample.1,
        "upstream_bytes_per_s": f.upstream_bytes_per_s,
        "cpu_s_per_audio_s": f.cpu_s_per_audio_s,
        "peak_rss_kb": f.peak_rss_kb,
        "idle": idle_summary(&f.idle),
    })
}

pub(super) fn write_summary(
    out: &Path,
    results: &[(&str, Figures)],
    homeassistant: &Figures,
    esphome: &Figures,
    soaked: Option<&soak::Soak>,
    extra: serde_json::Map<String, serde_json::Value>,
) -> Result<(), String> {
    let mut doc = summary(&results[0].1);
    doc["baseline"] = summary(&results[1].1);
    doc["homeassistant"] = homeassistant_summary(homeassistant);
    doc["esphome"] = homeassistant_summary(esphome);
    doc["soak"] = soaked.map_or(serde_json::Value::Null, soak::summary);
    for (key, value) in extra {
        doc[key] = value;
    }
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    std::fs::write(out, serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n")
        .map_err(|e| format!("{}: {e}", out.display()))
}
