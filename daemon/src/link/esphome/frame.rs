//! The ESPHome native API's framing, as pure functions over byte buffers, and its Noise
//! encryption (`snow`). Nothing here touches a socket: `api.rs` reads into a buffer and asks
//! these for whole frames.
//!
//! ```text
//! plaintext  0x00 | varint payload length | varint message type | protobuf payload
//! Noise      0x01 | u16 BE frame length   | frame
//!            handshake: client 01 00 00 (hello), then 01 LEN 00 <NNpsk0 message>
//!                       device 01 LEN 01 <node name> 00 <mac> 00   (server hello)
//!                              01 LEN 00 <NNpsk0 message>           (or 01 <reason>: rejected)
//!            after it:  frame = ChaChaPoly(u16 BE type | u16 BE length | protobuf payload)
//! ```

use bytes::{BufMut, BytesMut};

/// The Noise protocol ESPHome uses, with its prologue.
pub const NOISE_PATTERN: &str = "Noise_NNpsk0_25519_ChaChaPoly_SHA256";
pub const NOISE_PROLOGUE: &[u8] = b"NoiseAPIInit\0\0";
/// What the client is told when its key is wrong (aioesphomeapi knows this text).
pub const WRONG_KEY: &str = "Handshake MAC failure";

/// The largest message pivox accepts from a client. HA's largest is an announcement (two
/// URLs and a text) or a wake-word configuration; a Noise frame cannot be larger anyway.
pub const MAX_PAYLOAD: usize = 65_535;

/// A frame that cannot be right: the connection it came on is closed with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("a frame of {0} bytes is larger than the {MAX_PAYLOAD} pivox accepts")]
    TooLarge(u64),
    #[error("the frame's first byte is {0:#04x}, not 0x00 (plaintext)")]
    NotPlaintext(u8),
    #[error("the frame's first byte is {0:#04x}, not 0x01 (Noise encryption)")]
    NotNoise(u8),
    #[error("a length or message type that does not fit in 32 bits")]
    BadVarint,
    #[error("an encrypted frame pivox cannot decrypt (wrong key, or bytes lost)")]
    Decrypt,
    #[error("an encrypted frame shorter than its header")]
    Short,
}

/// A whole plaintext message at the start of `buf`: (bytes it takes, type, payload range).
/// `None`: more bytes are needed.
pub fn plain_message(buf: &[u8]) -> Result<Option<(usize, u32, std::ops::Range<usize>)>, FrameError> {
    let Some(&first) = buf.first() else { return Ok(None) };
    if first != 0x00 {
        return Err(FrameError::NotPlaintext(first));
    }
    let Some((len, a)) = varint(&buf[1..])? else { return Ok(None) };
    if len > MAX_PAYLOAD as u64 {
        return Err(FrameError::TooLarge(len));
    }
    let Some((kind, b)) = varint(&buf[1 + a..])? else { return Ok(None) };
    let start = 1 + a + b;
    let end = start + len as usize;
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some((end, u32::try_from(kind).map_err(|_| FrameError::BadVarint)?, start..end)))
}

/// Appends a plaintext message.
pub fn put_plain(out: &mut BytesMut, kind: u32, payload: &[u8]) {
    out.put_u8(0x00);
    put_varint(out, payload.len() as u64);
    put_varint(out, u64::from(kind));
    out.put_slice(payload);
}

/// A whole Noise frame at the start of `buf`: (bytes it takes, the frame's body range).
pub fn noise_frame(buf: &[u8]) -> Result<Option<(usize, std::ops::Range<usize>)>, FrameError> {
    if buf.len() < 3 {
        return Ok(None);
    }
    if buf[0] != 0x01 {
        return Err(FrameError::NotNoise(buf[0]));
    }
    let len = usize::from(u16::from_be_bytes([buf[1], buf[2]]));
    if buf.len() < 3 + len {
        return Ok(None);
    }
    Ok(Some((3 + len, 3..3 + len)))
}

/// Appends a Noise frame around `body`.
pub fn put_noise_frame(out: &mut BytesMut, body: &[u8]) {
    out.put_u8(0x01);
    out.put_u16(body.len() as u16);
    out.put_slice(body);
}

/// The device's hello: the protocol it chose (1), its node name and its MAC address as 12
/// lower-case hex digits (as ESPHome sends it).
pub fn server_hello(name: &str, mac: &str) -> Vec<u8> {
    let mut body = vec![0x01];
    body.extend_from_slice(name.as_bytes());
    body.push(0);
    body.extend(mac.bytes().filter(u8::is_ascii_hexdigit).map(|b| b.to_ascii_lowercase()));
    body.push(0);
    body
}

/// An encrypted connection after its handshake.
pub struct Noise {
    transport: snow::TransportState,
    /// Plaintext of the frame being written or read: type, length, payload.
    scratch: Vec<u8>,
    /// The sealed frame being written; both buffers grow to the largest frame once and are
    /// reused (an audio frame every 20 ms allocates nothing).
    sealed: Vec<u8>,
}

/// The responder's side of the Noise handshake for one client message.
pub enum Handshake {
    /// The reply to send (`00` + the handshake message) and the encrypted connection.
    Done(Vec<u8>, Box<Noise>),
    /// The client's message failed (a wrong key): the reply to send (`01` + the reason).
    Rejected(Vec<u8>),
}

/// Answers the client's handshake frame `body` (`00` + its NNpsk0 message) with `psk`.
pub fn handshake(psk: &[u8; 32], body: &[u8]) -> Handshake {
    let reject = |why: &str| {
        let mut reply = vec![0x01];
        reply.extend_from_slice(why.as_bytes());
        Handshake::Rejected(reply)
    };
    let Some((&0, message)) = body.split_first() else { return reject("Bad handshake frame") };
    let built = snow::Builder::new(NOISE_PATTERN.parse().expect("a valid Noise pattern"))
        .prologue(NOISE_PROLOGUE)
        .and_then(|b| b.psk(0, psk))
        .and_then(|b| b.build_responder());
    let Ok(mut state) = built else { return reject("Handshake setup failed") };
    let mut payload = [0u8; 256];
    if state.read_message(message, &mut payload).is_err() {
        return reject(WRONG_KEY);
    }
    let mut reply = vec![0u8; 1 + 128];
    let Ok(n) = state.write_message(&[], &mut reply[1..]) else { return reject("Handshake failed") };
    reply.truncate(1 + n);
    match state.into_transport_mode() {
        Ok(transport) => Handshake::Done(
            reply,
            Box::new(Noise { transport, scratch: Vec::with_capacity(1024), sealed: Vec::with_capacity(1024) }),
        ),
        Err(_) => reject("Handshake failed"),
    }
}

impl Noise {
    /// The message type and payload of an encrypted frame's `body`.
    pub fn open(&mut self, body: &[u8]) -> Result<(u32, &[u8]), FrameError> {
        self.scratch.resize(body.len(), 0);
        let n = self.transport.read_message(body, &mut self.scratch).map_err(|_| FrameError::Decrypt)?;
        let plain = &self.scratch[..n];
        if plain.len() < 4 {
            return Err(FrameError::Short);
        }
        let kind = u32::from(u16::from_be_bytes([plain[0], plain[1]]));
        let len = usize::from(u16::from_be_bytes([plain[2], plain[3]]));
        let payload = plain.get(4..4 + len).ok_or(FrameError::Short)?;
        Ok((kind, payload))
    }

    /// Appends the encrypted frame of a message.
    pub fn seal(&mut self, out: &mut BytesMut, kind: u32, payload: &[u8]) -> Result<(), FrameError> {
        // The 16-byte tag and the 4-byte header must fit in the u16 length.
        if payload.len() + 4 + 16 > MAX_PAYLOAD {
            return Err(FrameError::TooLarge(payload.len() as u64));
        }
        self.scratch.clear();
        self.scratch.put_u16(kind as u16);
        self.scratch.put_u16(payload.len() as u16);
        self.scratch.extend_from_slice(payload);
        self.sealed.resize(self.scratch.len() + 16, 0);
        let n = self.transport.write_message(&self.scratch, &mut self.sealed).map_err(|_| FrameError::Decrypt)?;
        put_noise_frame(out, &self.sealed[..n]);
        Ok(())
    }
}

fn varint(buf: &[u8]) -> Result<Option<(u64, usize)>, FrameError> {
    let mut value = 0u64;
    for (i, &byte) in buf.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if i >= 5 {
                return Err(FrameError::BadVarint);
            }
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= 5 { Err(FrameError::BadVarint) } else { Ok(None) }
}

fn put_varint(out: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_messages_round_trip_and_wait_for_their_last_byte() {
        let mut out = BytesMut::new();
        let payload = vec![7u8; 300];
        put_plain(&mut out, 106, &payload);
        assert_eq!(&out[..4], [0x00, 0xac, 0x02, 106]);
        for cut in 0..out.len() {
            assert_eq!(plain_message(&out[..cut]).unwrap(), None, "{cut} bytes are not a message");
        }
        let (used, kind, range) = plain_message(&out).unwrap().unwrap();
        assert_eq!((used, kind, &out[range]), (out.len(), 106, &payload[..]));
    }

    #[test]
    fn a_bad_first_byte_an_oversized_length_or_an_endless_varint_is_an_error() {
        assert_eq!(plain_message(&[0x01, 0, 0]), Err(FrameError::NotPlaintext(1)));
        assert_eq!(plain_message(&[0x00, 0xff, 0xff, 0xff, 0x0f]), Err(FrameError::TooLarge(0x01ff_ffff)));
        assert_eq!(plain_message(&[0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80]), Err(FrameError::BadVarint));
        assert_eq!(noise_frame(b"\x00\x00\x05"), Err(FrameError::NotNoise(0)));
    }

    /// The client's side, as aioesphomeapi does it, against ours.
    fn client(psk: &[u8; 32]) -> snow::HandshakeState {
        snow::Builder::new(NOISE_PATTERN.parse().unwrap())
            .prologue(NOISE_PROLOGUE)
            .unwrap()
            .psk(0, psk)
            .unwrap()
            .build_initiator()
            .unwrap()
    }

    #[test]
    fn noise_handshake_and_messages_with_the_right_key() {
        let psk = [9u8; 32];
        let mut initiator = client(&psk);
        let mut hello = vec![0u8; 128];
        let n = initiator.write_message(&[], &mut hello[1..]).unwrap();
        hello.truncate(1 + n);
        let Handshake::Done(reply, mut device) = handshake(&psk, &hello) else { panic!("rejected") };
        assert_eq!(reply[0], 0);
        let mut ignored = [0u8; 64];
        initiator.read_message(&reply[1..], &mut ignored).unwrap();
        let mut ha = initiator.into_transport_mode().unwrap();

        let mut out = BytesMut::new();
        device.seal(&mut out, 2, b"hello").unwrap();
        let (used, body) = noise_frame(&out).unwrap().unwrap();
        assert_eq!(used, out.len());
        let mut plain = [0u8; 64];
        let n = ha.read_message(&out[body], &mut plain).unwrap();
        assert_eq!(&plain[..n], b"\x00\x02\x00\x05hello");

        let mut sealed = [0u8; 64];
        let n = ha.write_message(b"\x00\x07\x00\x00", &mut sealed).unwrap();
        assert_eq!(device.open(&sealed[..n]).unwrap(), (7, &[][..]));
        assert_eq!(device.open(&sealed[..n]), Err(FrameError::Decrypt), "a replayed frame");
    }

    #[test]
    fn a_wrong_key_is_rejected_with_the_text_the_client_knows() {
        let mut initiator = client(&[1u8; 32]);
        let mut hello = vec![0u8; 128];
        let n = initiator.write_message(&[], &mut hello[1..]).unwrap();
        hello.truncate(1 + n);
        let Handshake::Rejected(reply) = handshake(&[2u8; 32], &hello) else { panic!("accepted a wrong key") };
        assert_eq!(reply, [&[1u8][..], WRONG_KEY.as_bytes()].concat());
        assert!(matches!(handshake(&[2u8; 32], b""), Handshake::Rejected(_)));
    }

    #[test]
    fn server_hello_carries_name_and_mac() {
        assert_eq!(server_hello("kitchen", "AA:BB:CC:DD:EE:0F"), b"\x01kitchen\0aabbccddee0f\0");
    }
}
