//! One connection's mailbox: its socket, the frames waiting for it and its kill switch, in a
//! single allocation.
//!
//! A frame offered while nothing waits is written to the socket at once by whoever offers
//! it (the room's broadcast, most of the time): one non-blocking write, no task woken. Only
//! what the socket does not take at once (it would block, or took part of the frame) waits
//! in the queue, for the connection's own task to write when the socket can take more —
//! queued frames go in one vectored write. The queue's lock is held across each write, so
//! frames never interleave and always leave in the order they were offered.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::{Buf, Bytes};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::CloseReason;
use crate::wire::Frame;

/// Bytes that may wait in one connection's queue before it counts as a slow consumer.
pub const MAX_QUEUED_BYTES: usize = 256 * 1024;
/// Queued frames given to one vectored write, at most.
const FRAMES_PER_WRITE: usize = 16;

/// One connection's mailbox (see the module's documentation).
pub struct Mailbox {
    queue: Mutex<Queue>,
    /// Frames the queue holds at most before its connection counts as a slow consumer.
    capacity: usize,
    /// Why the connection must close; the first reason wins.
    kill: OnceLock<CloseReason>,
    wake: Notify,
    /// `None` for a mailbox with no connection, read with [`Mailbox::next`] (tests).
    socket: Option<TcpStream>,
}

#[derive(Default)]
struct Queue {
    /// What is left to write, oldest first; the first may be the rest of a frame partly
    /// written already.
    frames: VecDeque<Bytes>,
    bytes: usize,
    /// The first frame is partly on the wire: its rest goes before anything else.
    started: bool,
    /// The connection is gone or closing: nothing more is taken.
    closed: bool,
    /// The connection's task writes its opening frames itself: offers only queue.
    held: bool,
}

/// What became of an offered frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    /// On the socket already.
    Written,
    /// Waiting for the connection's task.
    Queued,
    /// The queue is full: the connection is told to close as a slow consumer.
    Slow,
    /// The connection is gone.
    Gone,
}

/// What a connection's writer does next (a mailbox with no connection, in tests).
#[cfg(test)]
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Send(Frame),
    Close(CloseReason),
}

/// Why [`Mailbox::flush`] stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Flushed {
    /// The connection was told to close.
    Close(CloseReason),
    /// The socket failed or the connection is gone.
    Broken,
}

/// This node's handle on one connection.
pub type Member = Arc<Mailbox>;

impl Mailbox {
    /// A mailbox with no connection: frames wait until taken with `Mailbox::next` (tests).
    #[cfg(test)]
    pub fn new(capacity: usize) -> Member {
        Mailbox::build(capacity, None, false)
    }

    /// The mailbox of a connection on `socket`, held until [`Mailbox::release`]: until
    /// then the connection's task writes its opening frames and offers only queue.
    pub fn held(capacity: usize, socket: TcpStream) -> Member {
        Mailbox::build(capacity, Some(socket), true)
    }

    fn build(capacity: usize, socket: Option<TcpStream>, held: bool) -> Member {
        Arc::new(Self {
            queue: Mutex::new(Queue {
                held,
                ..Queue::default()
            }),
            capacity,
            kill: OnceLock::new(),
            wake: Notify::new(),
            socket,
        })
    }

    /// The connection's socket.
    pub fn socket(&self) -> &TcpStream {
        self.socket.as_ref().expect("a mailbox with a connection")
    }

    /// Tells the connection to close with `reason` (unless it was told already).
    pub fn fire(&self, reason: CloseReason) {
        let _ = self.kill.set(reason);
        self.wake.notify_one();
    }

    /// Marks the connection gone and frees what waits for it.
    pub fn close(&self) {
        let mut queue = self.queue.lock().expect("mailbox lock");
        queue.closed = true;
        queue.frames = VecDeque::new();
        queue.bytes = 0;
    }

    /// Offers a frame without waiting: written at once when nothing waits before it and
    /// the socket takes it, queued otherwise. A full queue (in frames or bytes) tells the
    /// connection to close as a slow consumer.
    pub fn offer(&self, frame: &Frame) -> Offer {
        let mut queue = self.queue.lock().expect("mailbox lock");
        if queue.closed {
            return Offer::Gone;
        }
        let mut written = 0;
        if let Some(socket) = &self.socket
            && !queue.held
            && queue.frames.is_empty()
        {
            match socket.try_write(frame.bytes()) {
                Ok(n) if n == frame.len() => return Offer::Written,
                Ok(n) => {
                    queue.started = n > 0;
                    written = n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    queue.closed = true;
                    drop(queue);
                    self.wake.notify_one();
                    return Offer::Gone;
                }
            }
        } else if queue.frames.len() >= self.capacity
            || queue.bytes + frame.len() > MAX_QUEUED_BYTES
        {
            drop(queue);
            self.fire(CloseReason::SlowConsumer);
            return Offer::Slow;
        }
        // Only a frame that waits is cloned (a reference count): one written at once costs
        // the broadcast nothing but the write.
        let rest = frame.bytes().slice(written..);
        queue.bytes += rest.len();
        queue.frames.push_back(rest);
        drop(queue);
        self.wake.notify_one();
        Offer::Queued
    }

    /// Writes an opening frame while the mailbox is held, waiting for the socket as long
    /// as it takes.
    pub async fn write_held(&self, frame: &Frame) -> io::Result<()> {
        let socket = self.socket();
        let mut rest = frame.bytes().clone();
        while !rest.is_empty() {
            match socket.try_write(&rest) {
                Ok(n) => rest.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => socket.writable().await?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Ends the hold: from now on offers are written straight away (once the frames queued
    /// meanwhile are out).
    pub fn release(&self) {
        self.queue.lock().expect("mailbox lock").held = false;
        self.wake.notify_one();
    }

    /// Writes queued frames for as long as the connection lives: returns only when it is
    /// told to close or breaks. Cancel-safe: a frame leaves the queue only once written.
    pub async fn flush(&self) -> Flushed {
        loop {
            // Created before looking, so that an offer in between still wakes us.
            let woken = self.wake.notified();
            if let Some(reason) = self.kill.get() {
                return Flushed::Close(*reason);
            }
            if self.queue.lock().expect("mailbox lock").closed {
                return Flushed::Broken;
            }
            match self.write_queued() {
                Ok(true) => woken.await,
                Ok(false) => {
                    tokio::select! {
                        writable = self.socket().writable() => if writable.is_err() {
                            return Flushed::Broken;
                        },
                        _ = woken => {}
                    }
                }
                Err(_) => return Flushed::Broken,
            }
        }
    }

    /// Closes with `last` (a close frame): drops what waits except the rest of a frame
    /// already started, takes no more offers, and writes what is left, waiting for the
    /// socket as long as it takes.
    pub async fn close_with(&self, last: Frame) -> io::Result<()> {
        {
            let mut queue = self.queue.lock().expect("mailbox lock");
            let keep = usize::from(queue.started);
            queue.frames.truncate(keep);
            queue.bytes = queue.frames.iter().map(Bytes::len).sum();
            queue.closed = true;
            queue.bytes += last.len();
            queue.frames.push_back(last.bytes().clone());
        }
        while !self.write_queued()? {
            self.socket().writable().await?;
        }
        Ok(())
    }

    /// Writes what the queue holds, in vectored writes, until it is empty (`true`) or the
    /// socket takes no more (`false`).
    fn write_queued(&self) -> io::Result<bool> {
        let socket = self.socket();
        let mut queue = self.queue.lock().expect("mailbox lock");
        while !queue.frames.is_empty() {
            let mut slices = [IoSlice::new(&[]); FRAMES_PER_WRITE];
            let mut count = 0;
            for (slice, frame) in slices.iter_mut().zip(&queue.frames) {
                *slice = IoSlice::new(frame);
                count += 1;
            }
            match socket.try_write_vectored(&slices[..count]) {
                Ok(n) => queue.consume(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Waits for the next thing to do: close when told to, otherwise the oldest frame.
    /// Cancel-safe: nothing is taken from the queue until it is returned.
    #[cfg(test)]
    pub async fn next(&self) -> Next {
        loop {
            let woken = self.wake.notified();
            if let Some(reason) = self.kill.get() {
                return Next::Close(*reason);
            }
            {
                let mut queue = self.queue.lock().expect("mailbox lock");
                if let Some(frame) = queue.frames.pop_front() {
                    queue.bytes -= frame.len();
                    return Next::Send(Frame::from_wire(frame));
                }
            }
            woken.await;
        }
    }
}

impl Queue {
    /// Takes `n` written bytes off the front.
    fn consume(&mut self, mut n: usize) {
        self.bytes -= n;
        while n > 0 {
            let front = self.frames.front_mut().expect("written bytes were queued");
            if n < front.len() {
                front.advance(n);
                self.started = true;
                return;
            }
            n -= front.len();
            self.frames.pop_front();
            self.started = false;
        }
    }
}

#[cfg(test)]
mod tests;
