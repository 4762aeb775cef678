"""``merge-assist bench webhook``: how fast the webhook receiver answers GitLab.

In-process, with every AWS call answered locally by moto (as the goal is stated: the
handler's own time, not the network's): p50/p99 over realistic deliveries of each event
type, each a new delivery (new ``Idempotency-Key``), so every call does the full work:
parse, authenticate, idempotency record, SQS send. Then the cold import time of the
handler module in fresh interpreters, which is what a Lambda cold start adds."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import DeleteMessageBatchRequestEntryTypeDef

GOAL_P99_MS = 50.0
GOAL_IMPORT_MS = 300.0
PROJECT_ID = 4242
TOKEN = "bench-secret-token-0123456789"  # noqa: S105 - the benchmark's own fake hook


@dataclass(frozen=True)
class WebhookBenchmark:
    samples: dict[str, list[float]]
    imports: list[float]

    def rows(self) -> list[tuple[str, int, float, float, float]]:
        everything = [s for values in self.samples.values() for s in values]
        rows = [
            (kind, len(values), _percentile(values, 50), _percentile(values, 99), max(values))
            for kind, values in self.samples.items()
        ]
        rows.append(
            (
                "all",
                len(everything),
                _percentile(everything, 50),
                _percentile(everything, 99),
                max(everything),
            )
        )
        return rows

    def report(self) -> str:
        lines = [
            "Webhook receiver, in-process, AWS answered by moto",
            f"{'event':<16}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}",
        ]
        for kind, count, p50, p99, worst in self.rows():
            lines.append(f"{kind:<16}{count:>6}{p50:>10.2f}{p99:>10.2f}{worst:>10.2f}")
        overall_p99 = self.rows()[-1][3]
        import_median = statistics.median(self.imports)
        import_min = min(self.imports)
        lines += [
            f"p99 goal {GOAL_P99_MS:.0f} ms: {'met' if overall_p99 <= GOAL_P99_MS else 'MISSED'}"
            f" ({overall_p99:.2f} ms)",
            f"cold import of functions.webhook.app ({len(self.imports)} fresh interpreters): "
            f"median {import_median:.0f} ms, min {import_min:.0f} ms, "
            f"max {max(self.imports):.0f} ms; goal "
            f"{GOAL_IMPORT_MS:.0f} ms: {'met' if import_median <= GOAL_IMPORT_MS else 'MISSED'}",
        ]
        return "\n".join(lines)


def _percentile(values: list[float], percent: int) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(percent / 100 * len(ordered)) - 1))
    return ordered[index]


def _deliveries() -> dict[str, Callable[[], dict[str, Any]]]:
    from bench import gitlab_payloads as payloads

    return {
        "merge_request": lambda: payloads.merge_request_event(PROJECT_ID, 12, labels=("api",)),
        "note": lambda: payloads.note_event(PROJECT_ID, 12, "Looks good, merging."),
        "pipeline": lambda: payloads.pipeline_event(PROJECT_ID, 9001, iid=12),
        "push": lambda: payloads.push_event(PROJECT_ID),
        "job": lambda: payloads.job_event(PROJECT_ID, 77),
    }


def measure_handler(iterations: int) -> dict[str, list[float]]:
    import boto3
    from moto import mock_aws

    os.environ.update(
        {
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "MERGE_ASSIST_RESOURCE_PREFIX": "bench",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            # The metrics are still serialized and written, as in Lambda, but not over the
            # figures this prints.
            "MERGE_ASSIST_METRICS_FILE": os.devnull,
        }
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    from bench import gitlab_payloads as payloads
    from functions.webhook import app as webhook
    from functions.webhook.enqueue import clear_enqueue_cache
    from functions.webhook.projects import clear_config_cache
    from local.http_front import http_api_event
    from local.provision import create_table
    from local.runtime import make_context
    from merge_assist.adapters.aws import clear_caches, store_from_settings
    from merge_assist.platform.config import ProjectConfig
    from merge_assist.platform.resources import ResourceNames

    names = ResourceNames("bench")
    samples: dict[str, list[float]] = {kind: [] for kind in _deliveries()}
    with mock_aws():
        clear_caches()
        clear_config_cache()
        clear_enqueue_cache()
        session = boto3.Session()
        create_table(session, names)
        store_from_settings().save_project(ProjectConfig(project_id=PROJECT_ID))
        session.client("secretsmanager").create_secret(
            Name=names.webhook_secret(PROJECT_ID), SecretString=json.dumps({"secret_token": TOKEN})
        )
        sqs = session.client("sqs")
        queue_url = sqs.create_queue(
            QueueName=names.project_queue(PROJECT_ID), Attributes={"FifoQueue": "true"}
        )["QueueUrl"]
        context = make_context("bench-webhook", 1024, 10)
        bodies = {kind: make() for kind, make in _deliveries().items()}
        warmup = 20
        for round_number in range(warmup + iterations):
            for kind, body in bodies.items():
                headers = payloads.delivery_headers(
                    body["object_kind"], TOKEN, idempotency_key=str(uuid.uuid4())
                )
                event = http_api_event(
                    method="POST",
                    raw_path="/webhook/gitlab",
                    raw_query="",
                    headers=headers,
                    body=json.dumps(body).encode(),
                    route_key="POST /webhook/gitlab",
                    path_parameters={},
                    source_ip="203.0.113.1",
                    claims=None,
                    account_id="123456789012",
                )
                started = time.perf_counter()
                response = webhook.handler(event, context)
                elapsed = (time.perf_counter() - started) * 1000
                if response["statusCode"] != 202:
                    raise RuntimeError(f"{kind}: {response['statusCode']} {response['body']}")
                if round_number >= warmup:
                    samples[kind].append(elapsed)
            # moto scans every stored message on each send; SQS does not. Draining the
            # queue between rounds (untimed) keeps the figure about the handler.
            received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
            entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
                {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                for index, message in enumerate(received.get("Messages", []))
            ]
            if entries:
                sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
        clear_caches()
    return samples


def measure_cold_import(runs: int) -> list[float]:
    script = (
        "import time; started = time.perf_counter(); import functions.webhook.app; "
        "print((time.perf_counter() - started) * 1000)"
    )
    timings: list[float] = []
    for _ in range(runs):
        output = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout
        timings.append(float(output.strip().splitlines()[-1]))
    return timings


def run(iterations: int = 200, import_runs: int = 9) -> WebhookBenchmark:
    return WebhookBenchmark(
        samples=measure_handler(iterations), imports=measure_cold_import(import_runs)
    )
