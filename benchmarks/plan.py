"""Suites are data; this module expands one into the job graph the runner executes.

A suite config (``benchmarks/suites/*.py``, mmengine Config syntax) names
data sets, methods, rows and a scale. Each row and seed becomes one
fine-tuning job, which depends on at most one pretraining job; pretraining
jobs are shared by every row that uses the same method, set and seed.
"""
from __future__ import annotations

import copy
import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from mmengine.config import Config

from .method_api import PretrainingMethod
from .precision import check_precision
from .protocols import check_finetune_settings, label_draws
from .records import config_key
from .registry import METHODS

SUITES_DIR = Path(__file__).parent / 'suites'
ARCH_COST = dict(resnet18=1.0, resnet34=2.0, resnet50=2.3, resnet101=4.4, resnet152=6.5)


@dataclass
class Job:
    stage: str                      # 'pretrain' or 'finetune'
    key: str
    method: str
    pretrain_set: Optional[str]
    dataset: Optional[str]
    seed: int
    spec: dict
    depends_on: Optional[str] = None
    row: dict = field(default_factory=dict)
    est_cost: float = 0.0

    def summary(self) -> dict:
        return dict(stage=self.stage, key=self.key, method=self.method,
                    pretrain_set=self.pretrain_set, dataset=self.dataset, seed=self.seed,
                    depends_on=self.depends_on, est_cost=round(self.est_cost, 3))


def available_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob('*.py') if not p.stem.startswith('_'))


def load_suite(name_or_path: str) -> Config:
    path = Path(name_or_path)
    if not path.suffix:
        path = SUITES_DIR / f'{name_or_path}.py'
    if not path.is_file():
        raise FileNotFoundError(f'suite {name_or_path!r} not found; built-in suites: '
                                f'{", ".join(available_suites())}')
    cfg = Config.fromfile(str(path))
    cfg.suite_name = cfg.get('suite_name', path.stem)
    return cfg


def build_method(suite: Config, name: str) -> PretrainingMethod:
    """Instantiate a registered method with the suite's settings on top of its defaults."""
    cls = METHODS.get(name)
    if cls is None:
        raise KeyError(f'method {name!r} is not registered; registered: '
                       f'{", ".join(sorted(METHODS.module_dict))}')
    kwargs = copy.deepcopy(dict(suite.get('method_cfg', {}).get(name, {})))
    if cls.needs_pretraining and 'ssl_init' in suite:
        kwargs.setdefault('init', suite.ssl_init)
    return cls(**kwargs)


def _expand_rows(suite: Config) -> list[dict]:
    rows = []
    for row in suite.rows:
        pattern = row['method']  # a name, or a glob such as '*' (every registered method)
        names = ([n for n in sorted(METHODS.module_dict) if fnmatch.fnmatch(n, pattern)]
                 if any(c in pattern for c in '*?[') else [pattern])
        for name in names:
            rows.append({**row, 'method': name})
    return rows


def _selected(value: Optional[str], patterns: Optional[Iterable[str]]) -> bool:
    return not patterns or any(fnmatch.fnmatch(str(value), p) for p in patterns)


def _cost(arch: str, scale: dict) -> float:
    """A rough relative cost: epochs x pixels per patch x backbone factor (smoke fine-tune ~ 1)."""
    return (scale['epochs'] * (scale['patch_size'] / 64) ** 2 * ARCH_COST.get(arch, 2.0)
            / 4.0)


def expand(suite: Config, seeds: Optional[list[int]] = None, methods=None, datasets=None,
           rows=None) -> list[Job]:
    """Jobs of ``suite`` in execution order (each pretraining job before its first user).

    ``methods``/``datasets`` are glob patterns on method names and fine-tuning
    set names; ``rows`` are indices into the expanded row list.
    """
    seeds = list(seeds if seeds is not None else suite.get('seeds', [0]))
    arch = suite.backbone
    scale = suite.scale
    check_precision(scale['pretrain'].get('precision'), f'suite {suite.suite_name}: pretraining')
    test_sets = sorted(suite.finetune_sets)
    jobs: list[Job] = []
    pretrain_jobs: dict[str, Job] = {}
    for index, row in enumerate(_expand_rows(suite)):
        if rows is not None and index not in rows:
            continue
        if not (_selected(row['method'], methods) and _selected(row['finetune'], datasets)):
            continue
        method = build_method(suite, row['method'])
        finetune_cfg = suite.finetune_sets[row['finetune']]
        finetune_scale = {**scale['finetune'],
                          **suite.get('finetune_scale', {}).get(row['finetune'], {}),
                          **row.get('scale', {})}  # a row's own settings (protocols, tricks)
        where = f'suite {suite.suite_name}: fine-tuning on {row["finetune"]}'
        check_precision(finetune_scale.get('precision'), where)
        check_finetune_settings(finetune_scale, where)
        # protocol fields enter the spec (the job key) only where a suite sets them
        extra = {}
        if row.get('transfer', suite.get('transfer')):
            extra['transfer_targets'] = {name: suite.finetune_sets[name] for name in test_sets
                                         if name != row['finetune']}
        if suite.get('morphology', {}).get(row['finetune']):  # classes whose regions to count
            extra['morphology_classes'] = list(suite.morphology[row['finetune']])
        if 'trick' in row:  # a trick row is its own run, its baseline too
            extra['trick'] = row['trick']
        draws = label_draws(row.get('label_efficiency', suite.get('label_efficiency')), where)
        for seed, labels in ((s, l) for l in draws for s in seeds):
            pretrain_key = None
            pretrain_set = None
            if method.needs_pretraining:
                pretrain_set = row['pretrain']
                spec = dict(method=method.config(), pretrain_set=pretrain_set,
                            sources=suite.pretrain_sets[pretrain_set],
                            exclude_test_images_of=[suite.finetune_sets[n] for n in test_sets],
                            arch=arch, scale=scale['pretrain'], seed=seed)
                pretrain_key = config_key(spec)
                if pretrain_key not in pretrain_jobs:
                    job = Job('pretrain', pretrain_key, row['method'], pretrain_set, None, seed,
                              spec, est_cost=_cost(arch, scale['pretrain']) * 2)
                    pretrain_jobs[pretrain_key] = job
                    jobs.append(job)
            spec = dict(method=method.config(), pretrain_key=pretrain_key,
                        finetune_set=row['finetune'], data=finetune_cfg, arch=arch,
                        scale=finetune_scale, protocol=suite.protocol, seed=seed, **extra)
            if labels is not None:
                spec['labels'] = labels
            jobs.append(Job('finetune', config_key(spec), row['method'], pretrain_set,
                            row['finetune'], seed, spec, depends_on=pretrain_key,
                            row=dict(row, index=index),
                            est_cost=_cost(arch, finetune_scale)))
    return jobs
