"""A tiny fake of the Anthropic Messages API on 127.0.0.1, scripted by keywords in the user's
prompt, so the real Claude Code CLI runs tools, asks permissions, ends turns and hits its usage
limit offline (from the research for issue 16; a test helper, not cockpit code).

    python tests/fakeapi.py LOG    # prints the port it listens on, then serves until killed

Keywords: ``TASK`` (Bash ``touch created_by_agent.txt``, then Bash ``cat missing_file.txt``, then
text), ``QUESTION`` (AskUserQuestion), ``LIMIT`` (a 429 usage limit, reset in 3 h), ``DENYME``
(Bash ``touch denied_file.txt``). Every response's usage is ``input 100+n, output 40+n, cache
creation 50, cache read 2000+n`` for request n."""

from __future__ import annotations

import itertools
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LOG = open(sys.argv[1], "a") if len(sys.argv) > 1 else open("/dev/null", "w")
counter = itertools.count(1)

QUESTION = {"questions": [{"question": "Which colour should the button be?", "header": "Colour",
                           "options": [{"label": "Red", "description": "warm"},
                                       {"label": "Blue", "description": "cool"}],
                           "multiSelect": False}]}


def turn(body: dict[str, Any]) -> tuple[str, int]:
    """The prompt of the current turn, and how many tool results came back in it."""
    prompt, results = "", 0
    for message in body.get("messages", []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            prompt, results = content, 0
            continue
        for block in content:
            if block.get("type") == "tool_result":
                results += 1
            elif block.get("type") == "text":
                text = block.get("text", "").lstrip()
                if not text.startswith(("<system-reminder>", "[Request interrupted")):
                    prompt, results = block.get("text", ""), 0
    return prompt, results


def plan(body: dict[str, Any]) -> tuple[Any, ...]:
    prompt, k = turn(body)
    if "summar" in prompt.lower() and "TASK" not in prompt and "QUESTION" not in prompt:
        return ("text", "<summary>The user asked for a task; files were created.</summary>")
    if "LIMIT" in prompt:
        reset = str(int(time.time()) + 3 * 3600)
        return ("error", 429, {"type": "error", "error": {"type": "rate_limit_error", "message":
                "This request would exceed your account's rate limit. Please try again later."}},
                {"anthropic-ratelimit-unified-status": "rejected", "anthropic-ratelimit-unified-reset": reset,
                 "anthropic-ratelimit-unified-5h-status": "rejected", "anthropic-ratelimit-unified-5h-reset": reset,
                 "anthropic-ratelimit-unified-representative-claim": "five_hour", "retry-after": "10800"})
    if "QUESTION" in prompt:
        return ("tool", "AskUserQuestion", QUESTION, "I need to ask you something.") if k == 0 else \
            ("text", "Thanks for answering.")
    if "DENYME" in prompt:
        return ("tool", "Bash", {"command": "touch denied_file.txt", "description": "Create another file"}, "") \
            if k == 0 else ("text", "Understood, not creating it.")
    if "TASK" in prompt:
        if k == 0:
            return ("tool", "Bash", {"command": "touch created_by_agent.txt", "description": "Create a marker file"},
                    "I'll create a file first.")
        if k == 1:
            return ("tool", "Bash", {"command": "cat missing_file.txt", "description": "Read a missing file"}, "")
        return ("text", "All done: created the file; the listing failed as expected.")
    return ("text", "OK.")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, obj: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._send(404, {"type": "error", "error": {"type": "not_found_error", "message": "nope"}})

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length", 0)))
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        rid = next(counter)
        if "count_tokens" in self.path:
            return self._send(200, {"input_tokens": 1234})
        if not self.path.startswith("/v1/messages"):
            return self._send(404, {"type": "error", "error": {"type": "not_found_error", "message": "nope"}})
        step = plan(body)
        LOG.write(json.dumps({"t": time.time(), "rid": rid, "plan": step[:2]}) + "\n")
        LOG.flush()
        if step[0] == "error":
            return self._send(step[1], step[2], dict(step[3], **{"request-id": f"req_fake_{rid:04d}"}))
        self._stream(rid, body.get("model", "claude-x"), step)
        return None

    def _stream(self, rid: int, model: str, step: tuple[Any, ...]) -> None:
        usage = {"input_tokens": 100 + rid, "output_tokens": 1, "cache_creation_input_tokens": 50,
                 "cache_read_input_tokens": 2000 + rid}
        blocks: list[dict[str, Any]] = []
        if step[0] == "text":
            blocks.append({"type": "text", "text": step[1]})
        else:
            if step[3]:
                blocks.append({"type": "text", "text": step[3]})
            blocks.append({"type": "tool_use", "id": f"toolu_fake_{rid:04d}", "name": step[1], "input": step[2]})
        stop = "end_turn" if step[0] == "text" else "tool_use"
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("request-id", f"req_fake_{rid:04d}")
        self.send_header("anthropic-ratelimit-unified-status", "allowed")
        self.send_header("connection", "close")
        self.end_headers()

        def event(name: str, obj: dict[str, Any]) -> None:
            self.wfile.write(f"event: {name}\ndata: {json.dumps(obj)}\n\n".encode())
            self.wfile.flush()

        event("message_start", {"type": "message_start", "message": {
            "id": f"msg_fake_{rid:04d}", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": usage}})
        for i, block in enumerate(blocks):
            if block["type"] == "text":
                event("content_block_start", {"type": "content_block_start", "index": i,
                                              "content_block": {"type": "text", "text": ""}})
                for word in block["text"].split(" "):
                    event("content_block_delta", {"type": "content_block_delta", "index": i,
                                                  "delta": {"type": "text_delta", "text": word + " "}})
            else:
                event("content_block_start", {"type": "content_block_start", "index": i, "content_block": {
                    "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}})
                event("content_block_delta", {"type": "content_block_delta", "index": i, "delta": {
                    "type": "input_json_delta", "partial_json": json.dumps(block["input"])}})
            event("content_block_stop", {"type": "content_block_stop", "index": i})
        event("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                "usage": {"output_tokens": 40 + rid}})
        event("message_stop", {"type": "message_stop"})
        self.close_connection = True


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
