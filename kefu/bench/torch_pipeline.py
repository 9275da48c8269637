"""The reference a user would pick instead: a Hugging Face `transformers` pipeline in PyTorch.

`MultiHeadPipeline` is the custom `transformers.Pipeline` one writes for a three-head model
(no stock pipeline task has three heads): per-text tokenisation with the base model's own
tokenizer of the text kefu's normalisation gives (as the model card tells a user), padded
collation and the eager PyTorch forward, batch 1 and batch 32, on CPU with as many torch
threads as ONNX Runtime gets.

Which weights: the bundle ships ONNX only and training keeps no torch checkpoint, so this is
the base encoder's weights with random heads (`reference.py`): the same architecture and
sequence lengths as the bundle's model, hence the same speed, but not its predictions.
Rebuilding torch modules from ONNX initializers would be fragile. The result says so.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from transformers import BertConfig, Pipeline, PreTrainedTokenizerFast

from kefu.bench.ort_raw import BLOCK_MESSAGES, SWITCH_PAUSE_SECONDS, PointTimer
from kefu.bench.reference import base_model_dir, build_encoder, is_tiny
from kefu.bench.timing import Deadline, latency_summary
from kefu.bench.workload import token_length_batches
from kefu.serving.bundle.reader import Bundle, read_bundle
from kefu.serving.classifier import Classifier
from kefu.serving.normalize import NORMALIZATION_VERSION, normalize_text
from kefu.serving.taxonomy import HEADS
from kefu.training.base_tokenizer import load_base_tokenizer
from kefu.training.model import MultiHeadClassifier

BATCH_SIZES = (1, 32)


class MultiHeadPipeline(Pipeline):
    """text -> {head: logits row}; batching and padding are the Pipeline's own.

    Its steps take and return plain tensor dicts, narrower than `Pipeline`'s generic
    signatures (hence the `override` ignores).
    """

    max_length: int = 128
    normalization: int = NORMALIZATION_VERSION  # the bundle's, as its model card tells users

    def _sanitize_parameters(self, **kwargs: Any) -> tuple[dict, dict, dict]:
        return {}, {}, {}

    def preprocess(self, text: str, **_: Any) -> dict[str, torch.Tensor]:  # type: ignore[override]
        assert self.tokenizer is not None
        return self.tokenizer(
            normalize_text(text, self.normalization),
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )

    def _forward(  # type: ignore[override]
        self, inputs: dict[str, torch.Tensor], **_: Any
    ) -> dict[str, torch.Tensor]:
        input_ids = inputs["input_ids"]
        token_type_ids = inputs.get("token_type_ids", torch.zeros_like(input_ids))
        logits = self.model(input_ids, inputs["attention_mask"], token_type_ids)
        return dict(zip(HEADS, logits, strict=True))

    def postprocess(  # type: ignore[override]
        self, outputs: dict[str, torch.Tensor], **_: Any
    ) -> dict[str, list[float]]:
        return {head: outputs[head][0].tolist() for head in HEADS}


def reference_tokenizer(bundle: Bundle) -> Any:
    """The tokenizer a transformers user loads: the base model's own, as training set it up."""
    if is_tiny(bundle):
        return PreTrainedTokenizerFast(
            tokenizer_file=str(bundle.tokenizer_path),
            unk_token="[UNK]",
            pad_token="[PAD]",
            cls_token="[CLS]",
            sep_token="[SEP]",
        )
    return load_base_tokenizer(base_model_dir(bundle))


def build_pipeline(bundle_dir: Path, threads: int) -> tuple[MultiHeadPipeline, str, BertConfig]:
    bundle = read_bundle(bundle_dir)
    torch.set_num_threads(threads)
    encoder, weights = build_encoder(bundle)
    model = MultiHeadClassifier(encoder, {head: len(bundle.labels[head]) for head in HEADS}).eval()
    tokenizer = reference_tokenizer(bundle)
    # Pipeline expects a PreTrainedModel; these are the attributes it reads from one.
    model.config = model.encoder.config  # type: ignore[assignment]
    model.device = torch.device("cpu")  # type: ignore[assignment]
    pipeline = MultiHeadPipeline(model=model, tokenizer=tokenizer, device=-1)  # type: ignore[arg-type]
    pipeline.max_length = bundle.manifest.max_length
    pipeline.normalization = bundle.manifest.text_normalization
    return pipeline, weights, model.encoder.config


def bench_torch_pipeline(
    bundle_dir: Path,
    texts: list[str],
    *,
    batch_sizes: tuple[int, ...] = BATCH_SIZES,
    variants: tuple[str, ...] = ("fp32", "int8"),
    messages_per_point: int = 256,
    seconds_per_point: float = 30.0,
    threads: int = 1,
) -> dict[str, Any]:
    """{"weights", "threads", "batch_<n>": {total_ms_per_msg, ..., "ort_same_batches"}}.

    ONNX Runtime (each variant) takes turns with the pipeline on the same blocks of batches,
    so the "ours / PyTorch" ratio compares measurements taken under the same machine load.
    """
    pipeline, weights, _ = build_pipeline(bundle_dir, threads)
    bundle = read_bundle(bundle_dir)
    classifiers = {v: Classifier(bundle, variant=v, intra_op_threads=threads) for v in variants}
    # batches grouped by length exactly as for raw ORT, so padding costs both sides the same
    encoder = bundle.text_encoder()
    results: dict[str, Any] = {"weights": weights, "threads": threads}
    for size in batch_sizes:
        results[f"batch_{size}"] = time_pipeline(
            pipeline, classifiers, token_length_batches(encoder, texts, size), size,
            messages_per_point, seconds_per_point,
        )  # fmt: skip
    return results


def time_pipeline(
    pipeline: MultiHeadPipeline,
    classifiers: dict[str, Classifier],
    batches: list[list[str]],
    batch_size: int,
    max_messages: int,
    max_seconds: float,
) -> dict[str, Any]:
    """Calls of `batch_size` texts each through the pipeline, tokenisation included; each block
    of calls is followed by the same block through every ONNX Runtime classifier.

    Blocks with an untimed pause between runtimes, not call-by-call turns: both runtimes'
    threads spin after a call and would slow down whichever runs next.
    """
    pipeline(batches[0], batch_size=batch_size)  # warm-up
    for classifier in classifiers.values():
        classifier.logits(classifier.encoder.encode(batches[0]))
    ort_timers = {variant: PointTimer() for variant in classifiers}
    block = max(1, BLOCK_MESSAGES // batch_size)
    deadline = Deadline(max_seconds)
    call_s: list[float] = []
    messages, start = 0, 0
    while messages < max_messages and not deadline.expired:
        turn = [batches[(start + i) % len(batches)] for i in range(block)]
        start += block
        time.sleep(SWITCH_PAUSE_SECONDS)
        for batch in turn:
            began = time.perf_counter()
            pipeline(batch, batch_size=batch_size)
            call_s.append(time.perf_counter() - began)
            messages += len(batch)
        for variant, classifier in classifiers.items():
            time.sleep(SWITCH_PAUSE_SECONDS)
            for batch in turn:
                ort_timers[variant].run(classifier, batch)
    total = sum(call_s)
    return {
        "batch_size": batch_size,
        "messages": messages,
        "total_ms_per_msg": 1000 * total / messages,
        "msgs_per_s": messages / total,
        "batch_latency": latency_summary([1000 * s for s in call_s]),
        "ort_same_batches": {
            variant: timer.summary(batch_size)["total_ms_per_msg"]
            for variant, timer in ort_timers.items()
        },
    }
