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
        # every mobile prefix 13x to 19x; 11 digits otherwise read as an order id
        ("打19912345678", [("phone", "19912345678")]),
        ("14712345678到了吗", [("phone", "14712345678")]),
        ("电话16612345678", [("phone", "16612345678")]),
        ("12345678901", [("order_id", "12345678901")]),
        ("1234567890到了吗", [("order_id", "1234567890")]),  # 10 digits: the shortest
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


HUMAN_REQUESTS = [
    # asks for a human agent
    "转人工",
    "人工",
    "人工客服",
    "人工服务，谢谢",
    "退款没到 转\u200b人工",  # a zero-width space pasted inside hides nothing from a reader
    "\ufeff转人工",
    "转人工客服！",
    "我要人工",
    "给我转接人工",
    "帮我转到人工",
    "我要找真人",
    "找个真人说话",
    "有没有人工客服？",
    "有人工吗",
    "有没有人工客服",  # the A-not-A question needs no 吗
    "人工客服在吗",  # asks where the person is: names one, unlike 在吗
    "人工呢",
    "真人客服在不在",
    "不要机器人，叫个人来",
    "别用自动回复敷衍我",
    "换个客服",
    "退款怎么还没到 转人工",
    "订单[订单x]三天没动了，人工",
    "帮我转到商家的人工客服",  # a third party only sets a phone request aside
    "human please",
    "Talk to an agent",  # any case
    "人工人工人工",  # the word again and again
    "人工！人工！",
    "人工？",  # a demand as typed (our written corpus reads 人工？？？ as human_agent too)
    "在不在 人工？？？",
    "物流只更新到[日期x]，人工？？？",
    "怎么联系人工客服",  # how to reach a person is asking for one
    "人工客服怎么找",
    "如何转接人工",
    "我要跟真人聊",
    "想和人工客服说话",
    "能不能真人回复一下",
    # asks for a supervisor or person in charge
    "你们领导呢",
    "你们店长在哪",
    "我要投诉到你们上级",
    "找你们领导",
    "我要找你们主管",
    "叫你们经理出来",
    "叫你们负责人来处理",
    "让你们上级给我个说法",
    "你让你们同事联系我",
    # asks for the service's phone
    "客服电话多少",
    "你们电话多少",
    "投诉电话是多少",
    "给我你们的联系方式",
    "有电话吗，打字说不清楚",
    "能打电话说吗",
    "请给我回个电话",
    # in traditional characters
    "轉人工",
    "找你們領導來",
    "投訴電話是多少",
    "唔該幫我搵個人工",
]
NOT_HUMAN_REQUESTS = [
    "我要投诉",  # a complaint, routed by its intent, not a request for a person
    "我要投诉你们，太差了",
    "你是机器人吗",  # asks whether, does not ask for
    "是人工吗",
    "你是人工？",  # asking whether, with a bare question mark
    "你好，是人工客服吗？",
    "是不是机器人回复的",
    "你是人工呢还是机器人",  # 人工呢 inside a question whether
    "是转到人工了吗",  # 转人工 inside a question whether
    "我是不是转到人工客服了？",
    "人工客服态度太差了",  # talks about agents
    "人工客服说可以退款",
    "转人工客服的态度太差了",  # 转人工 inside talk about agents
    "之前人工客服也不知道",
    "客服还没给我打电话",
    "机器人听不懂",
    "在吗",  # presence checks, like greetings
    "人呢",
    "有人吗",
    "安装要人工费吗",  # labour cost
    "人工智能音箱怎么连wifi",
    "花呗我想找人代付",
    "截图已经转发给客服了",  # 转发 forwards a file, 转账 sends money: no transfer
    "快递员电话多少",  # third parties: logistics, installation
    "给我送货员的电话",
    "可以打电话给快递员吗",
    "帮我联系一下配送站的工作人员",
    "我电话是[电话x]",
    "收货人电话填错了",
    "花呗逾期会打电话提醒吗",
    "我刚和人工客服聊过了",  # a past contact, not a wish
    "人工客服怎么说的",
    "人工客服要怎么说你们才明白",
    "怎么找到人工智能的设置",
    "你们领导说的可以退",
    "有没有人啊",
    "有没有真人试穿图",  # product photos, not a person
    "安装有没有人工费",
    "人工费呢",
    "人工客服態度太差了",  # traditional, talking about agents
    "是轉到人工了嗎",
]


@pytest.mark.parametrize("text", HUMAN_REQUESTS)
def test_asks_for_human(text):
    assert asks_for_human(text) is True


@pytest.mark.parametrize("text", NOT_HUMAN_REQUESTS)
def test_does_not_ask_for_human(text):
    assert asks_for_human(text) is False
