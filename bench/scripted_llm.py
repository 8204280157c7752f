"""Scripted OpenAI-compatible HTTP server used instead of a real LLM in tests and benchmarks.

Stdlib only (``ThreadingHTTPServer``) so it starts in milliseconds and adds well under 1 ms of
server-side work per request. Replies are scripted per pipeline stage (header ``X-MaaS-Stage``)
through :meth:`ScriptedLLM.push`; unscripted requests get plausible defaults so a full pipeline
can run end to end.

Run standalone: ``python -m bench.scripted_llm --port 8099``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import itertools
import json
import math
import re
import signal
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

STAGE_HEADER = "X-MaaS-Stage"
# Pseudo-stage for scripting /v1/embeddings; the any-stage queue never feeds embeddings so a
# reply pushed for "the next chat call" is not swallowed by an embedding request.
EMBEDDINGS_STAGE = "embeddings"
DEFAULT_DIMENSIONS = 384
DEFAULT_MODEL = "scripted-llm"

_STOPWORDS = frozenset(
    """
    a about above after again all also am an and any are as at be because been before being
    below between both but by can could did do does doing don down during each few for from get
    got had has have having he her here hers him his how i if in into is it its just like me
    more most my no nor not now of off on once only or other our ours out over own same she
    should so some such than that the their theirs them then there these they this those through
    to too under until up very was we were what when where which while who whom why will with
    would you your yours
    """.split()  # noqa: SIM905 - a word block is far easier to read than a 130-item literal
)
_WORD_RE = re.compile(r"[^\W_]+")
_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+")
# "[3] user (Caroline) [2023-05-08]: text" — speaker and date are optional.
_TRANSCRIPT_LINE_RE = re.compile(
    r"^\s*\[(\d+)\]\s*([A-Za-z_]+)(?:\s*\([^)]*\))?(?:\s*\[[^\]]*\])?\s*:\s?(.*)$"
)
# Memory lines of a responder's system prompt: "[M1] text" (a raw-turn baseline's), or the lines of
# the service's <memories> block that are not a date's or a speaker's header ("8 May 2023:").
_MEMORY_LINE_RE = re.compile(r"^\s*\[M\d+\]\s*(.+?)\s*$", re.MULTILINE)
_MEMORIES_BLOCK_RE = re.compile(r"<memories>\n(.*?)\n</memories>", re.DOTALL)
_STREAM_PIECE_RE = re.compile(r"\S+\s*|\s+")


@dataclass
class Reply:
    """One scripted answer. ``content=None`` on a 200 means "use the default content"."""

    content: str | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None  # raw body override (malformed JSON, custom error bodies)
    delay_s: float = 0.0
    hang: bool = False  # never answer; released (connection dropped) by stop()
    cut_stream: bool = False  # streaming only: send about half the chunks, then drop the socket
    # Non-streaming: announce the full Content-Length, send about half the body, drop the socket.
    cut_body: bool = False
    # Never finish: after the headers, one byte (or one SSE comment) every trickle_s seconds
    # until stop() or the client goes away. Per-read timeouts never fire; a deadline must.
    trickle_s: float = 0.0
    # Streaming only: send the role chunk and the first word, then wait for this event (or stop())
    # before the rest, so a test can look at what the client has while the answer is unfinished.
    hold: threading.Event | None = None


@dataclass(frozen=True)
class RecordedRequest:
    """A request as received. Header names are lower-cased."""

    stage: str | None
    path: str
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def json(self) -> dict[str, Any]:
        return self.body


Handler = Callable[[str | None, dict[str, Any]], Reply]


# --------------------------------------------------------------------------- default replies


def _text_of(content: Any) -> str:
    """Message content may be a string or a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _messages(body: dict[str, Any], role: str) -> list[str]:
    msgs = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    return [_text_of(m.get("content")) for m in msgs if m.get("role") == role]


def _last_user(body: dict[str, Any]) -> str:
    users = _messages(body, "user")
    return users[-1] if users else ""


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_SPLIT_RE.split(text.strip()) if s.strip()]


def _keywords(text: str) -> list[str]:
    words = (w.lower() for w in _WORD_RE.findall(text))
    kept = (w for w in words if len(w) >= 3 and w not in _STOPWORDS)
    return list(dict.fromkeys(kept))[:8]


def _entities(text: str) -> list[str]:
    found: list[str] = []
    for sentence in _sentences(text):
        for word in _WORD_RE.findall(sentence)[1:]:  # sentence-initial capitals are not names
            if word[0].isupper() and word.lower() not in _STOPWORDS and word not in found:
                found.append(word)
    return found


def _analyzer_content(body: dict[str, Any]) -> str:
    text = _last_user(body)
    result = {"keywords": _keywords(text), "entities": _entities(text), "time_expressions": []}
    return json.dumps(result)


def _json_transcript(text: str) -> list[tuple[int, str, str]] | None:
    """The archivist's transcript as MaaS sends it: a JSON array of {n, role, text, ...}."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, list) or not all(isinstance(m, dict) for m in data):
        return None
    return [
        (int(m.get("n", 0)), str(m.get("role", "")).lower(), str(m.get("text", ""))) for m in data
    ]


def _transcript_entries(text: str) -> list[tuple[int, str, str]]:
    """(message number, role, text) of a JSON transcript, or of "[n] role: text" lines, where
    unnumbered lines continue the previous entry."""
    parsed = _json_transcript(text)
    if parsed is not None:
        return parsed
    entries: list[tuple[int, str, str]] = []
    for line in text.splitlines():
        match = _TRANSCRIPT_LINE_RE.match(line)
        if match:
            entries.append((int(match[1]), match[2].lower(), match[3]))
        elif entries and line.strip():
            num, role, prev = entries[-1]
            entries[-1] = (num, role, f"{prev} {line.strip()}")
    return entries


def _archivist_content(body: dict[str, Any]) -> str:
    facts = [
        {"text": sentence, "importance": 0.5, "source": [num], "kind": "fact"}
        for num, role, text in _transcript_entries(_last_user(body))
        if role == "user"
        for sentence in _sentences(text)
        if not sentence.endswith("?") and len(sentence.split()) >= 3
    ]
    return json.dumps({"facts": facts})


def _memory_lines(system: str) -> list[str]:
    block = _MEMORIES_BLOCK_RE.search(system)
    if block is None:
        return list(_MEMORY_LINE_RE.findall(system))
    return [s for line in block[1].splitlines() if (s := line.strip()) and not s.endswith(":")]


def _responder_content(body: dict[str, Any]) -> str:
    memories = [m for text in _messages(body, "system") for m in _memory_lines(text)]
    if not memories:
        return "I don't know."
    return "According to what I remember: " + "; ".join(memories)


_DEFAULT_CONTENT: dict[str, Callable[[dict[str, Any]], str]] = {
    "analyzer": _analyzer_content,
    "archivist": _archivist_content,
    "responder": _responder_content,
}


def default_content(stage: str | None, body: dict[str, Any]) -> str:
    """Plausible message content for a chat request of ``stage``."""
    make = _DEFAULT_CONTENT.get(stage or "")
    return make(body) if make else "OK"


def default_reply(stage: str | None, body: dict[str, Any]) -> Reply:
    """The handler used when nothing is queued and no custom handler is set."""
    return Reply(content=default_content(stage, body))


# --------------------------------------------------------------------------- embeddings


@lru_cache(maxsize=65536)
def _word_features(word: str, dimensions: int) -> tuple[tuple[int, float], ...]:
    """Feature hashing: each word hits 4 signed dimensions, so texts sharing words are close."""
    digest = hashlib.blake2b(word.encode(), digest_size=16).digest()
    slots = (digest[i : i + 4] for i in range(0, 16, 4))
    return tuple(
        (int.from_bytes(s[:3], "little") % dimensions, -1.0 if s[3] & 1 else 1.0) for s in slots
    )


def embed_text(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """Deterministic L2-normalized vector: hashed bag of words plus small whole-text noise."""
    # The dense part makes every distinct text distinct and avoids zero vectors for empty text.
    raw = hashlib.shake_256(text.encode()).digest(2 * dimensions)
    vec = [v / 32768.0 * 0.1 for v in struct.unpack(f"<{dimensions}h", raw)]
    for word in _WORD_RE.findall(text.lower()):
        for index, sign in _word_features(word, dimensions):
            vec[index] += sign
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def _embedding_inputs(raw: Any) -> list[str]:
    """Accept str, list[str] and token-id inputs (token ids are hashed as their text form)."""
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw and all(isinstance(t, int) for t in raw):
        return [json.dumps(raw)]
    if isinstance(raw, list):
        return [x if isinstance(x, str) else json.dumps(x) for x in raw]
    return [json.dumps(raw)]


def _approx_tokens(text: str) -> int:
    return round(len(text.split()) * 1.3)


def _embeddings_payload(body: dict[str, Any]) -> dict[str, Any]:
    dimensions = int(body.get("dimensions") or DEFAULT_DIMENSIONS)
    as_base64 = body.get("encoding_format") == "base64"  # the openai SDK asks for this by default
    inputs = _embedding_inputs(body.get("input"))
    data: list[dict[str, Any]] = []
    for index, text in enumerate(inputs):
        vec = embed_text(text, dimensions)
        encoded: Any = (
            base64.b64encode(struct.pack(f"<{dimensions}f", *vec)).decode() if as_base64 else vec
        )
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(_approx_tokens(t) for t in inputs)
    return {
        "object": "list",
        "data": data,
        "model": body.get("model") or DEFAULT_MODEL,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


# --------------------------------------------------------------------------- chat payloads

_ids = itertools.count(1)


def _usage(body: dict[str, Any], content: str) -> dict[str, int]:
    msgs = body.get("messages") or []
    prompt = sum(_approx_tokens(_text_of(m.get("content"))) for m in msgs if isinstance(m, dict))
    completion = _approx_tokens(content)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _completion_payload(body: dict[str, Any], content: str) -> dict[str, Any]:
    message = {"role": "assistant", "content": content, "refusal": None}
    return {
        "id": f"chatcmpl-scripted-{next(_ids)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or DEFAULT_MODEL,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
        "usage": _usage(body, content),
        "system_fingerprint": None,
    }


def _stream_events(body: dict[str, Any], content: str) -> list[bytes]:
    """SSE ``data:`` payloads (without [DONE]): role, one chunk per word, finish, usage."""
    base = {
        "id": f"chatcmpl-scripted-{next(_ids)}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model") or DEFAULT_MODEL,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": piece}) for piece in _STREAM_PIECE_RE.findall(content)]
    chunks.append(chunk({}, "stop"))
    if (body.get("stream_options") or {}).get("include_usage"):
        chunks.append({**base, "choices": [], "usage": _usage(body, content)})
    return [json.dumps(c, separators=(",", ":")).encode() for c in chunks]


def _error_payload(reply: Reply) -> bytes:
    message = reply.content or f"scripted error {reply.status}"
    error = {"message": message, "type": "scripted_error", "param": None, "code": reply.status}
    return json.dumps({"error": error}).encode()


# --------------------------------------------------------------------------- HTTP plumbing


class _Server(ThreadingHTTPServer):
    """Tracks open connections so stop() can drop idle keep-alive and hanging ones."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], owner: ScriptedLLM) -> None:
        self.owner = owner
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            _shutdown_socket(conn)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients vanishing (timeouts, stop()) is routine here, not worth a traceback.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


def _shutdown_socket(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: benchmarks should not pay a TCP handshake per call
    disable_nagle_algorithm = True  # avoid Nagle/delayed-ACK stalls on small writes
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    @property
    def _owner(self) -> ScriptedLLM:
        return self.server.owner

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        path = self.path.split("?", 1)[0].rstrip("/")
        self._owner._record(self._stage(), path, {}, self._header_dict())
        if path.endswith("/models"):
            model = {"id": DEFAULT_MODEL, "object": "model", "created": 0, "owned_by": "maas"}
            self._send_json(200, {"object": "list", "data": [model]})
        else:
            self._send_json(404, {"error": {"message": f"no route {path}", "type": "not_found"}})

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        path = self.path.split("?", 1)[0].rstrip("/")
        body = self._read_json()
        stage = self._stage()
        self._owner._record(stage, path, body, self._header_dict())
        if path.endswith("/chat/completions"):
            self._chat(stage, body)
        elif path.endswith("/embeddings"):
            self._embeddings(body)
        else:
            self._send_json(404, {"error": {"message": f"no route {path}", "type": "not_found"}})

    # ---- request helpers

    def _stage(self) -> str | None:
        return self.headers.get(STAGE_HEADER) or None

    def _header_dict(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}

    def _read_json(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}

    # ---- routes

    def _chat(self, stage: str | None, body: dict[str, Any]) -> None:
        reply = self._owner._next_reply(stage, body)
        if not self._wait_out(reply):
            return
        if reply.body is not None or reply.status >= 400:
            self._send_override(reply)
            return
        content = reply.content if reply.content is not None else default_content(stage, body)
        if reply.trickle_s > 0:
            self._send_trickle(reply, bool(body.get("stream")))
        elif reply.cut_body and not body.get("stream"):
            self._send_cut(_completion_payload(body, content), reply.headers)
        elif body.get("stream"):
            self._send_stream(reply, _stream_events(body, content))
        else:
            self._send_json(200, _completion_payload(body, content), reply.headers)

    def _embeddings(self, body: dict[str, Any]) -> None:
        reply = self._owner._next_reply(EMBEDDINGS_STAGE, body, use_any=False, use_handler=False)
        if not self._wait_out(reply):
            return
        if reply.body is not None or reply.status >= 400:
            self._send_override(reply)
        else:
            self._send_json(200, _embeddings_payload(body), reply.headers)

    def _wait_out(self, reply: Reply) -> bool:
        """Apply delay/hang; False means stop() interrupted us and nothing must be sent."""
        stopping = self._owner._stopping
        if reply.hang:
            interrupted = stopping.wait()
        else:
            interrupted = reply.delay_s > 0 and stopping.wait(reply.delay_s)
        if interrupted:
            self.close_connection = True
        return not interrupted

    # ---- response writers

    def _send_override(self, reply: Reply) -> None:
        payload = reply.body.encode() if reply.body is not None else _error_payload(reply)
        self._send_bytes(reply.status, payload, reply.headers)

    def _send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(obj, separators=(",", ":")).encode(), headers or {})

    def _send_bytes(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        self._send_headers({"Content-Type": "application/json"}, headers)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _send_headers(self, defaults: dict[str, str], custom: dict[str, str]) -> None:
        custom_names = {k.lower() for k in custom}
        for name, value in defaults.items():
            if name.lower() not in custom_names:
                self.send_header(name, value)
        for name, value in custom.items():
            self.send_header(name, value)

    def _send_stream(self, reply: Reply, events: list[bytes]) -> None:
        # Chunked encoding (not connection-close framing) so a cut stream is a detectable error.
        self.send_response(200)
        defaults = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        self._send_headers(defaults, reply.headers)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if reply.cut_stream:
            for event in events[: max(1, len(events) // 2)]:
                self._write_chunk(b"data: " + event + b"\n\n")
            self.close_connection = True
            _shutdown_socket(self.connection)
            return
        if reply.hold is not None:
            for event in events[:2]:
                self._write_chunk(b"data: " + event + b"\n\n")
            self.wfile.flush()
            while not reply.hold.wait(0.05):
                if self._owner._stopping.is_set():
                    return
            events = events[2:]
        data = b"".join(b"data: " + e + b"\n\n" for e in events) + b"data: [DONE]\n\n"
        self._write_chunk(data)
        self.wfile.write(b"0\r\n\r\n")

    def _send_cut(self, obj: Any, headers: dict[str, str]) -> None:
        payload = json.dumps(obj, separators=(",", ":")).encode()
        self.send_response(200)
        self._send_headers({"Content-Type": "application/json"}, headers)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload[: len(payload) // 2])
        self.wfile.flush()
        self.close_connection = True
        _shutdown_socket(self.connection)

    def _send_trickle(self, reply: Reply, stream: bool) -> None:
        self.send_response(200)
        kind = "text/event-stream" if stream else "application/json"
        self._send_headers({"Content-Type": kind}, reply.headers)
        self.send_header("Content-Length", str(10**9))  # a body that is never complete
        self.end_headers()
        drip = b": keep-alive\n\n" if stream else b" "  # JSON allows leading whitespace
        self.close_connection = True
        while not self._owner._stopping.wait(reply.trickle_s):
            try:
                self.wfile.write(drip)
                self.wfile.flush()
            except OSError:  # the client gave up: that is the point
                return

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))


# --------------------------------------------------------------------------- public server


class ScriptedLLM:
    """Background-thread fake OpenAI server. Use as a context manager or start()/stop()."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._queues: dict[str | None, deque[Reply]] = {}
        self._requests: list[RecordedRequest] = []
        self._handler: Handler = default_reply
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle

    def start(self) -> ScriptedLLM:
        """Bind (synchronously, so the port is known on return) and serve in a daemon thread."""
        if self._httpd is not None:
            return self
        self._stopping = threading.Event()
        self._httpd = _Server((self._host, self._port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},  # bounds stop() latency
            name=f"scripted-llm:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, release hanging/delayed requests and drop every open connection."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.drop_connections()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> ScriptedLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("ScriptedLLM is not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}/v1"

    # ---- scripting

    def push(self, reply: Reply | str, stage: str | None = None) -> None:
        """Queue a reply (a str is shorthand for ``Reply(content=...)``) for the next request
        of ``stage``; ``None`` = any chat stage, ``"embeddings"`` = the embeddings endpoint."""
        item = Reply(content=reply) if isinstance(reply, str) else reply
        with self._lock:
            self._queues.setdefault(stage, deque()).append(item)

    def set_handler(self, fn: Handler | None) -> None:
        """Replace the default chat handler; ``None`` restores :func:`default_reply`."""
        with self._lock:
            self._handler = fn or default_reply

    def reset(self) -> None:
        """Clear queued replies and recorded requests (the handler is kept)."""
        with self._lock:
            self._queues.clear()
            self._requests.clear()

    def pending(self, stage: str | None = None) -> int:
        """Number of queued replies for exactly ``stage``."""
        with self._lock:
            return len(self._queues.get(stage, ()))

    # ---- inspection

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_for(self, stage: str | None) -> list[RecordedRequest]:
        return [r for r in self.requests if r.stage == stage]

    # ---- used by the request handler

    def _record(
        self, stage: str | None, path: str, body: dict[str, Any], headers: dict[str, str]
    ) -> None:
        with self._lock:
            self._requests.append(RecordedRequest(stage, path, body, headers))

    def _next_reply(
        self,
        stage: str | None,
        body: dict[str, Any],
        *,
        use_any: bool = True,
        use_handler: bool = True,
    ) -> Reply:
        keys: list[str | None] = [stage] if stage is not None else []
        if use_any:
            keys.append(None)
        with self._lock:
            for key in keys:
                queue = self._queues.get(key)
                if queue:
                    return queue.popleft()
            handler = self._handler
        return handler(stage, body) if use_handler else Reply()


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Scripted OpenAI-compatible server for MaaS.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    with ScriptedLLM(args.host, args.port) as server:
        print(f"READY {server.base_url}", flush=True)
        while not done.wait(0.5):  # timed wait keeps the main thread responsive to signals
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
