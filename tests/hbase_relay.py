"""A TCP relay in front of a Thrift gateway that dies like a gateway does (tests only)."""
from __future__ import annotations

import socket
import threading

from hbase_double import free_port


class GatewayProxy:
    """A TCP relay in front of a Thrift gateway (the double or a live server) that can die
    like a gateway does, and come back on the same port.

    ``die_after_rows(table, n)`` makes it drop every connection, and stop listening, at the
    first ``mutateRows`` call to ``table`` (its full name) that would take the rows forwarded
    to that table past ``n``: that call never reaches the server.
    """

    def __init__(self, target_host, target_port, port=None):
        self.target = (target_host, int(target_port))
        self.port = port or free_port()
        self.listener = None
        self.sockets = set()
        self.lock = threading.Lock()
        self.watch = None          # (pattern, limit)
        self.forwarded_rows = 0
        self.dead = threading.Event()

    def die_after_rows(self, table, n):
        name = table.encode()
        self.watch = (b"mutateRows\x00\x00\x00\x00\x0b\x00\x01" + len(name).to_bytes(4, "big") + name, n)

    def start(self):
        self.dead.clear()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(64)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()
        return self

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets |= {client, server}
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source, sink, upstream):
        tail = b""
        try:
            while True:
                data = source.recv(1 << 16)
                if not data:
                    break
                if upstream and self.watch is not None:
                    pattern, limit = self.watch
                    seen, at = tail + data, 0
                    while (at := seen.find(pattern, at)) >= 0:
                        start = at + len(pattern) + 4      # list header: type, count
                        # counted once: when its count is complete and was not in the last tail
                        if len(seen) >= start + 4 > len(tail):
                            rows = int.from_bytes(seen[start:start + 4], "big")
                            if self.forwarded_rows + rows > limit:
                                self.kill()
                                return
                            self.forwarded_rows += rows
                        at += len(pattern)
                    tail = seen[-(len(pattern) + 8):]
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def kill(self):
        """Drop every connection and stop listening (the gateway dies)."""
        self.watch = None
        self.dead.set()
        if self.listener is not None:
            try:  # wakes the thread blocked in accept() (a close alone leaves it listening)
                self.listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.listener.close()
            self.listener = None
        with self.lock:
            for s in self.sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.sockets.clear()
