//! How one client connection's bytes are framed: plaintext, or Noise once its handshake is
//! done — and the answers ESPHome gives a client of the other kind, so that HA says "requires
//! encryption" or "plaintext device" rather than a bare disconnect.

use std::net::SocketAddr;

use bytes::{Buf, Bytes, BytesMut};

use super::device::Device;
use super::frame::{self, FrameError, Handshake, Noise};

pub(super) enum Wire {
    Plain,
    /// Waiting for the client's Noise hello, then its handshake message.
    NoiseHello([u8; 32]),
    NoiseHandshake([u8; 32]),
    Noise(Box<Noise>),
}

/// What a frame amounted to.
pub(super) enum Step {
    Message(u32, Bytes),
    Handshook,
    Close(String),
}

impl Wire {
    /// A connection to a device with this key (`None`: plaintext).
    pub(super) fn new(key: Option<[u8; 32]>) -> Self {
        key.map_or(Wire::Plain, Wire::NoiseHello)
    }

    /// The next whole frame in `input`, handled as far as the framing goes; what the framing
    /// itself answers (the server hello, the handshake) goes into `out`.
    pub(super) fn next(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
        device: &Device,
        peer: SocketAddr,
    ) -> Result<Option<Step>, FrameError> {
        match self {
            Wire::Plain => {
                if input.first() == Some(&0x01) {
                    // ESPHome's answer, which the client reports as "plaintext device".
                    out.extend_from_slice(b"\x00Bad indicator byte");
                    log::warn!(
                        "ESPHome API: {} wants an encrypted connection, but pivox has no key yet: remove the \
                         encryption key from the device in Home Assistant, or set server.encryption_key",
                        peer
                    );
                    return Ok(Some(Step::Close("encryption asked for, no key set".into())));
                }
                let Some((used, kind, range)) = frame::plain_message(input)? else { return Ok(None) };
                let payload = Bytes::copy_from_slice(&input[range]);
                input.advance(used);
                Ok(Some(Step::Message(kind, payload)))
            }
            Wire::NoiseHello(key) => {
                if input.first() == Some(&0x00) {
                    // A plaintext client: this frame makes it say "requires encryption".
                    frame::put_noise_frame(out, b"\x01Bad indicator byte");
                    return Ok(Some(Step::Close("a plaintext client; pivox requires encryption".into())));
                }
                let Some((used, _)) = frame::noise_frame(input)? else { return Ok(None) };
                input.advance(used);
                frame::put_noise_frame(out, &frame::server_hello(&device.name, &device.mac));
                *self = Wire::NoiseHandshake(*key);
                Ok(Some(Step::Handshook))
            }
            Wire::NoiseHandshake(key) => {
                let Some((used, body)) = frame::noise_frame(input)? else { return Ok(None) };
                let result = frame::handshake(key, &input[body.clone()]);
                // HA's config flow learns a device's name with the all-zero key: no wrong key.
                let probe = matches!(result, Handshake::Rejected(_))
                    && matches!(frame::handshake(&[0; 32], &input[body]), Handshake::Done(..));
                input.advance(used);
                match result {
                    Handshake::Done(reply, noise) => {
                        frame::put_noise_frame(out, &reply);
                        *self = Wire::Noise(noise);
                        Ok(Some(Step::Handshook))
                    }
                    Handshake::Rejected(reply) => {
                        frame::put_noise_frame(out, &reply);
                        if probe {
                            log::debug!("ESPHome API: {} probed with the all-zero key (to learn the name)", peer);
                            return Ok(Some(Step::Close("a name probe".into())));
                        }
                        log::warn!(
                            "ESPHome API: {} used a different encryption key; in Home Assistant, reconfigure the \
                             device with pivox's key",
                            peer
                        );
                        Ok(Some(Step::Close("wrong encryption key".into())))
                    }
                }
            }
            Wire::Noise(noise) => {
                let Some((used, body)) = frame::noise_frame(input)? else { return Ok(None) };
                let (kind, payload) = noise.open(&input[body])?;
                let payload = Bytes::copy_from_slice(payload);
                input.advance(used);
                Ok(Some(Step::Message(kind, payload)))
            }
        }
    }

    /// Appends a message in this connection's framing; nothing goes out before the handshake.
    pub(super) fn queue(&mut self, out: &mut BytesMut, kind: u32, payload: &[u8]) -> Result<(), FrameError> {
        match self {
            Wire::Plain => frame::put_plain(out, kind, payload),
            Wire::Noise(noise) => noise.seal(out, kind, payload)?,
            Wire::NoiseHello(_) | Wire::NoiseHandshake(_) => {}
        }
        Ok(())
    }
}
