"""`turn` and `clarifications` are integers as /openapi.json's JSON Schema has them: a value, not
a spelling, so a whole number written as a float is accepted and anything else is refused."""

import pytest
from support.serving import error


def test_the_schema_states_the_bounds_of_both(client):
    context = client.get("/openapi.json").json()["components"]["schemas"]["Context"]["properties"]
    assert context["turn"]["anyOf"] == [{"type": "integer", "minimum": 1}, {"type": "null"}]
    assert (context["clarifications"]["type"], context["clarifications"]["minimum"]) == (
        "integer",
        0,
    )


def test_an_integer_written_as_a_whole_float_is_that_integer(client):
    """JSON Schema's integer is a value: 5.0 is valid where the schema says integer."""
    as_floats = client.post(
        "/v1/classify",
        json={
            "id": "a",
            "text": "退款怎么还没到账",
            "context": {"turn": 9.0, "clarifications": 2.0},
        },
    )
    as_ints = client.post(
        "/v1/classify",
        json={"id": "a", "text": "退款怎么还没到账", "context": {"turn": 9, "clarifications": 2}},
    )
    assert (as_floats.status_code, as_ints.status_code) == (200, 200)
    assert as_floats.json()["results"] == as_ints.json()["results"]
    assert "long_conversation" in as_floats.json()["results"][0]["route"]["reasons"]


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        (
            {"turn": 9.5},
            error("invalid_type", "context.turn: Input should be a valid integer", "context.turn"),
        ),
        (
            {"turn": True},
            error("invalid_type", "context.turn: Input should be a valid integer", "context.turn"),
        ),
        (
            {"clarifications": "2"},
            error(
                "invalid_type",
                "context.clarifications: Input should be a valid integer",
                "context.clarifications",
            ),
        ),
        (
            {"turn": 0.0},
            error(
                "out_of_range",
                "context.turn: Input should be greater than or equal to 1",
                "context.turn",
            ),
        ),
    ],
)
def test_a_number_that_is_no_whole_integer_is_still_refused(client, context, expected):
    answer = client.post("/v1/classify", json={"text": "在吗", "context": context})
    assert (answer.status_code, answer.json()) == (422, expected)
