//! WebSocket framing (RFC 6455) on the gateway's own connections: server frames encoded
//! once — a server frame is unmasked, so one room event is the same bytes for every viewer —
//! and the client's frames taken apart from what is read off the socket.
//!
//! No extension is negotiated, so the reserved bits are always zero. A client's frames must
//! be masked; control frames are short and whole; a text message may come in fragments,
//! [`MAX_CLIENT_MESSAGE`] bytes in all at most.

use bytes::{BufMut, Bytes, BytesMut};

/// Largest message a client may send (a clock ping is about 30 bytes).
pub const MAX_CLIENT_MESSAGE: usize = 4096;

mod opcode {
    pub const CONTINUATION: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;
}

/// One whole server frame, header included, ready for the socket. Cloning it is a
/// reference count.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame(Bytes);

impl Frame {
    /// A text frame holding `payload` (JSON, so valid UTF-8).
    pub fn text(payload: &str) -> Frame {
        Frame::encode(opcode::TEXT, payload.as_bytes())
    }

    /// A close frame with its status code and reason.
    pub fn close(code: u16, reason: &str) -> Frame {
        let mut payload = Vec::with_capacity(2 + reason.len());
        payload.extend_from_slice(&code.to_be_bytes());
        payload.extend_from_slice(reason.as_bytes());
        Frame::encode(opcode::CLOSE, &payload)
    }

    /// An empty ping.
    pub fn ping() -> Frame {
        Frame(Bytes::from_static(&[0x80 | opcode::PING, 0]))
    }

    /// The answer to a client's ping, carrying its payload back.
    pub fn pong(payload: &[u8]) -> Frame {
        Frame::encode(opcode::PONG, payload)
    }

    fn encode(opcode: u8, payload: &[u8]) -> Frame {
        let mut frame = BytesMut::with_capacity(10 + payload.len());
        frame.put_u8(0x80 | opcode);
        match payload.len() {
            len @ 0..=125 => frame.put_u8(len as u8),
            len @ 126..=0xFFFF => {
                frame.put_u8(126);
                frame.put_u16(len as u16);
            }
            len => {
                frame.put_u8(127);
                frame.put_u64(len as u64);
            }
        }
        frame.extend_from_slice(payload);
        Frame(frame.freeze())
    }

    /// A frame from bytes that hold one whole frame already (a queue's, in tests).
    #[cfg(test)]
    pub(crate) fn from_wire(bytes: Bytes) -> Frame {
        Frame(bytes)
    }

    /// The frame's bytes as they go on the wire.
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Frame({:?})", String::from_utf8_lossy(&self.0))
    }
}

/// A whole message from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    Text(String),
    /// A ping, to be answered with a pong carrying the same payload.
    Ping(Vec<u8>),
    Pong,
    /// The client closes (with its status code, if it gave one).
    Close(Option<u16>),
}

/// Why the server refuses what the client sent, with the close code it answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not WebSocket as RFC 6455 has it (1002).
    Protocol(&'static str),
    /// A text message that is not UTF-8 (1007).
    NotUtf8,
    /// Binary messages are not part of the protocol (1003).
    Binary,
    /// Over [`MAX_CLIENT_MESSAGE`] (1009).
    TooBig,
}

impl Refusal {
    pub fn code(&self) -> u16 {
        match self {
            Self::Protocol(_) => 1002,
            Self::NotUtf8 => 1007,
            Self::Binary => 1003,
            Self::TooBig => 1009,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Self::Protocol(reason) => reason,
            Self::NotUtf8 => "text frames must be UTF-8",
            Self::Binary => "binary frames are not accepted",
            Self::TooBig => "frame too large (max 4096 bytes)",
        }
    }
}

/// Takes a client's frames apart. Holds no memory while nothing is half-read (most viewers
/// never send anything).
#[derive(Default)]
pub struct Reader {
    /// Bytes read and not yet taken apart.
    unread: Vec<u8>,
    /// The fragments of a text message so far, while one is under way.
    message: Option<Vec<u8>>,
}

/// A frame's header, as far as it was read.
struct Header {
    fin: bool,
    opcode: u8,
    /// Where the mask starts.
    mask_at: usize,
    len: usize,
}

impl Reader {
    /// Adds bytes read from the socket.
    pub fn push(&mut self, bytes: &[u8]) {
        self.unread.extend_from_slice(bytes);
    }

    /// The next whole message, `None` until more is read, or why the connection must close.
    pub fn message(&mut self) -> Result<Option<Incoming>, Refusal> {
        loop {
            let Some(header) = self.header()? else {
                return Ok(None);
            };
            let end = header.mask_at + 4 + header.len;
            if self.unread.len() < end {
                return Ok(None);
            }
            let mut payload = self.unread[header.mask_at + 4..end].to_vec();
            let mask: [u8; 4] = self.unread[header.mask_at..header.mask_at + 4]
                .try_into()
                .expect("four bytes");
            for (i, byte) in payload.iter_mut().enumerate() {
                *byte ^= mask[i % 4];
            }
            self.consume(end);
            if let Some(message) = self.message_of(header.fin, header.opcode, payload)? {
                return Ok(Some(message));
            }
        }
    }

    /// Reads the header of the next frame and checks it, before its payload is all there.
    fn header(&self) -> Result<Option<Header>, Refusal> {
        let [first, second, ..] = self.unread[..] else {
            return Ok(None);
        };
        let (fin, opcode) = (first & 0x80 != 0, first & 0x0F);
        if first & 0x70 != 0 {
            return Err(Refusal::Protocol("reserved bits set"));
        }
        if second & 0x80 == 0 {
            return Err(Refusal::Protocol("client frames must be masked"));
        }
        let (len, mask_at) = match second & 0x7F {
            126 => match self.unread.get(2..4) {
                Some(b) => (u16::from_be_bytes([b[0], b[1]]) as u64, 4),
                None => return Ok(None),
            },
            127 => match self.unread.get(2..10) {
                Some(b) => (u64::from_be_bytes(b.try_into().expect("eight bytes")), 10),
                None => return Ok(None),
            },
            len => (len as u64, 2),
        };
        if opcode >= opcode::CLOSE && (!fin || len > 125) {
            return Err(Refusal::Protocol("control frames must be whole and short"));
        }
        let so_far = self.message.as_ref().map_or(0, Vec::len) as u64;
        if len.saturating_add(so_far) > MAX_CLIENT_MESSAGE as u64 {
            return Err(Refusal::TooBig);
        }
        Ok(Some(Header {
            fin,
            opcode,
            mask_at,
            len: len as usize,
        }))
    }

    /// Drops the first `n` bytes read; frees the buffer once nothing is left in it.
    fn consume(&mut self, n: usize) {
        if n == self.unread.len() {
            self.unread = Vec::new();
        } else {
            self.unread.drain(..n);
        }
    }

    /// What one frame adds up to: a whole message, or nothing yet (a fragment).
    fn message_of(
        &mut self,
        fin: bool,
        opcode: u8,
        payload: Vec<u8>,
    ) -> Result<Option<Incoming>, Refusal> {
        let whole = match opcode {
            opcode::TEXT if self.message.is_some() => {
                return Err(Refusal::Protocol("a new message inside a fragmented one"));
            }
            opcode::TEXT if fin => payload,
            opcode::TEXT => {
                self.message = Some(payload);
                return Ok(None);
            }
            opcode::CONTINUATION => {
                let Some(message) = self.message.as_mut() else {
                    return Err(Refusal::Protocol("a continuation without a message"));
                };
                message.extend_from_slice(&payload);
                if !fin {
                    return Ok(None);
                }
                self.message.take().expect("a message under way")
            }
            opcode::BINARY => return Err(Refusal::Binary),
            opcode::CLOSE => return close_of(&payload).map(Some),
            opcode::PING => return Ok(Some(Incoming::Ping(payload))),
            opcode::PONG => return Ok(Some(Incoming::Pong)),
            _ => return Err(Refusal::Protocol("unknown opcode")),
        };
        String::from_utf8(whole)
            .map(|text| Some(Incoming::Text(text)))
            .map_err(|_| Refusal::NotUtf8)
    }
}

fn close_of(payload: &[u8]) -> Result<Incoming, Refusal> {
    match payload {
        [] => Ok(Incoming::Close(None)),
        [_] => Err(Refusal::Protocol("a close frame's code takes two bytes")),
        [high, low, reason @ ..] => {
            if std::str::from_utf8(reason).is_err() {
                return Err(Refusal::NotUtf8);
            }
            Ok(Incoming::Close(Some(u16::from_be_bytes([*high, *low]))))
        }
    }
}

#[cfg(test)]
mod tests;
