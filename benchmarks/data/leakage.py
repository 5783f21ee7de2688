"""One near-duplicate index over every image of every source a suite touches.

A pretraining pool must hold no copy of an image the suite evaluates on: the
same micrograph reaches a suite through several readers (an EBC-3 test image
inside EBC-1's folders, a UHCS labelled image among the UHCS micrographs, a
``Folder`` copy of any set), renamed and re-encoded. Names alone miss those, so
every image is fingerprinted (32x32 grey thumbnail, zero mean, unit norm: the
dot product is the correlation) and images correlating at ``threshold`` or more
form one group (transitively, union-find). A pool then

- leaves out every image named like a protected image (the fine-tuning sets'
  test images, and under ``clean`` their validation images), always;
- leaves out every member of a group holding a protected image, from any source;
- keeps each remaining group once (duplicates across and within sources).

``threshold=None`` turns near-copy matching off: only exact names are excluded
or merged. Real MetalDAM copies score >= 0.979, distinct micrographs <= 0.44.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from matssl_bench.data_api import MicrographSet, UnlabeledImage
from matssl_bench.data.file_sets import FileMicrographSet, group_duplicates
from matssl_bench.data.image_io import fingerprint

DEFAULT_THRESHOLD = 0.95


@dataclass
class IndexedImage:
    name: str
    load: Callable[[], np.ndarray]
    overlap: Optional[float] = None
    cache_key: Optional[tuple] = None

    @property
    def source(self) -> str:
        """The source part of a global image name (``EBC3/test/x`` -> ``EBC3``)."""
        return self.name.split('/', 1)[0]


@dataclass
class PoolAudit:
    """What a pool kept and left out, and why."""
    kept: list[IndexedImage]
    excluded: list[dict]                     # {"name", "matches", "score"}
    duplicates: int                          # images dropped as copies of a kept one
    groups: list[list[str]] = field(default_factory=list)  # near-duplicate groups across sources
    threshold: Optional[float] = DEFAULT_THRESHOLD

    def summary(self) -> dict:
        return dict(images=len(self.kept), excluded=self.excluded, duplicates=self.duplicates,
                    duplicate_threshold=self.threshold, cross_source_groups=self.groups)


# Fingerprints of files, keyed by reader, options, path and file state: one audit or run
# reads each file once however many pools share it.
_FINGERPRINTS: dict[tuple, np.ndarray] = {}


def set_images(data: MicrographSet, overlap: Optional[float] = None) -> list[IndexedImage]:
    """Every image of a data set (all splits and the unlabeled files), once per name."""
    overlap = overlap if overlap is not None else data.pretrain_overlap
    seen, images = set(), []
    if isinstance(data, FileMicrographSet):
        options = json.dumps(data.options(), sort_keys=True, default=str)
        records = [r for s in data.splits for r in data.files[s]] + list(data.unlabeled_files)
        for record in records:
            if record.name in seen:
                continue
            seen.add(record.name)
            stat = Path(record.image).stat()
            key = (type(data).__name__, options, data.prepared, str(record.image),
                   stat.st_mtime_ns, stat.st_size)
            images.append(IndexedImage(record.name, lambda d=data, p=record.image: d.load_image(p),
                                       overlap, key))
        return images
    items = [it for s in data.splits for it in data.labeled_split(s)] + list(data.unlabeled_pool())
    for item in items:
        if item.name not in seen:
            seen.add(item.name)
            images.append(IndexedImage(item.name, lambda im=item.image: im, overlap))
    return images


def split_images(data: MicrographSet, split: str) -> list[IndexedImage]:
    """The images of one labelled split."""
    if isinstance(data, FileMicrographSet):
        names = {r.name for r in data.files.get(split, [])}
        return [im for im in set_images(data) if im.name in names]
    return [IndexedImage(it.name, lambda im=it.image: im) for it in data.labeled_split(split)]


def image_fingerprint(image: IndexedImage) -> np.ndarray:
    if image.cache_key is not None and image.cache_key in _FINGERPRINTS:
        return _FINGERPRINTS[image.cache_key]
    value = fingerprint(image.load())
    if image.cache_key is not None:
        _FINGERPRINTS[image.cache_key] = value
    return value


def audit_pool(candidates: Sequence[IndexedImage], protected: Sequence[IndexedImage],
               threshold: Optional[float] = DEFAULT_THRESHOLD) -> PoolAudit:
    """Decide which ``candidates`` a pool keeps, given the ``protected`` images."""
    by_name: dict[str, IndexedImage] = {}
    for image in list(candidates) + list(protected):
        by_name.setdefault(image.name, image)
    index = list(by_name.values())
    protected_names = {p.name for p in protected}
    if threshold is None:
        groups = list(range(len(index)))
        fps = None
    else:
        fps = (np.stack([image_fingerprint(im) for im in index]) if index
               else np.zeros((0, 1024), np.float32))
        groups = group_duplicates(fps, threshold)
    position = {im.name: i for i, im in enumerate(index)}
    protected_in_group: dict[int, list[int]] = {}
    for name in protected_names:
        protected_in_group.setdefault(groups[position[name]], []).append(position[name])
    kept, excluded, duplicates, seen = [], [], 0, set()
    candidate_names = list(dict.fromkeys(image.name for image in candidates))
    for name in candidate_names:
        i = position[name]
        if name in protected_names:
            excluded.append(dict(name=name, matches=name, score=1.0))
        elif groups[i] in protected_in_group:
            members = protected_in_group[groups[i]]
            scores = [float(fps[i] @ fps[j]) for j in members]
            best = int(np.argmax(scores))
            excluded.append(dict(name=name, matches=index[members[best]].name,
                                 score=round(scores[best], 4)))
        elif groups[i] in seen:
            duplicates += 1
        else:
            seen.add(groups[i])
            kept.append(by_name[name])
    members: dict[int, list[str]] = {}
    for im, g in zip(index, groups):
        members.setdefault(g, []).append(im.name)
    cross = [sorted(names) for names in members.values()
             if len({n.split('/', 1)[0] for n in names}) > 1]
    return PoolAudit(kept, excluded, duplicates, sorted(cross), threshold)


def materialise(audit: PoolAudit) -> list[UnlabeledImage]:
    """The kept images, loaded (the audit itself holds fingerprints only)."""
    return [UnlabeledImage(im.name, im.load(), overlap=im.overlap) for im in audit.kept]


def table_note(pretraining_records: Sequence[dict]) -> str:
    """A table's note when some pool was built without near-copy exclusion."""
    off = sorted({r.get('pretrain_set') or '?' for r in pretraining_records
                  if r.get('status') == 'finished' and 'duplicate_threshold' in r
                  and r['duplicate_threshold'] is None})
    if not off:
        return ''
    return (f'Pretraining pools {", ".join(off)} excluded test images by name only '
            '(duplicate_threshold=None: near-copies kept)')
