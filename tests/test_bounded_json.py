"""Record checks: the compiled fast path agrees with jsonschema and bad data names its field."""
import copy
import json

import jsonschema
import pytest

from matssl_bench.engine.records import RECORD_SCHEMA, record_problem
from matssl_bench.fileio.bounded_json import JsonProblem, nesting_depth, read_json, schema_problem

GOOD = dict(stage='finetune', key='k1', status='finished', dataset='d', seed=1,
            metric=dict(num_classes=2), history=[{'val/mIoU': 50.0}],
            test=dict(mIoU=50.0, images=[dict(name='a', intersection=[1, 2], union=[3, 4])]))


def _broken(path, value):
    record = copy.deepcopy(GOOD)
    target = record
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return record


@pytest.mark.parametrize('record', [
    GOOD,
    _broken(['seed'], 1.5), _broken(['seed'], True), _broken(['dataset'], 3),
    _broken(['test', 'mIoU'], 'high'), _broken(['history', 0, 'val/mIoU'], 'x'),
    _broken(['test', 'images', 0, 'union', 1], 'four'), _broken(['stage'], 'other'),
])
def test_fast_path_agrees_with_jsonschema(record):
    expected_valid = jsonschema.Draft202012Validator(RECORD_SCHEMA).is_valid(record)
    assert (schema_problem(record, RECORD_SCHEMA) is None) == expected_valid


def test_problem_names_the_field():
    problem = record_problem(_broken(['test', 'images', 0, 'union', 1], 'four'), 'finetune')
    assert problem.startswith('wrong type at test.images.0.union.1:'), problem


def test_nesting_depth_counts_containers_only():
    assert nesting_depth(b'7', 3) == 0
    assert nesting_depth(b'{"a": [1, {"b": [2]}]}', 64) == 4
    assert nesting_depth(b'[[[[[]]]]]', 2) == 3  # stops once past the limit
    # brackets inside strings, escaped quotes included, are text, not nesting
    assert nesting_depth(rb'{"name": "a[[[{\"[[", "b": ["]]]"]}', 3) == 2


def test_a_deep_file_is_refused_before_parsing(tmp_path):
    path = tmp_path / 'deep.json'
    path.write_text('[' * 100_000 + ']' * 100_000)  # json.loads alone would recurse
    with pytest.raises(JsonProblem, match='nested deeper than 64 levels'):
        read_json(path)
    path.write_text(json.dumps({'list': [[1, 2]] * 1000, 'text': '[' * 500}))
    assert read_json(path)['text'] == '[' * 500


@pytest.mark.parametrize('value', [
    {'a': 'x\\"[[['}, {'a\\"': [[1]], 'b': '\\\\'}, ['\\\\', [['\\"']]], {'k': '\\\\\\"]]'},
    {'manifests': {json.dumps({'type': 'S', 'size': [32]}): None}, 'n': [[[]]]},
])
def test_nesting_depth_of_text_equals_that_of_the_parsed_value(value):
    def parsed_depth(data):
        if isinstance(data, dict):
            return 1 + max(map(parsed_depth, data.values()), default=0)
        if isinstance(data, list):
            return 1 + max(map(parsed_depth, data), default=0)
        return 0
    raw = json.dumps(value).encode()
    assert nesting_depth(raw, 64) == parsed_depth(value)
