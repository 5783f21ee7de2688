"""Plugins declared by a suite, the method-code digest on comment and code edits, and the
hint an unloaded method name gets. Everything runs at plan level (no training)."""
import argparse
import uuid

import pytest

from conftest import write_tiny_suite
from matssl_bench.commands.checks import validate_args
from matssl_bench.errors import BenchmarkError, ConfigError
from matssl_bench.suite.code_digest import normalised_source
from matssl_bench.suite.plan import expand, load_suite

PLUGIN = '''"""A method without an SSL stage, for the plan tests."""
from matssl_bench.method_api import PretrainingMethod
from matssl_bench.registry import METHODS


@METHODS.register_module()
class {name}(PretrainingMethod):
    """Random weights."""
    def __init__(self, **kw):
        super().__init__(init='random', **kw)  # the start encoder

    def encoder_state(self, arch):
        return None
'''


@pytest.fixture
def plugin_suite(tmp_path):
    """A tiny suite in its own folder whose ``plugins`` names a plugin beside it."""
    name = f'PlanPlugin{uuid.uuid4().hex[:8]}'
    folder = tmp_path / 'suite'
    folder.mkdir()
    (folder / 'plugins').mkdir()
    plugin = folder / 'plugins' / f'{name.lower()}.py'
    plugin.write_text(PLUGIN.format(name=name))
    suite = write_tiny_suite(folder, methods=name)
    suite.write_text(suite.read_text() + "plugins = ['plugins/" + plugin.name + "']\n")
    return name, plugin, suite


def _keys(suite) -> list[str]:
    return [job.key for job in expand(load_suite(str(suite)))]


def test_suite_plugins_load_relative_to_the_suite_file(plugin_suite, tmp_path, monkeypatch):
    name, _, suite = plugin_suite
    monkeypatch.chdir(tmp_path)  # paths are relative to the suite file, not the working dir
    jobs = expand(load_suite(str(suite)))
    assert [job.method for job in jobs] == [name]


def test_comment_edit_keeps_the_jobs_a_code_edit_reruns_them(plugin_suite):
    _, plugin, suite = plugin_suite
    before = _keys(suite)
    source = plugin.read_text()
    plugin.write_text(source.replace('# the start encoder', '# a reworded comment')
                      .replace('"""Random weights."""',
                               '"""Random weights, documented.\n\n    More.\n    """')
                      + '\n\n# trailing comment\n')
    assert _keys(suite) == before
    plugin.write_text(source.replace("init='random'", "init='random', weights_path=None"))
    after = _keys(suite)
    assert after != before and len(after) == len(before)


def test_normalised_source_ignores_layout_but_not_values():
    base = normalised_source(b'def f(x):\n    """Doc."""\n    return x + 1\n')
    assert normalised_source(b'def f(x):  # note\n\n    return (x\n            + 1)\n') == base
    assert normalised_source(b'def f(x):\n    return x + 2\n') != base
    assert normalised_source(b'def f(x):\n    return "x + 1"\n') != base  # strings are code
    assert normalised_source(b'def f(:\n') == b'def f(:\n'  # unparsable: its bytes


def test_missing_suite_plugin_names_the_suite_entry(tmp_path):
    suite = write_tiny_suite(tmp_path, methods='RandomInit')
    suite.write_text(suite.read_text() + "plugins = ['nowhere.py']\n")
    with pytest.raises(ConfigError, match=r'plugins\[0\] .*nowhere\.py: no such file'):
        load_suite(str(suite))


def _args(**kw):
    fields = dict(format='text', dry_run=False, seeds=None, methods=None, datasets=None,
                  rows=None)
    return argparse.Namespace(**{**fields, **kw})


def test_unknown_method_suggests_plugin(tmp_path):
    suite = load_suite(str(write_tiny_suite(tmp_path, methods='RandomInit')))
    with pytest.raises(BenchmarkError, match=r"'SwAV' matches nothing.*--plugin path/to/file\.py"):
        validate_args(_args(methods=['SwAV']), suite)
    with pytest.raises(BenchmarkError, match='registered but no row of this suite uses it'):
        validate_args(_args(methods=['MatSSL']), suite)


@pytest.mark.slow
def test_docs_byol_plugin_runs_from_the_suite_with_ema_target(tmp_path):
    """docs/methods.md's BYOL example, declared by the suite: EMA target, a table row."""
    import re
    import torch
    import pandas as pd
    from conftest import REPO, run_cli
    from matssl_bench.suite.plan import build_method

    docs = (REPO / 'docs' / 'methods.md').read_text()
    code = re.search(r'```python\n(# my_byol\.py.*?)```', docs, re.S).group(1)
    name = f'BYOL{uuid.uuid4().hex[:6]}'
    (tmp_path / 'byol.py').write_text(code.replace('class MyBYOL(', f'class {name}('))
    suite = write_tiny_suite(tmp_path, methods=name, epochs=1)
    suite.write_text(suite.read_text() + "plugins = ['byol.py']\n"
                     f"method_cfg['{name}'] = dict(hidden_dim=32, out_dim=16, momentum=0.5)\n")
    method = build_method(load_suite(str(suite)), name)
    model = method.build_model('resnet18', None).train()
    before = [p.clone() for p in model.target.parameters()]
    with torch.no_grad():
        next(model.backbone.parameters()).add_(1.0)  # as if an optimiser step moved it
    loss = model([torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)], mode='loss')['loss']
    assert torch.isfinite(loss)
    moved = next(model.target.parameters())
    assert torch.allclose(moved, 0.5 * before[0] + 0.5 * next(model.backbone.parameters()))
    assert not any(p.requires_grad for p in model.target.parameters())

    out = run_cli('--suite', str(suite), '--work-dir', str(tmp_path / 'work'), '--threads', '1')
    assert out.returncode == 0, out.stderr[-3000:]
    table = pd.read_csv(tmp_path / 'work' / 'tables' / 'table4.csv')
    assert list(table['method']) == ['my BYOL'] and 0 < table['mean'].iloc[0] <= 100
