"""Rule-based extraction: order ids, tracking numbers, phone numbers, amounts, and whether a
message asks for a human. Rules, not the model: the entities are formats, not meanings, and
routing must honour "转人工" even when the intent head names the concrete request (the taxonomy
labels "退款没到 转人工" refund_return, not human_agent).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kefu.serving.normalize import to_simplified, without_invisible

# Order of patterns matters: earlier kinds claim their span first.
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("phone", re.compile(r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d[- ]?\d{4}[- ]?\d{4}(?!\d)")),
    (
        "tracking_number",
        re.compile(
            r"(?<![A-Za-z0-9])(?:SF|YT|JD|JDV|ZTO|YD|STO|EMS|DPK|JT)[A-Z]?\d{9,16}(?!\d)", re.I
        ),
    ),
    ("order_id", re.compile(r"\[订单[^\[\]\s]{0,8}\]|(?<![\d.])\d{10,20}(?![\d.])")),
    (
        "amount",
        re.compile(
            r"\[金额[^\[\]\s]{0,8}\]|[¥￥]\s?\d+(?:\.\d{1,2})?"
            r"|(?<![\d.])\d+(?:\.\d{1,2})?\s?(?:元|块钱|块|rmb|RMB)"
        ),
    ),
)

# --- Does the customer ask for a person? -------------------------------------------------
# Measured on real messages: datasets/real/asks_human.tsv, tests/serving/test_asks_for_human.py.
# A request for a person is honoured even inside another request ("退款没到 转人工"); asking
# whether the agent is a person (是人工吗), talking about agents (人工客服态度太差), complaining
# (我要投诉) and presence checks (人呢, 有人吗, like 在吗) are not requests.
_PERSON = r"(?:人工|仁工|人公|真人|活人)"
_NOT_A_SERVICE = (
    r"(?!费|智能|成本|合成|审核|安装|上门|降|授粉|种植|养殖)"  # 人工费 is a labour cost
)
_SERVICE = r"(?:客服|服务|坐席|座席)"
_ROLE = r"(?:领导|主管|经理|负责人|上级|老板|店长|掌柜|管事的|专员|同事|工作人员)"
_THEIR = r"(?:你们公司|你们店|你们家|你们上面的|你们的|你们|你的|贵司|上面的)?的?"
_ASKS = re.compile(
    "|".join(
        [
            # 转人工, 转接人工, 转到真人; 帮我转[数字x]号客服, 转客服
            rf"转(?:接)?(?:到|给)?{_PERSON}",
            r"转(?![告账发移运寄身换化达交])(?:接|一下|下)?(?:到|给)?[^，。！？,.!?\s]{0,8}?客服",
            # 我要人工, 找个真人, 请人工处理, 换个客服; 揾个人工 (Cantonese)
            rf"(?:要|找|揾|搵|叫|请|喊|换|接|需要|给我|来个|来一个)(?:个|一个|一位)?{_PERSON}{_NOT_A_SERVICE}",
            rf"换(?:个|一个|一位)(?:人|客服|{_PERSON})",
            # 人工 / 人工客服 as a message of its own or a phrase of its own; 人工？？？ too, a
            # demand as customers type it (是人工？, asking whether, is taken out first)
            rf"(?:^|[\s，,。.!！?？~～、])(?:{_PERSON}|人类){_SERVICE}?(?:吧|呢|啊|呀|哦)?(?:[\s，,。.!！?？~～]|$)",
            rf"^\W*(?:蚂蚁)?(?:借呗|花呗|支付宝|京东|淘宝|天猫|网商贷)?的?(?:{_PERSON})?客服(?:电话)?\W*$",
            # 人工人工人工, 人工！人工！: nothing but the word, said again and again
            rf"^\W*(?:{_PERSON}{_SERVICE}?\W*){{2,}}$",
            # 怎么联系人工客服, 人工客服怎么找, 如何转接人工
            rf"(?:怎么|怎样|如何|哪里|在哪|去哪)(?:才能|能|可以|才可以)?(?:联系|联络|找到?|接通|转接)"
            rf"(?:到|上)?(?:你们的?)?{_PERSON}{_NOT_A_SERVICE}",
            rf"{_PERSON}{_SERVICE}?(?:要|该|应该)?(?:怎么|怎样|如何|在哪里?|去哪)"
            r"(?:才能|能|可以)?(?:联系|联络|找|转|接通)",
            # 我要跟真人聊, 想和人工客服说话 (a wish, not 刚和人工聊过)
            rf"(?:要|想|需要|能不能|可不可以|可以|让我)(?:跟|和|与|同)(?:一个|个|一位)?{_PERSON}"
            rf"{_SERVICE}?(?:说话|说|聊天|聊|沟通|对话|交流|讲|谈)",
            # 你们领导呢, 你们店长在哪, 叫你们经理出来; 投诉到你们上级
            rf"你们(?:的)?{_ROLE}(?:呢|在哪|在吗|在不在|出来|过来)",
            rf"(?:投诉|反映|反馈|上报)(?:到|给)(?:你们的?)?{_ROLE}",
            # 能不能真人回复, 麻烦人工处理一下
            rf"(?:能不能|可不可以|能否|请|麻烦)(?:让|换)?{_PERSON}(?:来)?"
            r"(?:回复|回答|处理|接待|说话|跟我|和我|接)",
            # 有人工客服吗; 有没有人工客服 (the A-not-A form is a question without 吗)
            rf"有(?:没有)?{_PERSON}{_SERVICE}?(?:吗|么|嘛|没|不|\?|？)",
            rf"有没有(?:{_PERSON}{_SERVICE}|(?:人工|仁工|人公){_NOT_A_SERVICE})",
            # 人工客服在吗, 人工呢: where is the person (unlike 在吗 or 人呢, it names one)
            rf"{_PERSON}{_NOT_A_SERVICE}{_SERVICE}?(?:在吗|在么|在嘛|在不在|在没|在哪|呢)",
            # 不要机器人, 能不能让人说话
            r"(?:不要|别用|不想跟|不想和|不跟|不和|不用)(?:跟|和|用)?(?:你们的)?(?:机器|智能客服|自动回复)",
            r"让(?:真)?人(?:来)?(?:说话|回复|回答|处理|跟我|和我|接)",
            # 找你们领导, 叫你们负责人, 让你们同事联系我; 联系一下负责这几单的专员
            rf"(?:找|叫|请|喊|让|要|换|转|见|联系|要求|给我)(?:一下|一个|个)?{_THEIR}{_ROLE}",
            r"(?:联系|找|叫|让|请)[^。！？!?]{0,6}负责[^。！？!?]{0,15}的(?:专员|人)",
            # 客服电话, 投诉电话, 你们电话多少, 有电话么, 能打电话说吗, 借呗联系方式
            r"(?:客服|人工|投诉|售后|服务|官方|平台|你们|贵司|公司|工作人员)的?"
            r"(?:电话|热线|联系方式|联系电话|号码)",
            r"(?:借呗|花呗|支付宝|京东|淘宝|天猫|网商贷)的?(?:客服电话|客服热线|联系方式|热线|联系电话)",
            r"(?<![我他她的员傅人])(?:电话|热线)(?:号码)?(?:是)?多少",
            rf"有(?:没有)?(?:{_SERVICE}|人工)?电话(?:吗|么|嘛|没|不|\?|？)",
            r"(?:能|可以|可不可以|能不能|想|我要|方便)(?:给你们|跟你们|和你们)?打(?:个)?电话"
            r"(?:给[^，。！？!?]{0,6})?",
            r"(?:请|麻烦|能不能|可不可以|可以|让|叫)[^，。！？!?]{0,6}"
            r"(?:给我(?:回|打)(?:个|一个)?电话|(?:回|打)(?:个|一个)?电话给我)",
            r"\bhuman\b|real person|talk to (?:a |an )?(?:agent|person)",
        ]
    ),
    re.I,
)
# Spans that are not a request, removed before `_ASKS` looks: "是人工吗" asks whether the agent
# is a person; "人工客服态度太差" talks about one.
_NOT_ASKING = re.compile(
    "|".join(
        [
            rf"(?:是不是|是否|是)(?:到了?|转到了?)?(?:{_PERSON}|机器人?|智能客服|自动回复){_SERVICE}?了?"
            r"(?:吗|么|嘛|呢|啊|\?|？)",
            rf"{_PERSON}{_SERVICE}?的?(?:态度|服务态度|太|很|不行|都|也|说(?!话)|讲(?!话)|告诉|回复了|答复|骂|不理|效率|水平|专业)",
        ]
    )
)
# A phone or contact request about a third party (courier, installer, seller) is a topic
# request (logistics, installation), not a request for the service's people.
_THIRD_PARTY = re.compile(r"快递|师傅|商家|卖家|站点|配送|送货|司机|他|她|银行|厂家")
_PHONE_WORDS = ("电话", "号码", "联系方式")


def asks_for_human(text: str) -> bool:
    """True when the customer asks to be handed to a person (an agent, a supervisor, the
    service's phone line), even inside another request. Read in simplified characters: 轉人工
    and 找你們領導 ask as 转人工 and 找你们领导 do."""
    text = _NOT_ASKING.sub(" ", to_simplified(without_invisible(text)))
    for match in _ASKS.finditer(text):
        span = match.group(0)
        if any(word in span for word in _PHONE_WORDS) and _THIRD_PARTY.search(span):
            continue
        return True
    return False


@dataclass(frozen=True)
class Entity:
    kind: str
    text: str
    start: int
    end: int  # exclusive, in characters of the original text


def find_entities(text: str) -> list[Entity]:
    """Non-overlapping entities in text order."""
    found: list[Entity] = []
    taken: list[tuple[int, int]] = []
    for kind, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            start, end = match.span()
            if any(start < t_end and t_start < end for t_start, t_end in taken):
                continue
            taken.append((start, end))
            found.append(Entity(kind, match.group(0), start, end))
    return sorted(found, key=lambda entity: entity.start)
