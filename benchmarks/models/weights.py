"""Published encoder weights found on disk and verified, never downloaded behind the user's back.

Two families: torchvision's supervised ImageNet ResNets and NASA's MicroNet
ResNets (pretrained-microscopy-models). A file is looked for under its
published name in ``weights_dir``, ``$MATSSL_WEIGHTS`` (when set) and then in
the torch cache ``$TORCH_HOME/hub/checkpoints``; a missing file is a
MissingResourceError naming the file, its URL and the folder to put it in.

Provenance: torchvision's ImageNet files are different models per variant
(``V1`` = ``IMAGENET1K_V1``, e.g. ``resnet50-0676ba61.pth``; ``V2`` =
``IMAGENET1K_V2``, ``resnet50-11ad3fa6.pth``; ``legacy`` = the pre-0.13 URL,
``resnet50-19c8e357.pth``, which the MatSSL authors' code loaded). A method
gets exactly the variant it names (default ``V1``), never another as a
fallback. Every file is checked against the sha256 its name carries
(torchvision's first 8 hex digits) or a pinned full sha256
(:data:`PINNED_SHA256`); a mismatch is a :class:`WeightHashError` naming the
file and both hashes. Hashes are cached per (path, size, mtime) in-process, so
a 100 MB file is hashed once per run, not once per job.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Optional, Sequence

import torch
import torchvision

from matssl_bench.errors import MissingResourceError

WEIGHTS_ENV = 'MATSSL_WEIGHTS'
MICRONET_URL = 'https://nasa-public-data.s3.amazonaws.com/microscopy_segmentation_models/'
MICRONET_VARIANTS = {'micronet': 'microscopynet', 'image-micronet': 'imagenet-microscopynet'}
IMAGENET_VARIANTS = ('V1', 'V2', 'legacy')
# The URLs torchvision used before 0.13 (its "legacy" weights, e.g. what smp and the
# MatSSL authors' code loaded for ResNet-50).
LEGACY_IMAGENET_URLS = {
    'resnet18': 'https://download.pytorch.org/models/resnet18-5c106cde.pth',
    'resnet34': 'https://download.pytorch.org/models/resnet34-333f7ec4.pth',
    'resnet50': 'https://download.pytorch.org/models/resnet50-19c8e357.pth',
    'resnet101': 'https://download.pytorch.org/models/resnet101-5d3b4d8f.pth',
    'resnet152': 'https://download.pytorch.org/models/resnet152-b121ed2d.pth',
}
# Full sha256 of files whose names carry none (file name -> sha256). NASA publishes no
# checksums for the MicroNet files and they could not be downloaded where this suite was
# written, so no MicroNet hash is pinned yet: add one here only from a file you verified.
# Without an entry a MicroNet file is loaded unverified by name (its sha256 is still
# recorded in every record and cache key), and tools/fetch_weights.py downloads it only
# with --allow-unpinned.
PINNED_SHA256: dict[str, str] = {}
# A hash in a file name: torchvision's '<name>-<first 8+ hex digits of sha256>.<ext>'.
NAME_HASH = re.compile(r'-([0-9a-f]{8,64})\.')


class WeightHashError(MissingResourceError):
    """A weight file whose content does not match the hash its name or the pin table promises."""


# -- hashing ---------------------------------------------------------------------------

_SHA256_CACHE: dict[tuple, str] = {}


def file_sha256(path: os.PathLike) -> str:
    """sha256 of a file, cached per (resolved path, size, mtime) for the life of the process."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA256_CACHE:
        digest = hashlib.sha256()
        with open(path, 'rb') as f:
            for block in iter(lambda: f.read(1 << 20), b''):
                digest.update(block)
        _SHA256_CACHE[key] = digest.hexdigest()
    return _SHA256_CACHE[key]


def expected_hash(name: str) -> Optional[str]:
    """The sha256 (or its prefix) a file of this name must have: pinned, else from the name."""
    if name in PINNED_SHA256:
        return PINNED_SHA256[name]
    match = NAME_HASH.search(name)
    return match.group(1) if match else None


def check_weight_file(path: os.PathLike, expected: Optional[str] = None) -> str:
    """The file's sha256, after checking it against ``expected`` (default: :func:`expected_hash`)."""
    path = Path(path)
    expected = expected or expected_hash(path.name)
    actual = file_sha256(path)
    if expected and not actual.startswith(expected.lower()):
        raise WeightHashError(f'{path}: content does not match its expected sha256 '
                              f'(expected {expected}..., actual {actual}); the file is '
                              'corrupt or not the published one: delete it and download it again')
    return actual


# -- finding files ---------------------------------------------------------------------

def torch_checkpoint_dir() -> Path:
    """The standard torch cache folder for weights: ``$TORCH_HOME/hub/checkpoints``."""
    return Path(torch.hub.get_dir()) / 'checkpoints'


def weight_dirs(folder: Optional[os.PathLike] = None) -> list[Path]:
    """Folders searched for weight files, in order: ``folder``, ``$MATSSL_WEIGHTS``, the torch cache."""
    dirs = [Path(folder).expanduser()] if folder else []
    if os.environ.get(WEIGHTS_ENV):
        dirs.append(Path(os.environ[WEIGHTS_ENV]).expanduser())
    dirs.append(torch_checkpoint_dir())
    return dirs


def find_weight_file(what: str, names: Sequence[str], urls: Sequence[str],
                     path: Optional[os.PathLike] = None,
                     folder: Optional[os.PathLike] = None) -> Path:
    """``path`` if given, else the first of ``names`` found in :func:`weight_dirs`."""
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise MissingResourceError(f'{what}: {path} does not exist')
        return path
    dirs = weight_dirs(folder)
    for d in dirs:
        for name in names:
            if (d / name).is_file():
                return d / name
    target = dirs[0] / names[0]
    raise MissingResourceError(
        f'{what} not found: download {urls[0]} and place it at {target} '
        f'(searched {", ".join(map(str, dirs))} for {", ".join(names)}; or run '
        f'tools/fetch_weights.py, or pass weights_path=...)')


def imagenet_weight_url(arch: str, variant: str = 'V1') -> str:
    """The published URL of torchvision's ImageNet ``variant`` (V1, V2 or legacy) for ``arch``."""
    if variant not in IMAGENET_VARIANTS:
        raise ValueError(f'imagenet_weights must be one of {", ".join(IMAGENET_VARIANTS)}, '
                         f'got {variant!r}')
    if variant == 'legacy':
        if arch not in LEGACY_IMAGENET_URLS:
            raise ValueError(f'no legacy torchvision ImageNet weights for {arch}')
        return LEGACY_IMAGENET_URLS[arch]
    enums = {w.name: w.url for w in torchvision.models.get_model_weights(arch)}
    if f'IMAGENET1K_{variant}' not in enums:
        raise ValueError(f'torchvision publishes no ImageNet {variant} weights for {arch} '
                         f'(it has {", ".join(sorted(enums))})')
    return enums[f'IMAGENET1K_{variant}']


def imagenet_weight_urls(arch: str) -> list[str]:
    """Every published ImageNet file of ``arch`` (V1, V2 where it exists, legacy)."""
    urls = []
    for variant in IMAGENET_VARIANTS:
        try:
            urls.append(imagenet_weight_url(arch, variant))
        except ValueError:
            pass
    return urls


def imagenet_variant_of(name: str) -> Optional[tuple[str, str]]:
    """(arch, variant) of a published torchvision ImageNet file name, else None."""
    for arch in LEGACY_IMAGENET_URLS:
        for variant in IMAGENET_VARIANTS:
            try:
                if imagenet_weight_url(arch, variant).rsplit('/', 1)[-1] == name:
                    return arch, variant
            except ValueError:
                continue
    return None


def find_imagenet_weights(arch: str, path: Optional[os.PathLike] = None,
                          folder: Optional[os.PathLike] = None, variant: str = 'V1') -> Path:
    url = imagenet_weight_url(arch, variant)
    name = url.rsplit('/', 1)[-1]
    if path is not None:
        known = imagenet_variant_of(Path(path).name)
        if known is not None and known != (arch, variant):
            raise MissingResourceError(
                f'{path}: this is torchvision\'s ImageNet {known[1]} file for {known[0]}, but '
                f'{arch} {variant} was asked for ({name}); set imagenet_weights={known[1]!r} '
                'to use it')
    return find_weight_file(f'ImageNet {variant} weights for {arch}', [name], [url], path, folder)


def micronet_file_names(arch: str, variant: str = 'micronet') -> list[str]:
    """Published MicroNet file names for ``arch``, preferred first.

    As pretrained-microscopy-models names them: ``<arch>_pretrained_<set>_v<version>.pth.tar``
    with set ``microscopynet`` (variant ``micronet``) or ``imagenet-microscopynet``
    (``image-micronet``); only ResNet-50 MicroNet has version 1.1.
    """
    if variant not in MICRONET_VARIANTS:
        raise ValueError(f'MicroNet variant must be one of {sorted(MICRONET_VARIANTS)}, got {variant!r}')
    versions = ('1.1', '1.0') if (arch, variant) == ('resnet50', 'micronet') else ('1.0',)
    return [f'{arch}_pretrained_{MICRONET_VARIANTS[variant]}_v{v}.pth.tar' for v in versions]


def find_micronet_weights(arch: str, variant: str = 'micronet', path: Optional[os.PathLike] = None,
                          folder: Optional[os.PathLike] = None) -> Path:
    names = micronet_file_names(arch, variant)
    return find_weight_file(f'MicroNet ({variant}) weights for {arch}', names,
                            [MICRONET_URL + n for n in names], path, folder)


def find_init_weights(init: str, arch: str, path=None, folder=None, imagenet_variant: str = 'V1',
                      micronet_variant: str = 'micronet') -> Optional[Path]:
    """The weight file an ``init`` ('imagenet', 'micronet', 'random') starts from (None: random)."""
    if init == 'imagenet':
        return find_imagenet_weights(arch, path, folder, imagenet_variant)
    if init == 'micronet':
        return find_micronet_weights(arch, micronet_variant, path, folder)
    return None


def weight_sources(init: str, arch: str, imagenet_variant: str = 'V1',
                   micronet_variant: str = 'micronet') -> list[tuple[str, str]]:
    """(file name, URL) of the published files an ``init`` accepts, preferred first."""
    if init == 'imagenet':
        url = imagenet_weight_url(arch, imagenet_variant)
        return [(url.rsplit('/', 1)[-1], url)]
    if init == 'micronet':
        return [(n, MICRONET_URL + n) for n in micronet_file_names(arch, micronet_variant)]
    return []


def init_label(init: str, path: Optional[os.PathLike] = None, imagenet_variant: str = 'V1',
               micronet_variant: str = 'micronet') -> str:
    """What a run starts from, for records and the tables' ``SSL init`` column.

    ``imagenet-v1``, ``imagenet-v2``, ``imagenet-legacy``, ``micronet``,
    ``image-micronet``, ``random``; a file given by ``path`` under another name than
    a published one is shown by its name, e.g. ``imagenet (my_weights.pth)``. The
    label depends on the settings only (not on which files exist), so a row keeps
    it from a missing file to a finished run.
    """
    if init == 'imagenet':
        known = imagenet_variant_of(Path(path).name) if path is not None else None
        if path is not None and known is None:
            return f'imagenet ({Path(path).name})'
        return f'imagenet-{(known[1] if known else imagenet_variant).lower()}'
    if init == 'micronet':
        if path is not None and Path(path).name not in {
                n for a in LEGACY_IMAGENET_URLS for n in micronet_file_names(a, micronet_variant)}:
            return f'{micronet_variant} ({Path(path).name})'
        return micronet_variant
    return init


# -- loading ---------------------------------------------------------------------------

def load_verified_encoder(path: Path, arch: str) -> dict[str, torch.Tensor]:
    """A torchvision-layout file's encoder (``module.`` prefix and classifier dropped), after
    checking its hash."""
    from matssl_bench.models.foreign_checkpoints import convert_file
    check_weight_file(path)
    return convert_file(path, arch, layout='torchvision').state


def load_imagenet_encoder(arch: str, path: Optional[os.PathLike] = None,
                          folder: Optional[os.PathLike] = None,
                          variant: str = 'V1') -> dict[str, torch.Tensor]:
    """The verified torchvision ImageNet encoder of ``arch`` (classifier dropped)."""
    return load_verified_encoder(find_imagenet_weights(arch, path, folder, variant), arch)


def load_micronet_encoder(arch: str, variant: str = 'micronet', path: Optional[os.PathLike] = None,
                          folder: Optional[os.PathLike] = None) -> dict[str, torch.Tensor]:
    """The MicroNet encoder of ``arch`` (a ``module.`` prefix and the classifier dropped)."""
    return load_verified_encoder(find_micronet_weights(arch, variant, path, folder), arch)
