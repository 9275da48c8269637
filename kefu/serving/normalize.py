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

A model learns the text as this function gave it, so the rules are versioned: a bundle records
the version it was trained with (`text_normalization` in its manifest) and is served with that
version. Version 1 is every rule above but the emoji, quote and dash one, which version 2 adds.
A rule that changes no text of kefu's datasets (`datasets/**/*.jsonl`: it meets only what traffic
brings, such as invisible characters, links without http, twice-escaped HTML, keycaps and
backticks) joins the versions it belongs to without a new one: no model learned those texts
any other way.
"""

from __future__ import annotations

import html
import re
import unicodedata

import emoji

NORMALIZATION_VERSION = 2  # raise it with every change to what a training text becomes

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
    text = _ORDER_CARD.sub("[订单x]", text)
    return _SPACE.sub(" ", text).strip()


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
