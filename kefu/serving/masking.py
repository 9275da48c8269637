"""Personal data masked out of text before it may reach a log: one table, one pass.

Each row of `MASKS` is a kind and a pattern; `mask_text` replaces every match with `<kind>`
(for "keyword + value" forms such as `QQ 12345678` or `CVV 123`, only the value). The rows are
joined into one alternation and applied in a single left-to-right scan, so the cost is one
regex pass however many kinds there are. What is masked:

- e-mail addresses; QQ numbers and WeChat ids after their keyword (QQ, 扣扣, 微信, vx, wx, ...);
- card security codes (CVV, CVC, 安全码, 验证码) and expiry dates (有效期 12/27, exp 12/2027);
- names after a label (收件人, 联系人, 姓名, 我叫, ...; Chinese or Latin), a name with a common
  surname just before a mobile number (the pasted address card "张三 13812345678"), and street
  addresses (province .. road, number, building, room, with a trailing "张三收");
- mobile numbers with spaces, dashes or dots (`138.1234.5678`), with +86, and written in
  Chinese numerals (`一三八一二三四五六七八`); tracking numbers; order ids (10-20 digits);
- any other run of 7+ digits, also with ` `, `-`, `.` or `/` between them (landlines, bank
  cards such as `6222.0212.3456.7890`, id-card numbers) and 7+ Chinese numerals.

Amounts (`99元`) and short numbers stay readable: they say what the message is about.
"""

from __future__ import annotations

import re

_SEP = r"\s*(?:是|为|:|：)?\s*"  # between a keyword and its value: "QQ：123", "QQ是 123"
_CN_DIGIT = "零〇一二三四五六七八九幺"
_HAN = r"\u4e00-\u9fa5"
# The hundred commonest surnames and the compound ones: a name with no label before it is only
# told from other words by its surname and by the mobile number it is pasted with.
_SURNAME = (
    "(?:欧阳|司马|上官|诸葛|东方|皇甫|慕容|令狐|夏侯|尉迟|"
    "[王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝"
    "龚邵万钱严覃武戴莫孔向汤])"
)
_MOBILE = r"(?<!\d)(?:\+?86[-. ]?)?\(?1[3-9]\d\)?[-. ]?\d{4}[-. ]?\d{4}(?!\d)"
_MOBILE_AHEAD = rf"(?=\s*[,，、/;；]?\s*(?:电话|手机号?|(?i:tel))?\s*[:：]?\s*{_MOBILE})"

# (kind, pattern); a group named `v` marks the part to mask when a keyword precedes it.
MASKS: tuple[tuple[str, str], ...] = (
    ("email", r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"),
    ("qq", rf"(?i:qq|扣扣|企鹅)(?:号码?)?{_SEP}(?P<v>[1-9]\d{{4,11}})(?!\d)"),
    (
        "wechat",
        rf"(?i:微信|wechat|weixin|vx|wx|v信|薇信|威信)(?:号)?{_SEP}"
        r"(?P<v>[A-Za-z][-_A-Za-z0-9]{5,19}|\d{5,20})",
    ),
    ("cvv", rf"(?i:cvv2?|cvc2?|cvn2?|安全码|验证码|校验码){_SEP}(?P<v>\d{{3,6}})(?!\d)"),
    (
        "expiry",
        rf"(?i:有效期(?:至|到)?|到期(?:日|时间)?|exp(?:iry|ires)?(?:\s*date)?){_SEP}"
        r"(?P<v>\d{1,4}\s*[/\-.年]\s*\d{1,4}(?:\s*月)?)",
    ),
    (
        "name",
        rf"(?:收件人|收货人|联系人|寄件人|姓名|名字|我叫|本人){_SEP}"
        # 2-5 characters (欧阳娜娜娜), spaces allowed between them (张 三, 欧阳 娜娜), or a
        # Latin name; a space-separated next word may go too (李四 电话): more masked, never less
        rf"(?P<v>[{_HAN}](?:\s?[{_HAN}]){{1,4}}|[A-Za-z][a-z]+(?:\s+[A-Za-z][a-z]+){{0,2}})",
    ),
    ("name", rf"{_SURNAME}[{_HAN}]{{1,2}}{_MOBILE_AHEAD}"),
    (
        "address",
        rf"(?:[{_HAN}]{{2,8}}(?:省|自治区|市|区|县|旗|镇|乡|街道))*"
        rf"[{_HAN}A-Za-z0-9]{{1,12}}(?:路|街|大道|巷|弄|胡同|村)"
        rf"\s*[0-9{_CN_DIGIT}十]+\s*号"
        rf"(?:\s*(?:[0-9A-Za-z{_CN_DIGIT}十]+\s*(?:号楼|号院|栋|幢|座|单元|层|楼|室|号)"
        rf"|[{_HAN}A-Za-z0-9]{{1,12}}?(?:小区|大厦|公寓|广场|花园|中心|苑)))*"
        rf"(?:\s*[{_HAN}]{{2,3}}\s*收)?",
    ),
    ("phone", _MOBILE),
    ("phone", rf"(?<![{_CN_DIGIT}])[一幺][三四五六七八九][{_CN_DIGIT}]{{9}}(?![{_CN_DIGIT}])"),
    (
        "tracking_number",
        r"(?<![A-Za-z0-9])(?i:SF|YT|JD|JDV|ZTO|YD|STO|EMS|DPK|JT)[A-Z]?\d{9,16}(?!\d)",
    ),
    ("order_id", r"(?<![\d.])\d{10,20}(?![\d./Xx-])"),
    ("number", r"\d(?:[ ./-]?\d){6,}[Xx]?"),
    ("number", rf"[{_CN_DIGIT}](?:\s?[{_CN_DIGIT}]){{6,}}"),
)


def _combined(masks: tuple[tuple[str, str], ...]) -> re.Pattern[str]:
    """One alternation; group `k<i>` is row i, its value group is renamed `v<i>`."""
    parts = []
    for index, (_, pattern) in enumerate(masks):
        parts.append(f"(?P<k{index}>{pattern.replace('(?P<v>', f'(?P<v{index}>')})")
    return re.compile("|".join(parts))


_MASK = _combined(MASKS)
_KIND = {f"k{index}": kind for index, (kind, _) in enumerate(MASKS)}


def _replace(match: re.Match[str]) -> str:
    group = match.lastgroup or ""
    kind = _KIND[group]
    value_group = "v" + group[1:]
    if value_group in (match.re.groupindex or {}) and match.start(value_group) >= 0:
        return match.group(0)[: match.start(value_group) - match.start()] + f"<{kind}>"
    return f"<{kind}>"


def mask_text(text: str) -> str:
    """`text` with the personal data of `MASKS` replaced by `<kind>` markers."""
    return _MASK.sub(_replace, text)


def masked_pieces(text: str) -> list[tuple[str, str]]:
    """`text` as `(original, shown)` pieces in order: `shown` is a `<kind>` marker for masked
    data, else `original` itself; the `shown` parts join into `mask_text(text)`.

    Why: a text cut for a log must end between pieces, never inside a marker (`<pho`), and
    must know how much of the original the part it keeps stands for.
    """
    pieces: list[tuple[str, str]] = []
    done = 0
    for match in _MASK.finditer(text):
        replaced = _replace(match)
        marker_at = replaced.rfind("<")  # after the label of a masked value ("QQ号: "), if any
        value_at = match.start() + marker_at
        if value_at > done:
            plain = text[done:value_at]
            pieces.append((plain, plain))
        pieces.append((text[value_at : match.end()], replaced[marker_at:]))
        done = match.end()
    if done < len(text):
        pieces.append((text[done:], text[done:]))
    return pieces
