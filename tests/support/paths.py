"""Where the tests find the checkout and the machine's shared folder, and the sample texts."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared"

SAMPLE_TEXTS = [
    "我的快递三天没动了",
    "退款怎么还没到账！！",
    "转人工",
    "在吗",
    "[订单编号:[订单x]，订单金额:[金额x]]",
    "发票开了没 ok 7天无理由 iPhone",
    "你们卖假货，我要打12315投诉你们",
]
