"""The edge's Prometheus metrics, in a registry of its own per app.

A dedicated `CollectorRegistry` per edge app keeps two apps in one process (tests, or an
edge next to other services in `wharf serve`) from colliding over the global registry. The
edge does not serve them on its public port unless asked (`metrics_path`); the admin listener
mounts `metrics_response(edge.metrics)`.

* `wharf_edge_requests_total{capability, upstream, reason, status_class}`
* `wharf_edge_request_duration_seconds{capability, upstream, reason, status_class}`: from the
  request's arrival to the last byte sent (or the client leaving).
* `wharf_edge_upstream_errors_total{upstream, kind}`: `connect-failed`, `connect-timeout`,
  `read-timeout`, `bad-response` (no response), `upstream-disconnected` (mid-body),
  `not-running` (an in-process app that is not there), `app-error` (one that raised).
* `wharf_edge_bytes_total{upstream, direction}`: request (`in`) and response (`out`) bodies.
* `wharf_edge_in_flight_requests{upstream}`, `wharf_edge_table_version`,
  `wharf_edge_sticky_store_errors_total{operation}` (the pin store failed; routing went on
  by the table).

`status_class` is `2xx`..`5xx`; a client that left before the end counts as `499` (nginx's
convention) in the log and `4xx` here. `reason` is the routing decision's
(`canary-repo`, `canary-org`, `percent`, `owner`, `sticky`, `kill-switch`), or `none` when no
capability matched.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.responses import Response

LABELS = ("capability", "upstream", "reason", "status_class")
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


class EdgeMetrics:
    def __init__(self, table_version: Callable[[], int] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "wharf_edge_requests", "Requests answered by the edge", LABELS, registry=self.registry
        )
        self.duration = Histogram(
            "wharf_edge_request_duration_seconds",
            "Time from a request's arrival to its last byte",
            LABELS,
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "wharf_edge_upstream_errors",
            "Upstream failures (no response, or a broken one)",
            ("upstream", "kind"),
            registry=self.registry,
        )
        self.bytes = Counter(
            "wharf_edge_bytes",
            "Body bytes relayed, `in` from clients and `out` to them",
            ("upstream", "direction"),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "wharf_edge_in_flight_requests",
            "Requests being relayed",
            ("upstream",),
            registry=self.registry,
        )
        self.sticky_errors = Counter(
            "wharf_edge_sticky_store_errors",
            "Failed calls to the upload pin store",
            ("operation",),
            registry=self.registry,
        )
        self.table_version = Gauge(
            "wharf_edge_table_version",
            "Version of the route table in force",
            registry=self.registry,
        )
        if table_version is not None:
            self.table_version.set_function(lambda: float(table_version()))
        # Label lookups take a lock and build tuples; one dict hit per request is cheaper.
        self._children: dict[
            tuple[str, str, str, str], tuple[Counter, Histogram, Counter, Counter]
        ] = {}
        self._flights: dict[str, Gauge] = {}

    def observe(
        self,
        *,
        capability: str,
        upstream: str,
        reason: str,
        status: int,
        seconds: float,
        bytes_in: int,
        bytes_out: int,
    ) -> None:
        key = (capability, upstream, reason, STATUS_CLASSES.get(status // 100, "5xx"))
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(*key),
                self.duration.labels(*key),
                self.bytes.labels(upstream, "in"),
                self.bytes.labels(upstream, "out"),
            )
            self._children[key] = children
        requests, duration, received, sent = children
        requests.inc()
        duration.observe(seconds)
        if bytes_in:
            received.inc(bytes_in)
        if bytes_out:
            sent.inc(bytes_out)

    def flight(self, upstream: str) -> Gauge:
        child = self._flights.get(upstream)
        if child is None:
            child = self._flights[upstream] = self.in_flight.labels(upstream)
        return child

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def metrics_response(metrics: EdgeMetrics) -> Response:
    """For the admin listener: `GET /metrics` answered with this edge's metrics."""
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
