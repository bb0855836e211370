"""A TCP proxy on 127.0.0.1 that tests put between the gateway and its AWS (moto) to
inject faults: ``freeze()`` stops forwarding in both directions (connections stay open and
silent, as when a network path or an endpoint hangs), ``thaw()`` resumes, ``refuse()``
closes every connection and turns new ones away.
"""

from __future__ import annotations

import socket
import threading

CHUNK = 65536


class FaultProxy:
    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._refusing = False
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def freeze(self) -> None:
        self._flowing.clear()

    def thaw(self) -> None:
        self._refusing = False
        self._flowing.set()

    def refuse(self) -> None:
        self._refusing = True
        with self._lock:
            for sock in list(self._open):
                _close(sock)

    def close(self) -> None:
        self._closed = True
        self._flowing.set()
        _close(self._listener)
        self.refuse()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._refusing:
                _close(client)
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        self._flowing.wait()  # a frozen path does not even connect onwards
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            _close(client)
            return
        upstream.settimeout(None)
        with self._lock:
            self._open |= {client, upstream}
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(CHUNK):
                self._flowing.wait()
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open -= {source, sink}
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass
