//! The WebSocket side of the stand-in: HA's auth phase, then commands (`ping`,
//! `assist_pipeline/run`) and binary audio for the runs they start, each event a run sends
//! as HA sends it.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedSender;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::{RunRecord, Scenario, Shared};

type Sink = SplitSink<WebSocketStream<TcpStream>, WsMessage>;
type Stream = SplitStream<WebSocketStream<TcpStream>>;
/// The queue to the connection's writer task; `None` closes the socket.
type Outbox = UnboundedSender<Option<WsMessage>>;

/// What one connection keeps.
struct Conn {
    last_id: u64,
    next_handler: u8,
    /// Run index in the report by handler id, while the run takes audio.
    handlers: HashMap<u8, usize>,
    /// Handlers whose run stopped listening on its own (`Scenario::ServerVad`).
    vad_ended: HashSet<u8>,
}

fn json_text(v: Value) -> WsMessage {
    WsMessage::text(v.to_string())
}

pub(super) async fn websocket(stream: TcpStream, shared: Arc<Shared>) {
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else { return };
    let (mut tx, mut rx) = ws.split();
    if !authenticate(&mut tx, &mut rx, &shared).await {
        return;
    }
    let (out_tx, writer) = spawn_writer(tx);
    let mut conn = Conn { last_id: 0, next_handler: 1, handlers: HashMap::new(), vad_ended: HashSet::new() };
    while let Some(Ok(message)) = rx.next().await {
        let flow = match message {
            WsMessage::Text(text) => {
                conn.command(&shared, &text, &out_tx);
                ControlFlow::Continue(())
            }
            WsMessage::Binary(data) => conn.audio(&shared, &data, &out_tx),
            WsMessage::Close(_) => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        };
        if flow.is_break() {
            break;
        }
    }
    drop(out_tx);
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
}

/// HA's auth phase: `auth_required`, then the first message must be a valid auth message with
/// the right token (answered `auth_ok`). Whether the client is in.
async fn authenticate(tx: &mut Sink, rx: &mut Stream, shared: &Shared) -> bool {
    if tx.send(json_text(json!({"type": "auth_required", "ha_version": "2025.11.0"}))).await.is_err() {
        return false;
    }
    let auth = match tokio::time::timeout(Duration::from_secs(10), rx.next()).await {
        Ok(Some(Ok(WsMessage::Text(text)))) => serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
        _ => return false,
    };
    if let Ok(mut report) = shared.report.lock() {
        report.connections += 1;
    }
    if auth["type"] != "auth" || auth["access_token"] != shared.options.token.as_str() {
        refuse_auth(tx, rx, shared).await;
        return false;
    }
    tx.send(json_text(json!({"type": "auth_ok", "ha_version": "2025.11.0"}))).await.is_ok()
}

/// `auth_invalid` and the close handshake, counting the clients that close cleanly.
async fn refuse_auth(tx: &mut Sink, rx: &mut Stream, shared: &Shared) {
    if let Ok(mut report) = shared.report.lock() {
        report.auth_failures += 1;
    }
    let _ = tx.send(json_text(json!({"type": "auth_invalid", "message": "Invalid access token or password"}))).await;
    let _ = tx.close().await;
    // As HA's aiohttp handler: the close handshake, answered by a client that closes cleanly.
    let closed = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(message)) = rx.next().await {
            if matches!(message, WsMessage::Close(_)) {
                return true;
            }
        }
        false
    });
    if closed.await.unwrap_or(false)
        && let Ok(mut report) = shared.report.lock()
    {
        report.auth_failures_closed_cleanly += 1;
    }
}

/// Outgoing messages go through a queue so that delayed events (run-start) can be sent
/// from timers while the reader goes on.
fn spawn_writer(mut tx: Sink) -> (Outbox, tokio::task::JoinHandle<()>) {
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<Option<WsMessage>>();
    let writer = tokio::spawn(async move {
        while let Some(message) = out_rx.recv().await {
            let Some(message) = message else {
                let _ = tx.send(WsMessage::Close(None)).await;
                break;
            };
            if tx.send(message).await.is_err() {
                break;
            }
        }
    });
    (out_tx, writer)
}

impl Conn {
    /// One text message: a command with an id larger than the last.
    fn command(&mut self, shared: &Arc<Shared>, text_message: &str, out_tx: &Outbox) {
        let out = |v: Value| drop(out_tx.send(Some(json_text(v))));
        let Ok(command) = serde_json::from_str::<Value>(text_message) else {
            shared.violation(format!("a text message that is not JSON: {text_message}"));
            return;
        };
        let Some(id) = command["id"].as_u64() else {
            shared.violation(format!("a command without an id: {text_message}"));
            return;
        };
        if id <= self.last_id {
            shared.violation(format!("command id {id} after {}: ids must increase", self.last_id));
            out(json!({"id": id, "type": "result", "success": false,
                "error": {"code": "id_reuse", "message": "Identifier values have to increase."}}));
            return;
        }
        self.last_id = id;
        match command["type"].as_str() {
            Some("ping") => out(json!({"id": id, "type": "pong"})),
            Some("assist_pipeline/run") => start_run(shared, self, id, command, out_tx),
            other => out(json!({"id": id, "type": "result", "success": false,
                "error": {"code": "unknown_command", "message": format!("Unknown command {other:?}.")}})),
        }
    }

    /// One binary message: the handler id, then 16-bit PCM for that run, or nothing (the end
    /// of its audio). Breaks when the connection is to end.
    fn audio(&mut self, shared: &Arc<Shared>, data: &[u8], out_tx: &Outbox) -> ControlFlow<()> {
        if data.is_empty() {
            // HA: "Received invalid binary message", and the connection is closed.
            shared.violation("a zero-length binary message".into());
            return ControlFlow::Break(());
        }
        let handler = data[0];
        let payload = &data[1..];
        let Some(&index) = self.handlers.get(&handler) else {
            // Audio that was on its way when HA stopped listening is no fault.
            if !self.vad_ended.contains(&handler) {
                shared.violation(format!("audio for handler {handler}, which no running run has"));
            }
            return ControlFlow::Continue(());
        };
        if !payload.len().is_multiple_of(2) {
            shared.violation(format!("an audio frame of {} bytes: not whole 16-bit samples", payload.len()));
        }
        let (close_now, vad_end) = record_audio(shared, index, payload);
        if let Some(id) = vad_end {
            self.handlers.remove(&handler);
            self.vad_ended.insert(handler);
            let _ = out_tx.send(Some(event(id, "stt-vad-end", json!({"timestamp": 1200}))));
            finish_run(shared, index, out_tx);
            return ControlFlow::Continue(());
        }
        if close_now {
            let _ = out_tx.send(None);
            return ControlFlow::Break(());
        }
        if payload.is_empty() {
            self.handlers.remove(&handler);
            finish_run(shared, index, out_tx);
        }
        ControlFlow::Continue(())
    }
}

/// Adds `payload` to the run at `index` in the report (an empty one is the end marker).
/// Returns whether the scenario closes the socket now, and the run's id if the scenario's
/// end-of-speech detection ends its audio here.
fn record_audio(shared: &Shared, index: usize, payload: &[u8]) -> (bool, Option<u64>) {
    let mut report = shared.report.lock().unwrap_or_else(|e| e.into_inner());
    let run = &mut report.runs[index];
    if payload.is_empty() {
        run.end_marker = true;
        run.end_marker_at = Some(Instant::now());
    } else {
        run.frames += 1;
        run.samples.extend(payload.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])));
    }
    let vad_end = matches!(shared.options.scenario,
        Scenario::ServerVad { after_frames } if run.frames >= after_frames && !payload.is_empty());
    (shared.options.scenario == Scenario::CloseMidRun && run.frames >= 5, vad_end.then_some(run.id))
}

fn event(id: u64, kind: &str, data: Value) -> WsMessage {
    WsMessage::text(json!({"id": id, "type": "event", "event": {"type": kind, "data": data, "timestamp": "2025-11-21T00:00:00+00:00"}}).to_string())
}

fn start_run(shared: &Arc<Shared>, conn: &mut Conn, id: u64, command: Value, out: &Outbox) {
    let send = |m: WsMessage| drop(out.send(Some(m)));
    let refuse = |code: &str, message: String| {
        send(WsMessage::text(
            json!({"id": id, "type": "result", "success": false, "error": {"code": code, "message": message}})
                .to_string(),
        ))
    };
    if command["start_stage"] != "stt" || command["end_stage"] != "tts" {
        shared.violation(format!("a run from {} to {}, not stt to tts", command["start_stage"], command["end_stage"]));
    }
    if command["input"]["sample_rate"] != 16_000 {
        shared.violation(format!("input.sample_rate {}", command["input"]["sample_rate"]));
    }
    let pipeline = command["pipeline"].as_str().map(str::to_string);
    if let Some(p) = &pipeline
        && !shared.options.pipelines.contains(p)
    {
        return refuse("pipeline-not-found", format!("Pipeline not found: id={p}"));
    }
    let handler = conn.next_handler;
    conn.next_handler = conn.next_handler.wrapping_add(1).max(1);
    let (token, url) = shared.new_reply_url();
    let index = {
        let mut report = shared.report.lock().unwrap_or_else(|e| e.into_inner());
        let record =
            RunRecord { id, handler, command: command.clone(), reply_token: token.clone(), ..Default::default() };
        report.runs.push(record);
        report.runs.len() - 1
    };
    conn.handlers.insert(handler, index);
    send(WsMessage::text(json!({"id": id, "type": "result", "success": true, "result": null}).to_string()));
    let conversation = command["conversation_id"].as_str().map_or_else(|| format!("conv-{id}"), str::to_string);
    let run_start = json!({
        "pipeline": pipeline.unwrap_or_else(|| shared.options.pipelines[0].clone()),
        "language": "en",
        "conversation_id": conversation,
        "runner_data": {"stt_binary_handler_id": handler, "timeout": 300},
        "tts_output": {"token": token, "url": url, "mime_type": shared.options.reply_mime,
            "stream_response": shared.options.streaming_lead.is_some()},
    });
    if shared.options.scenario == Scenario::RunEndFirst {
        conn.handlers.remove(&handler);
        send(event(id, "run-end", Value::Null));
        return;
    }
    let garbage = shared.options.scenario == Scenario::Garbage;
    let delay = shared.options.run_start_delay;
    let out = out.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let send = |m: WsMessage| drop(out.send(Some(m)));
        if garbage {
            send(WsMessage::text("{not json"));
            send(WsMessage::text(json!({"type": "surprise", "id": id}).to_string()));
            send(event(id + 1000, "stt-end", json!({"stt_output": {"text": "for nobody"}})));
            send(WsMessage::Binary(vec![1, 2, 3].into()));
        }
        send(event(id, "run-start", run_start));
        send(event(
            id,
            "stt-start",
            json!({"engine": "stt.fake", "metadata": {"language": "en", "sample_rate": 16000}}),
        ));
    });
}

fn finish_run(shared: &Arc<Shared>, index: usize, out: &Outbox) {
    let send = |m: WsMessage| drop(out.send(Some(m)));
    let (id, samples, conversation, token) = {
        let report = shared.report.lock().unwrap_or_else(|e| e.into_inner());
        let run = &report.runs[index];
        let conversation =
            run.command["conversation_id"].as_str().map_or_else(|| format!("conv-{}", run.id), str::to_string);
        (run.id, run.samples.len(), conversation, run.reply_token.clone())
    };
    let options = &shared.options;
    let no_text = json!({"code": "stt-no-text-recognized", "message": "No text recognized"});
    if options.scenario == Scenario::NothingHeard || samples == 0 {
        send(event(id, "error", no_text));
        send(event(id, "run-end", Value::Null));
        return;
    }
    if options.scenario == Scenario::Timeout {
        send(event(id, "run-end", Value::Null));
        send(event(id, "error", json!({"code": "timeout", "message": "Timeout running pipeline"})));
        return;
    }
    let heard = format!("{:.1} seconds of speech", samples as f64 / f64::from(pivox::audio::CODEC_RATE));
    let answer = if options.vary_answer { format!("{} (run {id})", options.answer) } else { options.answer.clone() };
    send(event(id, "stt-end", json!({"stt_output": {"text": heard}})));
    send(event(
        id,
        "intent-start",
        json!({"engine": "conversation.fake", "language": "en", "intent_input": heard, "conversation_id": conversation}),
    ));
    let shared = shared.clone();
    let out = out.clone();
    tokio::spawn(async move {
        let send = |m: WsMessage| drop(out.send(Some(m)));
        let options = &shared.options;
        if let Some(lead) = options.streaming_lead {
            send(event(id, "intent-progress", json!({"tts_start_streaming": true})));
            tokio::time::sleep(lead).await;
        }
        send(event(
            id,
            "intent-end",
            json!({"processed_locally": true, "intent_output": {
            "response": {"speech": {"plain": {"speech": answer, "extra_data": null}}, "card": {}, "language": "en", "response_type": "query_answer", "data": {}},
            "conversation_id": conversation, "continue_conversation": false}}),
        ));
        send(event(
            id,
            "tts-start",
            json!({"engine": "tts.fake", "language": "en", "voice": "amy", "tts_input": answer}),
        ));
        if options.scenario == Scenario::TtsFails {
            send(event(id, "error", json!({"code": "tts-failed", "message": "Text-to-speech failed"})));
            send(event(id, "run-end", Value::Null));
            return;
        }
        let url = format!("/api/tts_proxy/{token}");
        send(event(
            id,
            "tts-end",
            json!({"tts_output": {"media_id": format!("media-source://tts/{token}"), "token": token, "url": url, "mime_type": options.reply_mime}}),
        ));
        if let Ok(mut report) = shared.report.lock() {
            report.tts_ends.push(Instant::now());
        }
        send(event(id, "run-end", Value::Null));
    });
}
