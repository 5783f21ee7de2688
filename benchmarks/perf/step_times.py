"""Fills the step-time table the dry run's GPU-hours come from (``suite/cost.py``).

``record_step_times`` merges one device's measured stages (``tools/gpu_check.py --record``)
into ``benchmarks/suite/step_times.json`` (or ``MATSSL_STEP_TIMES``), keyed by device name and
architecture; entries of other devices and architectures are kept.
"""
from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Optional

from matssl_bench.fileio.atomic import write_json_atomic
from matssl_bench.suite.cost import step_times_path

KINDS = ('pretrain', 'finetune', 'infer', 'sliding_window', 'linear_probe')
NOTE = ('Seconds per sample (pretrain: per patch pair; finetune, linear_probe: per patch; '
        'infer: per patch, forward only) at `side` px, or per image megapixel '
        '(sliding_window), measured by tools/gpu_check.py --record under the paper suite\'s '
        'settings; suite/cost.py scales other patch sizes by pixel count.')


def table_entry(kind: str, stage: dict, settings: dict, measured: str) -> dict:
    entry = dict(side=stage['side'], measured=measured, by='tools/gpu_check.py')
    if kind == 'sliding_window':
        entry.update(s_per_megapixel=stage['s_per_megapixel'], stride=stage['stride'])
    else:
        entry.update(s_per_sample=stage['s_per_sample'], batch_size=stage['batch_size'])
    if stage.get('loader_headroom') is not None:  # below 1 the step waited for data
        entry['loader_headroom'] = stage['loader_headroom']
    stage_settings = 'pretrain' if kind == 'pretrain' else 'finetune'
    entry['precision'] = settings['precision'][stage_settings]
    return entry


def record_step_times(stages: dict, device: str, arch: str, settings: dict,
                      path: Optional[Path] = None) -> Path:
    """Write the measured ``stages`` (gpu_check's JSON) for ``device``/``arch``; returns the path."""
    path = Path(path or step_times_path())
    table = json.loads(path.read_text()) if path.is_file() else {}
    measured = datetime.date.today().isoformat()
    devices = table.setdefault('devices', {})
    entries = devices.setdefault(device, {}).setdefault(arch, {})
    for kind in KINDS:
        if kind in stages:
            entries[kind] = table_entry(kind, stages[kind], settings, measured)
    table['note'] = NOTE
    write_json_atomic(path, table)
    return path
