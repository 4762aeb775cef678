"""``merge-assist bench cost``: what a run of Merge Assist costs at AWS list prices.

The counts come from ``bench.usage.metered`` around a run of the queue benchmark's workload
under Merge Assist's default batch size (``merge-assist bench cost``); the prices are
``PRICES``, one table with its region and the date of the list prices. Free tiers are left
out on purpose: a figure per merged MR should not depend on what else the account runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.usage import Usage


@dataclass(frozen=True)
class Price:
    amount: float
    per: int
    unit: str

    @property
    def unit_price(self) -> float:
        return self.amount / self.per

    def describe(self) -> str:
        scaled = {1: "", 1_000: "1k ", 10_000: "10k ", 1_000_000: "1M "}.get(
            self.per, f"{self.per:,} "
        )
        # Cents always shown, and every digit the list price has: $0.20, $0.025, $0.0000166667.
        whole, _, fraction = f"{self.amount:.10f}".rstrip("0").partition(".")
        return f"${whole}.{fraction.ljust(2, '0')} per {scaled}{self.unit}"


@dataclass(frozen=True)
class PriceTable:
    """AWS on-demand list prices, first pricing tier, no free tier, x86 Lambda."""

    region: str = "us-east-1"
    # DynamoDB's on-demand prices are those after its reduction of 1 November 2024; the
    # others had not changed then. Check https://aws.amazon.com/pricing/ before quoting.
    as_of: str = "2024-11-01"
    lambda_requests: Price = Price(0.20, 1_000_000, "requests")
    lambda_compute: Price = Price(0.0000166667, 1, "GB-second")
    state_transitions: Price = Price(0.025, 1_000, "state transitions (Standard)")
    sqs_fifo: Price = Price(0.50, 1_000_000, "FIFO requests (64 KB chunks)")
    sqs_standard: Price = Price(0.40, 1_000_000, "standard requests (64 KB chunks)")
    dynamodb_reads: Price = Price(0.125, 1_000_000, "read request units (on-demand)")
    dynamodb_writes: Price = Price(0.625, 1_000_000, "write request units (on-demand)")
    http_api: Price = Price(1.00, 1_000_000, "HTTP API requests (512 KB increments)")
    websocket_messages: Price = Price(1.00, 1_000_000, "WebSocket messages (32 KB increments)")
    secrets_manager_calls: Price = Price(0.05, 10_000, "Secrets Manager API calls")
    # Fixed per month, whatever the traffic.
    secret_month: Price = Price(0.40, 1, "secret per month")
    kms_key_month: Price = Price(1.00, 1, "KMS customer managed key per month")
    alarm_month: Price = Price(0.10, 1, "CloudWatch standard alarm per month")
    custom_metric_month: Price = Price(0.30, 1, "CloudWatch custom metric per month")
    logs_ingestion: Price = Price(0.50, 1, "GB of CloudWatch Logs ingested")
    websocket_connection_minutes: Price = Price(0.25, 1_000_000, "WebSocket connection minutes")


PRICES = PriceTable()


@dataclass(frozen=True)
class CostLine:
    service: str
    quantity: float
    price: Price

    @property
    def cost(self) -> float:
        return self.quantity * self.price.unit_price


@dataclass(frozen=True)
class CostBreakdown:
    lines: tuple[CostLine, ...]

    @property
    def total(self) -> float:
        return sum(line.cost for line in self.lines)

    def per_service(self) -> dict[str, float]:
        costs: dict[str, float] = {}
        for line in self.lines:
            service = line.service.split(":")[0]
            costs[service] = costs.get(service, 0.0) + line.cost
        return costs


def cost(usage: Usage, prices: PriceTable = PRICES) -> CostBreakdown:
    return CostBreakdown(
        (
            CostLine("Lambda: requests", usage.lambda_invocations, prices.lambda_requests),
            CostLine("Lambda: compute", usage.lambda_gb_seconds, prices.lambda_compute),
            CostLine("Step Functions", usage.state_transitions, prices.state_transitions),
            CostLine("SQS: FIFO", usage.sqs_fifo_requests, prices.sqs_fifo),
            CostLine("SQS: standard", usage.sqs_standard_requests, prices.sqs_standard),
            CostLine("DynamoDB: reads", usage.dynamodb_read_units, prices.dynamodb_reads),
            CostLine("DynamoDB: writes", usage.dynamodb_write_units, prices.dynamodb_writes),
            CostLine("API Gateway: HTTP API", usage.http_api_requests, prices.http_api),
            CostLine("API Gateway: WebSocket", usage.websocket_messages, prices.websocket_messages),
            CostLine("Secrets Manager", usage.secrets_manager_calls, prices.secrets_manager_calls),
        )
    )


def _money(amount: float) -> str:
    return f"${amount:.8f}".rstrip("0").rstrip(".") if amount else "$0"


def _quantity(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3f}"


def cost_report(usage: Usage, merged_mrs: int, prices: PriceTable = PRICES) -> str:
    """A markdown section: usage times unit price per service, per run and per merged MR."""
    breakdown = cost(usage, prices)

    def per_mr(amount: float) -> str:
        return _money(amount / merged_mrs) if merged_mrs else "n/a"

    lines = [
        f"## Cost per merged MR (AWS list prices, {prices.region}, as of {prices.as_of})",
        "",
        f"Run of {usage.seconds:.1f} s: {merged_mrs} merged MRs, "
        f"{usage.lambda_invocations} Lambda invocations, {usage.executions} workflow "
        "executions.",
        "",
        "| Service | Usage | Unit price | Cost per run | Cost per merged MR |",
        "| --- | ---: | --- | ---: | ---: |",
    ]
    for line in breakdown.lines:
        lines.append(
            f"| {line.service} | {_quantity(line.quantity)} | {line.price.describe()} "
            f"| {_money(line.cost)} | {per_mr(line.cost)} |"
        )
    lines += [
        f"| **Total** | | | **{_money(breakdown.total)}** | **{per_mr(breakdown.total)}** |",
        "",
        "Fixed per month, whatever the traffic (not in the total): "
        f"Secrets Manager {prices.secret_month.describe()} ({usage.secrets} secrets at the "
        "end of the run: the bot token and one webhook secret per connected project), "
        f"{prices.kms_key_month.describe()} (the alarm topic's key), "
        f"{prices.alarm_month.describe()} and {prices.custom_metric_month.describe()} "
        "(the Operations alarms and the EMF metrics), "
        "the watcher's runs every 5 minutes (counted above only as far as the run saw "
        "them), and the SQS requests of each project queue's event source mapping polling "
        "while the queue is empty (AWS does not publish their rate).",
        "",
        "### Lambda by function",
        "",
        "| Function | Memory MB | Invocations | Billed ms | GB-s |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for function in usage.functions:
        lines.append(
            f"| {function.function} | {function.memory_mb} | {function.invocations} "
            f"| {function.billed_ms} | {function.gb_seconds:.3f} |"
        )
    lines += [
        "",
        "### Requests by caller",
        "",
        "| Service | Caller | Billed calls | Unbilled calls |",
        "| --- | --- | ---: | ---: |",
    ]
    by_caller: dict[tuple[str, str], list[int]] = {}
    for call in usage.api_calls:
        counts = by_caller.setdefault((call.service, call.caller), [0, 0])
        counts[0 if call.billed else 1] += call.calls
    for (service, caller), (billed, unbilled) in sorted(by_caller.items()):
        lines.append(f"| {service} | {caller} | {billed} | {unbilled} |")
    lines += [
        "",
        f"DynamoDB: {_quantity(usage.dynamodb_read_units)} RRU, "
        f"{_quantity(usage.dynamodb_write_units)} WRU; SQS: {usage.sqs_fifo_requests} FIFO "
        f"and {usage.sqs_standard_requests} standard requests; Step Functions: "
        f"{usage.state_transitions} state transitions.",
        "",
        f"### Prices ({prices.region}, list prices as of {prices.as_of})",
        "",
    ]
    for name in PriceTable.__dataclass_fields__:
        value = getattr(prices, name)
        if isinstance(value, Price):
            lines.append(f"- {name}: {value.describe()}")
    lines += [
        "",
        "### Not modelled",
        "",
        "- Free tiers (Lambda, SQS, DynamoDB, API Gateway's first year, ...): left out.",
        "- Idle polling: in the cloud Lambda's SQS pollers long-poll every queue all the "
        "time, and those empty receives are billed requests; the local poller's receives "
        "are counted, but its rhythm (every 0.1 s, short polls) is not the cloud's.",
        "- Lambda durations are wall times on this machine with AWS answered by moto and "
        "GitLab by the simulator; real latencies differ. Init time is only in the first "
        "call of each handler, as far as the module import takes.",
        "- Data transfer, CloudWatch Logs ingestion "
        f"({prices.logs_ingestion.describe()}) and storage, DynamoDB storage, stream "
        "reads (free for Lambda triggers), KMS requests behind Secrets Manager, Cognito, "
        "CloudFront and S3 for the dashboard, WebSocket connection minutes "
        f"({prices.websocket_connection_minutes.describe()}).",
        "- DynamoDB units for an UpdateItem or DeleteItem that returns no attributes count "
        "the key and written values only (at least 1 unit); reads of a projection count "
        "the projected size. SDK retries of one call count once.",
        "- Calls made outside Merge Assist (the benchmark watching the store, onboarding "
        "from the CLI) are counted apart as unbilled.",
    ]
    return "\n".join(lines) + "\n"
