"""A MongoDB wire-protocol server for tests: the real PyMongo client talks to it over TCP on loopback.

It speaks the handshake (OP_QUERY isMaster/hello) and OP_MSG, answers the read commands dbmcp uses from an
in-memory mongomock database, and records every command it receives, so tests can assert that no write and
no read of a collection outside the allowlist ever reached the server.
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
                 "find", "aggregate", "count", "listindexes", "getmore"}


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
        collection = value if isinstance(value, str) else None
        self.commands.append(Recorded(name.lower(), database, collection, body))
        try:
            return {**self._answer(name.lower(), value, body, database), "ok": 1.0}
        except Exception as e:  # noqa: BLE001 - a fake: any failure becomes a command error
            return {"ok": 0.0, "errmsg": f"fake: {type(e).__name__}: {e}", "code": 2}

    def _answer(self, name: str, value: Any, body: dict, database: str) -> dict:
        db = self.client[database]
        if name in ("hello", "ismaster"):
            return {"ismaster": True, "isWritablePrimary": True, "helloOk": True, "maxWireVersion": 21,
                    "minWireVersion": 0, "maxBsonObjectSize": 16 * 1024 * 1024, "maxMessageSizeBytes": 48_000_000,
                    "maxWriteBatchSize": 100_000, "localTime": datetime.datetime.now(datetime.UTC),
                    "logicalSessionTimeoutMinutes": 30, "connectionId": 1, "readOnly": False}
        if name in ("ping", "endsessions", "killcursors"):
            return {}
        if name == "buildinfo":
            return {"version": "7.0.0", "versionArray": [7, 0, 0, 0]}
        if name == "listcollections":
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
            return _cursor(f"{database}.{value}", list(cursor))
        if name == "aggregate":
            if self.fail_with:
                raise RuntimeError(self.fail_with["errmsg"])
            return _cursor(f"{database}.{value}", list(db[value].aggregate(body.get("pipeline", []))))
        if name == "count":
            return {"n": db[value].count_documents(body.get("query") or {})}
        if name == "listindexes":
            info = db[value].index_information()
            return _cursor(f"{database}.{value}", [{"v": 2, "name": n, "key": dict(i["key"]),
                                                     **({"unique": True} if i.get("unique") else {})}
                                                    for n, i in info.items()])
        raise ValueError(f"no such command: {name}")


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
