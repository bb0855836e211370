"""The HTTP server the fake peers of the tests and benches listen with."""

from http.server import ThreadingHTTPServer


class LoopbackServer(ThreadingHTTPServer):
    """A thread per connection, none holding up the exit; a listen backlog of 128.

    socketserver's backlog of 5 drops the SYN of the seventh client that connects while the
    accept loop waits for the GIL (16 bridge lines claiming at once, a webhook burst), and
    the kernel retries that SYN only after 1 s: a stall no real peer has.
    """

    daemon_threads = True
    request_queue_size = 128
