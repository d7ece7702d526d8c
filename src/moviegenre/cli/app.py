"""The `moviegenre` command: reports on pipeline runs and predictions from its artifacts."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from moviegenre.core.errors import MovieGenreError
from moviegenre.core.paths import PATHS
from moviegenre.core.stage import setup_logging
from moviegenre.serve.limits import DEFAULT_MAX_UPLOAD_MB, MAX_CONNECTIONS

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


def _fail(exc: MovieGenreError) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


def _write_stdout(text: str) -> None:
    """Write ``text`` to stdout now, so that a full or closed stdout is an error line, not a
    traceback when the interpreter flushes it on the way out."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError as exc:
        raise MovieGenreError(f"stdout: cannot write the report ({exc.strerror or exc})") from exc


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False) -> None:
    setup_logging(logging.INFO if verbose else logging.WARNING)


@app.command()
def report(
    base: Annotated[str, typer.Option(help="Git revision to compare with (branch, tag or commit).")] = "HEAD",
    out: Annotated[
        Path | None,
        typer.Option(help="Write the Markdown here (base figures beside it, in <stem>_figures/) instead of stdout."),
    ] = None,
    figures: Annotated[
        bool,
        typer.Option("--figures/--no-figures", help="Base and head figures side by side (links relative to --out)."),
    ] = True,
    paired: Annotated[
        bool,
        typer.Option(
            "--paired/--no-paired",
            help="Judge noise by a paired bootstrap when both revisions' predictions are at hand.",
        ),
    ] = True,
    base_predictions: Annotated[
        Path | None,
        typer.Option(help="Folder of BASE's <branch>.parquet (default: read at BASE from the DVC cache/remote)."),
    ] = None,
) -> None:
    """Markdown review since BASE: macro ROC-AUC by branch judged against noise, params, figures."""
    from moviegenre.cli.report import build_report
    from moviegenre.core.files import atomic_path, check_output

    try:
        if out is not None:
            check_output(out, "--out", make_parents=True)
        text = build_report(base, out=out, figures=figures, paired=paired, base_predictions=base_predictions)
        if out is None:
            _write_stdout(text)
        else:
            with atomic_path(out) as tmp:
                tmp.write_text(text)
    except MovieGenreError as exc:
        _fail(exc)


@app.command("experiments")
def experiments_command() -> None:
    """Every experiment (`dvc exp show`) beside its baseline: changed params, each branch's test AUC, judged."""
    from moviegenre.cli import experiments

    try:
        typer.echo(experiments.table(experiments.rows(PATHS.root), PATHS.root))
    except MovieGenreError as exc:
        _fail(exc)


@app.command("predict")
def predict_command(
    poster: Annotated[Path | None, typer.Option(help="A poster image (JPEG, PNG).")] = None,
    plot: Annotated[str | None, typer.Option(help="The plot synopsis as text.")] = None,
    plot_file: Annotated[Path | None, typer.Option(help="A file holding the plot synopsis.")] = None,
    dataset: Annotated[
        str | None, typer.Option(help="Many movies: anything data.source accepts (archive, directory, URL).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="CSV for --dataset: id, genres (the predicted set) and one probability column per genre."),
    ] = None,
    branches: Annotated[bool, typer.Option("--branches", help="Show each branch's probabilities too.")] = False,
    raw_csv: Annotated[
        bool,
        typer.Option(
            "--raw-csv",
            help="--out: write text exactly as the dataset gives it, without the ' that keeps a spreadsheet "
            "from running a cell starting with = + - @ as a formula (for programs, not spreadsheets).",
        ),
    ] = False,
    top: Annotated[int, typer.Option(help="Genres to show for one movie (0: all).")] = 0,
    as_json: Annotated[
        bool, typer.Option("--json", help="One movie as a JSON object (the server's answer) instead of a table.")
    ] = False,
    timeout_s: Annotated[float, typer.Option(help="--dataset: seconds before a connection or read gives up.")] = 30.0,
    retries: Annotated[int, typer.Option(help="--dataset: retries of a failed poster or archive download.")] = 4,
    poster_deadline_s: Annotated[
        float, typer.Option(help="--dataset: seconds one poster URL may take in all, retries included.")
    ] = 120.0,
    max_poster_mb: Annotated[float, typer.Option(help="--dataset: largest poster download, in MB.")] = 240.0,
    deadline_s: Annotated[
        float, typer.Option(help="--dataset: seconds an http(s) SOURCE may take in all, retries included.")
    ] = 14_400.0,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="--dataset: score on the Dask cluster of this scheduler (tcp://HOST:PORT); default: the one "
            "DASK_SCHEDULER_ADDRESS names, else in-process. The same bytes either way.",
        ),
    ] = None,
) -> None:
    """Genres of one movie (--poster and/or --plot) or of a whole dataset (--dataset --out)."""
    from moviegenre.cli import predict_output

    try:
        if dataset is not None:
            if out is None or poster or plot or plot_file or as_json:
                raise MovieGenreError("--dataset needs --out and no --poster/--plot/--plot-file/--json")
            bounds = predict_output.FetchBounds(timeout_s, retries, poster_deadline_s, max_poster_mb, deadline_s)
            count, score = predict_output.predict_dataset(
                PATHS, dataset, out, with_branches=branches, bounds=bounds, raw_csv=raw_csv, scheduler=scheduler
            )
            typer.echo(f"wrote {count} movies to {out}", err=True)
            if score is not None:
                typer.echo(
                    f"against the dataset's genres ({score['n_movies']} movies, {score['n_genres']} genres): "
                    f"macro ROC-AUC {score['roc_auc_macro']:.4f}, F1 macro {score['f1_macro']:.4f}; "
                    f"written to {predict_output.score_path(out)}",
                    err=True,
                )
        elif out is not None or raw_csv or scheduler is not None:
            raise MovieGenreError("--out, --raw-csv and --scheduler are for --dataset; one movie's answer is printed")
        else:
            typer.echo(
                predict_output.predict_one(
                    PATHS, poster, plot, plot_file, with_branches=branches, top=top, as_json=as_json
                )
            )
    except MovieGenreError as exc:
        _fail(exc)
    except predict_output.Terminated as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(143) from None


@app.command("verify")
def verify_command() -> None:
    """Re-hash every pipeline output against dvc.lock (which `dvc status` does not) and name what differs."""
    from moviegenre.cli.verify import verify

    try:
        checked, differences = verify(PATHS.root)
    except MovieGenreError as exc:
        _fail(exc)
    for difference in differences:
        typer.echo(f"error: {difference.line()}", err=True)
    if differences:
        raise typer.Exit(2)
    typer.echo(f"{checked} outputs match dvc.lock")


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = 8000,
    max_upload_mb: Annotated[
        float, typer.Option(help="Largest request body (poster and plot) in MB, 0.001-1000; a larger one gets 413.")
    ] = DEFAULT_MAX_UPLOAD_MB,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(help="Another Host name clients use (repeatable; '*': any). Always: --host and localhost."),
    ] = None,
    max_inflight_mb: Annotated[
        float | None,
        typer.Option(
            help="Request bodies held at once, all connections together, in MB (default: 100, or --max-upload-mb "
            "if larger); a request past it gets 503."
        ),
    ] = None,
    max_connections: Annotated[
        int, typer.Option(help="Open connections; a request on one more gets 503.")
    ] = MAX_CONNECTIONS,
) -> None:
    """Serve predictions over HTTP: POST /predict, GET /health, a page at /; the artifacts load once."""
    from moviegenre.serve.server import serve

    try:
        serve(PATHS, host, port, max_upload_mb, tuple(allowed_host or ()), max_inflight_mb, max_connections)
    except MovieGenreError as exc:
        _fail(exc)


@app.command("check-params")
def check_params_command(
    params: Annotated[Path, typer.Option(help="The params file to validate.")] = PATHS.params,
    stamp: Annotated[
        Path | None, typer.Option(help="Also write this file (the check_params stage's output) when valid.")
    ] = None,
) -> None:
    """Validate every section and key of params.yaml (what the check_params stage runs)."""
    from moviegenre.cli.check import check_params
    from moviegenre.core.files import atomic_path, check_output

    try:
        if stamp is not None:
            check_output(stamp, "--stamp", make_parents=True)
        check_params(params)
        if stamp is not None:
            with atomic_path(stamp) as tmp:
                tmp.write_text(f"{params.name}: every section and key is valid\n")
    except MovieGenreError as exc:
        _fail(exc)
    typer.echo(f"{params}: every section and key is valid", err=True)


@app.command("plots-template")
def plots_template_command(
    out: Annotated[Path, typer.Option(help="Where to write it (.dvc/config's plots.html_template).")] = Path(
        ".dvc/plots-template.html"
    ),
    node_modules: Annotated[Path, typer.Option(help="Where `npm ci` put vega, vega-lite and vega-embed.")] = Path(
        "node_modules"
    ),
) -> None:
    """Write the `dvc plots show` page template with Vega's scripts inlined (renders offline)."""
    from moviegenre.cli.plots_template import write_template
    from moviegenre.core.files import check_output

    try:
        check_output(out, "--out", make_parents=True)
        write_template(node_modules, out)
    except MovieGenreError as exc:
        _fail(exc)


if __name__ == "__main__":
    app()
