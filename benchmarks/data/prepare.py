"""Validated, converted copies of data sets (the logic behind ``tools/prepare_data.py``).

A prepared copy of one data set (one folder per variant, e.g. ``EBC1/``):

    images/<stem>.png  masks/<stem>.png  unlabeled/<stem>.png   lossless, repairs applied;
                    <stem> = the image name made file-safe + '-' + 10 hex digits of its
                    sha256, so distinct names never share a file
    splits/{train,val,test,unlabeled}.txt                       image names, one per line
    manifest.json   format, data set, options, classes, counts, 256-px patch counts,
                    pool statistics, repair warnings, file list with sha256 and sizes

Every reader accepts such a folder as its ``root``. The copy is written into a
hidden sibling folder and renamed into place at the end: a failure leaves nothing.
"""
from __future__ import annotations

import difflib
import errno
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Optional

import numpy as np

from matssl_bench.errors import DataError, MissingResourceError
from matssl_bench.data.file_sets import PREPARED_FORMAT, FileMicrographSet, safe_filename
from matssl_bench.fileio.locks import process_alive
from matssl_bench.data.image_io import write_png
from matssl_bench.data.patching import count_patches
from matssl_bench.fileio.atomic import current_umask
from matssl_bench.registry import MICROGRAPH_SETS

PATCH = 256
# The smallest patch side a shipped suite cuts (cpu, protocols-smoke: 32 px).
MIN_IMAGE_SIDE = 32
ALIASES = {'aachen': 'AachenHeerlen', 'aachen-heerlen': 'AachenHeerlen'}


def reader_class(name: str) -> type:
    """The file-based reader registered as ``name``, matched case-insensitively (``metaldam``,
    ``aachen`` too); otherwise a ``DataError`` listing the registered names."""
    import matssl_bench.datasets  # noqa: F401 - registers the readers before any lookup
    names = sorted(k for k, c in MICROGRAPH_SETS.module_dict.items()
                   if issubclass(c, FileMicrographSet))
    wanted = ALIASES.get(name.lower(), name).lower()
    for key in names:
        if key.lower() == wanted:
            return MICROGRAPH_SETS.module_dict[key]
    close = difflib.get_close_matches(name.lower(), [n.lower() for n in names], n=1)
    hint = ''.join(f'; did you mean {n}?' for n in names if close and n.lower() == close[0])
    raise DataError(f'data-set type {name!r} is not registered{hint} '
                    f'(registered: {", ".join(names)})')


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def download(cls: type, src: Path, archive_sha256: Optional[str] = None) -> None:
    """Fetch ``cls.download_url`` (a pinned archive), check its sha256 and unpack it into ``src``.

    The hash is ``cls.download_sha256`` or ``archive_sha256``; with neither, nothing is
    downloaded (an unverified archive could be anything). ``cls.download_subdir`` names
    the archive's folder that becomes ``src``. Offline, or without a direct archive, the
    error names the URL and the folder to unpack into by hand; a failure leaves no ``src``.
    """
    from torch.hub import download_url_to_file  # writes a temporary file, checks the hash

    url = cls.download_url
    by_hand = f'{cls.download_note} {src}'
    if not url or not url.endswith('.zip'):
        raise MissingResourceError(f'{url}: no direct archive to fetch; {by_hand}')
    expected = (archive_sha256 or getattr(cls, 'download_sha256', None) or '').lower()
    if not re.fullmatch(r'[0-9a-f]{64}', expected):
        raise MissingResourceError(
            f'{url}: no sha256 is pinned for this archive, so it is not downloaded unverified; '
            f'{by_hand} yourself, or pass --sha256 with the archive\'s full sha256')
    src.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f'.{src.name}.', suffix='.download', dir=src.parent))
    try:
        archive = work / 'archive.zip'
        try:
            download_url_to_file(url, str(archive), hash_prefix=expected, progress=False)
        except RuntimeError as err:  # 'invalid hash value (expected ..., got ...)'
            raise MissingResourceError(f'{url}: downloaded archive rejected, {err}; '
                                       f'nothing was written to {src}') from None
        except OSError as err:  # offline, unreachable, not found
            reason = getattr(err, 'reason', err)
            raise MissingResourceError(f'{url}: download failed ({reason}); {by_hand}') from None
        try:
            with zipfile.ZipFile(archive) as zipped:
                zipped.extractall(work / 'unpacked')
        except (OSError, zipfile.BadZipFile) as err:
            raise MissingResourceError(f'{url}: cannot unpack the archive ({err}); {by_hand}') from None
        subdir = getattr(cls, 'download_subdir', None)
        found = (sorted((work / 'unpacked').rglob(subdir)) if subdir else [work / 'unpacked'])
        if not found or not found[0].is_dir():
            raise MissingResourceError(f'{url}: the archive has no {subdir}/ folder; {by_hand}')
        os.chmod(found[0], 0o777 & ~current_umask())
        os.replace(found[0], src)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def output_stem(name: str) -> str:
    """A readable file stem plus a short hash of the original name, so that names differing
    only in characters a file name cannot keep (``a b``, ``a_b``) stay distinct."""
    return f'{safe_filename(name)}-{hashlib.sha256(name.encode()).hexdigest()[:10]}'


class _OutputNames:
    """Output stems already used; a clash (even only in letter case) is an error naming both."""

    def __init__(self, where: str):
        self.where, self.used = where, {}

    def stem(self, name: str) -> str:
        stem = output_stem(name)
        other = self.used.setdefault(stem.casefold(), name)
        if other != name:
            raise DataError(f'{self.where}: {other!r} and {name!r} would be written to the same '
                            f'file {stem}.png; rename one of them')
        return stem


def _check_splits(data: FileMicrographSet, src: Path) -> None:
    for split in ('train', 'test'):
        if split in data.splits and not data.files.get(split):
            raise DataError(f'{src}: the {split} split of {data.name} is empty; '
                            'check the folder and the split options')


def _check_size(name: str, shape, src: Path, min_size: int) -> None:
    """An image no suite can cut a patch from is refused here, not later by the run."""
    height, width = shape[:2]
    if min(height, width) < min_size:
        raise DataError(f'{src}: image {name} is {width}x{height} px, smaller than a '
                        f'{min_size}x{min_size} patch (the smallest a shipped suite cuts; '
                        '--min-size sets it): no run could cut a patch from it; remove it')


def _write_variant(data: FileMicrographSet, folder: Path, min_size: int = MIN_IMAGE_SIDE) -> dict:
    for sub in ('images', 'masks', 'unlabeled', 'splits'):
        (folder / sub).mkdir(parents=True)
    entries, sizes = {}, {}
    names = _OutputNames(str(data.root))
    for split in data.splits:
        entries[split] = []
        for item in data.labeled_split(split):
            _check_size(item.name, item.image.shape, data.root, min_size)
            stem = names.stem(item.name)
            write_png(folder / 'images' / f'{stem}.png', item.image)
            write_png(folder / 'masks' / f'{stem}.png', item.mask)
            # the mask's label values, so that plans check them without reading the mask
            entries[split].append(dict(name=item.name, image=f'images/{stem}.png',
                                       mask=f'masks/{stem}.png',
                                       label_values=np.unique(item.mask).tolist()))
            sizes[item.name] = item.image.shape[:2]
    unlabeled = []
    for record in data.unlabeled_files:
        image = data.load_image(record.image)
        _check_size(record.name, image.shape, data.root, min_size)
        stem = names.stem(record.name)
        write_png(folder / 'unlabeled' / f'{stem}.png', image)
        unlabeled.append(dict(name=record.name, image=f'unlabeled/{stem}.png'))
    for split, items in list(entries.items()) + [('unlabeled', unlabeled)]:
        (folder / 'splits' / f'{split}.txt').write_text(''.join(e['name'] + '\n' for e in items))

    pool = data.unlabeled_pool(exclude=data.test_image_names())
    overlap = data.pretrain_overlap or 0.0
    patches = {split: sum(count_patches(*sizes[e['name']], PATCH) for e in items)
               for split, items in entries.items()}
    patches['pretrain_pool'] = sum(count_patches(*im.image.shape[:2], PATCH, overlap)
                                   for im in pool)
    files = sorted(p for p in folder.rglob('*') if p.is_file())
    return dict(
        format=PREPARED_FORMAT, dataset=data.name, options=data.options(),
        classes=list(data.classes), palette=[list(c) for c in data.palette],
        counts={**{s: len(v) for s, v in entries.items()}, 'unlabeled': len(unlabeled),
                'pretrain_pool': len(pool)},
        patches=dict(size=PATCH, pretrain_overlap=overlap, **patches),
        pool=data.pool_report, splits=entries, unlabeled=unlabeled,
        files={str(p.relative_to(folder)): sha256(p) for p in files},
        sizes={str(p.relative_to(folder)): p.stat().st_size for p in files})


def prepare(name: str, src, out, fetch: bool = False, options: Optional[dict] = None,
            archive_sha256: Optional[str] = None, min_size: int = MIN_IMAGE_SIDE) -> dict:
    """Prepare data set ``name`` from ``src`` into ``out``; returns {variant: manifest}.
    Images with a side under ``min_size`` px are refused."""
    cls = reader_class(name)
    src, out = Path(src), Path(out)
    if out.exists():
        raise DataError(f'{out}: already exists; remove it or choose another --out')
    if fetch and not src.is_dir():
        download(cls, src, archive_sha256)
    out.parent.mkdir(parents=True, exist_ok=True)
    clear_stale_partials(out)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{out.name}.{socket.gethostname()}-{os.getpid()}.',
                                suffix='.partial', dir=out.parent))
    os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp's 0700 would hide the copy from a team
    manifests = {}
    try:
        for sub, variant_options in cls.prepare_variants:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter('always')
                data = cls(root=src, **{**variant_options, **(options or {})})
                _check_splits(data, src / sub if sub else src)
                folder = tmp / sub if sub else tmp
                manifest = _write_variant(data, folder, min_size)
            manifest['warnings'] = sorted({str(w.message) for w in caught})
            manifest['source'] = str(src.resolve())
            (folder / 'manifest.json').write_text(json.dumps(manifest, indent=1) + '\n')
            manifests[sub or cls.__name__] = manifest
        try:
            os.replace(tmp, out)
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR):
                raise
            raise DataError(f'{out}: another prepare_data run finished it first (runs started '
                            'together for one --out); its copy is kept, this one discarded; '
                            f'check it with --verify {out}') from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifests


def clear_stale_partials(out: Path) -> list[Path]:
    """Remove hidden ``.partial`` folders that a killed run for ``out`` on this host left."""
    host = socket.gethostname()
    pattern = re.compile(rf'^\.{re.escape(out.name)}\.{re.escape(host)}-(\d+)\..*\.partial$')
    cleared = []
    for folder in out.parent.glob(f'.{out.name}.*.partial'):
        match = pattern.match(folder.name)
        if match and not process_alive(int(match.group(1))):
            shutil.rmtree(folder, ignore_errors=True)
            cleared.append(folder)
    return cleared


def verify(folder) -> list[str]:
    """Files of a prepared variant whose sha256 differs from its manifest (missing ones too)."""
    from matssl_bench.data.file_sets import inside, read_manifest

    folder = Path(folder)
    path = folder / 'manifest.json'
    manifest = read_manifest(path)
    if 'files' not in manifest:
        raise DataError(f'{path}: unusable manifest: no files list')
    files = manifest['files']
    bad = []
    for rel, digest in files.items():
        file = inside(folder, rel, path)
        if not file.is_file() or sha256(file) != digest:
            bad.append(rel)
    return bad


def verify_tree(root) -> dict[Path, list[str]]:
    """``verify`` for every prepared variant under ``root`` (the folder itself or EBC-style
    subfolders): {variant folder: files that differ}."""
    root = Path(root)
    manifests = sorted(root.glob('manifest.json')) or sorted(root.glob('*/manifest.json'))
    if not manifests:
        raise DataError(f'{root}: no manifest.json here or in its subfolders; not a prepared copy')
    return {m.parent: verify(m.parent) for m in manifests}
