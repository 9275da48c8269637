"""Masking of personal data for logs: one row per form the masking must catch or keep."""

import pytest

from kefu.serving.masking import MASKS, mask_text, masked_pieces

CASES = [
    # phones
    ("电话13812345678", "电话<phone>"),
    ("电话138 1234 5678", "电话<phone>"),
    ("电话138-1234-5678", "电话<phone>"),
    ("电话138.1234.5678", "电话<phone>"),
    ("电话+86 13812345678", "电话<phone>"),
    ("手机号一三八一二三四五六七八", "手机号<phone>"),
    ("手机幺三八一二三四五六七八快点", "手机<phone>快点"),
    ("座机010-12345678", "座机<number>"),
    ("座机零一零一二三四五六七八", "座机<number>"),
    # e-mail, QQ, WeChat
    ("邮箱 zhang.san+shop@example.com.cn 联系", "邮箱 <email> 联系"),
    ("12345678@qq.com", "<email>"),
    ("QQ：12345678", "QQ：<qq>"),
    ("加我qq号 87654321", "加我qq号 <qq>"),
    ("扣扣是12345", "扣扣是<qq>"),
    ("加我微信 zhangsan_88", "加我微信 <wechat>"),
    ("微信号是wxid_abc123", "微信号是<wechat>"),
    ("vx: Li-Si2024 谢谢", "vx: <wechat> 谢谢"),
    # bank cards, CVV, expiry
    ("卡号6222021234567890123", "卡号<order_id>"),  # 19 digits read as an order id: masked
    ("卡号6222 0212 3456 7890", "卡号<number>"),
    ("卡号6222.0212.3456.7890", "卡号<number>"),
    ("卡号6222/0212/3456/7890", "卡号<number>"),
    ("卡号6222-0212-3456-7890", "卡号<number>"),
    ("cvv 123", "cvv <cvv>"),
    ("CVV2:4567", "CVV2:<cvv>"),
    ("背面安全码是 321", "背面安全码是 <cvv>"),
    ("验证码：884213", "验证码：<cvv>"),
    ("有效期 12/27", "有效期 <expiry>"),
    ("有效期至2027年12月", "有效期至<expiry>"),
    ("exp 12/2027", "exp <expiry>"),
    # names and addresses
    ("收件人：张三", "收件人：<name>"),
    ("我叫王小明，订单有问题", "我叫<name>，订单有问题"),
    ("联系人：欧阳娜娜娜", "联系人：<name>"),
    ("姓名:张 三", "姓名:<name>"),
    ("姓名: 欧阳 娜娜", "姓名: <name>"),
    ("姓名:王 小 明", "姓名:<name>"),
    ("收件人：李四 电话 138-1234-5678", "收件人：<name> <phone>"),  # more masked, never less
    ("我叫 Li Lei", "我叫 <name>"),
    ("收货人 Zhang San，电话(138)12345678", "收货人 <name>，电话<phone>"),
    # an address card pasted without labels: a surname and a mobile number mark the name
    ("张三 13812345678 北京市朝阳区建国路88号", "<name> <phone> <address>"),
    ("寄给王小明，138-1234-5678", "寄给<name>，<phone>"),
    ("欧阳娜娜/+86 13812345678", "<name>/<phone>"),
    ("李四电话13812345678", "<name>电话<phone>"),
    ("小张13812345678", "小张<phone>"),  # a surname alone is no name
    ("订单金额:199元", "订单金额:199元"),  # 金 is a surname, 199 no mobile number
    ("方便的话打010-12345678", "方便的话打<number>"),  # no mobile number: the words stay
    # the words before a province may go with it: more is masked, never less
    ("寄到浙江省杭州市西湖区文三路478号华星时代广场A座1201室", "<address>"),
    ("地址：北京市朝阳区建国路88号3号楼2单元502室 李四收，谢谢", "地址：<address>，谢谢"),
    ("上海市浦东新区张江路100号 急", "<address> 急"),
    # order and tracking numbers, long numbers
    ("单号SF1234567890123", "单号<tracking_number>"),
    ("订单123456789012 退款99元", "订单<order_id> 退款99元"),
    ("订单1234567890123456789012", "订单<number>"),
    ("身份证11010519491231002X", "身份证<number>"),
    ("订单1234567890 没到", "订单<order_id> 没到"),  # 10 digits: the shortest order id
    ("座机8123456", "座机<number>"),  # 7 digits: the shortest run masked
    ("座机八一二三四五六", "座机<number>"),  # and 7 Chinese numerals
    ("电话19912345678", "电话<phone>"),
    ("电话166 1234 5678", "电话<phone>"),
    # what stays readable
    ("退款99元，等了3天", "退款99元，等了3天"),
    ("¥1299.00 太贵了", "¥1299.00 太贵了"),
    ("我的快递三天没动了", "我的快递三天没动了"),
    ("第一二三次问了", "第一二三次问了"),
    ("邮编310000", "邮编310000"),  # 6 digits stay readable
    ("邮编三一零零零零", "邮编三一零零零零"),  # 6 Chinese numerals too
    ("发票开了没 ok 7天无理由 iPhone", "发票开了没 ok 7天无理由 iPhone"),
]


@pytest.mark.parametrize(("text", "masked"), CASES, ids=[case[0] for case in CASES])
def test_mask_text(text, masked):
    assert mask_text(text) == masked


@pytest.mark.parametrize(("text", "masked"), CASES, ids=[case[0] for case in CASES])
def test_masked_pieces_spell_the_text_and_its_masked_form(text, masked):
    pieces = masked_pieces(text)
    assert "".join(original for original, _ in pieces) == text
    assert "".join(shown for _, shown in pieces) == masked
    for original, shown in pieces:  # a piece is plain, or one whole marker for masked data
        assert shown == original or (
            shown.startswith("<") and shown.endswith(">") and shown.count("<") == 1
        )


def test_every_kind_of_the_table_is_exercised():
    kinds = {kind for kind, _ in MASKS}
    seen = {kind for _, masked in CASES for kind in kinds if f"<{kind}>" in masked}
    assert seen == kinds
