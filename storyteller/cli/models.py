"""`storyteller models`: the model library from the terminal, in the style of LM Studio's `lms`.

search TEXT · files REPO · download REPO [--quant Q | --file NAME] · list · add PATH · rm NAME · upgrade PATH
· fit PATH|REPO [--vram-gb G] [--n-ctx N] · tune PATH [--budget S] · recipe NAME [--fetch] · probe NAME
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from storyteller.cli import models_recipe
from storyteller.cli.common import UserError, add_data_dir_option, open_services
from storyteller.core.models.gguf_files import read_local_header, size_or_zero, split_parts
from storyteller.core.models.hub_models import DEFAULT_CONTEXT
from storyteller.core.models.library import Library, RepoView, human_size
from storyteller.core.models.tuning import DEFAULT_BUDGET_S, TuneRow
from storyteller.hub.catalog import ModelFiles, choose_by_quant


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="find, download and manage GGUF models",
                                   description="The model library: Hub search, downloads, local models.")
    commands = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")

    def action(name: str, help_text: str, run) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        add_data_dir_option(sub)
        sub.add_argument("--json", action="store_true", help="results as JSON lines")
        sub.set_defaults(run=run)
        return sub

    action("search", "search the Hub for GGUF repos", run_search).add_argument("text")
    action("files", "list a repo's GGUF models by quant", run_files).add_argument("repo", help="owner/name, Hub URL or catalog id")
    download = action("download", "download a GGUF model into the library", run_download)
    download.add_argument("repo", help="owner/name, Hub URL or catalog id")
    which = download.add_mutually_exclusive_group()
    which.add_argument("--quant", metavar="Q", help="e.g. Q4_K_M (q4-k-m works too); default: the catalog's choice")
    which.add_argument("--file", metavar="NAME", help="the exact file (a split GGUF by its stem or any part)")
    action("list", "list the library's models, one line each with its path", run_list)
    action("add", "add a GGUF on disk by its path (not copied)", run_add).add_argument("path")
    action("rm", "remove a model (its files too when the library downloaded it)", run_rm).add_argument("name")
    action("upgrade", "convert an old-layout MoE GGUF (per-expert tensors) in place", run_upgrade).add_argument("path")
    tune = action("tune", "try a few load settings on this machine and keep the fastest for the model's next load",
                  run_tune)
    tune.add_argument("path", help="a GGUF on disk")
    tune.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, metavar="S",
                      help=f"stop starting candidates after S seconds (default {DEFAULT_BUDGET_S:.0f})")
    fit = action("fit", "compare layer offload with MoE experts kept in RAM, for this GPU or a stated VRAM", run_fit)
    fit.add_argument("target", metavar="PATH|REPO", help="a GGUF on disk, or owner/name, Hub URL or catalog id")
    fit.add_argument("--vram-gb", type=float, metavar="G", help="free VRAM to plan for (default: this machine's)")
    fit.add_argument("--n-ctx", type=int, metavar="N", help="context (default: the catalog's practical one, else 8192)")
    fit.add_argument("--quant", metavar="Q", help="which file of a repo (default: the catalog's choice)")
    models_recipe.register(action)


@contextmanager
def _library(args) -> Iterator[Library]:
    services = open_services(args)
    try:
        yield services.library
    finally:
        services.close()


def _emit(args, row: dict, text: str) -> None:
    print(json.dumps(row) if args.json else text, flush=True)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run_search(args, parser) -> int:
    with _library(args) as library:
        for hit in library.search(args.text):
            _emit(args, hit.__dict__, f"{hit.repo_id}\t{hit.downloads} downloads\t{hit.last_modified}")
    return 0


def _resolve_repo(library: Library, repo: str) -> str:
    """A catalog id stands for its first GGUF repo."""
    entry = library.catalog.find(repo)
    if entry is not None and entry.id == repo.lower() and entry.gguf_repos:
        return entry.gguf_repos[0].repo
    return repo


def run_files(args, parser) -> int:
    with _library(args) as library:
        view = library.browse(_resolve_repo(library, args.repo))
        for model in view.models:
            parts = f" ({len(model.parts)} parts)" if model.is_split else ""
            tag = " imatrix" if model.imatrix else ""
            _emit(args, {"name": model.name, "quant": model.quant, "size": model.size, "parts": [p.path for p in model.parts],
                         "imatrix": model.imatrix},
                  f"{model.quant or '?':8}\t{human_size(model.size):>9}\t{model.name}{parts}{tag}")
    return 0


def _pick(view: RepoView, quant: str | None, file: str | None) -> ModelFiles:
    if file:
        for model in view.models:
            if file in (model.name, *(p.path for p in model.parts)):
                return model
        raise UserError(f"{view.listing.repo_id} has no GGUF {file!r} (see `storyteller models files`)")
    wanted = quant or (view.catalog.recommended_quant if view.catalog else None)
    if wanted is None:
        if len(view.models) == 1:
            return view.models[0]
        raise UserError(f"{view.listing.repo_id} has {len(view.models)} GGUF models: pick one with --quant or --file")
    try:
        model, why = choose_by_quant(view.models, wanted)
    except LookupError as exc:
        raise UserError(f"{view.listing.repo_id}: {exc}") from None
    if why:
        _say(why)
    return model


def run_download(args, parser) -> int:
    with _library(args) as library:
        repo = _resolve_repo(library, args.repo)
        view = library.browse(repo)
        model = _pick(view, args.quant, args.file)
        check = library.check_file(view.listing.repo_id, model, view.listing.commit)
        _say(f"{model.name}: {human_size(model.size)}, layout {check.layout}")
        _say(f"fit: {check.fit.summary()}")
        with tqdm(total=model.size, unit="B", unit_scale=True, desc=model.name[:40], file=sys.stderr) as bar:
            def show(progress):
                bar.n = progress.done
                bar.refresh()

            def status(text):
                bar.write(text, file=sys.stderr)

            try:
                record = library.download(view.listing.repo_id, model, view.listing.commit, on_progress=show,
                                          on_status=status, check=check)
            except KeyboardInterrupt:
                raise UserError(f"interrupted: run the same command again to resume {model.name}") from None
        _emit(args, {"name": record.name, "path": record.path}, record.path)
    return 0


def run_list(args, parser) -> int:
    with _library(args) as library:
        for record in library.list():
            h = record.header
            experts = f"{h['experts_used']}/{h['experts']} experts" if h.get("experts") else "dense"
            _emit(args, {"id": record.id, "name": record.name, "path": record.path, "source": record.source,
                         "size": record.size_bytes, **h},
                  f"{record.name}\t{h.get('architecture')}\t{record.quant or h.get('quant') or '?'}\t{experts}\t"
                  f"ctx {h.get('context_length')}\t{human_size(record.size_bytes)}\t{record.path}")
    return 0


def run_add(args, parser) -> int:
    with _library(args) as library:
        record = library.add_existing(args.path)
        _emit(args, {"id": record.id, "name": record.name, "path": record.path}, record.path)
    return 0


def run_rm(args, parser) -> int:
    with _library(args) as library:
        record = library.remove(args.name)
        _say(f"removed {record.name}" + (" and its files" if record.source == "download" else " (the file stays)"))
    return 0


def run_upgrade(args, parser) -> int:
    with _library(args) as library:
        path = library.upgrade(args.path, on_status=_say)
        _emit(args, {"path": str(path)}, str(path))
    return 0


def run_fit(args, parser) -> int:
    if args.vram_gb is not None and args.vram_gb <= 0:
        parser.error("--vram-gb must be more than 0")
    with _library(args) as library:
        path = Path(args.target).expanduser()
        if path.suffix == ".gguf" or path.exists():
            parts = split_parts(path)
            header, size, name = read_local_header(parts[0]), sum(size_or_zero(p) for p in parts), path.name
            n_ctx = args.n_ctx or DEFAULT_CONTEXT
        else:
            view = library.browse(_resolve_repo(library, args.target))
            model = _pick(view, args.quant, None)
            header, size, name = library.check_file(view.listing.repo_id, model, view.listing.commit).header, model.size or 0, model.name
            n_ctx = args.n_ctx or library.context_for(view.catalog)
        vram = int(args.vram_gb * 1e9) if args.vram_gb else None
        plans = library.offload_plans(header, size, n_ctx, vram)
    if args.json:
        print(json.dumps({"name": name, **plans.as_dict()}), flush=True)
        return 0
    print(f"{name}: {plans.vram_free / 1e9:.1f} GB of VRAM, context {n_ctx}")
    print(f"  {'plan':52} {'VRAM':>9} {'RAM':>9} {'CPU reads/token':>16}")
    for plan in (plans.layers, plans.experts):
        if plan is not None:
            mark = "*" if plan is plans.best else " "
            fits = "" if plan.fits else "  (does not fit)"
            print(f"{mark} {plan.label:52} {human_size(plan.vram_bytes):>9} {human_size(plan.ram_bytes):>9} "
                  f"{human_size(plan.cpu_bytes_per_token):>16}{fits}")
    print(f"best: {plans.best.label}: {plans.why}")
    return 0


def run_tune(args, parser) -> int:
    def show(i: int, total: int, row: TuneRow) -> None:
        _say(f"[{i + 1}/{total}] {row.name}: {_speeds(row)}")

    with _library(args) as library:
        _say(f"trying load settings, at most {args.budget:.0f} s (Ctrl-C stops)")
        result = library.tune(args.path, budget_s=args.budget, on_row=show)
    if args.json:
        for row in result.rows:
            print(json.dumps(row.as_dict()), flush=True)
        print(json.dumps({"winner": result.winner.name if result.winner else None, "seconds": result.seconds}))
        return 0
    print(f"{'candidate':28} {'prompt tok/s':>13} {'gen tok/s':>10}  status")
    for row in result.rows:
        mark = "*" if row is result.winner else " "
        prompt = f"{row.prompt_tps:.1f}" if row.prompt_tps else "-"
        gen = f"{row.gen_tps:.1f}" if row.gen_tps else "-"
        print(f"{mark}{row.name:27} {prompt:>13} {gen:>10}  {row.status}{': ' + row.message if row.message else ''}")
    if result.winner is None:
        raise UserError("no candidate ran to its end; nothing was stored")
    print(f"fastest: {result.winner.name} (stored: the next load of this model uses it)")
    return 0


def _speeds(row: TuneRow) -> str:
    if row.status != "ok":
        return row.status + (f" ({row.message})" if row.message else "")
    return f"prompt {row.prompt_tps or 0:.1f} tok/s, generation {row.gen_tps or 0:.1f} tok/s"
