"""Text normalisation: the one function every path applies before tokenising a message.

Training, evaluation, the TF-IDF baseline, the server and batch scoring all call
`normalize_text` (through `TextEncoder`), so a chat-log artefact reads the same everywhere.
Artefacts are rewritten to the placeholders the labelled data already uses, never dropped, so
"#E-s[数字x]" still says "an emoticon" and a pasted order card still says "an order":
- NFKC: full-width letters, digits and punctuation (ｏｋ, １２３, ：) the vocabulary lacks;
- HTML: tags become spaces, entities (&nbsp; &amp;) their characters;
- emoticon codes of chat widgets (#E-s[数字x], #E-s12) become [表情];
- links (http..., www...) and the raw-log <url> become [链接x]; raw-log <num> becomes [数字x];
- numbered placeholders ([订单1], [数字3]) become their x form ([订单x], [数字x]);
- pasted order cards (咨询订单号:… 订单金额:… 下单时间:…, [订单编号:…，订单金额:…]) become [订单x];
- runs of white space become one space.
"""

from __future__ import annotations

import html
import re
import unicodedata

_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>")
_EMOTICON = re.compile(r"#E-[a-z]\d*(?:\[数字x\])?|#E-[a-z]\[[^\[\]]{0,8}\]")
_URL = re.compile(r"(?:https?://|www\.)[^\s\u4e00-\u9fff，。！？]+|<url>", re.I)
_NUMBERED = re.compile(r"\[(订单|数字|金额|日期|姓名|地址|电话|链接|时间|邮箱)\d+\]")
_ORDER_TOKEN = r"(?:\[(?:订单|数字)[^\[\]]{0,8}\]|<num>|\d{6,})"
_CARD_FIELD = r"(?:订单金额|商品ID|下单时间)\s*:\s*(?:\[[^\[\]]{0,8}\]|<num>|[\d.:/ -]{1,20})?"
_ORDER_CARD = re.compile(
    rf"咨询订单号\s*:\s*{_ORDER_TOKEN}(?:\s*{_CARD_FIELD})*"
    rf"|\[订单编号\s*:\s*{_ORDER_TOKEN}(?:\s*[,，]\s*{_CARD_FIELD})*\s*\]"
)
_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = _URL.sub("[链接x]", text).replace("<num>", "[数字x]")  # before tags: <num> is not one
    if "<" in text or "&" in text:
        text = html.unescape(_TAG.sub(" ", text))
    text = _EMOTICON.sub("[表情]", text)
    text = _NUMBERED.sub(r"[\1x]", text)
    text = _ORDER_CARD.sub("[订单x]", text)
    return _SPACE.sub(" ", text).strip()
