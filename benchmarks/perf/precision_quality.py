"""bf16 against float32 fine-tuning at equal everything else: the paired quality comparison.

    python benchmarks/perf/precision_quality.py --fp32 work_dirs/cpu --bf16 work_dirs/bf16ft \\
        --out results/perf/precision_quality

Pairs the finished fine-tuning records of two work dirs (or results folders with
``records.jsonl.gz``) by fine-tuning set, method and seed: the same seeds, the same encoders
and the same test images, one side fine-tuned in float32 and the other under bf16 autocast.
Per (set, method) it reports ``bf16 - fp32`` in mIoU points with the suite's paired estimate
(replicates crossed with a resample of the shared test images; docs/statistics.md), Holm-
adjusted across the table, and the ratio of fine-tuning wall times. A ``worse`` verdict is a
resolved loss: bf16 fine-tuning is then not at equal results.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

if __name__ == '__main__':  # run as a file: keep benchmarks/ itself off the import path
    _here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if str(Path(p or '.').resolve()) != _here]

import pandas as pd  # noqa: E402

from matssl_bench.fileio.atomic import atomic_write, write_json_atomic  # noqa: E402
from matssl_bench.perf.measure import machine_info  # noqa: E402
from matssl_bench.report.build import load_records  # noqa: E402
from matssl_bench.report.figures import run_devices  # noqa: E402
from matssl_bench.report.tables import metric_cfg_of  # noqa: E402
from matssl_bench.report.variant_tables import add_verdicts, paired_runs  # noqa: E402


def finished_runs(records: list[dict], precision: str) -> dict[tuple, dict]:
    """Finished fine-tuning records that ran at ``precision``, by (set, method, seed)."""
    runs = {}
    for rec in records:
        if (rec.get('stage') == 'finetune' and rec.get('status') == 'finished'
                and rec.get('precision') == precision and rec.get('test')):
            runs[(rec['dataset'], rec['method_label'], rec['seed'])] = rec
    return runs


def comparison(fp32_records: list[dict], bf16_records: list[dict]) -> pd.DataFrame:
    """One row per (set, method) run both ways: means, paired ``bf16 - fp32`` and time ratio."""
    fp32 = finished_runs(fp32_records, 'fp32')
    bf16 = finished_runs(bf16_records, 'bf16')
    groups: dict[tuple, list] = defaultdict(list)
    for key in sorted(fp32.keys() & bf16.keys()):
        groups[key[:2]].append((bf16[key], fp32[key]))
    if not groups:
        raise SystemExit('no (set, method, seed) was fine-tuned both in fp32 and in bf16 in '
                         'the two folders given')
    rows = []
    for (dataset, method), pairs in groups.items():
        row = dict(dataset=dataset, method=method, seeds=','.join(str(b['seed']) for b, _ in pairs),
                   fp32_mIoU=sum(f['test']['mIoU'] for _, f in pairs) / len(pairs),
                   bf16_mIoU=sum(b['test']['mIoU'] for b, _ in pairs) / len(pairs),
                   time_ratio=(sum(f['wall_time_s'] for _, f in pairs)
                               / sum(b['wall_time_s'] for b, _ in pairs)))
        row.update(paired_runs([(b['test'], f['test']) for b, f in pairs],
                               metric_cfg_of(pairs[0][1])))
        rows.append(row)
    add_verdicts(rows)
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--fp32', type=Path, required=True, help='work dir with fp32 runs')
    parser.add_argument('--bf16', type=Path, required=True, help='work dir with bf16 runs')
    parser.add_argument('--out', type=Path, required=True, help='output stem (.csv/.md/.json)')
    args = parser.parse_args(argv)
    fp32_records, bf16_records = load_records(args.fp32), load_records(args.bf16)
    table = comparison(fp32_records, bf16_records)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    resolved_loss = bool((table['verdict'] == 'worse').any())
    atomic_write(args.out.with_suffix('.csv'),
                 lambda tmp: table.to_csv(tmp, index=False, float_format='%.4f'))
    atomic_write(args.out.with_suffix('.md'),
                 lambda tmp: tmp.write_text(table.to_markdown(index=False, floatfmt='.2f') + '\n'))
    write_json_atomic(args.out.with_suffix('.json'), dict(
        devices=run_devices(r for r in (*fp32_records, *bf16_records)
                            if r.get('stage') == 'finetune'),
        host=machine_info(),
        rows=json.loads(table.to_json(orient='records')),
        resolved_loss=resolved_loss,
        reading=('bf16 - fp32 in mIoU points; time_ratio = fp32 / bf16 fine-tuning wall time; '
                 'verdict Holm-adjusted across the rows')))
    print(table.to_markdown(index=False, floatfmt='.2f'))
    print(f'resolved loss under bf16: {"yes" if resolved_loss else "none"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
