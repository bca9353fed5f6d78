"""A lean HTTP/1.1 server: the API server's front door.

Why not aiohttp's server: a GET of one object from the watch cache costs the API server ~65 us of
its own work, and aiohttp's request/response machinery added ~80 us more around it (request and
response objects with many lazily computed properties, a payload stream per request, header
validation, access-log hooks). Measured on this 2-core machine with ``wrk`` and one core for the
server, a bare ``asyncio.Protocol`` answering the same bytes over the same TLS did ~27,000
requests/s where aiohttp's low-level server did ~8,700. This module is the small part of HTTP the
API server needs, written for that path:

- parsing is ``httptools`` (llhttp, in C, as uvicorn uses); a request is handed to the handler
  only when its head and its whole body have arrived. No request body is streamed: the API's
  largest is 3 MiB, and a body over ``max_body`` (by ``Content-Length`` up front, or as a chunked
  body grows) is answered 413 at once; the rest is read and dropped until the client stops
  sending (at most ``LINGER_SECONDS``), then the connection is closed;
- one task per request; requests on a keep-alive connection are answered in order (pipelined
  requests wait their turn, and reading pauses while too many are queued);
- a :class:`~kybernetes.httpserver.messages.Response` is written with one ``transport.write`` (head and body together, when the
  body is small); a :class:`~kybernetes.httpserver.messages.StreamResponse` writes a chunked body as the handler produces it,
  with write-side flow control (``pause_writing``/``resume_writing`` of the protocol);
- when the client goes away, a handler that is streaming (its response prepared, e.g. a watch)
  is cancelled; any other handler runs to its end, so a write the client gave up on is never
  left half done by a cancellation;
- ``Upgrade`` requests (exec, attach, port-forward) reach the handler like any other; it may take
  the connection over with :meth:`~kybernetes.httpserver.messages.Request.upgrade`, which sends the ``101`` and returns the raw
  byte stream (the bytes that arrived behind the request head included); otherwise the
  connection is closed after its response;
- ``Expect: 100-continue`` is answered before the body is read; ``HEAD`` gets the head only;
- a connection with no request in progress and no input for ``IDLE_TIMEOUT`` (90 s) is closed; a
  request head not whole ``READ_HEADER_TIMEOUT`` (32 s) after it began (slowloris) closes its
  connection unanswered, and one over ``MAX_HEADER_BYTES`` (1 MiB) is answered Go's 431
  (kube-apiserver's ``IdleTimeout``, ``ReadHeaderTimeout`` and ``MaxHeaderBytes``).

It is not a general web framework: no routing, no cookies, no multipart, no compression. The
handler is one coroutine that returns a response; errors it raises become a bare 500 here (the
API server turns its own errors into ``Status`` objects before that).

The package: the requests, responses and upgraded streams a handler sees are in
:mod:`kybernetes.httpserver.messages`; the connection protocol (parsing, pipelining, flow control,
limits, timeouts) and the listening server in :mod:`kybernetes.httpserver.protocol`.
"""
