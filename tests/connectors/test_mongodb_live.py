"""The MongoDB connector against a real server, when DBMCP_TEST_MONGODB_URL points at one (docker-compose.yml
starts one); skipped otherwise. The test writes its own collection in database `dbmcp_live_test` first, with its
own client, and drops it afterwards."""

from __future__ import annotations

import datetime
import os

import pytest

URL = os.environ.get("DBMCP_TEST_MONGODB_URL")
pytestmark = pytest.mark.skipif(not URL, reason="set DBMCP_TEST_MONGODB_URL to run against a real MongoDB")


@pytest.fixture
async def live():
    from pymongo import AsyncMongoClient

    from dbmcp.config import Limits, MongoDatabase
    from dbmcp.connectors.mongodb import MongoConnector

    admin = AsyncMongoClient(URL, tz_aware=True)
    db = admin["dbmcp_live_test"]
    await db.items.drop()
    at = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    await db.items.insert_many([{"n": i, "kind": "even" if i % 2 == 0 else "odd", "at": at} for i in range(50)])
    connector = MongoConnector("live", MongoDatabase(engine="mongodb", url=URL, database="dbmcp_live_test"),
                               Limits(max_rows=10))
    await connector.start()
    yield connector
    await connector.close()
    await db.items.drop()
    await admin.close()


async def test_live_find_aggregate_describe(live):
    from dbmcp.connectors.mongodb import FindArgs
    from dbmcp.errors import Refused

    await live.ping()
    found = await live.find(FindArgs(database="live", collection="items", sort={"n": 1}))
    assert found.data["row_count"] == 10 and found.data["truncated"] is True
    first = found.data["documents"][0]
    assert first["at"] == {"$date": "2026-01-01T00:00:00Z"} and set(first["_id"]) == {"$oid"}
    own = await live.find(FindArgs(database="live", collection="items", filter={"kind": "odd"}, limit=3))
    assert own.data["row_count"] == 3 and own.data["truncated"] is False
    objects = (await live.list_objects("it*")).data["objects"]
    assert objects == [{"name": "items", "kind": "collection", "rows": 50}]
    grouped = await live.aggregate("items", [{"$group": {"_id": "$kind", "c": {"$sum": 1}}}, {"$sort": {"_id": 1}}])
    assert grouped.data["documents"] == [{"_id": "even", "c": 25}, {"_id": "odd", "c": 25}]
    described = (await live.describe_object("items")).data
    assert {f["path"]: f["types"] for f in described["fields"]}["at"] == {"date": 50}
    assert described["indexes"][0]["name"] == "_id_"
    with pytest.raises(Refused):
        await live.aggregate("items", [{"$out": "copy"}])
