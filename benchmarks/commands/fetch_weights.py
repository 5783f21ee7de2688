"""`tools/fetch_weights.py`: download and verify the published weight files suites name.

The suite itself never downloads; this tool is the one explicit way to fetch
torchvision's ImageNet files and NASA's MicroNet files into the torch cache
(``$TORCH_HOME/hub/checkpoints``) or ``--dir``. Each download is checked
against the sha256 its name carries (torchvision: first 8 hex digits) or a
pinned full sha256 (``weights.PINNED_SHA256``) by torch.hub's downloader,
which writes to a temporary file and moves it into place only when the hash
matches. MicroNet files have no pinned hash yet (NASA publishes none): they
are fetched only with ``--allow-unpinned``, and their sha256 is printed so it
can be pinned.
"""
from __future__ import annotations

import argparse
import sys
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from matssl_bench.models import weights
from matssl_bench.errors import BenchmarkError
from matssl_bench.fileio.atomic import make_shareable


@dataclass(frozen=True)
class WeightSource:
    name: str
    url: str
    expected: Optional[str]   # sha256 or its prefix; None: nothing pinned
    wanted_by: str            # e.g. 'paper: MatSSL'


def suite_weight_sources(suite_names: list[str]) -> list[WeightSource]:
    """Every published file the suites' methods start from (files given by path are skipped)."""
    from matssl_bench.suite.plan import expand_rows, build_method, load_suite
    from matssl_bench.plugins import load_builtin_plugins

    load_builtin_plugins()
    found: dict[str, WeightSource] = {}
    for suite_name in suite_names:
        suite = load_suite(suite_name)
        for row in expand_rows(suite):
            method = build_method(suite, row['method'])
            if method.weights_path is not None:
                continue
            sources = weights.weight_sources(method.init, suite.backbone,
                                             method.hparams.get('imagenet_weights', 'V1'),
                                             method.hparams.get('micronet_variant', 'micronet'))
            if sources:
                name, url = sources[0]  # the preferred (newest) published file
                found.setdefault(name, WeightSource(name, url, weights.expected_hash(name),
                                                    f'{suite.suite_name}: {row["method"]}'))
    return sorted(found.values(), key=lambda s: s.name)


def fetch(source: WeightSource, folder: Path, allow_unpinned: bool) -> str:
    """Download ``source`` into ``folder`` (verified) unless present; returns what was done."""
    target = folder / source.name
    if target.is_file():
        weights.check_weight_file(target, source.expected)
        return f'present  {target}'
    if source.expected is None and not allow_unpinned:
        raise BenchmarkError(f'{source.name}: no sha256 is pinned for this file, so it cannot be '
                             f'verified; download {source.url} into {folder} yourself, or pass '
                             '--allow-unpinned and pin the printed sha256 in weights.PINNED_SHA256')
    folder.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(source.url, str(target), hash_prefix=source.expected,
                                       progress=sys.stderr.isatty())
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, 'reason', err)
        raise BenchmarkError(f'cannot download {source.url} into {folder} ({reason})') from None
    except RuntimeError as err:  # torch.hub: 'invalid hash value (expected ..., got ...)'
        raise BenchmarkError(f'{source.url}: downloaded file rejected, {err}; nothing was '
                             f'written to {folder}') from None
    make_shareable(target)
    sha = weights.file_sha256(target)
    pinned = '' if source.expected else ' (unpinned: verify it and add it to PINNED_SHA256)'
    return f'fetched  {target} sha256 {sha}{pinned}'


def verify_folder(sources: list[WeightSource], folder: Path) -> tuple[list[str], list[str]]:
    """Check every weight file in ``folder`` that has an expected hash, and which of
    ``sources`` are missing; returns (report lines, problems)."""
    lines, problems = [], []
    names = {s.name: s for s in sources}
    files = sorted(p for p in folder.glob('*') if p.is_file() and
                   (p.name in names or weights.expected_hash(p.name) is not None)) \
        if folder.is_dir() else []
    for path in files:
        source = names.get(path.name)
        try:
            sha = weights.check_weight_file(path, source.expected if source else None)
            lines.append(f'ok       {path} sha256 {sha}'
                         + ('' if weights.expected_hash(path.name) else ' (no pinned hash)'))
        except weights.WeightHashError as err:
            problems.append(f'mismatch {err}')
    present = {p.name for p in files}
    for source in sources:
        if source.name not in present:
            problems.append(f'missing  {folder / source.name} (fetch {source.url})')
    return lines, problems


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog='fetch_weights.py', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--suite', action='append', help='suite name or path whose weight files to '
                   'fetch (repeatable; default: paper)')
    p.add_argument('--dir', type=Path, help='target folder (default: $TORCH_HOME/hub/checkpoints)')
    p.add_argument('--list', action='store_true', help='show what would be fetched, fetch nothing')
    p.add_argument('--verify', action='store_true',
                   help='check the files already in the folder; fetch nothing')
    p.add_argument('--allow-unpinned', action='store_true',
                   help='also download files with no pinned sha256 (MicroNet) and print their hash')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    folder = (args.dir or weights.torch_checkpoint_dir()).expanduser()
    try:
        sources = suite_weight_sources(args.suite or ['paper'])
        if args.list:
            for s in sources:
                state = 'present' if (folder / s.name).is_file() else 'missing'
                print(f'{state:8s} {folder / s.name}  {s.url}  sha256 {s.expected or "unpinned"}'
                      f'  ({s.wanted_by})')
            return 0
        if args.verify:
            lines, problems = verify_folder(sources, folder)
            print('\n'.join(lines + problems) or f'{folder}: no weight files')
            for problem in problems:
                print(f'error: {problem}', file=sys.stderr)
            return 1 if problems else 0
        failed = 0
        for source in sources:
            try:
                print(fetch(source, folder, args.allow_unpinned))
            except BenchmarkError as err:
                print(f'error: {err}', file=sys.stderr)
                failed += 1
        return 1 if failed else 0
    except (BenchmarkError, FileNotFoundError, KeyError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
