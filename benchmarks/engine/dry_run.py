"""`--dry-run`: what each job of a plan would do, and everything it lacks, before compute is spent.

Each job is ``cached`` (a finished record exists in the work dir), ``ready``,
``blocked`` (its pretraining job cannot run), ``unavailable`` (it lacks a
resource: a data folder, a weight file) or ``invalid`` (its data is there but
unusable: a mask value its set does not declare, a split naming a missing image,
images smaller than the patch). Missing resources and data problems are found by
calling the same lookups the run uses (data-set readers, ``weights.py``); every
mask's label values are read once (``label_check``). Each missing resource is
reported once, with its path, the command that provides it and its source
address. The cost of a job counts its patches from the data when present
(pretraining: every image of each source before test-image exclusion and
de-duplication), else from typical sizes (``cost.TYPICAL_DATA``).
"""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Optional

from mmengine.config import Config

from matssl_bench.data.label_check import LabelValueCache, label_problems
from matssl_bench.data.sources import build_micrograph_set
from matssl_bench.errors import BenchmarkError, MissingResourceError
from matssl_bench.data.image_io import image_size
from matssl_bench.registry import MICROGRAPH_SETS
from matssl_bench.suite import cost
from matssl_bench.suite.cost import (job_cost, job_work, patch_count, source_overlap,
                                     typical_sizes, typical_split_sizes)
from matssl_bench.suite.plan import Job, build_method
from matssl_bench.engine.records import RecordStore
from matssl_bench.suite.job_key import canonical_json
from matssl_bench.models.weights import (find_imagenet_weights, find_micronet_weights,
                                         weight_dirs, weight_sources)

SPLITS = ('train', 'val', 'test')
STATUSES = ('cached', 'ready', 'blocked', 'unavailable', 'invalid')
WIDTH = 120
LABEL_CACHE = Path('cache') / 'mask_label_values.json'  # under the work dir


def weight_problem(method, arch: str, suite_arg: str = '<suite>') -> Optional[dict]:
    """The weight file a method's encoder would fail to find, as a missing resource, or None."""
    folder = method.hparams.get('weights_dir')
    variant = method.hparams.get('imagenet_weights', 'V1')
    micronet = method.hparams.get('micronet_variant', 'micronet')
    try:
        if method.init == 'imagenet':
            find_imagenet_weights(arch, method.weights_path, folder, variant)
        elif method.init == 'micronet':
            find_micronet_weights(arch, micronet, method.weights_path, folder)
    except BenchmarkError as err:
        sources = weight_sources(method.init, arch, variant, micronet)
        name, url = sources[0] if sources else (None, None)
        path = method.weights_path or (weight_dirs(folder)[0] / name if name else None)
        fix = (f'python tools/fetch_weights.py --suite {suite_arg}' if method.weights_path is None
               else f'put the file at {path} (weights_path)')
        return dict(kind='weights', path=str(path), fix=fix, url=url, message=str(err))
    return None


def data_problem(cfg: dict, err: BenchmarkError) -> dict:
    """A data set that cannot be built: ``missing`` (no folder: prepare it) or ``invalid``
    (present but inconsistent: fix the files)."""
    message = str(err)
    path = message.split(': ', 1)[0] if ': ' in message else str(cfg.get('root', ''))
    if not isinstance(err, MissingResourceError):
        return dict(kind='data-error', path=path, message=message)
    cls = MICROGRAPH_SETS.get(cfg['type'])
    url = getattr(cls, 'download_url', None)
    root = cfg.get('root', path)
    fix = f'python tools/prepare_data.py {cfg["type"]} --src <public copy> --out {root}'
    if cfg['type'] == 'Folder':
        fix = f'put your images/ and masks/ folders under {root} (docs/own-data.md)'
    if url and url.endswith('.zip'):
        fix = (f'python tools/prepare_data.py {cfg["type"]} --src {root}-src --out {root} '
               '--download --sha256 HEX')
    return dict(kind='data', path=str(root), fix=fix, url=url, message=message)


class _DataProbe:
    """Builds each data-set config once; remembers its split sizes, or the problem it gave,
    and (for fine-tuning sets) the masks holding undeclared label values."""

    def __init__(self, labels: LabelValueCache):
        self.labels = labels
        self._cache: dict[str, tuple] = {}

    def probe(self, cfg: dict, protocol: Optional[str], check_labels: bool = False
              ) -> tuple[Optional[dict], Optional[dict], list[str]]:
        """(sizes or None, problem or None, label problems)."""
        key = canonical_json([cfg, protocol, check_labels])
        if key not in self._cache:
            try:
                data = build_micrograph_set(cfg, protocol)
                sizes = _sizes(data)
                bad = label_problems(data, self.labels) if check_labels else []
                self._cache[key] = (sizes, None, bad)
            except BenchmarkError as err:
                self._cache[key] = (None, data_problem(cfg, err), [])
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


def _too_small(what: str, sizes: list, scale: dict, stage: str) -> dict:
    """The problem of a job whose images (as the stage resizes them) give no patch."""
    if stage == 'finetune' and scale.get('resize'):
        sizes = [(scale['resize'], scale['resize'])]
    elif scale.get('rescale'):
        sizes = [(round(h * scale['rescale']), round(w * scale['rescale'])) for h, w in sizes]
    h, w = max(s[0] for s in sizes), max(s[1] for s in sizes)
    return dict(kind='data-error', path=what, message=(
        f'{what}: images at most {w}x{h} px, below the {scale["patch_size"]} px patch size '
        f'(scale.{stage}.patch_size): no patch'))


def inspect_plan(suite: Config, jobs: list[Job], work_dir: Path,
                 suite_arg: Optional[str] = None, read_records: bool = True) -> list[dict]:
    """One dict per job: its summary plus status, blocked_by, missing, counts and cost.

    ``read_records=False`` (the check before a run) leaves the records to the runner, which
    reports a damaged one itself; no job is then ``cached``."""
    suite_arg = suite_arg or suite.suite_name
    store = RecordStore(work_dir) if read_records else None
    labels = LabelValueCache(Path(work_dir) / LABEL_CACHE)
    probe = _DataProbe(labels)
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
            problem = weight_problem(method, job.spec['arch'], suite_arg)
            if problem:
                missing.append(problem)
        if job.stage == 'pretrain':
            patches, counted, images = _pretrain_patches(job, probe, scale, missing)
            # sources compared without their pool-only overlap setting
            sources = {canonical_json({k: v for k, v in c.items() if k != 'overlap'})
                       for c in job.spec['sources']}
            for cfg in job.spec['exclude_test_images_of']:
                if canonical_json(cfg) in sources:
                    continue
                _, problem, _ = probe.probe(cfg, None)
                if problem:
                    name = set_names.get(canonical_json(cfg), cfg.get('type'))
                    missing.append(dict(problem, exclusion_of=name))
            if counted and images and patches == 0:
                missing.append(_too_small(f'pretraining set {job.pretrain_set}', images, scale,
                                          'pretrain'))
        else:
            sizes, problem, bad_masks = probe.probe(job.spec['data'], job.spec['protocol'],
                                                    check_labels=True)
            for split in SPLITS:
                entry[f'{split}_images'] = len(sizes[split]) if sizes and split in sizes else None
            if problem:
                missing.append(problem)
            missing += [dict(kind='data-error', path=m.split(': ', 1)[0], message=m)
                        for m in bad_masks]
            counted = sizes is not None
            train = sizes['train'] if counted else typical_sizes(job.spec['data'], 'finetune')
            patches = patch_count(train, scale['patch_size'], 0.0, scale.get('resize'),
                                  scale.get('rescale'))
            if counted and train and patches == 0:
                missing.append(_too_small(f'fine-tuning set {job.dataset}', train, scale,
                                          'finetune'))
        entry.update(patches=patches, patches_counted=counted,
                     est_cost=round(job_cost(job.stage, job.spec['arch'], scale, patches), 3))
        # in the units of the measured step times (suite/cost.py: GPU-hours)
        entry['work'] = job_work(job.stage, job.spec['arch'], scale, patches,
                                 job.spec.get('protocol'),
                                 None if job.stage == 'pretrain' else sizes or typical_split_sizes(
                                     job.spec['data'], job.spec['protocol']))
        parent = entries.get(job.depends_on) if job.depends_on else None
        if store is not None and store.finished(job.stage, job.key) is not None:
            entry['status'] = 'cached'
        elif any(m['kind'] == 'data-error' for m in missing):
            entry['status'] = 'invalid'
        elif missing:
            entry['status'] = 'unavailable'
        elif job.depends_on and (parent is None or parent['status'] in
                                 ('unavailable', 'blocked', 'invalid')):
            entry['status'] = 'blocked'
            entry['blocked_by'] = job.depends_on
        entries[job.key] = entry
        out.append(entry)
    labels.save()
    return out


def _pretrain_patches(job: Job, probe: _DataProbe, scale: dict, missing: list
                      ) -> tuple[int, bool, list]:
    total, counted, everything = 0, True, []
    for cfg in job.spec['sources']:
        reader_cfg = {k: v for k, v in cfg.items() if k != 'overlap'}
        sizes, problem, _ = probe.probe(reader_cfg, None)
        overlap = source_overlap(cfg, scale.get('overlap', 0.0))
        if problem:
            missing.append(problem)
            counted = False
            images = typical_sizes(cfg, 'pretrain')
        else:
            images = [hw for split_sizes in sizes.values() for hw in split_sizes]
            everything += images
        total += patch_count(images, scale['patch_size'], overlap, None, scale.get('rescale'))
    return total, counted, everything


def plan_report(entries: list[dict], data_root: Optional[str] = None) -> dict:
    """The dry run as one object: ``jobs``, ``missing`` (each resource once), ``invalid``
    (data problems, one per file or set), ``totals`` and the suite's ``data_root``."""
    missing: dict[str, dict] = {}
    invalid: dict[str, dict] = {}
    for e in entries:
        for m in e['missing']:
            target = invalid if m['kind'] == 'data-error' else missing
            ident = m['message'] if m['kind'] == 'data-error' else f'{m["kind"]}:{m["path"]}'
            item = target.setdefault(ident, dict(
                {k: v for k, v in m.items() if k != 'exclusion_of'}, jobs=0, excluded_from_pools=[]))
            item['jobs'] += 1
            # fine-tuning sets whose test images this data is needed to keep out of pools
            if m.get('exclusion_of') and m['exclusion_of'] not in item['excluded_from_pools']:
                item['excluded_from_pools'].append(m['exclusion_of'])
    by_status = {s: {stage: sum(e['status'] == s and e['stage'] == stage for e in entries)
                     for stage in ('pretrain', 'finetune')} for s in STATUSES}
    totals = dict(
        jobs=len(entries),
        status={s: sum(v.values()) for s, v in by_status.items()},
        status_by_stage=by_status,
        est_cost=round(sum(e['est_cost'] for e in entries), 3),
        est_cost_by_stage={stage: round(sum(e['est_cost'] for e in entries
                                            if e['stage'] == stage), 3)
                           for stage in ('pretrain', 'finetune')},
    )
    totals.update(cost.plan_gpu_hours(entries))  # gpu_hours (None where not measured), source
    return dict(jobs=entries, missing=list(missing.values()), invalid=list(invalid.values()),
                totals=totals, data_root=data_root)


def _wrap(text: str, indent: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent + '  ',
                         break_long_words=False, break_on_hyphens=False) or [indent]


def format_text(report: dict) -> str:
    """The plan for people: counts per status, one line per row (no hashes), then each
    missing resource once with what to run, then the data problems."""
    totals, entries = report['totals'], report['jobs']
    n_pre = sum(e['stage'] == 'pretrain' for e in entries)
    lines = [f'{totals["jobs"]} jobs ({n_pre} pretraining, {totals["jobs"] - n_pre} fine-tuning): '
             + ', '.join(f'{n} {s}' for s, n in totals['status'].items() if n)]
    cost_total = totals['est_cost'] or 1.0
    pre = totals['est_cost_by_stage']['pretrain']
    hours = totals.get('gpu_hours')
    lines.append(f'cost {totals["est_cost"]:,.0f} TFLOP of training steps (U-Net++ decoder '
                 f'included); pretraining {100 * pre / cost_total:.0f} %'
                 + (f'; about {hours:,.1f} GPU hours' if hours is not None else
                    '; GPU hours not measured for this device'))
    lines.append(f'  {"status":12s} {"method":20s} {"pretraining":22s} {"fine-tuning":12s} '
                 f'{"seed":>4s} {"images":>10s} {"patches":>8s} {"cost %":>6s}')
    for e in entries:
        if e['stage'] == 'finetune':
            images = '/'.join('-' if e[f'{s}_images'] is None else str(e[f'{s}_images'])
                              for s in SPLITS)
        else:
            images = ''
        patches = f'{e["patches"]}{"" if e["patches_counted"] else "~"}'
        mark = ' *' if e.get('overrides') else ''
        lines.append(f'  {e["status"]:12s} {e["method"][:20]:20s} {(e["pretrain_set"] or "-")[:22]:22s} '
                     f'{(e["dataset"] or "(pool)")[:12]:12s} {e["seed"]:>4d} {images:>10s} '
                     f'{patches:>8s} {100 * e["est_cost"] / cost_total:>6.1f}{mark}')
    overridden = {tuple(e['overrides']) for e in entries if e.get('overrides')}
    if overridden:
        lines.append('* settings differ from the suite file:')
        for changes in sorted(overridden):
            lines += _wrap('; '.join(changes), '    ')
    if report['missing']:
        lines.append(f'missing ({len(report["missing"])}); the jobs needing them are unavailable:')
        for m in report['missing']:
            why = (f'; test images of {", ".join(m["excluded_from_pools"])} excluded from pools'
                   if m['excluded_from_pools'] else '')
            lines += _wrap(f'- {m["kind"]} {m["path"]} ({m["jobs"]} job(s){why})', '  ')
            lines += _wrap(f'run: {m["fix"]}', '    ')
            if m.get('url'):
                lines += _wrap(f'from: {m["url"]}', '    ')
        if report.get('data_root') and any(m['kind'] == 'data' for m in report['missing']):
            lines += _wrap(f'(data folders are read under {report["data_root"]}: the built-in '
                           'suites take it from MATSSL_DATA, default ./data)', '  ')
    if report['invalid']:
        lines.append(f'data to fix before running ({len(report["invalid"])}):')
        for m in report['invalid']:  # one line per file, as a compiler's errors
            lines.append(f'  - {m["message"]}')
    return '\n'.join(lines)


def blocking_problems(report: dict) -> list[str]:
    """The data problems that stop a run (and make ``--dry-run`` exit 2), one line each."""
    return [m['message'] for m in report['invalid']]
