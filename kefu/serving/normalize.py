"""Text normalisation: the one function every path applies before tokenising a message.

Training, evaluation, the TF-IDF baseline, the server and batch scoring all call
`normalize_text` (through `TextEncoder`), so a chat-log artefact reads the same everywhere.
Artefacts are rewritten to the placeholders the labelled data already uses, never dropped (only
invisible characters are), so "#E-s[数字x]" still says "an emoticon" and a pasted order card still
says "an order":
- NFKC: full-width letters, digits and punctuation (ｏｋ, １２３, ：) the vocabulary lacks;
- invisible characters (zero-width space, BOM, soft hyphen, direction marks, control codes) go:
  the tokenizer drops them anyway, but inside a link or a code they hide it from the rules below;
- HTML: tags become spaces, entities (&nbsp; &amp;) their characters, also entities a widget
  escaped twice (&amp;nbsp;) and tags it escaped (&lt;br&gt;);
- emoticon codes of chat widgets (#E-s[数字x], #E-s12) become [表情];
- emoji become their Chinese names in brackets (😡 [怒火中烧], 🙄 [翻白眼], 🙂 [呵呵], 1️⃣ [按键_1]):
  the vocabulary lacks most of them, and an unknown token reads the same for an angry face as for
  a smile; curly quotes, dashes and the backtick (“ ” ‘ ’ — – `), also missing from it, become
  " ' -;
- links (http..., any scheme://..., www..., a host with a path such as m.jd.com/... or t.cn/...)
  and the raw-log <url> become [链接x], punctuation after a link staying; raw-log <num> becomes
  [数字x];
- numbered placeholders ([订单1], [数字3]) become their x form ([订单x], [数字x]);
- pasted order cards (咨询订单号:… 订单金额:… 下单时间:…, [订单编号:…，订单金额:…]) become [订单x];
- runs of white space become one space.

Version 3 adds, for what real traffic holds that the vocabulary reads badly:
- traditional characters become simplified (OpenCC's t2s, phrase-aware: 乾隆 stays, 乾淨 becomes
  干净): a model trained on simplified text read 繁體 messages 3-8 points less accurately;
- characters bert-base-chinese's vocabulary (every supported base's) lacks become one it has:
  variants (欵 款, 尅 克), the simplified forms of Cantonese characters whose traditional form
  it has (揾 搵, 谂 諗, 𠮶 嗰...), and 馊 (spoiled food) its meaning, 变质;
- order cards in the forms the version-1 rule misses (a field of two parts, `[日期x] [时间x]`,
  `NaN-NaN-NaN NaN:NaN`, `¥[金额x]`; a card of 订单编号 and 订单金额 without brackets) become
  [订单x], and the station placeholder [站点N] becomes [站点x].

A model learns the text as this function gave it, so the rules are versioned: a bundle records
the version it was trained with (`text_normalization` in its manifest) and is served with that
version. Version 1 is every rule of the first list but the emoji, quote and dash one, which version 2
adds; version 3 adds the second list.
A rule that changes no text of kefu's datasets (`datasets/**/*.jsonl`: it meets only what traffic
brings, such as invisible characters, links without http, twice-escaped HTML, keycaps and
backticks) joins the versions it belongs to without a new one: no model learned those texts
any other way.
"""

from __future__ import annotations

import functools
import html
import re
import unicodedata

import emoji
import opencc

NORMALIZATION_VERSION = 3  # raise it with every change to what a training text becomes

_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>")
# a bracketed code first: #E-s[微笑] is one emoticon, not #E-s and a word
_EMOTICON = re.compile(r"#E-[a-z]\[[^\[\]]{0,8}\]|#E-[a-z]\d*")
# a link: a scheme (https://, weixin://), www. or a host with a path (m.jd.com/..., 3.cn/...),
# then the characters a URL holds (RFC 3986 less quotes and square brackets, which close an HTML
# attribute or open a placeholder); punctuation at its end belongs to the sentence
_LINK_HOST = r"(?<![A-Za-z0-9@.-])(?:[A-Za-z0-9-]+\.)+(?:com|cn|net|org|cc|me|tv|top|vip|hk)(?=/)"
_URL = re.compile(
    rf"(?:[a-z][a-z0-9+.-]*://|www\.|{_LINK_HOST})"
    r"[A-Za-z0-9\-._~:/?#@!$&()*+,;=%]*[A-Za-z0-9\-_~/#@$&*+=%]|<url>",
    re.I,
)
_NUMBERED = re.compile(r"\[(订单|数字|金额|日期|姓名|地址|电话|链接|时间|邮箱)\d+\]")
_ORDER_TOKEN = r"(?:\[(?:订单|数字)[^\[\]]{0,8}\]|<num>|\d{6,})"
_CARD_FIELD = r"(?:订单金额|商品ID|下单时间)\s*:\s*(?:\[[^\[\]]{0,8}\]|<num>|[\d.:/ -]{1,20})?"
_ORDER_CARD = re.compile(
    rf"咨询订单号\s*:\s*{_ORDER_TOKEN}(?:\s*{_CARD_FIELD})*"
    rf"|\[订单编号\s*:\s*{_ORDER_TOKEN}(?:\s*[,，]\s*{_CARD_FIELD})*\s*\]"
)
_SPACE = re.compile(r"\s+")
_ENTITY = re.compile(r"&(?:[A-Za-z][A-Za-z0-9]{1,31}|#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6});")
# version 3's cards: a field may hold two parts, a ¥, a 元 or a day (11月3号, 上周五); fields
# may be apart by spaces alone; a card without brackets may start at 订单编号
_CARD_VALUE = (
    r"(?:(?:\d{1,2}月)?\d{1,2}[日号]|[上这本]周[一二三四五六日天]|[昨今前]天"
    r"|¥?(?:\[(?:订单|数字|金额|日期|时间)x\]|<num>|NaN(?:-NaN)*|[\d.:/-]{1,20})元?)"
)
_CARD_TIME = r"(?:\[时间x\]|NaN:NaN|\d{1,2}:\d{2}(?::\d{2})?)"  # the second part of a day
_CARD_FIELD_3 = rf"(?:订单金额|商品ID|下单时间)\s*:\s*(?:{_CARD_VALUE}(?:\s{_CARD_TIME})?)?"
_ORDER_CARD_3 = re.compile(
    rf"咨询订单号\s*:\s*{_ORDER_TOKEN}(?:\s*[,，]?\s*{_CARD_FIELD_3})*"
    rf"|\[订单编号\s*:\s*{_ORDER_TOKEN}(?:\s*[,，]?\s*{_CARD_FIELD_3})*\s*\]"
    rf"|(?<!\[)订单编号\s*:\s*{_ORDER_TOKEN}(?:\s*[,，]?\s*{_CARD_FIELD_3})+"
)
_NUMBERED_3 = re.compile(r"\[站点\d+\]")
# Characters bert-base-chinese's vocabulary lacks, read as one it has: variants, the simplified
# Cantonese characters t2s gives whose traditional form it has, and 馊 by its meaning.
_UNKNOWN_TO_KNOWN = str.maketrans(
    {
        "欵": "款",
        "尅": "克",
        "馊": "变质",
        **dict(
            zip(
                "侪㓥㖞𠮶唛呒坜悭揾𬀩梿㭴筿纮莳蚬诹谂誊谳贳铳锾锗镬闳𫖯馐鲔鲭鳔",
                "儕劏喎嗰嘜嘸壢慳搵暐槤樫篠紘蒔蜆諏諗謄讞貰銃鍰鍺鑊閎頫饈鮪鯖鰾",
                strict=True,
            )
        ),
    }
)


def _char_class(points: list[int]) -> str:
    """The body of a regex character class holding `points`, as ranges (one scan of a message
    for any of thousands of characters costs about a microsecond)."""
    runs: list[list[int]] = []
    for point in sorted(points):
        if runs and runs[-1][1] == point - 1:
            runs[-1][1] = point
        else:
            runs.append([point, point])
    return "".join(f"\\U{low:08x}-\\U{high:08x}" for low, high in runs)


def _emoji_starts() -> str:
    """A character class of the first characters of emoji (a tenth of the cost of the full emoji
    scan). ASCII starts and 〰 〽 ㊗ ㊙, which are also plain text, are left out; a keycap (1️⃣, an
    ASCII digit, # or * and U+20E3, which the vocabulary lacks) is found by its U+20E3."""
    starts = {
        ord(name[0])
        for name in emoji.EMOJI_DATA
        if ord(name[0]) >= 0x2000 and name[0] not in "\u3030\u303d\u3297\u3299"
    }
    return _char_class([*starts, 0x20E3])


def _invisible() -> str:
    """A character class of the invisible characters of the Basic Multilingual Plane: format
    characters (zero-width space, BOM, soft hyphen, direction marks) but the zero-width joiner,
    which joins emoji into one (👨‍👩‍👧), and control characters but white space."""
    return _char_class(
        [
            point
            for point in range(0x10000)
            if (category := unicodedata.category(chr(point))) == "Cf"
            and point != 0x200D
            or category == "Cc"
            and not chr(point).isspace()
        ]
    )


_TYPOGRAPHY = str.maketrans(
    {"“": '"', "”": '"', "‘": "'", "’": "'", "`": "'", "—": "-", "–": "-", "―": "-"}
)
_EMOJI_STARTS = _emoji_starts()
_EMOJI_START = re.compile(f"[{_EMOJI_STARTS}]")
_INVISIBLE = re.compile(f"[{_invisible()}]")
# one scan finds the messages version 2 changes (most change nothing and skip the rest)
_VERSION_2_CHANGES = re.compile(f"[{''.join(map(chr, _TYPOGRAPHY))}{_EMOJI_STARTS}]")
_SKIN_TONE = re.compile("[\U0001f3fb-\U0001f3ff]")  # tone modifiers: no meaning here
# a first character no rule removes (a CJK ideograph, an ASCII letter or digit): the message
# has content; anything else (markup, entities, emoji modifiers) takes the full normalisation
_KEPT_START = re.compile(r"[\u4e00-\u9fffA-Za-z0-9]")
# what BERT's text cleaning drops besides white space (private-use characters become [UNK])
_UNREAD_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


def normalize_text(text: str, version: int = NORMALIZATION_VERSION) -> str:
    """The text as a model trained with normalisation `version` read it."""
    text = _plain(text)
    text = _URL.sub("[链接x]", text).replace("<num>", "[数字x]")  # before tags: <num> is not one
    if "<" in text or "&" in text:
        text = _without_markup(text)
    text = _EMOTICON.sub("[表情]", text)
    if version >= 2 and _VERSION_2_CHANGES.search(text):
        text = text.translate(_TYPOGRAPHY)
        if _EMOJI_START.search(text):
            text = emoji.demojize(_SKIN_TONE.sub("", text), language="zh", delimiters=("[", "]"))
    text = _NUMBERED.sub(r"[\1x]", text)
    if version < 3:
        text = _ORDER_CARD.sub("[订单x]", text)
    else:
        text = to_simplified(text).translate(_UNKNOWN_TO_KNOWN)
        if "[站点" in text:
            text = _NUMBERED_3.sub("[站点x]", text)
        if "订单" in text:
            text = _ORDER_CARD_3.sub("[订单x]", text)
    return _SPACE.sub(" ", text).strip()


def to_simplified(text: str) -> str:
    """The text in simplified characters (OpenCC t2s); one scan leaves a simplified text as it
    is. Rules that read raw text (the human-request detector) read it so too: 轉人工 is 转人工."""
    if _traditional().search(text) is None:
        return text
    return _t2s().convert(text)


@functools.cache
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


@functools.cache
def _traditional() -> re.Pattern[str]:
    """The characters t2s changes on their own (4,600, built on first use in 50 ms): a text
    without any is left alone, also by the phrase rules, whatever they would make of it."""
    convert = _t2s().convert
    planes = [*range(0x3400, 0x4DC0), *range(0x4E00, 0xA000), *range(0xF900, 0xFB00)]
    return re.compile(f"[{_char_class([p for p in planes if convert(chr(p)) != chr(p)])}]")


def _plain(text: str) -> str:
    """NFKC without invisible characters: the text every rule reads."""
    return without_invisible(unicodedata.normalize("NFKC", text))


def without_invisible(text: str) -> str:
    """The text less its invisible characters, which a rule reading raw text must not see:
    a zero-width space pasted inside 转人工 hides it from a pattern, not from a reader."""
    return _INVISIBLE.sub("", text)


def _without_markup(text: str) -> str:
    """Tags become spaces and entities their characters, as many times as a widget escaped them
    (&amp;nbsp; is a space escaped twice, &lt;br&gt; an escaped tag), three at most. What an
    entity stands for is made plain too (&#65292; is a full-width comma, &#8203; invisible).
    Only entities closed by a semicolon: html.unescape also reads &not, &copy or &lt without
    one, which in a customer's "A&notB" or "R&copy" is text."""
    text = _TAG.sub(" ", text)
    for _ in range(3):
        unescaped = _ENTITY.sub(lambda entity: html.unescape(entity.group()), text)
        if unescaped == text:
            break
        text = _TAG.sub(" ", _plain(unescaped))
    return text


def _unread(char: str) -> bool:
    """A character the tokenizer drops: white space, control and format characters (zero-width
    space, BOM, soft hyphen, NUL) and U+FFFD, the mark of bytes that did not decode."""
    return char.isspace() or unicodedata.category(char) in _UNREAD_CATEGORIES or char == "\ufffd"


def has_content(text: str) -> bool:
    """True when the model would read something: a text of nothing but white space, invisible or
    control characters, or markup that normalises away ("<br>") reads as an empty message, and
    would get a confident answer about nothing. The server and batch scoring both refuse it."""
    if text and _KEPT_START.match(text):  # nearly every message: one look at its start
        return True
    return not all(_unread(char) for char in normalize_text(text))
