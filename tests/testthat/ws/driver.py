"""WebSocket client for valve's tests, driven one command at a time from R.

Reads one JSON command per line on stdin and answers one JSON line on stdout, so that an R test
can act between steps (kill a worker, start a request) while connections stay open. The event
loop runs in its own thread the whole time: pings are answered and closes are seen between
commands too. Every command is bounded by its own timeout (seconds, default 30).

Commands ("name" names a connection):
  connect  url, headers, cdp   open it; a refused handshake answers its HTTP status
  send     text (times: repeated) | base64 | random (n bytes, binary) | fragments (texts, one message)
  recv     the next message: text as text, binary as its length and sha256, or how it closed
  close    code: a clean close started by this side; answers the code the close ended with
  closed   wait until the peer or the network ends the connection; answers the code
  cdp      method, params, session: a Chrome DevTools Protocol call (connect with cdp: true)
"""

import asyncio
import base64
import hashlib
import json
import os
import sys
import threading

import websockets

connections = {}


class Cdp:
    """A DevTools connection: answers are matched to calls by id, events are dropped."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.pending = {}
        self.reader = asyncio.ensure_future(self.read())

    async def read(self):
        try:
            async for message in self.ws:
                reply = json.loads(message)
                future = self.pending.pop(reply.get("id"), None)
                if future is not None and not future.done():
                    future.set_result(reply)
        finally:
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("DevTools connection closed"))

    async def call(self, method, params, session):
        self.next_id += 1
        call = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            call["sessionId"] = session
        future = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        await self.ws.send(json.dumps(call))
        return await future


def digest(data):
    return {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def ended(ws):
    return {"closed": True, "code": ws.close_code, "reason": ws.close_reason}


async def connect(command):
    try:
        ws = await websockets.connect(command["url"], extra_headers=command.get("headers") or {},
                                      max_size=None, ping_interval=None, open_timeout=command["timeout"])
    except websockets.exceptions.InvalidStatusCode as e:
        return {"ok": False, "status": e.status_code}
    except (OSError, websockets.exceptions.InvalidHandshake, asyncio.TimeoutError) as e:
        return {"ok": False, "status": None, "error": repr(e)}
    connections[command["name"]] = Cdp(ws) if command.get("cdp") else ws
    return {"ok": True}


async def send(command):
    ws = connections[command["name"]]
    if "text" in command:
        data = command["text"] * command.get("times", 1)
        sent = digest(data.encode())
    elif "base64" in command:
        data = base64.b64decode(command["base64"])
        sent = digest(data)
    elif "random" in command:
        data = os.urandom(command["random"])
        sent = digest(data)
    else:
        data = command["fragments"]
        sent = digest("".join(data).encode())
    try:
        await ws.send(data)
    except websockets.exceptions.ConnectionClosed:
        return dict(ok=False, **ended(ws))
    return dict(ok=True, **sent)


async def recv(command):
    ws = connections[command["name"]]
    try:
        message = await asyncio.wait_for(ws.recv(), command["timeout"])
    except websockets.exceptions.ConnectionClosed:
        return dict(ok=False, **ended(ws))
    if isinstance(message, str):
        return dict(ok=True, type="text", text=message if len(message) <= 1000 else None,
                    **digest(message.encode()))
    return dict(ok=True, type="binary", **digest(message))


async def close(command):
    ws = connections[command["name"]]
    await ws.close(code=command.get("code", 1000))
    return dict(ok=True, **ended(ws))


async def closed(command):
    ws = connections[command["name"]]
    await asyncio.wait_for(ws.wait_closed(), command["timeout"])
    return dict(ok=True, **ended(ws))


async def cdp(command):
    reply = await asyncio.wait_for(
        connections[command["name"]].call(command["method"], command.get("params"), command.get("session")),
        command["timeout"])
    if "error" in reply:
        return {"ok": False, "error": reply["error"]}
    return {"ok": True, "result": reply.get("result", {})}


COMMANDS = {"connect": connect, "send": send, "recv": recv, "close": close, "closed": closed, "cdp": cdp}


async def run(command):
    command.setdefault("timeout", 30)
    try:
        return await COMMANDS[command["op"]](command)
    except asyncio.TimeoutError:
        return {"ok": False, "timeout": True}


def main():
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        answer = asyncio.run_coroutine_threadsafe(run(json.loads(line)), loop).result()
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
