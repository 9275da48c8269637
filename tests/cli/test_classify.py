"""`kefu classify`: the server's answer for each message, from arguments or standard input."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from support.conversations import TEXTS as CHAT_TEXTS
from support.conversations import content_rules_off, unsure_bundle
from support.serving import isolated_settings
from typer.testing import CliRunner

from kefu.cli.classify import BATCH
from kefu.cli.main import app
from kefu.errors import EXIT_FAILED, EXIT_USAGE
from kefu.serving.server.app import create_app

runner = CliRunner()
TEXTS = ["我的快递三天没动了", "退款怎么还没到账！！", "转人工"]


@pytest.fixture(scope="module")
def unsure(tiny_bundle, tmp_path_factory):
    """A bundle whose intent abstains on about half of CHAT_TEXTS, and a policy that leaves
    their routes to the conversation rules, a second clarifying question the limit."""
    folder = tmp_path_factory.mktemp("unsure")
    limit = "  clarification_failed: {after_clarifications: 2}\n"
    return unsure_bundle(tiny_bundle, folder / "bundle"), content_rules_off(
        folder / "policy.yaml", limit
    )


def classify(bundle, *args: str, stdin: str | None = None):
    return runner.invoke(app, ["classify", "--bundle", str(bundle), *args], input=stdin)


def lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines()]


def test_each_message_is_answered_as_the_server_answers_it(tiny_bundle):
    done = classify(tiny_bundle, *TEXTS)
    assert done.exit_code == 0, done.output
    with TestClient(create_app(isolated_settings(tiny_bundle))) as client:
        messages = [{"id": str(number), "text": text} for number, text in enumerate(TEXTS, 1)]
        served = client.post("/v1/classify", json={"messages": messages}).json()["results"]
    assert lines(done.stdout) == served
    assert [result["id"] for result in lines(done.stdout)] == ["1", "2", "3"]


@pytest.mark.parametrize("abstained", ["none", "None"])
def test_context_options_route_as_a_later_turn_of_a_conversation(tiny_bundle, abstained):
    alone = lines(classify(tiny_bundle, TEXTS[0]).stdout)[0]["route"]
    later = classify(tiny_bundle, TEXTS[0], "--turn", "5", "--previous-intent", abstained)
    assert later.exit_code == 0, later.output
    route = lines(later.stdout)[0]["route"]
    assert "long_conversation" not in alone["reasons"]
    assert "long_conversation" in route["reasons"] and route["action"] == "human"


def test_standard_input_is_read_line_by_line_and_a_bad_line_is_answered_in_its_place(tiny_bundle):
    done = classify(tiny_bundle, "-", stdin="在吗\n\n   \n退款怎么还没到账\r\n" + "长" * 30 + "\n")
    assert done.exit_code == EXIT_FAILED
    results = lines(done.stdout)
    assert [result["id"] for result in results] == ["1", "3", "4", "5"]  # line 2 is blank
    assert results[1] == {
        "id": "3",
        "error": {
            "code": "empty_text",
            "message": "the message is empty or holds only white space, markup or invisible "
            "characters",
        },
    }
    assert results[0]["intent"]["label"] and results[2]["intent"]["label"]
    limited = classify(tiny_bundle, "--max-text-chars", "20", stdin="在吗\n" + "长" * 30 + "\n")
    assert lines(limited.stdout)[1] == {
        "id": "2",
        "error": {
            "code": "text_too_long",
            "message": "the message has 30 characters; the limit is 20 (--max-text-chars)",
        },
    }
    from_env = runner.invoke(
        app,
        ["classify", "--bundle", str(tiny_bundle), "长" * 30],
        env={"KEFU_MAX_TEXT_CHARS": "20"},
    )
    assert lines(from_env.stdout)[0]["error"]["code"] == "text_too_long"


def test_a_bad_line_in_an_earlier_batch_still_fails_the_run(tiny_bundle):
    """The exit code answers for every batch of standard input, not only the last one."""
    done = classify(tiny_bundle, stdin="   \n" + "在吗\n" * BATCH)
    assert done.exit_code == EXIT_FAILED
    results = lines(done.stdout)
    assert len(results) == BATCH + 1
    assert [result["id"] for result in results if "error" in result] == ["1"]


def test_a_line_that_is_not_utf8_is_answered_in_its_place(tiny_bundle):
    done = runner.invoke(
        app, ["classify", "--bundle", str(tiny_bundle)], input="在吗\n".encode("gbk") + b"\xff\n"
    )
    assert done.exit_code == EXIT_FAILED
    invalid = {
        "code": "invalid_text",
        "message": "the message is not UTF-8 text (convert the input to UTF-8, e.g. iconv -f gbk "
        "-t utf-8)",
    }
    assert lines(done.stdout) == [{"id": "1", "error": invalid}, {"id": "2", "error": invalid}]


@pytest.mark.parametrize(("encoding", "named"), [("utf-16", "UTF-16"), ("utf-32", "UTF-32")])
def test_standard_input_in_utf16_or_utf32_is_refused_with_the_conversion(
    tiny_bundle, encoding, named
):
    done = runner.invoke(
        app, ["classify", "--bundle", str(tiny_bundle)], input="转人工\n在吗\n".encode(encoding)
    )
    assert done.exit_code == EXIT_USAGE
    assert done.stdout == ""
    assert done.stderr == (
        f"kefu classify: standard input is {named} (it starts with its byte-order mark); "
        f"convert it to UTF-8: iconv -f {encoding} -t utf-8 FILE | kefu classify -\n"
    )


def test_a_table_for_people(tiny_bundle):
    done = classify(tiny_bundle, "--table", *TEXTS)
    assert done.exit_code == 0, done.output
    header = done.stdout.splitlines()[1]
    for column in ("message", "intent", "urgency", "emotion", "route", "reasons"):
        assert column in header
    assert "我的快递" in done.stdout and "{" not in done.stdout


def test_the_table_cuts_a_message_after_40_characters_and_names_an_error(tiny_bundle):
    done = runner.invoke(
        app,
        ["classify", "--bundle", str(tiny_bundle), "--table", "长" * 40, "短" * 41, "   "],
        env={"COLUMNS": "300"},
    )
    assert done.exit_code == EXIT_FAILED
    rows = [row.split("│")[1:3] for row in done.stdout.splitlines() if row.startswith("│")]
    assert [[cell.strip() for cell in row] for row in rows] == [
        ["1", "长" * 40],
        ["2", "短" * 39 + "…"],
        ["3", ""],
    ]
    assert "error: empty_text" in done.stdout.splitlines()[-2]


def test_the_table_shows_square_brackets_in_a_message_as_written(tiny_bundle):
    texts = ["[/b] 退款", "订单[order 123]没到", "[red]转人工[/red]"]
    done = runner.invoke(
        app, ["classify", "--bundle", str(tiny_bundle), "--table", *texts], env={"COLUMNS": "300"}
    )
    assert done.exit_code == 0, done.output
    rows = [row.split("│")[2] for row in done.stdout.splitlines() if row.startswith("│")]
    assert [cell.strip() for cell in rows] == texts


def test_the_table_marks_an_intent_that_abstained(unsure):
    bundle, _ = unsure
    results = lines(classify(bundle, *CHAT_TEXTS).stdout)
    done = runner.invoke(
        app, ["classify", "--bundle", str(bundle), "--table", *CHAT_TEXTS], env={"COLUMNS": "300"}
    )
    rows = [row.split("│")[3:6] for row in done.stdout.splitlines() if row.startswith("│")]
    abstained = [result["intent"]["abstain"] for result in results]
    assert set(abstained) == {True, False}
    assert [intent.strip().endswith(" (abstain)") for intent, _, _ in rows] == abstained
    assert [intent.split()[0] for intent, _, _ in rows] == [r["intent"]["label"] for r in results]
    assert not any("abstain" in urgency + emotion for _, urgency, emotion in rows)


def test_clarifications_at_the_policys_limit_hand_an_unsure_message_over(unsure):
    bundle, policy = unsure

    def routes(*args: str) -> list[tuple[str, list[str]]]:
        done = classify(bundle, "--policy", str(policy), *args, *CHAT_TEXTS)
        assert done.exit_code == 0, done.output
        return [(r["route"]["action"], r["route"]["reasons"]) for r in lines(done.stdout)]

    first, asked_once, asked_twice = (
        routes(),
        routes("--clarifications", "1"),
        routes("--clarifications", "2"),
    )
    unsure_rows = [row for row, (action, _) in enumerate(first) if action == "clarify"]
    assert unsure_rows and asked_once == first  # one question: under the limit of 2
    failed = ("human", ["low_confidence", "clarification_failed"])
    assert [asked_twice[row] for row in unsure_rows] == [failed] * len(unsure_rows)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["在吗", "--previous-intent", "refund_retrn"],
            "kefu classify: --previous-intent 'refund_retrn' is not an intent id of the bundle; "
            "did you mean refund_return? the ids are account_security, ",
        ),
        (["在吗", "-"], "kefu classify: '-' reads standard input and takes no other messages"),
    ],
)
def test_a_bad_argument_is_one_line_and_exit_2(tiny_bundle, args, message):
    done = classify(tiny_bundle, *args)
    assert done.exit_code == EXIT_USAGE
    assert done.stderr.startswith(message) and done.stderr.count("\n") == 1
    assert done.stdout == ""


def test_a_turn_before_the_first_is_refused_as_a_bad_option(tiny_bundle):
    done = classify(tiny_bundle, "在吗", "--turn", "0")
    assert done.exit_code == EXIT_USAGE
    assert "Invalid value for '--turn'" in done.stderr and "Traceback" not in done.output
