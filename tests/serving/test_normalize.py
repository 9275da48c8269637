"""One normalisation for every path: chat-log artefacts become the placeholders the data uses."""

import pytest

from kefu.serving.normalize import normalize_text, to_simplified
from kefu.serving.tokenization import TextEncoder


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("ｏｋ　１２３！", "ok 123!"),
        (
            "咨询订单号:[订单x] 订单金额:[金额x] 下单时间:[日期x] 帮我查下快递到哪了",
            "[订单x] 帮我查下快递到哪了",
        ),
        ("咨询订单号：<num> 商品ID：<num> 还没收到", "[订单x] 还没收到"),
        ("[订单编号:[数字x]，订单金额:，下单时间:]", "[订单x]"),
        ("[订单编号:[订单1]，订单金额:[金额2]] 退款呢", "[订单x] 退款呢"),
        ("订单号:[订单x]，发票呢", "订单号:[订单x],发票呢"),  # not a card: kept
        ("你好#E-s[数字x]#E-s[数字x]", "你好[表情][表情]"),
        ("好的#E-s12", "好的[表情]"),
        ("谢谢#E-s[微笑]", "谢谢[表情]"),  # a named code is one emoticon
        ("看看<br/>这个&nbsp;https://item.jd.com/123.html 怎么样", "看看 这个 [链接x] 怎么样"),
        ("<p>好的</p>", "好的"),
        ("链接 <url> 价格 <num> 元", "链接 [链接x] 价格 [数字x] 元"),
        ("www.jd.com/abc。好的", "[链接x]。好的"),  # a link without its scheme, ended by 。
        ("HTTPS://JD.COM/A 好", "[链接x] 好"),  # a scheme in capitals
        ("咨询订单号:123456 退款", "[订单x] 退款"),  # six digits: an order number
        ("咨询订单号:12345 退款", "咨询订单号:12345 退款"),  # five: not one, kept
        (
            "[订单1][数字2][金额3][日期4][姓名5][地址6][电话7][链接8][时间9][邮箱10]",
            "[订单x][数字x][金额x][日期x][姓名x][地址x][电话x][链接x][时间x][邮箱x]",
        ),
        ("[商品1] [数字]", "[商品1] [数字]"),  # not a numbered placeholder of the data: kept
        ("a < b 且 c > d", "a < b 且 c > d"),  # not tags
        ("  \n在吗\t\t亲  ", "在吗 亲"),
        ("气死了😡😡 什么破快递🙄", "气死了[怒火中烧][怒火中烧] 什么破快递[翻白眼]"),
        ("好的🙂", "好的[呵呵]"),
        ("谢谢👍🏻", "谢谢[拇指向上]"),  # skin tone dropped
        ("❤️❤️收到", "[红心][红心]收到"),  # with the variation selector
        ("〰好的〰", "〰好的〰"),  # a CJK symbol that is also plain text
        ("〽好的", "〽好的"),  # another
        ("显示“已签收”——可我没收到", '显示"已签收"--可我没收到'),
        ("don`t 这个｀好", "don't 这个'好"),  # a backtick the vocabulary lacks
        ("选1️⃣还是2⃣", "选[按键_1]还是[按键_2]"),  # keycaps, with and without U+FE0F
        ("😮\u200d💨累了", "[呼气]累了"),  # the zero-width joiner keeps the emoji one
        ("https://a.com/x😊", "[链接x][羞涩微笑]"),  # a link ends where its characters do
        ("他说‘好的’,9–10点―", "他说'好的',9-10点-"),
    ],
)
def test_artefacts_become_placeholders_and_the_message_stays(raw, normalized):
    assert normalize_text(raw) == normalized


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("\ufeff在\u200b吗\u00ad\u200e\u2060", "在吗"),  # BOM, zero-width, soft hyphen, marks
        ("\x00\x08好的\x7f", "好的"),  # control codes
        ("ht\u200btps://item.jd.com/1.html 这个", "[链接x] 这个"),  # hidden inside a link
        ("好的#E-s\u200b[数字x]", "好的[表情]"),  # inside an emoticon code
        ("[订单\u200b12]到哪了", "[订单x]到哪了"),  # inside a placeholder
        ("&amp;nbsp;在吗&amp;quot;", '在吗"'),  # entities a widget escaped twice
        ("&lt;br&gt;在吗&amp;lt;p&amp;gt;", "在吗"),  # tags it escaped, once or twice
        ("&#65292;好&#8203;的&#xff01;", ",好的!"),  # entities of full-width or invisible characters
        ("A&notB R&copy 3&lt5 &amp", "A&notB R&copy 3&lt5 &amp"),  # no semicolon: text
        ('<img src="https://a.com/b.png"/>看图', "看图"),  # a link inside a tag
        ("m.jd.com/product/123.html 这个", "[链接x] 这个"),  # links without a scheme
        ("t.cn/A6xYz3 看看 3.cn/1abc", "[链接x] 看看 [链接x]"),
        ("weixin://dl/business/?t=abc 打开", "[链接x] 打开"),  # other schemes
        ("(https://a.com/b),谢谢 www.jd.com.", "([链接x]),谢谢 [链接x]."),  # punctuation stays
        ("jd.com买的 service@jd.com", "jd.com买的 service@jd.com"),  # no path: a name, kept
    ],
)
def test_what_only_traffic_brings_reads_as_the_data_does_at_every_version(raw, normalized):
    """Rules no dataset text meets apply at version 1 too: no model learned these otherwise."""
    assert normalize_text(raw) == normalize_text(raw, version=1) == normalized


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("我的快遞三天沒動了，為什麼", "我的快递三天没动了,为什么"),  # traditional to simplified
        ("頭髮 發貨 麵條 乾淨", "头发 发货 面条 干净"),  # one character, two simplified ones
        ("乾隆 著名", "乾隆 著名"),  # phrases t2s keeps
        ("退欵呢 尅扣", "退款呢 克扣"),  # variants the vocabulary lacks
        ("唔該幫我搵個真人", "唔该帮我搵个真人"),  # 搵 becomes 揾, which it lacks: kept
        ("揾人 谂下", "搵人 諗下"),  # the same, typed simplified
        ("饭菜都馊了", "饭菜都变质了"),
        ("物流停在[站点1]和[站点12]", "物流停在[站点x]和[站点x]"),
        ("[订单编号:[订单x],订单金额:[金额x],下单时间:[日期x] [时间x]] 你好", "[订单x] 你好"),
        ("[订单编号:[数字x],订单金额:[金额x],下单时间:NaN-NaN-NaN NaN:NaN]", "[订单x]"),
        ("[订单编号:129623237606,订单金额:9.9元] 假的", "[订单x] 假的"),
        ("[订单编号:[订单x] 订单金额:[金额x]] 好", "[订单x] 好"),  # fields apart by a space
        ("商量好了 订单编号:[数字x] 订单金额:¥[金额x] 是的", "商量好了 [订单x] 是的"),
        ("咨询订单号:123456 订单金额:9.9元 下单时间:11月3号 没到", "[订单x] 没到"),
        ("[订单编号:[订单x],下单时间:上周五] 发票", "[订单x] 发票"),
        ("咨询订单号:[订单x] 下单时间:[日期x] [表情]好", "[订单x] [表情]好"),  # a day's time only
        ("订单编号:[数字x]", "订单编号:[数字x]"),  # a number alone is no card: kept
        ("订单号:[订单x] 金额:[金额x]", "订单号:[订单x] 金额:[金额x]"),  # nor written fields
    ],
)
def test_version_3_reads_traditional_unknown_characters_and_more_cards(raw, normalized):
    assert normalize_text(raw, version=3) == normalized


@pytest.mark.parametrize(
    "raw",
    [
        "我的快遞三天沒動了",
        "退欵呢",
        "饭菜都馊了",
        "停在[站点1]",
        "[订单编号:[订单x] 订单金额:[金额x]]",
    ],
)
def test_version_2_reads_as_its_models_learned_it(raw):
    assert normalize_text(raw, version=2) == raw


def test_a_simplified_text_is_left_as_it_is():
    text = "我的快递三天没动了,为什么还不发货 著名 乾隆 于是"
    assert to_simplified(text) == text
    assert to_simplified("於是") == "于是"


def test_the_encoder_tokenises_the_normalized_text(tiny_bundle):
    encoder = TextEncoder.from_file(tiny_bundle / "tokenizer.json", 64)
    raw = "咨询订单号:[订单x] 订单金额:[金额x] 下单时间:[日期x] 在吗#E-s[数字x]"
    assert encoder.token_ids([raw])[0] == encoder.token_ids(["[订单x] 在吗[表情]"])[0]


def test_an_earlier_version_reads_as_its_models_learned_it():
    assert normalize_text("气死了😡 “好” #E-s12", version=1) == "气死了😡 “好” [表情]"
    assert normalize_text("选1️⃣ don`t", version=1) == "选1️⃣ don`t"


def test_the_encoder_normalises_with_the_version_it_was_given(tiny_bundle):
    text = "气死了😡"
    before = TextEncoder.from_file(tiny_bundle / "tokenizer.json", 64, 1)
    after = TextEncoder.from_file(tiny_bundle / "tokenizer.json", 64, 2)
    assert before.token_ids([text])[0] == before.token_ids(["气死了😡"])[0]
    assert after.token_ids([text])[0] == after.token_ids(["气死了[怒火中烧]"])[0]
    assert before.token_ids([text])[0] != after.token_ids([text])[0]


@pytest.mark.parametrize(
    ("text", "readable"),
    [
        ("好", True),
        ("ok", True),
        (" 在吗", True),
        ("[表情]", True),
        ("#E-s12", True),  # an emoticon code: [表情]
        ("😡", True),  # its Chinese name
        ("<3", True),
        ("", False),
        ("\u3000 \t", False),
        ("\u200b\x00\ufeff\u00ad", False),  # zero-width, NUL, BOM, soft hyphen
        ("<br> <p></p>", False),  # markup only
        ("&nbsp;&nbsp;", False),  # an entity of white space
        ("🏻", False),  # a skin-tone modifier alone
        ("\ufffd", False),  # bytes that did not decode
    ],
)
def test_has_content_is_what_the_model_would_read(text, readable):
    from kefu.serving.normalize import has_content, normalize_text

    assert has_content(text) is readable
    assert bool(normalize_text(text).strip("\u200b\x00\ufeff\u00ad\ufffd")) is readable
