import pytest

from kefu.serving.entities import asks_for_human, find_entities


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("打13812345678", [("phone", "13812345678")]),
        ("电话+86 138-1234-5678", [("phone", "+86 138-1234-5678")]),
        ("手机 138 1234 5678 谢谢", [("phone", "138 1234 5678")]),
        ("单号SF1234567890123", [("tracking_number", "SF1234567890123")]),
        ("jdv012345678901到哪了", [("tracking_number", "jdv012345678901")]),
        (
            "订单号 123456789012345 金额99.5元",
            [("order_id", "123456789012345"), ("amount", "99.5元")],
        ),
        ("[订单x]退款[金额x]", [("order_id", "[订单x]"), ("amount", "[金额x]")]),
        ("[订单编号:[订单x]，订单金额:[金额x]]", [("order_id", "[订单x]"), ("amount", "[金额x]")]),
        ("¥ 12.50 和 ￥3", [("amount", "¥ 12.50"), ("amount", "￥3")]),
        ("退款120块钱", [("amount", "120块钱")]),
        ("2024-01-01 发的货", []),
        ("138123456789", [("order_id", "138123456789")]),  # 12 digits: not a phone number
        ("没有实体", []),
    ],
)
def test_entities_found_with_spans(text, expected):
    entities = find_entities(text)
    assert [(entity.kind, entity.text) for entity in entities] == expected
    for entity in entities:
        assert text[entity.start : entity.end] == entity.text


def test_entities_do_not_overlap_and_come_in_text_order():
    text = "订单123456789012，电话13812345678，¥99，SF1234567890"
    entities = find_entities(text)
    assert [entity.kind for entity in entities] == [
        "order_id",
        "phone",
        "amount",
        "tracking_number",
    ]
    spans = [(entity.start, entity.end) for entity in entities]
    assert all(
        end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False)
    )


@pytest.mark.parametrize(
    ("text", "asked"),
    [
        ("转人工", True),
        ("人工客服", True),
        ("我要找真人", True),
        ("退款怎么还没到 转人工", True),
        ("human please", True),
        ("人工客服态度太差了", False),  # talks about an agent, does not ask for one
        ("机器人听不懂", False),
        ("在吗", False),
    ],
)
def test_asks_for_human(text, asked):
    assert asks_for_human(text) is asked
