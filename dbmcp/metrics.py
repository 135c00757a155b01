"""Prometheus metrics: calls by outcome, refusals, errors, and a latency histogram per tool and database."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("tool", "database")
        self.calls = Counter("dbmcp_tool_calls", "Tool calls by outcome (ok, refused, error)",
                             (*labels, "outcome"), registry=self.registry)
        self.refusals = Counter("dbmcp_tool_refusals", "Tool calls refused by policy", labels, registry=self.registry)
        self.errors = Counter("dbmcp_tool_errors", "Tool calls that failed", labels, registry=self.registry)
        self.latency = Histogram("dbmcp_tool_call_seconds", "Tool call latency", labels, buckets=_BUCKETS,
                                 registry=self.registry)

    def observe(self, tool: str, database: str, outcome: str, seconds: float) -> None:
        self.calls.labels(tool, database, outcome).inc()
        if outcome == "refused":
            self.refusals.labels(tool, database).inc()
        elif outcome == "error":
            self.errors.labels(tool, database).inc()
        self.latency.labels(tool, database).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
