"""Append-only result records: one JSON per finished run, written atomically."""
from __future__ import annotations

import logging
import math
import platform
from pathlib import Path
from typing import Any, Optional

import torch

from matssl_bench.fileio.atomic import write_json_atomic
from matssl_bench.fileio.bounded_json import JsonProblem, read_json, schema_problem

LOG = logging.getLogger(__name__)

# Keys a record must hold before it is trusted (as cached by the runner, as a row by the
# tables), per status and stage: what the runner and the tables read from it.
ROW_KEYS = ('stage', 'key', 'status', 'method_label', 'encoder_init', 'pretrain_set', 'dataset',
            'seed', 'protocol')
REQUIRED_KEYS = {
    ('finished', 'pretrain'): ('stage', 'key', 'status'),
    ('finished', 'finetune'): ROW_KEYS + ('test', 'history'),
    ('unavailable', 'pretrain'): ('stage', 'key', 'status', 'reason'),
    ('unavailable', 'finetune'): ROW_KEYS + ('reason',),
}


# Types of the fields the runner and the tables read (JSON Schema, checked by jsonschema):
# a record whose field has another type is reported and skipped or rerun, never a TypeError.
_TEXT = {'type': 'string'}
_TEXT_OR_NULL = {'type': ['string', 'null']}
_COUNTS = {'type': 'array', 'items': {'type': 'number'}}
_UNIT = {'type': 'object', 'required': ['name', 'intersection', 'union'],
         'properties': {'name': _TEXT, 'intersection': _COUNTS, 'union': _COUNTS,
                        'gt_area': _COUNTS, 'pred_area': _COUNTS,
                        'height': {'type': 'integer'}, 'width': {'type': 'integer'}}}
_RESULT = {'type': 'object', 'required': ['mIoU'],
           'properties': {'mIoU': {'type': 'number'}, 'aAcc': {'type': 'number'},
                          'convention': _TEXT, 'images': {'type': 'array', 'items': _UNIT},
                          'selected_epoch': {'type': ['integer', 'null']}},
           'patternProperties': {r'^IoU\.': {'type': 'number'}}}
_HISTORY = {'type': 'array', 'items': {'type': 'object', 'additionalProperties': {'type': 'number'}}}
RECORD_SCHEMA = {
    'type': 'object',
    'required': ['stage', 'key', 'status'],
    'properties': {
        'stage': {'enum': ['pretrain', 'finetune']}, 'key': _TEXT, 'status': _TEXT,
        'reason': _TEXT, 'method': _TEXT, 'method_label': _TEXT, 'encoder_init': _TEXT,
        'encoder_init_variant': _TEXT_OR_NULL, 'pretrain_set': _TEXT_OR_NULL,
        'dataset': _TEXT_OR_NULL, 'seed': {'type': 'integer'}, 'protocol': _TEXT_OR_NULL,
        'depends_on': _TEXT_OR_NULL, 'precision': _TEXT, 'suite': _TEXT,
        'row': {'type': 'object', 'properties': {'index': {'type': 'integer'},
                                                 'table': _TEXT, 'method': _TEXT}},
        'config': {'type': 'object'}, 'metric': {'type': ['object', 'null']},
        'dataset_meta': {'type': ['object', 'null'],
                         'properties': {'classes': {'type': 'array', 'items': _TEXT}}},
        'test': _RESULT, 'test_last': _RESULT, 'history': _HISTORY,
        'transfer': {'type': 'object', 'additionalProperties': {'type': 'object'}},
        'morphology': {'type': 'array', 'items': {'type': 'object'}},
        'predictions': _TEXT, 'weights': _TEXT,
        'encoder': _TEXT, 'world_size': {'type': 'integer'}, 'n_labelled': {'type': 'integer'},
        'weights_sha256': {'type': 'object'}, 'versions': {'type': 'object'},
    },
}
_FINETUNE = {'properties': {'dataset': _TEXT}}  # a fine-tuning record names its data set
# The runner's "finished?" check reads no per-image area: its schema stops at the image list
# (the tables, which read every area, check them with RECORD_SCHEMA), so planning thousands
# of cached jobs does not walk every number of every record.
_RESULT_SHALLOW = dict(_RESULT, properties={**_RESULT['properties'], 'images': {'type': 'array'}})
RECORD_SCHEMA_SHALLOW = dict(RECORD_SCHEMA, properties={
    **RECORD_SCHEMA['properties'], 'test': _RESULT_SHALLOW, 'test_last': _RESULT_SHALLOW})


def record_problem(record: Any, stage: str, key: Optional[str] = None,
                   per_image: bool = True) -> Optional[str]:
    """Why ``record`` cannot be trusted as a record of ``stage`` (and ``key``), or None;
    ``per_image=False`` leaves the per-image areas unchecked (the runner does not read them)."""
    if not isinstance(record, dict):
        return f'not a JSON object but {type(record).__name__}'
    problem = schema_problem(record, RECORD_SCHEMA if per_image else RECORD_SCHEMA_SHALLOW)
    if problem is None and record.get('stage') == 'finetune':
        problem = schema_problem(record, _FINETUNE)
    if problem:
        return f'wrong type at {problem}'
    status = record.get('status')
    required = REQUIRED_KEYS.get((status, stage))
    if required is None:
        return f'unknown status {status!r} for stage {stage!r}'
    missing = [k for k in required if k not in record]
    if missing:
        return f'{status} record without {", ".join(missing)}'
    if record['stage'] != stage or (key is not None and record['key'] != key):
        return (f'record of {record["stage"]} {record["key"]} stored as {stage} '
                f'{key or "?"}')
    if status == 'finished' and stage == 'finetune':
        test = record['test']
        if not isinstance(test, dict) or not isinstance(test.get('mIoU'), (int, float)):
            return 'finished record without a numeric test mIoU'
        if not math.isfinite(test['mIoU']):
            return f'finished record with test mIoU {test["mIoU"]} (not a number)'
    return None



def environment_versions() -> dict:
    """Versions that a result depends on, recorded with every result."""
    import mmengine
    import numpy
    import segmentation_models_pytorch as smp
    import torchvision

    versions = {
        'python': platform.python_version(),
        'torch': torch.__version__,
        'torchvision': torchvision.__version__,
        'mmengine': mmengine.__version__,
        'segmentation_models_pytorch': smp.__version__,
        'numpy': numpy.__version__,
    }
    for name in ('mmseg', 'mmselfsup', 'mmcv'):
        try:
            versions[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001 - a version we cannot read is recorded as such
            versions[name] = 'unavailable'
    versions['cuda'] = torch.version.cuda or 'none'
    versions['device'] = (torch.cuda.get_device_name(0) if torch.cuda.is_available()
                          else platform.processor() or platform.machine())
    return versions


class RecordStore:
    """Records under ``work_dir/records/<stage>/<key>.json``; finished records are never rewritten."""

    def __init__(self, work_dir: Path):
        self.root = Path(work_dir) / 'records'
        self._reported: set[Path] = set()

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / f'{key}.json'

    def _read(self, path: Path, stage: str, key: Optional[str], consequence: str,
              per_image: bool = True) -> Optional[dict]:
        """The record at ``path`` if it is valid; else None, with one warning line naming it."""
        try:
            record = read_json(path)  # bounded in size and depth
            problem = record_problem(record, stage, key, per_image)
        except FileNotFoundError:
            return None
        except JsonProblem as err:
            problem = f'unusable record: {err}'
        except OSError as err:
            problem = f'unreadable record ({err.strerror or type(err).__name__})'
        if problem is None:
            return record
        if path not in self._reported:
            self._reported.add(path)
            LOG.warning('warning: %s: %s; %s', path, problem, consequence)
        return None

    def get(self, stage: str, key: str) -> Optional[dict]:
        """A valid record, or None (a bad record file is reported once and treated as absent);
        its per-image areas are checked by :meth:`all`, where tables read them."""
        return self._read(self.path(stage, key), stage, key, 'treated as not run: the job runs again',
                          per_image=False)

    def finished(self, stage: str, key: str) -> Optional[dict]:
        record = self.get(stage, key)
        return record if record is not None and record.get('status') == 'finished' else None

    def put(self, stage: str, key: str, record: dict) -> Path:
        path = self.path(stage, key)
        if self.finished(stage, key) is not None:
            return path  # another worker finished it first; keep the first record
        write_json_atomic(path, record)
        return path

    def all(self, stage: str) -> list[dict]:
        folder = self.root / stage
        if not folder.is_dir():
            return []
        records = (self._read(p, stage, p.stem, 'skipped (delete it to run its job again)')
                   for p in sorted(folder.glob('*.json')))
        return [r for r in records if r is not None]
