//! Reading a socket into a buffer's uninitialised room: the event loop's
//! only `unsafe` code.
//!
//! With `Read::read`, the room must be initialised (zero-filled) before
//! each read: one more pass over every byte of a large message, which was
//! 15% of the loop's CPU time in the 1 MiB echo (BENCHMARKS.md, "Event
//! loop: large messages and handshakes"). `recv(2)` writes into the room
//! through socket2's safe `&mut [MaybeUninit<u8>]` interface instead, and
//! the buffer's length then grows by what it reported.

use bytes::BytesMut;
use mio::net::TcpStream;
use std::io;

/// Reads into the free room of `buf` (all of it, at least 1 byte: room is
/// made if there is none), without initialising it first. Returns
/// `(read, asked)`: a short read (`read < asked`) means the socket's
/// receive queue was emptied.
pub(super) fn read_into(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<(usize, usize)> {
    buf.reserve(1);
    let start = buf.len();
    let room = buf.spare_capacity_mut();
    let asked = room.len();
    let n = socket2::SockRef::from(stream).recv(&mut room[..asked])?;
    assert!(n <= asked, "recv reported {n} bytes for a room of {asked}");
    // SAFETY: `recv` initialised the first `n` bytes of the spare room
    // (`n <= asked <= room.len()`, checked above), which starts right after
    // the `start` initialised bytes of `buf`; so `start + n` bytes are
    // initialised and within the capacity.
    unsafe { buf.set_len(start + n) };
    Ok((n, asked))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Bytes land after what the buffer holds, the length grows by what
    /// was read, a short read is reported as such, and an empty room is
    /// made room for.
    #[test]
    fn reads_append_to_the_buffer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let stream = TcpStream::from_std(server);
        client.write_all(b"hello world").unwrap();
        let mut buf = BytesMut::with_capacity(5);
        buf.extend_from_slice(b">");
        let mut got = Vec::new();
        while buf.len() < 12 {
            let room = buf.capacity() - buf.len();
            match read_into(&stream, &mut buf) {
                Ok((n, asked)) => got.push((n, asked, room)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(&buf[..], b">hello world");
        // All the room is asked for; none: some is made.
        assert!(got.iter().all(|&(n, asked, room)| n <= asked && (asked == room || room == 0)), "{got:?}");
        // A full buffer: room is made.
        let mut full = BytesMut::from(&b"xy"[..]);
        assert_eq!(full.capacity(), full.len());
        client.write_all(b"!").unwrap();
        drop(client);
        loop {
            match read_into(&stream, &mut full) {
                Ok((0, _)) => break,
                Ok((n, asked)) => assert!(n <= asked && asked >= 1),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(&full[..], b"xy!");
    }
}
