"""Data sets built from suite configs, and the pretraining pools made of them.

A pool leaves out the test images of every fine-tuning set of the suite (under
``clean`` their validation images too) and every near-copy of them from any
source (one index over all sources: ``leakage.py``).
"""
from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import replace
from typing import Optional, Sequence

from matssl_bench.data import leakage
from matssl_bench.data_api import MicrographSet, UnlabeledImage
from matssl_bench.registry import MICROGRAPH_SETS


def published_trains_on_all(cfg: dict) -> bool:
    """Whether the published protocol selects this set's epoch on test, so that no
    validation part is carved off its training images (the paper's Table 2: Aachen
    1,403 train / 302 test, MetalDAM 33 / 9)."""
    cls = MICROGRAPH_SETS.get(cfg['type'])
    if cls is None or 'val_fraction' not in inspect.signature(cls.__init__).parameters:
        return False
    selection = cfg.get('selection_split', getattr(cls, 'published_selection_split', 'val'))
    return selection == 'test'


def build_micrograph_set(cfg: dict, protocol: Optional[str] = None) -> MicrographSet:
    """Build a data set; ``protocol_options`` in its config adds options per protocol.

    Under ``published``, a set whose published selection split is test trains on
    all its non-test images (``val_fraction=0``) unless its config says otherwise;
    ``clean`` keeps the reader's validation part.
    """
    cfg = dict(cfg)
    per_protocol = cfg.pop('protocol_options', {}) or {}
    cfg.update(per_protocol.get(protocol, {}))
    if protocol == 'published' and 'val_fraction' not in cfg and published_trains_on_all(cfg):
        cfg['val_fraction'] = 0.0
    return MICROGRAPH_SETS.build(cfg)


def source_label(cfg: dict) -> str:
    """A pool source's short name: its ``source`` option, an EBC subset, the reader's source
    name (``Aachen``, ``UHCS``, ``MetalDAM``) or else its type."""
    cls = MICROGRAPH_SETS.get(cfg['type'])
    return str(cfg.get('source') or cfg.get('subset') or getattr(cls, 'source', None)
               or cfg['type'])


def pool_label(sources: Sequence[dict]) -> str:
    """The name a pool's real sources give it: ``Aachen+UHCS+MetalDAM``; a source listed
    twice is named once."""
    return '+'.join(dict.fromkeys(source_label(c) for c in sources))


def build_pool(sources: Sequence[dict],
               exclude_test_images_of: Sequence[dict]) -> tuple[list[UnlabeledImage], int]:
    """The pretraining pool of ``sources`` and the number of test images left out.

    A source config may carry ``overlap`` to override its data set's pretraining overlap.
    """
    excluded: set[str] = set()
    for cfg in exclude_test_images_of:
        excluded.update(build_micrograph_set(cfg).test_image_names())
    pool: list[UnlabeledImage] = []
    for cfg in sources:
        cfg = dict(cfg)
        overlap = cfg.pop('overlap', None)
        items = build_micrograph_set(cfg).unlabeled_pool(exclude=sorted(excluded))
        pool += [replace(it, overlap=overlap) for it in items] if overlap is not None else items
    return pool, len(excluded)


def protected_splits(protocol: Optional[str]) -> tuple[str, ...]:
    """Splits of the fine-tuning sets no pretraining pool may hold a copy of."""
    return ('test', 'val') if protocol == 'clean' else ('test',)


def audit_pool(sources: Sequence[dict], exclude_images_of: Sequence[dict],
               protocol: Optional[str] = None,
               duplicate_threshold: Optional[float] = leakage.DEFAULT_THRESHOLD
               ) -> leakage.PoolAudit:
    """Which images of ``sources`` a pool keeps and which it leaves out, and why, without
    loading more than fingerprints. The protected images are the
    :func:`protected_splits` of the sets ``exclude_images_of``."""
    candidates = []
    for cfg in sources:
        cfg = dict(cfg)
        overlap = cfg.pop('overlap', None)
        candidates += leakage.set_images(build_micrograph_set(cfg), overlap)
    protected = []
    for cfg in exclude_images_of:
        data = build_micrograph_set(cfg, protocol)
        for split in protected_splits(protocol):
            if split in data.splits:
                protected += leakage.split_images(data, split)
    return leakage.audit_pool(candidates, protected, duplicate_threshold)


def build_audited_pool(sources: Sequence[dict], exclude_images_of: Sequence[dict],
                       protocol: Optional[str] = None,
                       duplicate_threshold: Optional[float] = leakage.DEFAULT_THRESHOLD
                       ) -> tuple[list[UnlabeledImage], leakage.PoolAudit]:
    """The pretraining pool (images loaded) and its audit."""
    audit = audit_pool(sources, exclude_images_of, protocol, duplicate_threshold)
    return leakage.materialise(audit), audit


def manifest_sha256(cfg: dict) -> Optional[str]:
    """sha256 of the manifest of the prepared copy a data config reads (None: a public
    layout or no copy yet); part of the job keys, so re-preparing a copy reruns its jobs."""
    cls = MICROGRAPH_SETS.get(cfg['type'])
    path = cls.manifest_file(cfg) if cls is not None else None
    if path is None or not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest_hashes(cfgs: Sequence[dict]) -> dict[str, Optional[str]]:
    """``{manifest path or data config: sha256 or None}`` for every config."""
    hashes = {}
    for cfg in cfgs:
        cls = MICROGRAPH_SETS.get(cfg['type'])
        path = cls.manifest_file(cfg) if cls is not None else None
        label = str(path) if path is not None else json.dumps(cfg, sort_keys=True, default=str)
        hashes[label] = manifest_sha256(cfg)
    return hashes


def audit_suite(suite, protocol: Optional[str] = None,
                pools_used: Optional[dict[str, Sequence[dict]]] = None,
                finetune_names: Optional[Sequence[str]] = None) -> dict:
    """Per pretraining pool of a suite: images kept, images excluded (name, matched
    protected image, similarity) and duplicates dropped; and the near-duplicate groups
    across sources over every image the suite touches. Nothing is trained.

    ``pools_used`` ({label: sources}) and ``finetune_names`` audit what a run with
    ``--pretrain-sets`` / ``--datasets`` uses (default: every pool and set of the suite)."""
    from matssl_bench.errors import BenchmarkError

    protocol = protocol or suite.get('protocol')
    threshold = suite.get('duplicate_threshold', leakage.DEFAULT_THRESHOLD)
    names = sorted(suite.finetune_sets) if finetune_names is None else sorted(finetune_names)
    finetune = [suite.finetune_sets[n] for n in names]
    used = dict(suite.pretrain_sets) if pools_used is None else dict(pools_used)
    pools = {}
    for name, sources in used.items():
        try:
            pools[name] = audit_pool(sources, finetune, protocol, threshold).summary()
            del pools[name]['cross_source_groups']
        except BenchmarkError as err:
            pools[name] = dict(images=None, excluded=None, error=str(err))
    everything, seen = [], set()
    for cfg in [c for s in used.values() for c in s] + finetune:
        key = json.dumps(cfg, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            everything.append(cfg)
    candidates, missing = [], []
    for cfg in everything:
        cfg = dict(cfg)
        cfg.pop('overlap', None)
        try:
            candidates += leakage.set_images(build_micrograph_set(cfg, protocol))
        except BenchmarkError as err:
            missing.append(str(err))
    groups = (leakage.audit_pool(candidates, [], threshold).groups
              if threshold is not None else [])
    return dict(suite=suite.get('suite_name'), protocol=protocol, finetune_sets=names,
                excluded_splits=list(protected_splits(protocol)),
                duplicate_threshold=threshold, pools=pools,
                cross_source_groups=groups, unreadable_sources=list(dict.fromkeys(missing)))
