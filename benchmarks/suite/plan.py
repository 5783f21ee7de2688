"""Suites are data; this module expands one into the job graph the runner executes.

A suite config (``benchmarks/suites/*.py``, mmengine Config syntax) names
data sets, methods, rows and a scale. Each row and seed becomes one
fine-tuning job, which depends on at most one pretraining job; pretraining
jobs are shared by every row that uses the same method, set and seed.
"""
from __future__ import annotations

import copy
import fnmatch
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from mmengine.config import Config

from matssl_bench.suite.code_digest import method_code_digest, pipeline_code_digest
from matssl_bench.data.sources import manifest_hashes, pool_label, protected_splits, source_label
from matssl_bench.errors import ConfigError
from matssl_bench.method_api import PretrainingMethod
from matssl_bench.plugins import import_user_plugin
from matssl_bench.suite.precision import check_precision
from matssl_bench.suite.variants import check_finetune_settings, label_draws
from matssl_bench.suite.cost import estimated_cost
from matssl_bench.suite.job_key import config_key
from matssl_bench.suite.runtime import Runtime, current_runtime
from matssl_bench.registry import METHODS
from matssl_bench.suite.schema import (apply_defaults, resolve_method_names, unregistered_method_error,
                           validate_suite)

SUITES_DIR = Path(__file__).resolve().parent.parent / 'suites'


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
    # the key without the runtime facts (threads, device, world size, versions): names the
    # same job on a machine that plans it, e.g. a Slurm login node, and the node that runs it
    plan_id: str = ''

    def summary(self) -> dict:
        return dict(stage=self.stage, key=self.key, plan_id=self.plan_id, method=self.method,
                    pretrain_set=self.pretrain_set, dataset=self.dataset, seed=self.seed,
                    depends_on=self.depends_on, est_cost=round(self.est_cost, 3),
                    overrides=list(self.row.get('overrides', [])))


def available_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob('*.py') if not p.stem.startswith('_'))


def load_suite(name_or_path: str, cfg_options: Optional[dict] = None) -> Config:
    """A built-in suite by name or a suite file by path, with ``cfg_options``
    (``{'scale.finetune.epochs': 3}``, as ``--cfg-options``) merged in, validated."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SUITES_DIR / f'{name_or_path}.py'
    if not path.is_file():
        raise ConfigError(f'suite {name_or_path!r} not found: no file {path}; built-in suites: '
                          f'{", ".join(available_suites())}, or give the path of a suite file')
    if path.suffix != '.py':
        # mmengine reads YAML with its unsafe loader (!!python/object/apply runs code); a suite
        # is Python code, like a plugin, and says so by its suffix (README "Safety")
        raise ConfigError(f'{path}: suites are Python files (*.py), which are code like '
                          f'plugins; {path.suffix or "this"} suites are not loaded')
    try:
        cfg = Config.fromfile(str(path))
    except Exception as err:  # noqa: BLE001 - syntax and name errors of the user's file
        raise ConfigError(f'{path}: cannot read suite file ({type(err).__name__}: '
                          f'{" ".join(str(err).split())})') from err
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
        cfg.cli_overrides = {k: v for k, v in cfg_options.items()}  # shown on the rows they change
    import_suite_plugins(cfg, path)
    cfg.suite_name = cfg.get('suite_name', path.stem)
    validate_suite(cfg, f'suite {path}')
    apply_defaults(cfg)
    return cfg


def import_suite_plugins(suite: Config, path: Path) -> None:
    """Import the suite's ``plugins``: dotted module names, or .py paths relative to the
    suite file, so that its methods and readers register before the suite is checked."""
    plugins = suite.get('plugins', [])
    if not isinstance(plugins, (list, tuple)) or not all(isinstance(p, str) for p in plugins):
        raise ConfigError(f'suite {path}: plugins must be a list of module names or .py paths, '
                          f'got {plugins!r}')
    for i, plugin in enumerate(plugins):
        if plugin.endswith('.py'):
            plugin = str((path.parent / plugin).resolve())
        import_user_plugin(plugin, f'suite {path}: plugins[{i}]')


def build_method(suite: Config, name: str) -> PretrainingMethod:
    """Instantiate a registered method with the suite's settings on top of its defaults."""
    cls = METHODS.get(name)
    if cls is None:
        raise unregistered_method_error(f'suite {suite.suite_name}', name)
    kwargs = copy.deepcopy(dict(suite.get('method_cfg', {}).get(name, {})))
    if cls.needs_pretraining and 'ssl_init' in suite:
        kwargs.setdefault('init', suite.ssl_init)
    return cls(**kwargs)


def expand_rows(suite: Config) -> list[dict]:
    rows = []
    for i, row in enumerate(suite.rows):
        # a name, or a glob such as '*' (every registered method)
        for name in resolve_method_names(row['method'], f'suite {suite.suite_name}: rows[{i}]'):
            rows.append({'table': suite.get('table', 'table4'), **row, 'method': name,
                         'suite_row': i})
    return rows


@dataclass
class Pool:
    """A pretraining set as a run uses it: its label follows its real sources once a
    ``--cfg-options`` or ``--pretrain-sets`` changed them."""
    label: str
    sources: list
    changes: list = field(default_factory=list)   # why it differs from the suite file


def pool_patterns_valid(suite: Config) -> list[str]:
    """What ``--pretrain-sets`` patterns may match: pool names and their sources' names."""
    names = list(suite.pretrain_sets)
    names += [source_label(c) for s in suite.pretrain_sets.values() for c in s]
    return list(dict.fromkeys(names))


def select_pools(suite: Config, patterns: Optional[Iterable[str]] = None) -> dict[str, Pool]:
    """The pretraining sets a run uses, by suite name. Without ``patterns``: all. A pattern
    matching a pool's name selects it whole; otherwise a pool keeps only its sources whose
    name matches (``--pretrain-sets MetalDAM`` turns Aachen+UHCS+MetalDAM into MetalDAM),
    and a pool left without a source is not run, nor are its rows."""
    pools = {}
    for name, sources in suite.pretrain_sets.items():
        sources = list(sources)
        edits = [k for k in suite.get('cli_overrides', {})
                 if k.split('.')[:2] == ['pretrain_sets', name]]
        changes = [_setting(k, suite.cli_overrides[k]) for k in edits]
        # a source replaced, or its type, folder or subset changed: other images
        renamed = any(len(k.split('.')) <= 3 or k.rsplit('.', 1)[-1] in _SOURCE_IDENTITY
                      for k in edits)
        if patterns and not any(fnmatch.fnmatch(name, p) for p in patterns):
            kept = [c for c in sources if any(fnmatch.fnmatch(source_label(c), p) for p in patterns)]
            if not kept:
                continue
            if len(kept) < len(sources):
                changes.append(f'--pretrain-sets: {name} -> {pool_label(kept)}')
                renamed = True
            sources = kept
        label = pool_label(sources) if renamed else name
        pools[name] = Pool(label, sources, changes)
    return pools


# Keys of a pool source whose change makes it another source (the pool is renamed).
_SOURCE_IDENTITY = {'type', 'root', 'subset', 'source'}

# Suite keys whose --cfg-options change no row's result (or show in a table column).
_NOT_ROW_SETTINGS = {'description', 'notes', 'quoted', 'suite_name', 'seeds', 'pretrain_seeds',
                     'baseline', 'data_root', 'table', 'cli_overrides'}


def row_overrides(suite: Config, row: dict, pool: Optional[Pool]) -> list[str]:
    """The ``--cfg-options`` (``key=value``) and pool changes behind a row's result."""
    out = []
    for key, value in suite.get('cli_overrides', {}).items():
        top, _, rest = key.partition('.')
        part = rest.split('.', 1)[0]
        applies = {'pretrain_sets': pool is not None and part == row.get('pretrain'),
                   'finetune_sets': part == row['finetune'],
                   'finetune_scale': part == row['finetune'],
                   'method_cfg': part == row['method'],
                   'rows': part == str(row.get('suite_row')),
                   'scale': part != 'pretrain' or pool is not None,
                   }.get(top, top not in _NOT_ROW_SETTINGS)
        if applies and top != 'pretrain_sets':  # those are the pool's changes
            out.append(_setting(key, value))
    return out + (pool.changes if pool is not None else [])


def _setting(key: str, value) -> str:
    text = value if isinstance(value, str) else repr(value)
    return f'{key}={text if len(text) <= 40 else text[:37] + "..."}'


def _selected(value: Optional[str], patterns: Optional[Iterable[str]]) -> bool:
    return not patterns or any(fnmatch.fnmatch(str(value), p) for p in patterns)


def pretraining_seed(suite: Config, seeds: list[int], seed: int) -> int:
    """The SSL seed behind fine-tuning ``seed``: itself, or with ``pretrain_seeds`` set the
    one at the seed's position in ``seeds``, cycling (``[0]``: one encoder for all seeds)."""
    shared = suite.get('pretrain_seeds')
    if not shared:
        return seed
    return list(shared)[seeds.index(seed) % len(shared)]


def plan_identity(spec: dict, parent_id: Optional[str] = None) -> str:
    """A job's key without the runtime facts of the planning process (its own and, through
    ``pretrain_key``, its encoder's): equal wherever the suite and options are equal."""
    return config_key(dict({k: v for k, v in spec.items() if k not in ('runtime', 'pretrain_key')},
                           pretrain=parent_id))


def deterministic_flag(suite: Config, scale: dict) -> bool:
    """mmengine's deterministic switch of a stage: its scale's, else the suite's, else on."""
    return bool(scale.get('deterministic', suite.get('deterministic', True)))


def _effective_scale(scale: dict, runtime: Runtime) -> dict:
    """A stage's scale as it runs: ``--threads`` also sets the data-loader workers, whose
    count decides which worker draws which random augmentation."""
    return scale if runtime.loader_workers is None else dict(scale, num_workers=runtime.loader_workers)


def expand(suite: Config, seeds: Optional[list[int]] = None, methods=None, datasets=None,
           rows=None, pretrain_sets=None, runtime: Optional[Runtime] = None) -> list[Job]:
    """Jobs of ``suite`` in execution order (each pretraining job before its first user).

    ``methods``/``datasets`` are glob patterns on method names and fine-tuning
    set names, ``pretrain_sets`` on pretraining sets or their sources (:func:`select_pools`);
    ``rows`` are indices into the expanded row list. Pools leave out the test images of
    the selected fine-tuning sets (all, without ``datasets``). ``runtime`` (default: this
    process's) holds the threads, world size, device and library versions that enter
    every job key (``benchmarks/suite/runtime.py``).
    """
    runtime = runtime or current_runtime()
    chosen_seeds = seeds  # --seeds: every row runs these
    seeds = list(seeds if seeds is not None else suite.get('seeds', [0]))
    arch = suite.backbone
    scale = dict(suite.scale, pretrain=_effective_scale(suite.scale['pretrain'], runtime))
    check_precision(scale['pretrain'].get('precision'), f'suite {suite.suite_name}: pretraining')
    test_sets = sorted(suite.finetune_sets)
    # leakage control for what runs: the test images of every selected fine-tuning set
    excluded_names = [n for n in test_sets if _selected(n, datasets)]
    pools = select_pools(suite, pretrain_sets)
    finetune_keys: set[str] = set()
    digests: dict[tuple, str] = {}  # one pipeline digest per set of reader types per plan

    def pipeline_digest(reader_types) -> str:
        types = tuple(sorted(set(reader_types)))
        if types not in digests:
            digests[types] = pipeline_code_digest(types)
        return digests[types]

    manifests: dict[str, dict] = {}  # each data config's manifest is hashed once per plan

    def manifests_of(cfgs: list) -> dict:
        label = json.dumps(cfgs, sort_keys=True, default=str)
        if label not in manifests:
            manifests[label] = manifest_hashes(cfgs)
        return dict(manifests[label])

    method_codes: dict[type, str] = {}

    jobs: list[Job] = []
    pretrain_jobs: dict[str, Job] = {}
    for index, row in enumerate(expand_rows(suite)):
        if rows is not None and index not in rows:
            continue
        if not (_selected(row['method'], methods) and _selected(row['finetune'], datasets)):
            continue
        pool = None
        if row.get('pretrain') is not None and METHODS.get(row['method']) is not None \
                and METHODS.get(row['method']).needs_pretraining:
            pool = pools.get(row['pretrain'])
            if pool is None:  # its pretraining set is not selected
                continue
        method = build_method(suite, row['method'])
        row = dict(row)
        overrides = row_overrides(suite, row, pool if method.needs_pretraining else None)
        if overrides:
            row['overrides'] = overrides
        # the code defining the method: editing its plugin reruns its jobs
        if type(method) not in method_codes:
            method_codes[type(method)] = method_code_digest(type(method))
        code = method_codes[type(method)]
        finetune_cfg = suite.finetune_sets[row['finetune']]
        finetune_scale = _effective_scale({
            **scale['finetune'], **suite.get('finetune_scale', {}).get(row['finetune'], {}),
            **row.get('scale', {})}, runtime)  # a row's own settings (variants, tricks)
        where = f'suite {suite.suite_name}: fine-tuning on {row["finetune"]}'
        check_precision(finetune_scale.get('precision'), where)
        check_finetune_settings(finetune_scale, where)
        # variant fields enter the spec (the job key) only where a suite sets them
        extra = {}
        if row.get('transfer', suite.get('transfer')):
            extra['transfer_targets'] = {name: suite.finetune_sets[name] for name in test_sets
                                         if name != row['finetune']}
            extra['transfer_scores_unseen_only'] = True  # target images the source saw: out
        if suite.get('morphology', {}).get(row['finetune']):  # classes whose regions to count
            extra['morphology_classes'] = list(suite.morphology[row['finetune']])
        if 'trick' in row:  # a trick row is its own run, its baseline too
            extra['trick'] = row['trick']
        # sha256 of the weight files the method starts from: replacing a file reruns its jobs
        weights = method.weights_sha256(arch)
        provenance = dict(weights_sha256=weights) if weights else {}
        draws = label_draws(row.get('label_efficiency', suite.get('label_efficiency')), where)
        row_seeds = list(row.get('seeds') or seeds) if chosen_seeds is None else seeds
        for seed, labels in ((s, l) for l in draws for s in row_seeds):
            pretrain_seed = pretraining_seed(suite, row_seeds, seed)
            pretrain_key = None
            pretrain_set = None
            if method.needs_pretraining:
                pool = pools[row['pretrain']]
                pretrain_set = pool.label
                excluded_sets = [suite.finetune_sets[n] for n in excluded_names]
                spec = dict(method=method.config(), pretrain_set=pretrain_set,
                            sources=pool.sources,
                            exclude_test_images_of=excluded_sets,
                            exclude_splits=list(protected_splits(suite.protocol)),
                            duplicate_threshold=suite.get('duplicate_threshold', 0.95),
                            data_manifests=manifests_of(list(pool.sources) + excluded_sets),
                            method_code=code, arch=arch, scale=scale['pretrain'],
                            seed=pretrain_seed, **provenance,
                            pipeline_code=pipeline_digest(
                                [c['type'] for c in [*pool.sources,
                                                     *excluded_sets]]),
                            runtime=runtime.key_part(
                                scale['pretrain'], deterministic_flag(suite, scale['pretrain']),
                                'pretrain'))
                pretrain_key = config_key(spec)
                if pretrain_key not in pretrain_jobs:
                    job = Job('pretrain', pretrain_key, row['method'], pretrain_set, None,
                              pretrain_seed, spec, plan_id=plan_identity(spec),
                              row=dict(overrides=pool.changes) if pool.changes else {},
                              est_cost=estimated_cost('pretrain', arch, scale['pretrain'],
                                                      list(spec['sources'])))
                    pretrain_jobs[pretrain_key] = job
                    jobs.append(job)
            spec = dict(method=method.config(), pretrain_key=pretrain_key,
                        finetune_set=row['finetune'], data=finetune_cfg, arch=arch,
                        scale=finetune_scale, protocol=suite.protocol, seed=seed,
                        data_manifests=manifests_of(
                            [finetune_cfg, *extra.get('transfer_targets', {}).values()]),
                        method_code=code,
                        pipeline_code=pipeline_digest(
                            [c['type'] for c in [finetune_cfg,
                                                 *extra.get('transfer_targets', {}).values()]]),
                        runtime=runtime.key_part(finetune_scale,
                                                 deterministic_flag(suite, finetune_scale),
                                                 'finetune'),
                        **provenance, **extra)
            if labels is not None:
                spec['labels'] = labels
            key = config_key(spec)
            if key in finetune_keys:  # two rows made one by a narrowed pool
                continue
            finetune_keys.add(key)
            parent_id = pretrain_jobs[pretrain_key].plan_id if pretrain_key else None
            jobs.append(Job('finetune', key, row['method'], pretrain_set,
                            row['finetune'], seed, spec, depends_on=pretrain_key,
                            plan_id=plan_identity(spec, parent_id),
                            row=dict(row, index=index),
                            est_cost=estimated_cost('finetune', arch, finetune_scale,
                                                    [finetune_cfg])))
    return jobs
