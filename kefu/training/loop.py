"""The optimisation loop: AdamW with warm-up, length-bucketed batches, early stopping on dev.

Usage: `history = fit(model, train_set, dev_set, config, pad_id)`; the model ends holding the
weights of its best evaluation (mean dev macro-F1 over the trained heads).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from kefu.errors import TrainingDiverged
from kefu.serving.taxonomy import HEADS
from kefu.training.config import TrainConfig
from kefu.training.model import MultiHeadClassifier, MultiHeadLoss, macro_f1, predict_logits
from kefu.training.sampling import (
    EncodedSplit,
    batch_labels,
    collate,
    prediction_batches,
    training_batches,
)

LOG_EVERY = 50  # steps between log lines when no live progress bar can be drawn


@dataclass
class Evaluation:
    step: int
    epoch: float
    train_loss: float  # mean training loss since the previous evaluation
    dev_macro_f1: dict[str, float]
    seconds: float  # since the loop started

    @property
    def mean_f1(self) -> float:
        values = [v for v in self.dev_macro_f1.values() if not math.isnan(v)]
        return float(np.mean(values)) if values else float("nan")


@dataclass
class History:
    evaluations: list[Evaluation] = field(default_factory=list)
    best_step: int = 0
    steps: int = 0
    stopped_because: str = ""
    seconds: float = 0.0
    forward_precision: str = "fp32"  # what `precision` came to on this machine

    @property
    def best(self) -> Evaluation:
        return next(e for e in self.evaluations if e.step == self.best_step)


def build_optimizer(model: MultiHeadClassifier, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW groups: heads at head_lr; encoder layer i at lr * decay ** (depth below the top).

    Biases and LayerNorm weights get no weight decay (the usual BERT recipe).
    """
    if config.freeze_embeddings:
        # the word embeddings are 11M of m3e-small's 24M parameters; freezing them saves the
        # optimiser most of its work per step and keeps rare characters where pretraining put them
        model.encoder.embeddings.word_embeddings.weight.requires_grad_(False)
    n_layers = model.encoder.config.num_hidden_layers
    groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name.startswith("heads."):
            lr = config.head_lr
        elif name.startswith("encoder.encoder.layer."):
            layer = int(name.split(".")[3])
            lr = config.lr * config.layer_lr_decay ** (n_layers - 1 - layer)
        else:  # embeddings
            lr = config.lr * config.layer_lr_decay**n_layers
        decay = 0.0 if name.endswith("bias") or "LayerNorm" in name else config.weight_decay
        groups.setdefault((lr, decay), []).append(param)
    return torch.optim.AdamW(
        [{"params": p, "lr": lr, "weight_decay": wd} for (lr, wd), p in groups.items()]
    )


def warmup_linear(total_steps: int, warmup_ratio: float) -> Callable[[int], float]:
    warmup = max(1, int(total_steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


def evaluate_dev(
    model: MultiHeadClassifier, dev_set: EncodedSplit, config: TrainConfig, pad_id: int
) -> dict[str, float]:
    batches = prediction_batches(dev_set.lengths, config.eval_batch_size)
    logits = predict_logits(model, dev_set, batches, pad_id)
    trained = [head for head in HEADS if config.loss_weights[head] > 0]
    return {head: macro_f1(logits[head], dev_set.labels[head]) for head in trained}


def fit(
    model: MultiHeadClassifier,
    train_set: EncodedSplit,
    dev_set: EncodedSplit,
    config: TrainConfig,
    pad_id: int,
    loss_fn: MultiHeadLoss,
    log: Callable[[str], None] = print,
    show_progress: bool = True,
) -> History:
    rng = np.random.default_rng(config.seed)
    steps_per_epoch = math.ceil(train_set.rows_per_epoch / config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    eval_every = config.eval_every or steps_per_epoch
    optimizer = build_optimizer(model, config)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_linear(total_steps, config.warmup_ratio)
    )
    average = weight_average(model, config.ema_decay)
    # what dev evaluation and export see
    scored = cast(MultiHeadClassifier, average.module) if average else model
    history, stopper = History(), EarlyStopping(config.patience)
    best_state = None
    budget = config.time_budget_minutes * 60 or math.inf
    bf16 = uses_bf16(config.precision)
    history.forward_precision = "bf16" if bf16 else "fp32"
    losses: list[float] = []
    started = time.perf_counter()
    model.train()
    with _progress_bar(show_progress) as progress:
        task = progress.add_task("train", total=total_steps, loss=float("nan"), f1="-")
        while not history.stopped_because:
            for rows in training_batches(
                train_set.lengths, config.batch_size, rng, config.bucket_batches, train_set.weights
            ):
                inputs, labels = collate(train_set, rows, pad_id), batch_labels(train_set, rows)
                losses.append(
                    _train_step(model, inputs, labels, loss_fn, optimizer, average, config, bf16)
                )
                schedule.step()
                history.steps += 1
                progress.update(task, advance=1, loss=float(np.mean(losses[-50:])))
                if not progress.console.is_terminal and history.steps % LOG_EVERY == 0:
                    log(
                        _eta_line(history.steps, total_steps, losses, time.perf_counter() - started)
                    )
                out_of_time = time.perf_counter() - started > budget
                last = history.steps >= total_steps
                if history.steps % eval_every and not (last or out_of_time):
                    continue
                evaluation = Evaluation(
                    history.steps,
                    history.steps / steps_per_epoch,
                    float(np.mean(losses)),
                    evaluate_dev(scored, dev_set, config, pad_id),
                    time.perf_counter() - started,
                )
                losses = []
                history.evaluations.append(evaluation)
                log(_describe(evaluation))
                progress.update(task, f1=f"{evaluation.mean_f1:.3f}")
                if stopper.better(evaluation.mean_f1):
                    history.best_step = history.steps
                    best_state = copy.deepcopy(scored.state_dict())
                history.stopped_because = _stop_reason(last, stopper, out_of_time, config)
                if history.stopped_because:
                    break
    if best_state is not None:  # None only if dev F1 was never a number
        model.load_state_dict(best_state)
    model.eval()
    history.seconds = time.perf_counter() - started
    return history


def _train_step(
    model: MultiHeadClassifier,
    inputs: dict[str, torch.Tensor],
    labels: dict[str, torch.Tensor],
    loss_fn: MultiHeadLoss,
    optimizer: torch.optim.Optimizer,
    average: torch.optim.swa_utils.AveragedModel | None,
    config: TrainConfig,
    bf16: bool,
) -> float:
    """One optimiser step on one batch; returns its loss (heads' losses summed, weighted)."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = model(**inputs)
    loss, _ = loss_fn(tuple(head.float() for head in logits), labels)
    if not torch.isfinite(loss):  # one step more would spread NaN through every weight
        raise TrainingDiverged(
            f"training diverged: the loss is {float(loss.detach())} at a step of lr {config.lr:g} and "
            f"head_lr {config.head_lr:g}; lower them (--set lr=..., --set head_lr=...) or "
            "check the labelled data"
        )
    if loss.requires_grad:  # False only when no row of the batch has any label
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        if average:
            average.update_parameters(model)
    return float(loss.detach())


def _stop_reason(last: bool, stopper: EarlyStopping, out_of_time: bool, config: TrainConfig) -> str:
    """Why training stops after this evaluation; "" to go on."""
    if last:
        return "all steps done"
    if stopper.exhausted:
        return f"early stop: no better dev F1 in {stopper.waited} evaluations"
    if out_of_time:
        return f"time budget of {config.time_budget_minutes} min used"
    return ""


def weight_average(
    model: MultiHeadClassifier, decay: float
) -> torch.optim.swa_utils.AveragedModel | None:
    """An exponential moving average of the weights, or None when `decay` is 0 (off).

    The average sits in its own copy of the model, so evaluating it never disturbs training;
    buffers are averaged too (BERT's are constant position and token-type ids).
    """
    if not decay:
        return None
    return torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(decay), use_buffers=True
    )


def uses_bf16(precision: str) -> bool:
    """bf16 autocast where asked, or on "auto" where the CPU has AMX (where bf16 pays off)."""
    if precision == "auto":
        # torch's own probe (no public one yet); a torch without it counts as "no AMX"
        amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        return bool(amx())
    return precision == "bf16"


class EarlyStopping:
    """Counts evaluations in a row without a better score; `patience` 0 never stops."""

    def __init__(self, patience: int):
        self.patience, self.best, self.waited = patience, -math.inf, 0

    def better(self, score: float) -> bool:
        if score > self.best:
            self.best, self.waited = score, 0
            return True
        self.waited += 1
        return False

    @property
    def exhausted(self) -> bool:
        return bool(self.patience) and self.waited >= self.patience


def _progress_bar(show: bool) -> Progress:
    return Progress(
        TextColumn("[bold]train"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps  loss {task.fields[loss]:.3f}"),
        TextColumn("dev F1 {task.fields[f1]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        disable=not show,
    )


def _eta_line(step: int, total: int, losses: list[float], elapsed: float) -> str:
    """The progress bar's content as a log line, for runs whose stderr is not a terminal."""
    eta = elapsed / step * (total - step)
    return (
        f"step {step}/{total}  loss {np.mean(losses[-LOG_EVERY:]):.3f}  "
        f"{elapsed:.0f}s elapsed, ETA {eta:.0f}s (evaluations not included)"
    )


def _describe(evaluation: Evaluation) -> str:
    scores = "  ".join(f"{head} {f1:.3f}" for head, f1 in evaluation.dev_macro_f1.items())
    return (
        f"step {evaluation.step} (epoch {evaluation.epoch:.2f}, {evaluation.seconds:.0f}s): "
        f"train loss {evaluation.train_loss:.3f}, dev macro-F1 {scores}, "
        f"mean {evaluation.mean_f1:.3f}"
    )
