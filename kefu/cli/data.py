"""`kefu data build` rebuilds the seed corpus; `kefu data real` rebuilds the real corpus's splits
and card numbers from its annotations; `kefu data validate FILE` checks a labelled file;
`kefu data split FILE --out DIR` makes train / dev / test files of it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from kefu.cli.errors import reports_errors
from kefu.cli.options import LabelledFile, LabelledFileOptions, takes_labelled_file_options
from kefu.errors import DataError, InputError
from kefu.serving.taxonomy import HEADS

if TYPE_CHECKING:
    from kefu.training.data.loader import LabelledData

DATA_HELP = "Build the seed corpus or the real corpus's splits; validate or split a labelled file."
# short_help as well: click's lists of commands cut a help at 45 characters
app = typer.Typer(no_args_is_help=True, help=DATA_HELP, short_help=DATA_HELP)


@app.command("build", short_help="Rebuild datasets/seed/ from datasets/sources/.")
@reports_errors("data build")
def build(
    sources: Path = typer.Option(None, help="Folder with written/*.tsv and augment.yaml."),
    out: Path = typer.Option(None, help="Output folder for train/dev/test.jsonl."),
    seed: int = typer.Option(None, help="Augmentation seed (default in BuildConfig)."),
) -> None:
    """Rebuild datasets/seed/ from datasets/sources/ (byte-identical for the same sources)."""
    from dataclasses import replace

    from kefu.cli.extras import require_train_extra
    from kefu.training.data.build import BuildConfig
    from kefu.training.data.build import build as build_corpus

    require_train_extra(("sklearn", "scipy"))
    config = BuildConfig()
    if sources is None and not config.sources.is_dir():
        raise InputError(
            f"no {config.sources} here ({Path.cwd()}): run from the project root, or pass --sources",
            field="--sources",
        )
    overrides: dict[str, Any] = {
        k: v for k, v in {"sources": sources, "out": out, "seed": seed}.items() if v is not None
    }
    if out is not None:
        overrides["card"] = out / "README.md"
    stats = build_corpus(replace(config, **overrides))
    rows = stats["rows"]
    typer.echo(
        f"seed corpus: {rows['total']} rows (train {rows['train']}, dev {rows['dev']}, test {rows['test']}); "
        f"near-duplicates dev {stats['near_duplicates']['dev']:.2%}, test {stats['near_duplicates']['test']:.2%}"
    )


@app.command("real", short_help="Rebuild datasets/real/ splits, stats and card numbers.")
@reports_errors("data real")
def real(
    folder: Path = typer.Option(
        Path("datasets/real"), help="Folder with messages.tsv and annotations/."
    ),
) -> None:
    """Rebuild datasets/real/ splits, stats and card numbers from its annotations."""
    from kefu.cli.extras import require_train_extra
    from kefu.training.data.real import RealConfig, build_real

    require_train_extra(("sklearn", "scipy"))
    if not (folder / "messages.tsv").is_file():
        raise InputError(
            f"no {folder / 'messages.tsv'} here ({Path.cwd()}): run from the project root, or "
            "pass --folder",
            field="--folder",
        )
    stats = build_real(RealConfig(folder=folder))
    rows, agree = stats["rows"], stats["agreement"]["all"]
    typer.echo(
        f"real corpus: {rows['total']} rows (train {rows['train']}, dev {rows['dev']}, "
        f"test {rows['test']}); second-annotation kappa "
        + ", ".join(f"{head} {agree[head]['kappa']:.3f}" for head in agree)
    )


@app.command("validate", short_help="Check a labelled file: counts per label, rejected rows.")
@reports_errors("data validate")
@takes_labelled_file_options
def validate(
    file: LabelledFile,
    rejects: Path = typer.Option(
        None, help="Write rejected rows (with reasons) to this JSONL file."
    ),
    strict: bool = typer.Option(False, "--strict", help="Fail when any row is rejected."),
    encoding: str = typer.Option(
        None, help="Text encoding, e.g. gb18030 (default: detected: BOM, UTF-8, GB18030)."
    ),
    *,
    file_options: LabelledFileOptions,
) -> None:
    """Check a labelled file: counts per label, and every rejected row with file, line and reason.

    Exits 1 when the file cannot be read, has no usable row, or (--strict) any row is rejected.
    """
    from kefu.training.data.loader import write_rejects

    # --strict fails below, after the rejects are listed and written
    data = file_options.load(file, encoding)
    console = Console()
    typer.echo(f"{file}: {len(data.rows)} usable rows, {len(data.rejects)} rejected")
    for note in data.missing_column_notes("--{head}-col NAME"):
        typer.echo(f"note: {note}")
    table = Table()
    for column in ("head", "label", "rows"):
        table.add_column(column)

    for head in HEADS:
        for label, count in sorted(Counter(data.labels(head)).items(), key=lambda kv: str(kv[0])):
            table.add_row(head, label or "(unlabelled)", str(count))
    console.print(table)
    absent = _absent_classes(data)
    if absent:
        typer.echo(f"no row for: {absent} (a model trained on this file alone does not learn them)")
    _print_repeats(data)
    for reject in data.rejects[:20]:
        typer.echo(f"rejected: {reject.describe()}")
    if len(data.rejects) > 20:
        typer.echo(f"... {len(data.rejects) - 20} more")
    if rejects is not None:
        written = write_rejects(data.rejects, rejects)
        typer.echo(f"wrote {written} rejects to {rejects}")
    if strict and data.rejects:
        where = f"; every one is in {rejects}" if rejects is not None else ""
        raise DataError(f"{len(data.rejects)} rejected rows (strict mode){where}", file=str(file))
    if not data.rows:
        reasons = Counter(reject.reason for reject in data.rejects)
        shown = ", ".join(f"{reason} {count}" for reason, count in sorted(reasons.items()))
        hint = (
            "; if the file is GBK/GB18030, rerun with --encoding gb18030"
            if "undecodable_text" in reasons
            else ""
        )
        raise DataError(f"no usable rows (rejected: {shown}){hint}", file=str(file))


@app.command("split", short_help="Split a labelled file into train, dev and test.")
@reports_errors("data split")
@takes_labelled_file_options
def split(
    file: LabelledFile,
    out: Path = typer.Option(..., "--out", help="Folder for train.jsonl, dev.jsonl, test.jsonl."),
    session_col: str = typer.Option(
        None,
        help="Conversation id column: every turn of a chat goes to the same split, and the "
        "files carry it as 'session', the column kefu evaluate reads chats by.",
    ),
    turn_col: str = typer.Option(
        None,
        help="Turn number column, carried as 'turn', the column kefu evaluate orders a chat's "
        "turns by (without it, file order).",
    ),
    shares: str = typer.Option("0.7,0.15,0.15", help="Train, dev and test shares."),
    seed: int = typer.Option(13, help="Another seed places the rows differently."),
    force: bool = typer.Option(False, "--force", help="Overwrite split files already in --out."),
    encoding: str = typer.Option(None, help="Text encoding (default: detected)."),
    *,
    file_options: LabelledFileOptions,
) -> None:
    """Split a labelled file into train, dev and test, chats and repeated texts kept whole."""
    from kefu.cli.extras import require_train_extra

    require_train_extra(("scipy",))
    from kefu.training.data.split import SPLITS, parse_shares, split_labelled, write_splits

    chosen = parse_shares(shares)
    clashing = [name for name in (*SPLITS, "rejects") if (out / f"{name}.jsonl").exists()]
    if clashing and not force:
        raise InputError(
            f"{out} already holds {', '.join(f'{name}.jsonl' for name in clashing)}; pass "
            "--force to overwrite, or another --out",
            field="--out",
        )
    data = file_options.load(file, encoding)
    if not data.rows:
        raise DataError(f"no usable rows ({len(data.rejects)} rejected)", file=str(file))
    for note in data.missing_column_notes("--{head}-col NAME"):
        typer.echo(f"note: {note}")
    made = split_labelled(
        data, session_column=session_col, turn_column=turn_col, shares=chosen, seed=seed
    )
    if force:
        (out / "rejects.jsonl").unlink(missing_ok=True)  # a file of an earlier split
    written = write_splits(made, out, data.rejects)
    table = Table("split", "rows", *(["chats"] if session_col else []), "file")
    for name in SPLITS:
        chats = [str(made.groups[name])] if session_col else []
        # a Text: rich would read a folder named like out[1] as markup and drop the bracket
        table.add_row(name, str(len(made.rows[name])), *chats, Text(str(written[name])))
    Console().print(table)
    for name, count in made.moved.items():
        typer.echo(f"{count} {name} rows nearly repeat a training text: moved to train")
    for name in ("dev", "test"):
        for head, labels in made.absent(name).items():
            typer.echo(f"warning: {name} has no {head} {', '.join(labels)} (not measured there)")
    if data.rejects:
        typer.echo(f"{len(data.rejects)} rejected rows in {written['rejects']}")
    typer.echo(f"next: kefu train --data-dir {out} --out models/mine")


def _print_repeats(data: LabelledData) -> None:
    from kefu.training.data.repeats import find_repeats

    repeats = find_repeats(data.rows)
    if not repeats.texts:
        return
    typer.echo(
        f"repeated texts: {repeats.texts} texts on {repeats.extra_rows} more rows (trained "
        f"again each time); labelled two ways: {len(repeats.conflicts)}"
    )
    for conflict in repeats.conflicts[:10]:
        typer.echo(f"  {conflict.describe()}")
    if len(repeats.conflicts) > 10:
        typer.echo(f"  ... {len(repeats.conflicts) - 10} more")


def _absent_classes(data: LabelledData) -> str:
    """The taxonomy's classes no row is labelled with, per head that has labels at all: the
    table lists the classes present, and a missing one is easy not to see."""
    from kefu.serving.taxonomy import load_taxonomy

    taxonomy = load_taxonomy()
    parts = []
    for head in HEADS:
        present = set(data.labels(head)) - {None}
        absent = [label for label in taxonomy.labels(head) if label not in present]
        if present and absent:
            parts.append(f"{head} {', '.join(absent)}")
    return "; ".join(parts)
