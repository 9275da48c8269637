"""The PyTorch reference of `kefu bench` tokenises the text the served model reads."""

from kefu.bench.torch_pipeline import build_pipeline
from kefu.serving.bundle.reader import read_bundle


def test_the_torch_reference_reads_the_text_the_model_reads(tiny_bundle):
    pipeline, _, _ = build_pipeline(tiny_bundle, threads=1)
    text = "咨询订单号:<num> 商品ID:<num> 在吗#E-s[数字x]"
    ids = pipeline.preprocess(text)["input_ids"][0].tolist()
    assert ids == read_bundle(tiny_bundle).text_encoder().token_ids([text])[0][0]
