"""The table of field kinds (backo_restful.kinds)."""

from __future__ import annotations

import datetime as dt
import enum

import pytest
from marshmallow import fields

from backo_restful.kinds import indexable, kind_of, serializer, stored_as_json, to_storable


class Colour(enum.Enum):
    RED = "red"


@pytest.mark.parametrize(
    ("field", "column", "json"),
    [
        (fields.Dict(), "json", True),
        (fields.List(fields.Integer()), "json", True),
        (fields.Enum(Colour), "json", True),
        (fields.Raw(), "json", True),
        (fields.UUID(), "uuid", False),
        (fields.Email(), "string", False),
        (fields.Boolean(), "boolean", False),
        (fields.Integer(), "integer", False),
        (fields.Float(), "float", False),
        (fields.AwareDateTime(), "datetime", False),
        (fields.Date(), "date", False),
        (fields.Time(), "time", False),
    ],
)
def test_each_field_has_one_kind(field: fields.Field, column: str, json: bool) -> None:
    kind = kind_of(field)
    assert kind is not None and kind.column == column
    assert stored_as_json(field) is json
    assert indexable(field) is not json


def test_a_field_that_cannot_be_stored_has_no_kind() -> None:
    assert kind_of(fields.Decimal()) is None
    assert not stored_as_json(fields.Decimal())
    assert indexable(fields.Decimal())  # the storage refuses it, not the model


def test_values_are_stored_and_serialized_by_kind() -> None:
    assert to_storable(fields.Enum(Colour), Colour.RED) == "RED"
    assert to_storable(fields.Integer(), 3) == 3
    assert to_storable(fields.Dict(), None) is None
    assert serializer(fields.String()) is None
    assert serializer(fields.List(fields.Integer())) is None
    aware = serializer(fields.AwareDateTime())
    assert aware is not None
    assert aware(dt.datetime(2024, 1, 2, 3, 4, 5)) == "2024-01-02T03:04:05+00:00"
    assert aware(None) is None
