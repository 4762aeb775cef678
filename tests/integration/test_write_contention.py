"""Writers racing on one MR record all get through: each lost compare-and-set reads again
after a jittered pause, so sixteen writers at once spread out instead of colliding in step."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from merge_assist.adapters.dynamodb_store import DynamoDBStore
from merge_assist.queue.models import MergeRequestState
from merge_assist.queue.recording import update_merge_request
from tests.conftest import MakeMR

WRITERS = 16
WRITES_EACH = 3


def test_sixteen_writers_on_one_record_all_get_through(
    store: DynamoDBStore, make_mr: MakeMR
) -> None:
    store.save_merge_request(make_mr(7, labels=[]))

    def write(writer: int) -> int:
        stuck = 0
        for n in range(WRITES_EACH):
            label = f"w{writer}-{n}"

            def add(state: MergeRequestState, label: str = label) -> MergeRequestState:
                return state.model_copy(update={"labels": [*state.labels, label]})

            if update_merge_request(store, 1, 7, add) is not None:
                stuck += 1
        return stuck

    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        stuck = sum(pool.map(write, range(WRITERS)))

    final = store.get_merge_request(1, 7)
    assert stuck == WRITERS * WRITES_EACH
    assert len(final.labels) == WRITERS * WRITES_EACH == len(set(final.labels))
    assert final.version == 1 + WRITERS * WRITES_EACH
