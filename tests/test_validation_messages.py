"""`storesight_common.validation`: the one way a pydantic error is put into words."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError, model_validator

from storesight_common.validation import location, problems


class _Line(BaseModel):
    price: int


class _Order(BaseModel):
    till: str
    lines: list[_Line]

    @model_validator(mode="after")
    def _not_empty(self) -> _Order:
        if not self.lines:
            raise ValueError("an order needs a line")
        return self


def _error(data: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        _Order.model_validate(data)
    return caught.value


def test_location_is_a_dotted_path_without_the_skipped_parts() -> None:
    assert location(("body", "lines", 0, "price"), skip={"body"}) == "lines.0.price"
    assert location(()) == ""


def test_problems_name_each_field_by_its_dotted_location() -> None:
    found = problems(_error({"till": "t1", "lines": [{"price": "x"}]}))
    assert found == [
        "lines.0.price: Input should be a valid integer, unable to parse string as an integer"
    ]


def test_a_problem_of_the_whole_object_is_named_by_prefix_or_whole() -> None:
    error = _error({"till": "t1", "lines": []})
    assert problems(error, whole="order") == ["order: Value error, an order needs a line"]
    assert problems(error, prefix="orders.2.") == ["orders.2: Value error, an order needs a line"]
    assert problems(error) == [": Value error, an order needs a line"]
