#!/usr/bin/env python3
# Usage: bench/hardening/no_read.py PORT SERVER_PID (a server echoing on 127.0.0.1:PORT).
# Sends up to 50 MiB of echo requests (16 KiB binary frames, masked) on one
# WebSocket connection without ever reading; prints the server's VmRSS
# before and after, and how much the client could write.
import socket, struct, sys, time
port, pid = int(sys.argv[1]), int(sys.argv[2])
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
head = b""
while not head.endswith(b"\r\n\r\n"):
    head += s.recv(1)
assert head.startswith(b"HTTP/1.1 101"), head
time.sleep(0.2)
before = rss()
payload = bytes(16384)  # zero mask key: the masked payload is the payload
frame = bytes([0x82, 0x80 | 126]) + struct.pack(">H", len(payload)) + b"\0\0\0\0" + payload
data = frame * (50 * 64)
s.setblocking(False)
sent, last = 0, time.time()
while sent < len(data) and time.time() - last < 2.0:
    try:
        n = s.send(data[sent:sent + (1 << 20)])
        sent += n
        last = time.time()
    except BlockingIOError:
        time.sleep(0.01)
time.sleep(1.0)
after = rss()
print(f"wrote {sent/2**20:.1f} MiB of {len(data)/2**20:.1f}; server VmRSS {before/1024:.1f} -> {after/1024:.1f} MiB (+{(after-before)/1024:.1f} MiB)")
s.close()
