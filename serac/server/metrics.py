"""Request metrics in the Prometheus text format (`GET /metrics`): counts by route, method and
status, latency histograms by route, the sizes of the model's batches, who answered, and
the edits added and removed. Each app has its own registry, so two apps in one process
(tests, an app and its upstream) never mix their counts."""

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServerMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("serac_http_requests", "HTTP requests answered", ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram(
            "serac_http_request_duration_seconds", "Time to answer an HTTP request", ["route", "method"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.batch_size = Histogram("serac_query_batch_size", "Prompts per call of the model", buckets=BATCH_BUCKETS, registry=self.registry)
        self.answers = Counter("serac_answers", "Answers by who gave them (edit, base, upstream)", ["answered_by"], registry=self.registry)
        self.edits_added = Counter("serac_edits_added", "Edits acknowledged (durable)", registry=self.registry)
        self.edits_removed = Counter("serac_edits_removed", "Edits removed", registry=self.registry)
        self.edits_stored = Gauge("serac_edits_stored", "Edits the editor holds", registry=self.registry)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
