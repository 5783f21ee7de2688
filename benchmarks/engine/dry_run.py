"""`--dry-run`: what each job of a plan would do, and everything it lacks, before compute is spent.

Each job is ``cached`` (a finished record exists in the work dir), ``ready``,
``blocked`` (its pretraining job cannot run) or ``unavailable`` (it lacks a
resource itself). Every missing resource of every job is collected, by calling
the same lookups the run uses (data-set readers, ``weights.py``) and keeping
their error messages. The cost of a job counts its patches from the data when
present (pretraining: every image of each source before test-image exclusion and
de-duplication), else from typical sizes (``cost.TYPICAL_DATA``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from mmengine.config import Config

from matssl_bench.data.sources import build_micrograph_set
from matssl_bench.errors import BenchmarkError
from matssl_bench.data.image_io import image_size
from matssl_bench.suite.cost import (job_cost, job_work, patch_count, source_overlap,
                                     typical_sizes, typical_split_sizes)
from matssl_bench.suite.plan import Job, build_method
from matssl_bench.engine.records import RecordStore
from matssl_bench.suite.job_key import canonical_json
from matssl_bench.models.weights import find_imagenet_weights, find_micronet_weights

SPLITS = ('train', 'val', 'test')


def weight_problem(method, arch: str) -> Optional[str]:
    """The message of the weight file a method's encoder would fail to find, or None."""
    folder = method.hparams.get('weights_dir')
    try:
        if method.init == 'imagenet':
            find_imagenet_weights(arch, method.weights_path, folder)
        elif method.init == 'micronet':
            find_micronet_weights(arch, method.hparams.get('micronet_variant', 'micronet'),
                                  method.weights_path, folder)
    except BenchmarkError as err:
        return str(err)
    return None


class _DataProbe:
    """Builds each data-set config once; remembers its split sizes or the error it gave."""

    def __init__(self):
        self._cache: dict[str, tuple] = {}

    def probe(self, cfg: dict, protocol: Optional[str]) -> tuple[Optional[dict], Optional[str]]:
        """({split: [(h, w), ...], 'unlabeled': [...]} or None, error message or None)."""
        key = canonical_json([cfg, protocol])
        if key not in self._cache:
            try:
                data = build_micrograph_set(cfg, protocol)
                self._cache[key] = (_sizes(data), None)
            except BenchmarkError as err:
                self._cache[key] = (None, str(err))
        return self._cache[key]


def _sizes(data) -> dict[str, list[tuple[int, int]]]:
    files = getattr(data, 'files', None)
    if files is not None:  # file-based readers: image headers only, nothing decoded
        sizes = {s: [image_size(r.image)[::-1] for r in files.get(s, [])] for s in SPLITS}
        sizes['unlabeled'] = [image_size(r.image)[::-1] for r in data.unlabeled_files]
        return sizes
    sizes = {s: [it.image.shape[:2] for it in data.labeled_split(s)]
             for s in SPLITS if s in data.splits}
    labeled = {it.name for s in sizes for it in data.labeled_split(s)}
    sizes['unlabeled'] = [it.image.shape[:2] for it in data.unlabeled_pool()
                          if it.name not in labeled]
    return sizes


def inspect_plan(suite: Config, jobs: list[Job], work_dir: Path) -> list[dict]:
    """One dict per job: its summary plus status, blocked_by, missing, counts and cost."""
    store = RecordStore(work_dir)
    probe = _DataProbe()
    methods: dict[str, object] = {}
    set_names = {canonical_json(cfg): name for name, cfg in suite.finetune_sets.items()}
    entries: dict[str, dict] = {}
    out = []
    for job in jobs:
        method = methods.setdefault(job.method, build_method(suite, job.method))
        entry = dict(job.summary(), status='ready', blocked_by=None, missing=[])
        missing = entry['missing']
        scale = job.spec['scale']
        if job.stage == 'pretrain' or job.depends_on is None:
            problem = weight_problem(method, job.spec['arch'])
            if problem:
                missing.append(dict(kind='weights', message=problem))
        if job.stage == 'pretrain':
            patches, counted = _pretrain_patches(job, probe, scale, missing)
            # sources compared without their pool-only overlap setting
            sources = {canonical_json({k: v for k, v in c.items() if k != 'overlap'})
                       for c in job.spec['sources']}
            for cfg in job.spec['exclude_test_images_of']:
                if canonical_json(cfg) in sources:
                    continue
                _, error = probe.probe(cfg, None)
                if error:
                    name = set_names.get(canonical_json(cfg), cfg.get('type'))
                    missing.append(dict(kind='data', message=error, reason=(
                        f'to exclude the test images of fine-tuning set {name} from '
                        f'pretraining set {job.pretrain_set}')))
        else:
            sizes, error = probe.probe(job.spec['data'], job.spec['protocol'])
            for split in SPLITS:
                entry[f'{split}_images'] = len(sizes[split]) if sizes and split in sizes else None
            if error:
                missing.append(dict(kind='data', message=error))
            counted = sizes is not None
            patches = (patch_count(sizes['train'], scale['patch_size'], 0.0,
                                   scale.get('resize'), scale.get('rescale'))
                       if counted else patch_count(typical_sizes(job.spec['data'], 'finetune'),
                                                   scale['patch_size'], 0.0, scale.get('resize'),
                                                   scale.get('rescale')))
        entry.update(patches=patches, patches_counted=counted,
                     est_cost=round(job_cost(job.stage, job.spec['arch'], scale, patches), 3))
        # in the units of the measured step times (suite/cost.py: GPU-hours)
        entry['work'] = job_work(job.stage, job.spec['arch'], scale, patches,
                                 job.spec.get('protocol'),
                                 None if job.stage == 'pretrain' else sizes or typical_split_sizes(
                                     job.spec['data'], job.spec['protocol']))
        parent = entries.get(job.depends_on) if job.depends_on else None
        if store.finished(job.stage, job.key) is not None:
            entry['status'] = 'cached'
        elif missing:
            entry['status'] = 'unavailable'
        elif job.depends_on and (parent is None or parent['status'] in ('unavailable', 'blocked')):
            entry['status'] = 'blocked'
            entry['blocked_by'] = job.depends_on
        entries[job.key] = entry
        out.append(entry)
    return out


def _pretrain_patches(job: Job, probe: _DataProbe, scale: dict, missing: list) -> tuple[int, bool]:
    total, counted = 0, True
    for cfg in job.spec['sources']:
        reader_cfg = {k: v for k, v in cfg.items() if k != 'overlap'}
        sizes, error = probe.probe(reader_cfg, None)
        overlap = source_overlap(cfg, scale.get('overlap', 0.0))
        if error:
            missing.append(dict(kind='data', message=error))
            counted = False
            images = typical_sizes(cfg, 'pretrain')
        else:
            images = [hw for split_sizes in sizes.values() for hw in split_sizes]
        total += patch_count(images, scale['patch_size'], overlap, None, scale.get('rescale'))
    return total, counted


def format_text(entries: list[dict]) -> str:
    """The plan as a table, then every missing resource once with the jobs that need it."""
    n_pre = sum(e['stage'] == 'pretrain' for e in entries)
    total = sum(e['est_cost'] for e in entries) or 1.0
    lines = [f'{len(entries)} jobs ({n_pre} pretraining, {len(entries) - n_pre} fine-tuning); '
             f'cost = TFLOP of training steps, U-Net++ decoder included (share of the plan)']
    for e in entries:
        counts = ''
        if e['stage'] == 'finetune':
            counts = ' images ' + '/'.join('-' if e[f'{s}_images'] is None else str(e[f'{s}_images'])
                                           for s in SPLITS)
        status = e['status'] + (f' by {e["blocked_by"]}' if e['blocked_by'] else '')
        lines.append(f'  {status:30s} {e["stage"]:9s} {e["key"]} {e["method"]:20s} '
                     f'pretrain={e["pretrain_set"] or "-":22s} finetune={e["dataset"] or "-":10s} '
                     f'seed={e["seed"]} patches={e["patches"]}{"" if e["patches_counted"] else "~"}'
                     f'{counts} cost={e["est_cost"]:.1f} ({100 * e["est_cost"] / total:.1f} %)')
    needed: dict[str, tuple[dict, dict]] = {}  # message -> (job keys, reasons), both ordered
    for e in entries:
        for m in e['missing']:
            keys, reasons = needed.setdefault(m['message'], ({}, {}))
            keys[e['key']] = None
            if m.get('reason'):
                reasons[m['reason']] = None
    if needed:
        lines.append(f'missing resources ({len(needed)}):')
        for message, (keys, reasons) in needed.items():
            why = ''.join(f'; needed {r}' for r in reasons)
            lines.append(f'  - {message}{why} [{len(keys)} job(s): {", ".join(keys)}]')
    return '\n'.join(lines)
