"""The MongoDB connector: the real PyMongo async client against a wire-protocol fake (tests/fakes/mongo_server.py)
that records every command, so these tests see not only answers but everything that reached the server."""

from __future__ import annotations

import datetime
import json

import bson
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
    assert not any(c.collection == "secrets" for c in fake.commands)


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
    assert d["sampled"] == 25 and d["sample_truncated"] is True
    assert fields["at"]["types"] == {"date": 25} and fields["total"]["types"] == {"decimal": 25}
    assert fields["address.city"]["present"] == 1.0 and fields["big"]["types"] == {"long": 25}
    assert set(fields["tags[]"]["types"]) == {"string"} and fields["tags[]"]["present"] < 1.0
    assert {i["name"] for i in d["indexes"]} == {"_id_", "status_1"}
    users = (await app.describe_object("users")).data
    assert users["validator"] == {"$jsonSchema": {"required": ["name"]}}


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
    finally:
        proc.stop()


def test_args_schema_is_small():
    from dbmcp.tools import input_schema

    assert len(json.dumps(input_schema(FindArgs))) < 900 and len(json.dumps(input_schema(AggregateArgs))) < 500
