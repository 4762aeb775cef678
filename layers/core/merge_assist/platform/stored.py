"""How a record looks as a table item, shared by the store and by what reads the table's
stream: the key attributes the store adds, and numbers as boto3 reads them."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import BaseModel

from merge_assist.platform.resources import TABLE

ModelT = TypeVar("ModelT", bound=BaseModel)

# What the store adds to a model's fields to key, index, type and expire an item.
KEY_ATTRIBUTES = frozenset(
    {
        TABLE.partition_key,
        TABLE.sort_key,
        TABLE.index_partition_key,
        TABLE.index_sort_key,
        TABLE.ttl_attribute,
        "kind",
    }
)


def plain(value: Any) -> Any:
    """JSON's numbers and lists: boto3 reads every number as a Decimal (free-form fields, an
    audit entry's details, would otherwise turn them into strings) and sets as sets."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {str(name): plain(item) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, set | frozenset):
        return sorted(plain(item) for item in value)
    return value


def stored(value: Any) -> Any:
    """A JSON value as boto3 writes it: DynamoDB numbers are decimal, and boto3 refuses a
    float rather than guess its digits; each is written with the digits that read back as
    the same float."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {name: stored(item) for name, item in value.items()}
    if isinstance(value, list):
        return [stored(item) for item in value]
    return value


def item_of(model: BaseModel) -> dict[str, Any]:
    """``model``'s fields as an item's attributes (without the store's keys)."""
    attributes: dict[str, Any] = stored(model.model_dump(mode="json"))
    return attributes


def fields(item: Mapping[str, Any]) -> dict[str, Any]:
    """The record's own fields of an item."""
    return {name: plain(value) for name, value in item.items() if name not in KEY_ATTRIBUTES}


def load(model: type[ModelT], item: Mapping[str, Any]) -> ModelT:
    return model.model_validate(fields(item))
