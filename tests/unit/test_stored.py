"""Records as table items: floats are written as the decimals boto3 takes, and read back
as the same floats."""

from __future__ import annotations

from decimal import Decimal

from merge_assist.platform.stored import item_of, load
from merge_assist.queue.models import Batch, BatchSizing


def test_a_batchs_float_fields_are_decimals_in_its_item_and_read_back_equal() -> None:
    batch = Batch(
        id="1-main-a",
        project_id=1,
        target_branch="main",
        strategy="batch",
        merge_requests=[1, 2],
        sizing=BatchSizing(size=4, failure_rate=0.1 + 0.2, batches=3),
    )

    item = item_of(batch)

    assert item["sizing"]["failure_rate"] == Decimal("0.30000000000000004")
    assert isinstance(item["sizing"]["size"], int)
    assert load(Batch, item) == batch
