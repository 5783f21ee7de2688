"""The README's "Add a method" example, as one file loaded with --plugin, needs no other edit.
The plugin lives in a temporary folder: no test writes into the source tree."""
import re
import uuid

import pandas as pd
import pytest

from conftest import REPO, run_cli, write_tiny_suite


@pytest.fixture
def readme_plugin(tmp_path):
    readme = (REPO / 'README.md').read_text()
    code = re.search(r'```python\n(.*?@METHODS\.register_module\(\).*?)```', readme, re.S).group(1)
    name = f'ReadmeSimCLR{uuid.uuid4().hex[:6]}'
    path = tmp_path / f'{name.lower()}.py'
    path.write_text(code.replace('class MySimCLR(', f'class {name}('))
    return name, path


@pytest.mark.slow
def test_new_method_file_appears_in_list_and_table(readme_plugin, tmp_path):
    name, path = readme_plugin
    listed = run_cli('--list', '--plugin', str(path))
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert name in listed.stdout

    suite = write_tiny_suite(tmp_path, methods=name, epochs=1)
    out = run_cli('--suite', str(suite), '--work-dir', str(tmp_path / 'work'), '--plugin', str(path))
    assert out.returncode == 0, out.stderr[-3000:]
    table = pd.read_csv(tmp_path / 'work' / 'tables' / 'table4.csv')
    assert len(table) == 1
    row = table.iloc[0]
    assert row['method'] == name and row['pretrain set'] == 'synthetic'
    assert 0.0 < row['mean'] <= 100.0


@pytest.mark.slow
def test_plugin_outside_the_repository_via_flag(tmp_path):
    plugin = tmp_path / 'my_method.py'
    plugin.write_text(
        'from matssl_bench.method_api import PretrainingMethod\n'
        'from matssl_bench.registry import METHODS\n\n'
        '@METHODS.register_module()\n'
        'class ExternalInit(PretrainingMethod):\n'
        '    """An out-of-tree method."""\n'
        '    def __init__(self, **kw):\n'
        '        super().__init__(init="random", **kw)\n')
    out = run_cli('--plugin', str(plugin), '--list')
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'ExternalInit' in out.stdout
    # nothing of it stays: a fresh interpreter lists only what the source tree registers
    assert 'ExternalInit' not in run_cli('--list', fresh_process=True).stdout
