"""Project configurations read from the table, for a function that needs nothing else of it:
the webhook receiver answers GitLab within its cold start, so it does not import the whole
store (and with it every context's models)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from merge_assist.platform.config import ProjectConfig
from merge_assist.platform.errors import NotFoundError
from merge_assist.platform.resources import TABLE
from merge_assist.platform.stored import load

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

CONFIG_SK = "CONFIG"


def project_pk(project_id: int) -> str:
    return f"PROJECT#{project_id}"


def read_project(table: Table, project_id: int) -> ProjectConfig:
    """Raises ``NotFoundError`` for a project that is not connected."""
    item = table.get_item(
        Key={TABLE.partition_key: project_pk(project_id), TABLE.sort_key: CONFIG_SK},
        ConsistentRead=True,
    ).get("Item")
    if item is None:
        raise NotFoundError(f"project {project_id} is not connected")
    return load(ProjectConfig, item)


class DynamoDBProjectConfigs:
    def __init__(self, table: Table) -> None:
        self._table = table

    def get_project(self, project_id: int) -> ProjectConfig:
        return read_project(self._table, project_id)
