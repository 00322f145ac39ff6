//! Client connections on a paused clock: pings, silence, the client limit.

use super::*;
use crate::link::esphome::device::Encryption;
use crate::link::esphome::frame;
use bytes::Buf;

async fn listening() -> (SocketAddr, mpsc::Receiver<FromClient>, watch::Sender<bool>, watch::Sender<Loudness>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let device = Arc::new(Device::new("t".into(), "T".into(), "02:00:00:00:00:01".into(), Encryption::Plaintext));
    let (hub_tx, hub) = mpsc::channel(16);
    let (button_tx, button) = watch::channel(false);
    let (loudness_tx, loudness) = watch::channel(Loudness::default());
    let states = States { button, loudness, counters: Arc::default() };
    tokio::spawn(accept(listener, device, hub_tx, states));
    (addr, hub, button_tx, loudness_tx)
}

async fn hello(stream: &mut TcpStream) {
    let mut out = BytesMut::new();
    let hello = HelloRequest { client_info: "test".into(), api_version_major: 1, api_version_minor: 14 };
    frame::put_plain(&mut out, HelloRequest::TYPE, &hello.encode_to_vec());
    stream.write_all(&out).await.unwrap();
}

/// The message types that arrive until the connection closes (bounded by the test's clock).
async fn until_closed(stream: &mut TcpStream) -> Vec<u32> {
    let (mut input, mut kinds) = (BytesMut::new(), Vec::new());
    loop {
        while let Some((used, kind, _)) = frame::plain_message(&input).unwrap() {
            kinds.push(kind);
            input.advance(used);
        }
        if stream.read_buf(&mut input).await.unwrap_or(0) == 0 {
            return kinds;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_pinged_then_dropped_and_the_next_one_is_served() {
    let (addr, mut hub, _button, _loudness) = listening().await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    hello(&mut silent).await;
    // Subscribed, so that the link hears when it goes.
    let mut out = BytesMut::new();
    let subscribe = SubscribeVoiceAssistantRequest { subscribe: true, flags: 4 };
    frame::put_plain(&mut out, SubscribeVoiceAssistantRequest::TYPE, &subscribe.encode_to_vec());
    silent.write_all(&out).await.unwrap();
    assert!(matches!(hub.recv().await, Some(FromClient::Subscribed { .. })));
    let started = Instant::now();
    let kinds = until_closed(&mut silent).await;
    assert_eq!(kinds, [HelloResponse::TYPE, PingRequest::TYPE], "a ping after {PING_AFTER:?}, then closed");
    assert_eq!(started.elapsed().as_secs(), SILENT_LIMIT.as_secs(), "dropped after {SILENT_LIMIT:?} of silence");
    assert!(matches!(hub.recv().await, Some(FromClient::Gone { why, .. }) if why.contains("silent")));

    // The next client is served at once.
    let mut next = TcpStream::connect(addr).await.unwrap();
    hello(&mut next).await;
    let mut input = BytesMut::new();
    while frame::plain_message(&input).unwrap().is_none() {
        next.read_buf(&mut input).await.unwrap();
    }
    assert_eq!(frame::plain_message(&input).unwrap().unwrap().1, HelloResponse::TYPE);
}

#[tokio::test]
async fn no_more_than_the_client_limit_is_served_at_once() {
    let (addr, _hub, _button, _loudness) = listening().await;
    let mut held = Vec::new();
    for _ in 0..MAX_CLIENTS {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        hello(&mut stream).await;
        let mut input = BytesMut::new();
        while frame::plain_message(&input).unwrap().is_none() {
            stream.read_buf(&mut input).await.unwrap();
        }
        held.push(stream);
    }
    let mut one_more = TcpStream::connect(addr).await.unwrap();
    let refused = tokio::time::timeout(Duration::from_secs(5), until_closed(&mut one_more)).await.unwrap();
    assert!(refused.is_empty(), "refused without a word");
    drop(held);
}
