"""A MongoDB wire-protocol server for tests: the real PyMongo client talks to it over TCP on loopback.

It speaks the handshake (OP_QUERY isMaster/hello) and OP_MSG, answers the read commands dbmcp uses from an
in-memory mongomock database (with real cursors: batchSize, getMore, killCursors), and records every command it
receives, so tests can assert that no write and no read of a collection outside the allowlist ever reached the
server. Switches: `fail_with` (command errors), `restricted` (no listCollections privilege), `stall` (a server
that stops answering), `auth_info` (what connectionStatus reports).
"""

from __future__ import annotations

import datetime
import socketserver
import struct
import threading
from dataclasses import dataclass, field
from typing import Any

import bson
import mongomock

OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013
READ_COMMANDS = {"hello", "ismaster", "ping", "buildinfo", "endsessions", "killcursors", "listcollections",
                 "find", "aggregate", "count", "listindexes", "getmore", "connectionstatus"}


class CommandError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class Recorded:
    name: str
    database: str
    collection: str | None
    body: dict


@dataclass
class FakeMongo:
    client: mongomock.MongoClient = field(default_factory=mongomock.MongoClient)
    views: dict[str, dict[str, dict]] = field(default_factory=dict)  # database -> view name -> {viewOn, pipeline}
    validators: dict[str, dict] = field(default_factory=dict)  # "db.coll" -> validator
    commands: list[Recorded] = field(default_factory=list)
    fail_with: dict | None = None  # answer every find/aggregate with this error document
    auth_info: dict = field(default_factory=lambda: {"authenticatedUsers": [], "authenticatedUserRoles": []})
    restricted: bool = False  # listCollections needs authorizedCollections, as for a user with find on a few only
    stall: threading.Event | None = None  # when set: find/aggregate wait for it (a server that stopped answering)
    cursors: dict[int, list] = field(default_factory=dict)  # open cursor id -> documents not yet sent
    _next_cursor: int = 1000

    def start(self) -> FakeMongo:
        fake = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                fake._serve(self.request)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"mongodb://127.0.0.1:{self.port}/?directConnection=true"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def names(self) -> list[str]:
        return [c.name for c in self.commands]

    def touched(self, collection: str) -> bool:
        """Whether any command named `collection` anywhere (its target, a $lookup.from, a $unionWith...)."""
        def mentions(value: Any) -> bool:
            if isinstance(value, dict):
                return any(mentions(v) for v in value.values())
            if isinstance(value, list):
                return any(mentions(v) for v in value)
            return value == collection

        return any(mentions(c.body) for c in self.commands)

    # ---- wire protocol ------------------------------------------------------------------------------
    def _serve(self, sock: Any) -> None:
        while True:
            header = _recv(sock, 16)
            if header is None:
                return
            length, request_id, _, opcode = struct.unpack("<iiii", header)
            payload = _recv(sock, length - 16)
            if payload is None:
                return
            if opcode == OP_QUERY:
                body = _op_query_body(payload)
                reply = self._command(body, body.get("$db", "admin"))
                doc = bson.encode(reply)
                sock.sendall(_header(36 + len(doc), request_id, OP_REPLY)
                             + struct.pack("<iqii", 8, 0, 0, 1) + doc)
            elif opcode == OP_MSG:
                body = _op_msg_body(payload)
                reply = self._command(body, body.get("$db", "admin"))
                doc = bson.encode(reply)
                sock.sendall(_header(21 + len(doc), request_id, OP_MSG) + struct.pack("<I", 0) + b"\x00" + doc)
            else:
                return

    def _command(self, body: dict, database: str) -> dict:
        name = next(iter(body))
        value = body[name]
        collection = value if isinstance(value, str) else body.get("collection")
        self.commands.append(Recorded(name.lower(), database, collection, body))
        try:
            if self.stall is not None and name.lower() in ("find", "aggregate"):
                self.stall.wait(30)
            return {**self._answer(name.lower(), value, body, database), "ok": 1.0}
        except CommandError as e:
            return {"ok": 0.0, "errmsg": str(e), "code": e.code}
        except Exception as e:  # noqa: BLE001 - a fake: any failure becomes a command error
            return {"ok": 0.0, "errmsg": f"fake: {type(e).__name__}: {e}", "code": 2}

    def _answer(self, name: str, value: Any, body: dict, database: str) -> dict:
        db = self.client[database]
        if name in ("hello", "ismaster"):
            return {"ismaster": True, "isWritablePrimary": True, "helloOk": True, "maxWireVersion": 21,
                    "minWireVersion": 0, "maxBsonObjectSize": 16 * 1024 * 1024, "maxMessageSizeBytes": 48_000_000,
                    "maxWriteBatchSize": 100_000, "localTime": datetime.datetime.now(datetime.UTC),
                    "logicalSessionTimeoutMinutes": 30, "connectionId": 1, "readOnly": False}
        if name in ("ping", "endsessions"):
            return {}
        if name == "buildinfo":
            return {"version": "7.0.0", "versionArray": [7, 0, 0, 0]}
        if name == "connectionstatus":
            return {"authInfo": self.auth_info}
        if name == "listcollections":
            if self.restricted and not (body.get("authorizedCollections") and body.get("nameOnly")):
                raise CommandError(13, "not authorized on app to execute command { listCollections: 1 }")
            batch = [{"name": n, "type": "collection", "info": {"readOnly": False},
                      "options": {"validator": self.validators[f"{database}.{n}"]}
                      if f"{database}.{n}" in self.validators else {}}
                     for n in db.list_collection_names()]
            batch += [{"name": n, "type": "view", "options": v, "info": {"readOnly": True}}
                      for n, v in self.views.get(database, {}).items()]
            return _cursor(f"{database}.$cmd.listCollections", batch)
        if name == "find":
            if self.fail_with:
                raise RuntimeError(self.fail_with["errmsg"])
            cursor = db[value].find(body.get("filter", {}), body.get("projection"))
            if body.get("sort"):
                cursor = cursor.sort(list(body["sort"].items()))
            if body.get("skip"):
                cursor = cursor.skip(body["skip"])
            if body.get("limit"):
                cursor = cursor.limit(abs(body["limit"]))
            return self._open(f"{database}.{value}", list(cursor), body.get("batchSize"))
        if name == "aggregate":
            if self.fail_with:
                raise RuntimeError(self.fail_with["errmsg"])
            documents = list(db[value].aggregate(body.get("pipeline", [])))
            return self._open(f"{database}.{value}", documents, (body.get("cursor") or {}).get("batchSize"))
        if name == "getmore":
            remaining = self.cursors.pop(int(value), None)
            if remaining is None:
                raise CommandError(43, f"cursor id {value} not found")
            return self._open(f"{database}.{body['collection']}", remaining, body.get("batchSize"), int(value),
                              "nextBatch")
        if name == "killcursors":
            killed = [c for c in body.get("cursors", []) if self.cursors.pop(int(c), None) is not None]
            return {"cursorsKilled": killed, "cursorsNotFound": [], "cursorsAlive": [], "cursorsUnknown": []}
        if name == "count":
            return {"n": db[value].count_documents(body.get("query") or {})}
        if name == "listindexes":
            info = db[value].index_information()
            return _cursor(f"{database}.{value}", [{"v": 2, "name": n, "key": dict(i["key"]),
                                                     **({"unique": True} if i.get("unique") else {})}
                                                    for n, i in info.items()])
        raise ValueError(f"no such command: {name}")


    def _open(self, ns: str, documents: list, batch_size: int | None, cursor_id: int = 0,
              key: str = "firstBatch") -> dict:
        """Answer with one batch; keep the rest behind a cursor id for getMore (as a real server does)."""
        size = batch_size or 101
        batch, rest = documents[:size], documents[size:]
        if rest:
            if not cursor_id:
                cursor_id, self._next_cursor = self._next_cursor, self._next_cursor + 1
            self.cursors[cursor_id] = rest
        else:
            cursor_id = 0
        return {"cursor": {"id": bson.int64.Int64(cursor_id), "ns": ns, key: batch}}


def _cursor(ns: str, batch: list) -> dict:
    return {"cursor": {"id": bson.int64.Int64(0), "ns": ns, "firstBatch": batch}}


def _header(length: int, request_id: int, opcode: int) -> bytes:
    return struct.pack("<iiii", length, request_id + 1_000_000, request_id, opcode)


def _recv(sock: Any, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _op_query_body(payload: bytes) -> dict:
    end = payload.index(b"\x00", 4)
    offset = end + 1 + 8
    size = struct.unpack_from("<i", payload, offset)[0]
    return bson.decode(payload[offset:offset + size])


def _op_msg_body(payload: bytes) -> dict:
    flags = struct.unpack_from("<I", payload, 0)[0]
    end = len(payload) - (4 if flags & 1 else 0)
    offset, body, sequences = 4, {}, {}
    while offset < end:
        kind = payload[offset]
        offset += 1
        size = struct.unpack_from("<i", payload, offset)[0]
        if kind == 0:
            body = bson.decode(payload[offset:offset + size])
        else:
            section = payload[offset + 4:offset + size]
            ident_end = section.index(b"\x00")
            docs, pos = [], ident_end + 1
            while pos < len(section):
                doc_size = struct.unpack_from("<i", section, pos)[0]
                docs.append(bson.decode(section[pos:pos + doc_size]))
                pos += doc_size
            sequences[section[:ident_end].decode()] = docs
        offset += size
    body.update(sequences)
    return body
