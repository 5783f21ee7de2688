"""One configuration per table row: which records a table averages over seeds.

A *slot* is a row of a suite and one seed (fine-tuning set, method, pretraining set, trick,
encoder mode, label draw, protocol, table, seed): what a job fills. A record's *configuration*
is its job spec without the seed (the pretraining key replaced by the pretraining record's
spec without its seed, so that seeds on different pretraining runs share it). Records of one
row may carry several configurations (a re-run with ``--cfg-options``, an edited plugin):
they are never averaged as seeds. The current plan (``plan`` in ``suite.json``, the job key
of every slot the runner last planned) decides which configuration a row shows; without a
plan, the configuration with the most seeds. With ``all_records`` every configuration is
its own row, labelled by the settings in which it differs from the row's others.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Optional

from matssl_bench.suite.job_key import canonical_json


def slot(rec: dict, with_seed: bool = True) -> str:
    """The row (and seed) a record or job fills, as a string."""
    row = rec.get('row') or {}
    config = rec.get('config') or {}
    parts = [row.get('table', 'table4'), rec.get('dataset'), rec.get('method'),
             rec.get('pretrain_set'), row.get('trick'),
             (config.get('scale') or {}).get('encoder_mode', 'full'), config.get('labels'),
             rec.get('protocol', config.get('protocol'))]
    if with_seed:
        parts.append(rec.get('seed'))
    return canonical_json(parts)


def job_slot(job) -> str:
    """:func:`slot` of a planned :class:`~matssl_bench.suite.plan.Job`."""
    return slot(dict(row=job.row, config=job.spec, dataset=job.dataset, method=job.method,
                     pretrain_set=job.pretrain_set, seed=job.seed,
                     protocol=job.spec.get('protocol')))


def configuration(rec: dict, pretrain_specs: dict) -> dict:
    """The record's job spec without seeds (the pretraining run's spec in place of its key)."""
    config = {k: v for k, v in (rec.get('config') or {}).items() if k != 'seed'}
    key = config.pop('pretrain_key', None)
    if key is not None:
        spec = pretrain_specs.get(key)
        config['pretraining'] = ({k: v for k, v in spec.items() if k != 'seed'}
                                 if spec is not None else key)
    return config


def _flatten(value, prefix: str = '') -> dict:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_flatten(v, f'{prefix}{k}.'))
        return out
    return {prefix[:-1]: canonical_json(value)}


def differing_label(config: dict, others: list[dict]) -> str:
    """``key=value`` of the settings in which ``config`` differs from any of ``others``."""
    mine = _flatten(config)
    theirs = [_flatten(o) for o in others]
    keys = sorted({k for t in theirs for k in set(t) | set(mine) if t.get(k) != mine.get(k)})
    return ', '.join(f'{k}={mine.get(k, "-")}' for k in keys)


@dataclass
class Selection:
    records: list[dict]  # the records tables use ('config_label', 'config_current' where labelled)
    ignored: list[dict] = field(default_factory=list)

    def note(self) -> str:
        if not self.ignored:
            return ''
        n = len(self.ignored)
        return (f'{n} record{"s" if n != 1 else ""} of other configurations ignored; '
                '--all-records to tabulate them as separate rows')


def select(records: Iterable[dict], plan: Optional[Iterable[str]] = None,
           all_records: bool = False) -> Selection:
    """The records of one configuration per row (pretraining records pass through)."""
    records = list(records)
    pretrain_specs = {r['key']: r.get('config') or {} for r in records
                      if r.get('stage') == 'pretrain'}
    plan = set(plan) if plan is not None else None
    by_row: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    configs = {}
    kept = [r for r in records if r.get('stage') != 'finetune']
    for rec in records:
        if rec.get('stage') != 'finetune':
            continue
        config = configuration(rec, pretrain_specs)
        fingerprint = canonical_json(config)
        configs[fingerprint] = config
        by_row[slot(rec, with_seed=False)][fingerprint].append(rec)
    ignored = []
    for row, by_config in by_row.items():
        planned = [f for f, recs in by_config.items()
                   if plan and any(r.get('key') in plan for r in recs)]
        current = planned or [max(sorted(by_config), key=lambda f: len(by_config[f]))]
        chosen = list(by_config) if all_records else current
        for fingerprint, recs in by_config.items():
            if fingerprint not in chosen:
                ignored += recs
                continue
            if len(chosen) > 1:  # --all-records: labelled, the current one marked
                label = differing_label(configs[fingerprint],
                                        [configs[f] for f in by_config if f != fingerprint])
                recs = [dict(r, config_label=label, config_current=fingerprint in current)
                        for r in recs]
            kept += recs
    return Selection(kept, ignored)
