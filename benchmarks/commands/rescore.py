"""Score a work dir's fine-tuned models again under other evaluation settings, side by side.

Evaluation settings (``eval_stride``, ``eval_batch_size``, ``tta``) change what a test costs
and can change its score without any training. :func:`rescore` loads every finished
fine-tuning record's selected weights, evaluates its test split once with the record's own
fine-tuning scale and once with ``overrides`` applied, timing both in the same process, and
:func:`comparison_table` pairs the two per row (same models, same test images): the mean
difference, its paired-bootstrap interval and the time ratio.
"""
from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Optional

import pandas as pd
from tqdm.auto import tqdm

from matssl_bench.engine import stages
from matssl_bench.data.sources import build_micrograph_set
from matssl_bench.report.variant_tables import add_verdicts, paired_runs, variant_run
from matssl_bench.engine.records import RecordStore
from matssl_bench.engine.runner import selection_and_metric
from matssl_bench.report.tables import metric_cfg_of

# Settings that change evaluation only: overriding anything else would need retraining.
EVALUATION_KEYS = ('eval_stride', 'eval_batch_size', 'tta', 'tta_scales')


def check_overrides(overrides: dict) -> None:
    unknown = sorted(set(overrides) - set(EVALUATION_KEYS))
    if unknown:
        raise ValueError(f'cannot rescore with {", ".join(unknown)}: only evaluation settings '
                         f'({", ".join(EVALUATION_KEYS)}) change without retraining')


def _timed_test(weights: Path, data, arch: str, scale: dict, metric_cfg: dict) -> tuple:
    start = time.perf_counter()
    metrics = stages.evaluate(weights, data, 'test', arch, scale, metric_cfg)
    return metrics, time.perf_counter() - start


def rescore(work_dir: Path, overrides: dict, records: Optional[Iterable[dict]] = None) -> list:
    """One entry per finished Table 4-5 run: its row, and the test result and seconds under
    the record's own evaluation settings (``original``) and under ``overrides``."""
    check_overrides(overrides)
    work_dir = Path(work_dir)
    records = [r for r in (records if records is not None
                           else RecordStore(work_dir).all('finetune'))
               if r.get('status') == 'finished' and not variant_run(r)]
    out = []
    for rec in tqdm(records, desc='rescoring', unit='model'):
        weights = work_dir / rec['weights']
        if not weights.is_file():
            raise FileNotFoundError(f'{weights}: selected weights of record {rec["key"]} are '
                                    'missing (the job was run elsewhere or they were deleted)')
        spec = rec['config']
        data = build_micrograph_set(spec['data'], spec['protocol'])
        _, metric_cfg = selection_and_metric(data, spec['protocol'])
        original, original_s = _timed_test(weights, data, spec['arch'], spec['scale'], metric_cfg)
        changed, changed_s = _timed_test(weights, data, spec['arch'],
                                         {**spec['scale'], **overrides}, metric_cfg)
        out.append(dict(record=rec, original=original, original_s=original_s,
                        changed=changed, changed_s=changed_s))
    return out


def comparison_table(entries: list[dict]) -> pd.DataFrame:
    """Per (set, method): mean test mIoU both ways, ``changed - original`` paired over seeds and
    test images, Holm-adjusted verdicts, and the ratio of evaluation seconds."""
    groups: dict[tuple, list] = defaultdict(list)
    for entry in entries:
        rec = entry['record']
        groups[(rec['dataset'], rec['method_label'])].append(entry)
    rows = []
    for (dataset, method), group in sorted(groups.items()):
        cfg = metric_cfg_of(group[0]['record'])
        row = dict(dataset=dataset, method=method, runs=len(group),
                   original_mIoU=sum(e['original']['mIoU'] for e in group) / len(group),
                   changed_mIoU=sum(e['changed']['mIoU'] for e in group) / len(group),
                   original_s=sum(e['original_s'] for e in group),
                   changed_s=sum(e['changed_s'] for e in group))
        row['time_ratio'] = row['changed_s'] / row['original_s']
        row.update(paired_runs([(e['changed'], e['original']) for e in group], cfg))
        rows.append(row)
    add_verdicts(rows)
    return pd.DataFrame(rows)
