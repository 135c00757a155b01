"""The MongoDB connector: the real PyMongo async client against a wire-protocol fake (tests/fakes/mongo_server.py)
that records every command, so these tests see not only answers but everything that reached the server."""

from __future__ import annotations

import datetime
import json

import bson
import httpx
import pytest
from mcp import Client

from dbmcp.config import Limits, MongoDatabase
from dbmcp.connectors.mongodb import AggregateArgs, FindArgs, MongoConnector
from dbmcp.errors import Refused, ToolError
from tests.fakes.mongo_server import READ_COMMANDS, FakeMongo
from tests.helpers import ServeProcess, write_config


@pytest.fixture(scope="module")
def fake():
    server = FakeMongo().start()
    db = server.client.app
    db.orders.insert_many([
        {"_id": bson.ObjectId(f"{i:024x}"), "n": i, "status": "paid" if i % 2 else "new",
         "at": datetime.datetime(2026, 1, 1, 12, 0, i % 60, tzinfo=datetime.UTC), "total": bson.Decimal128(f"{i}.50"),
         "tags": ["a", "b"] if i % 3 == 0 else [], "address": {"city": "Berlin", "zip": str(10000 + i)},
         "blob": bson.Binary(b"\x01\x02"), "big": bson.int64.Int64(2**40)}
        for i in range(40)
    ])
    db.orders.create_index("status")
    db.users.insert_many([{"_id": i, "name": f"user{i}"} for i in range(5)])
    db.secrets.insert_one({"token": "do-not-show"})
    server.views["app"] = {"paid_orders": {"viewOn": "orders", "pipeline": [{"$match": {"status": "paid"}}]}}
    server.validators["app.users"] = {"$jsonSchema": {"required": ["name"]}}
    yield server
    server.stop()


@pytest.fixture
async def app(fake):
    connector = MongoConnector("app", MongoDatabase(engine="mongodb", url=fake.url, database="app",
                                                    exclude=["secrets"], sample_size=25), Limits(max_rows=10))
    await connector.start()
    fake.commands.clear()
    yield connector
    await connector.close()
    assert {c.name for c in fake.commands} <= READ_COMMANDS  # nothing but reads ever reached the server
    assert not fake.touched("secrets")  # nor any mention of a hidden collection ($lookup.from, $unionWith ...)


def find(**kw) -> FindArgs:
    return FindArgs(database="app", collection=kw.pop("collection", "orders"), **kw)


async def test_find_caps_and_relaxed_extended_json(app, fake):
    answer = await app.find(find(filter={"n": {"$gte": 5}}, sort={"n": 1}))
    assert answer.data["row_count"] == 10 and answer.data["truncated"] is True
    doc = answer.data["documents"][0]
    assert doc["_id"] == {"$oid": f"{5:024x}"} and doc["n"] == 5
    assert doc["at"] == {"$date": "2026-01-01T12:00:05Z"} and doc["total"] == {"$numberDecimal": "5.50"}
    assert doc["blob"] == {"$binary": {"base64": "AQI=", "subType": "00"}} and doc["big"] == 2**40
    assert json.loads(answer.text) == answer.data
    sent = next(c.body for c in fake.commands if c.name == "find")
    assert sent["limit"] == 11 and sent["maxTimeMS"] == 30000  # max_rows + 1, and the deadline


async def test_find_limits(app):
    own = await app.find(find(limit=3))
    assert own.data["row_count"] == 3 and own.data["truncated"] is False  # the caller's limit is not truncation
    exact = await app.find(find(filter={"n": {"$lt": 10}}))
    assert exact.data["row_count"] == 10 and exact.data["truncated"] is False  # fits max_rows exactly
    above = await app.find(find(limit=500))
    assert above.data["row_count"] == 10 and above.data["truncated"] is True
    for bad in (0, -1):
        with pytest.raises(ToolError, match="limit must be at least 1"):
            await app.find(find(limit=bad))


async def test_extended_json_input(app):
    answer = await app.find(find(filter={"_id": {"$oid": f"{7:024x}"}}))
    assert [d["n"] for d in answer.data["documents"]] == [7]


async def test_max_bytes_cuts_documents(fake):
    connector = MongoConnector("app", MongoDatabase(engine="mongodb", url=fake.url, database="app"),
                               Limits(max_rows=100, max_bytes=2000))
    await connector.start()
    try:
        answer = await connector.find(find())
        assert answer.data["truncated"] is True and 0 < answer.data["row_count"] < 40
    finally:
        await connector.close()


async def test_aggregate_is_bounded(app, fake):
    answer = await app.aggregate("orders", [{"$match": {"status": "paid"}}, {"$project": {"_id": 0, "n": 1}}])
    assert answer.data["row_count"] == 10 and answer.data["truncated"] is True
    sent = next(c.body for c in fake.commands if c.name == "aggregate")
    assert sent["pipeline"][-1] == {"$limit": 11} and sent["maxTimeMS"] == 30000
    grouped = await app.aggregate("orders", [{"$group": {"_id": "$status", "n": {"$sum": 1}}}, {"$sort": {"_id": 1}}])
    assert grouped.data["documents"] == [{"_id": "new", "n": 20}, {"_id": "paid", "n": 20}]
    assert grouped.data["truncated"] is False


@pytest.mark.parametrize("pipeline", [
    [{"$out": "copy"}], [{"$merge": {"into": "copy"}}], [{"$match": {"$where": "1"}}],
    [{"$lookup": {"from": "secrets", "localField": "a", "foreignField": "b", "as": "s"}}],
    [{"$unionWith": "secrets"}], [{"$currentOp": {}}], [{"$facet": {"a": [{"$out": "x"}]}}],
    [{"$indexStats": {}}], [{"$collStats": {"latencyStats": {}}}], [{"$match": {"a": {"$ref": "x", "$id": 1, "$where": "1"}}}],
])
async def test_refused_pipelines_never_reach_the_server(app, fake, pipeline):
    with pytest.raises(Refused):
        await app.aggregate("orders", pipeline)
    assert "aggregate" not in fake.names()


async def test_hidden_and_missing_collections_read_alike(app, fake):
    messages = []
    for name in ("secrets", "no_such_collection"):
        with pytest.raises(Refused) as e:
            await app.find(find(collection=name))
        messages.append(e.value.message.replace(name, "X"))
    assert "find" not in fake.names()
    assert messages[0] == messages[1] == "collection 'X' does not exist in database 'app'"
    with pytest.raises(ToolError, match="unknown object 'secrets'"):
        await app.describe_object("secrets")


async def test_list_objects(app):
    answer = await app.list_objects(None)
    objects = {o["name"]: o for o in answer.data["objects"]}
    assert set(objects) == {"orders", "users", "paid_orders"}  # secrets excluded, system.* never listed
    assert objects["orders"] == {"name": "orders", "kind": "collection", "rows": 40}
    assert objects["paid_orders"]["kind"] == "view"
    assert [o["name"] for o in (await app.list_objects("u*")).data["objects"]] == ["users"]


async def test_describe_infers_fields_indexes_and_validator(app):
    d = (await app.describe_object("orders")).data
    fields = {f["path"]: f for f in d["fields"]}
    assert d["sampled"] == 25 and d["truncated"] is True and d["rows"] == 40
    assert fields["at"]["types"] == {"date": 25} and fields["total"]["types"] == {"decimal": 25}
    assert fields["address.city"]["present"] == 1.0 and fields["big"]["types"] == {"long": 25}
    assert set(fields["tags[]"]["types"]) == {"string"} and fields["tags[]"]["present"] < 1.0
    assert {i["name"] for i in d["indexes"]} == {"_id_", "status_1"}
    assert d["indexes"][1] == {"name": "status_1", "key": {"status": 1}, "unique": False}
    users = (await app.describe_object("users")).data
    assert users["validator"] == {"$jsonSchema": {"required": ["name"]}}
    assert users["sampled"] == 5 and users["truncated"] is False and fields["address"]["types"] == {"object": 25}


async def test_describe_view_shows_its_definition_only_when_all_it_reads_is_visible(app, fake):
    view = (await app.describe_object("paid_orders")).data
    assert view["kind"] == "view" and "indexes" not in view
    assert view["view_on"] == "orders" and view["pipeline"] == [{"$match": {"status": "paid"}}]
    fake.views["app"]["leaky"] = {"viewOn": "orders", "pipeline": [
        {"$lookup": {"from": "secrets", "localField": "a", "foreignField": "b", "as": "s"}}]}
    try:
        leaky = (await app.describe_object("leaky")).data
        assert "pipeline" not in leaky and "view_on" not in leaky and "secrets" not in json.dumps(leaky)
    finally:
        del fake.views["app"]["leaky"]


async def test_server_errors_and_unreachable_are_one_line(fake):
    down = MongoConnector("app", MongoDatabase(engine="mongodb", url="mongodb://u:hunter2@127.0.0.1:1/?"
                                               "directConnection=true", database="app"), Limits(timeout_s=1))
    await down.start()
    with pytest.raises(ToolError) as e:
        await down.ping()
    assert e.value.message == "database 'app' is unreachable"
    await down.close()
    connector = MongoConnector("app", MongoDatabase(engine="mongodb", url=fake.url, database="app"), Limits())
    await connector.start()
    fake.fail_with = {"errmsg": "something broke\nsecond line"}
    try:
        with pytest.raises(ToolError) as e:
            await connector.find(find())
        assert e.value.message.startswith("database 'app': fake: RuntimeError: something broke")
        assert "\n" not in e.value.message
    finally:
        fake.fail_with = None
        await connector.close()


async def test_through_the_server(fake, tmp_path):
    config = write_config(tmp_path / "c.yaml", f"""
        limits: {{max_rows: 3}}
        databases:
          app: {{engine: mongodb, url: "{fake.url}", database: app, exclude: [secrets]}}
        audit: {{path: "off"}}
    """)
    proc = ServeProcess(config)
    try:
        async with Client(proc.url + "/mcp") as client:
            names = [t.name for t in (await client.list_tools()).tools]
            assert {"mongo_find", "mongo_aggregate"} <= set(names) and "sql_query" not in names
            result = await client.call_tool("mongo_find", {"database": "app", "collection": "orders",
                                                           "filter": {"status": "paid"}})
            assert not result.is_error and result.structured_content["truncated"] is True
            assert len(result.structured_content["documents"]) == 3
            refused = await client.call_tool("mongo_aggregate", {"database": "app", "collection": "orders",
                                                                 "pipeline": [{"$out": "x"}]})
            assert refused.is_error and "$out is not allowed" in refused.content[0].text
            hidden = await client.call_tool("mongo_aggregate", {"database": "app", "collection": "orders", "pipeline": [
                {"$unionWith": "secrets"}]})
            assert hidden.content[0].text == "collection 'secrets' does not exist in database 'app'"
            listed = await client.call_tool("list_objects", {"database": "app"})
            assert [o["name"] for o in listed.structured_content["objects"]] == ["orders", "paid_orders", "users"]
            described = await client.call_tool("describe_object", {"database": "app", "object": "users"})
            assert {f["path"] for f in described.structured_content["fields"]} == {"_id", "name"}
            bad = await client.call_tool("mongo_find", {"database": "app", "collection": "orders", "limit": 0})
            assert bad.is_error and "limit must be at least 1" in bad.content[0].text
        async with httpx.AsyncClient() as http:
            ready = await http.get(proc.url + "/readyz", timeout=10)
        assert ready.status_code == 200 and ready.json()["databases"] == {"app": "ok"}
    finally:
        assert proc.stop() == 0
    assert {c.name for c in fake.commands} <= READ_COMMANDS and not fake.touched("secrets")


def test_args_schema_is_small():
    from dbmcp.tools import input_schema

    assert len(json.dumps(input_schema(FindArgs))) < 900 and len(json.dumps(input_schema(AggregateArgs))) < 500


async def test_documents_stream_in_batches_and_the_cursor_is_closed_at_the_cap(app, fake, monkeypatch):
    monkeypatch.setattr("dbmcp.connectors.mongodb._BATCH", 4)
    answer = await app.find(find(sort={"n": 1}))
    assert answer.data["row_count"] == 10 and answer.data["truncated"] is True
    assert [d["n"] for d in answer.data["documents"]] == list(range(10))
    assert fake.names().count("getmore") == 2 and not fake.cursors  # 4 + 4 + 3 documents fetched, then none
    fake.commands.clear()
    piped = await app.aggregate("orders", [{"$sort": {"n": -1}}])
    assert piped.data["row_count"] == 10 and piped.data["truncated"] is True and not fake.cursors
    sent = next(c.body for c in fake.commands if c.name == "aggregate")
    assert sent["cursor"] == {"batchSize": 4}


async def test_max_bytes_closes_the_cursor_early(fake, monkeypatch):
    monkeypatch.setattr("dbmcp.connectors.mongodb._BATCH", 2)
    connector = MongoConnector("app", MongoDatabase(engine="mongodb", url=fake.url, database="app"),
                               Limits(max_rows=100, max_bytes=1024))
    await connector.start()
    fake.commands.clear()
    try:
        answer = await connector.find(find())
        assert answer.data["truncated"] is True and 0 < answer.data["row_count"] < 10
        assert "killcursors" in fake.names() and not fake.cursors
        assert len(answer.text.encode()) < 1024 + 100
    finally:
        await connector.close()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"filter": {"_id": {"$oid": "not-an-object-id"}}}, "invalid filter: 'not-an-object-id' is not a valid ObjectId"),
    ({"filter": {"n": 2**70}}, "invalid query: MongoDB can only handle up to 8-byte ints"),
    ({"filter": {"at": {"$date": "yesterday"}}}, "invalid filter"),
    ({"filter": {"$where": "sleep(10000)"}}, "refused: $where is not allowed"),
    ({"projection": {"x": {"$function": {"body": "f", "args": [], "lang": "js"}}}}, "refused: $function"),
    ({"collection": "system.users"}, "collection 'system.users' does not exist in database 'app'"),
    ({"collection": "$cmd"}, "invalid collection name"),
])
async def test_bad_and_hostile_find_arguments_are_one_line(app, fake, kwargs, message):
    with pytest.raises(ToolError) as e:
        await app.find(find(**kwargs))
    assert e.value.message.startswith(message) and "\n" not in e.value.message
    assert "find" not in fake.names()


async def test_absurd_nesting_is_refused_without_reaching_the_server(app, fake):
    deep: dict = {"a": 1}
    for _ in range(5000):
        deep = {"$and": [deep]}
    with pytest.raises(ToolError, match="nested deeper than 64 levels"):
        await app.find(find(filter=deep))
    with pytest.raises(ToolError, match="nested deeper than 64 levels"):
        await app.aggregate("orders", [{"$match": deep}])
    assert not {"find", "aggregate"} & set(fake.names())


async def test_query_operators_that_look_like_extended_json(app):
    typed = await app.find(find(filter={"status": {"$type": "string"}, "n": {"$lt": 3}}, sort={"n": 1}))
    assert [d["n"] for d in typed.data["documents"]] == [0, 1, 2]
    dated = await app.find(find(filter={"at": {"$gte": {"$date": "2026-01-01T12:00:38Z"}}}, projection={"n": 1}))
    assert sorted(d["n"] for d in dated.data["documents"]) == [38, 39]


async def test_a_server_that_stops_answering_times_out(fake):
    import threading

    connector = MongoConnector("app", MongoDatabase(engine="mongodb", url=fake.url, database="app"),
                               Limits(timeout_s=0.2))
    await connector.start()
    await connector.ping()
    fake.stall = threading.Event()
    try:
        with pytest.raises(ToolError, match=r"query timed out after 0.2 s"):
            await connector.find(find())
    finally:
        fake.stall.set()
        fake.stall = None
    assert (await connector.find(find(limit=1))).data["row_count"] == 1  # and it answers again afterwards
    await connector.close()


async def test_a_user_that_may_not_list_collections(app, fake):
    fake.restricted = True
    try:
        assert (await app.find(find(limit=2))).data["row_count"] == 2
        names = {o["name"] for o in (await app.list_objects(None)).data["objects"]}
        assert names == {"orders", "users", "paid_orders"}
    finally:
        fake.restricted = False


@pytest.mark.parametrize(("auth", "warning"), [
    ({"authenticatedUsers": []}, "connects without authentication"),
    ({"authenticatedUsers": [{"user": "dbmcp", "db": "admin"}], "authenticatedUserPrivileges": [
        {"resource": {"db": "app", "collection": ""}, "actions": ["find", "insert", "remove"]}]},
     "the MongoDB user may change database 'app' (insert, remove)"),
    ({"authenticatedUsers": [{"user": "root", "db": "admin"}], "authenticatedUserPrivileges": [
        {"resource": {"anyResource": True}, "actions": ["anyAction"]}]}, "(anyAction)"),
    ({"authenticatedUsers": [{"user": "dbmcp", "db": "admin"}], "authenticatedUserPrivileges": [
        {"resource": {"db": "app", "collection": ""}, "actions": ["find", "listCollections"]},
        {"resource": {"db": "other", "collection": ""}, "actions": ["insert"]}]}, None),
])
async def test_check_warns_when_the_database_would_accept_writes(app, fake, auth, warning):
    fake.auth_info = auth
    try:
        warnings = await app.check()
    finally:
        fake.auth_info = {"authenticatedUsers": []}
    assert (warnings == []) if warning is None else (len(warnings) == 1 and warning in warnings[0])


async def test_nothing_secret_in_messages_or_logs(caplog):
    caplog.set_level("DEBUG", logger="dbmcp")
    bad = MongoConnector("app", MongoDatabase(engine="mongodb", url="mongodb://u:hunter2@[bad", database="app"),
                         Limits(timeout_s=1))
    await bad.start()
    with pytest.raises(ToolError) as e:
        await bad.ping()
    assert e.value.message == "database 'app' has an invalid MongoDB URL or options"
    srv = MongoConnector("app", MongoDatabase(engine="mongodb", url="mongodb+srv://u:hunter2@nowhere.invalid/",
                                              database="app"), Limits(timeout_s=1))
    await srv.start()  # DNS is not consulted at startup: a name that does not resolve yet is not fatal
    with pytest.raises(ToolError) as e:
        await srv.ping()
    assert e.value.message == "database 'app' is unreachable"
    await srv.close()
    assert "hunter2" not in caplog.text and "nowhere" not in caplog.text


def test_the_documented_value_mapping():
    import uuid

    from dbmcp.connectors.mongodb import _relaxed

    raw = {"nan": float("nan"), "old": datetime.datetime(1960, 1, 1), "uuid": bson.Binary.from_uuid(uuid.UUID(int=1)),
           "ts": bson.Timestamp(5, 1), "re": bson.Regex("^a", "i"), "min": bson.MinKey(), "long": bson.Int64(2**40)}
    doc = bson.decode(bson.encode(raw), codec_options=bson.CodecOptions(tz_aware=True))
    assert _relaxed(doc) == {
        "nan": {"$numberDouble": "NaN"}, "old": {"$date": {"$numberLong": "-315619200000"}},
        "uuid": {"$binary": {"base64": "AAAAAAAAAAAAAAAAAAAAAQ==", "subType": "04"}},
        "ts": {"$timestamp": {"t": 5, "i": 1}}, "re": {"$regularExpression": {"pattern": "^a", "options": "i"}},
        "min": {"$minKey": 1}, "long": 2**40,
    }


def test_dbmcp_check_reports_the_database_and_its_warnings(fake, tmp_path):
    import subprocess
    import sys

    config = write_config(tmp_path / "c.yaml", f"""
        databases:
          app: {{engine: mongodb, url: "{fake.url}", database: app}}
          down: {{engine: mongodb, url: "mongodb://dbmcp:s3cret@127.0.0.1:1/?directConnection=true", database: x,
                  limits: {{timeout_s: 1}}}}
    """)
    done = subprocess.run([sys.executable, "-m", "dbmcp.cli", "check", "--config", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "app (mongodb): ok; tools: list_objects, describe_object, mongo_find, mongo_aggregate" in done.stdout
    assert "warning: connects without authentication" in done.stdout
    assert "down (mongodb): database 'down' is unreachable" in done.stdout
    assert "s3cret" not in done.stdout + done.stderr
