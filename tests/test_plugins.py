"""Plugin discovery over a folder: a file removed mid-scan is skipped, a broken one named."""
import importlib
import sys
import uuid

import pytest

from matssl_bench.errors import ConfigError

PACKAGE_INIT = ('from matssl_bench.plugins import import_package_modules\n'
                'IMPORTED = import_package_modules(__name__, __path__)\n')


@pytest.fixture
def plugin_folder(tmp_path, monkeypatch):
    """A fresh package laid out like methods/ (its __init__ imports every module)."""
    name = f'plugins_{uuid.uuid4().hex[:8]}'
    folder = tmp_path / name
    folder.mkdir()
    (folder / '__init__.py').write_text(PACKAGE_INIT)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, folder
    for module in [m for m in sys.modules if m == name or m.startswith(f'{name}.')]:
        del sys.modules[module]


def test_a_file_removed_while_the_folder_is_scanned_is_skipped(plugin_folder):
    name, folder = plugin_folder
    # imported first (sorted by name): removes the next plugin after the listing was taken
    (folder / 'a_cleanup.py').write_text(
        'from pathlib import Path\n'
        'Path(__file__).with_name("b_temporary.py").unlink()\n')
    (folder / 'b_temporary.py').write_text('raise RuntimeError("must not run")\n')
    (folder / 'c_kept.py').write_text('VALUE = 3\n')
    package = importlib.import_module(name)
    assert package.IMPORTED == ['a_cleanup', 'c_kept']
    assert importlib.import_module(f'{name}.c_kept').VALUE == 3


@pytest.mark.parametrize('code,problem', [
    ('def broken(:\n', 'SyntaxError'),
    ('import no_such_package_for_matssl_tests\n',
     "ModuleNotFoundError: No module named 'no_such_package_for_matssl_tests'"),
    ('raise RuntimeError("bad\\nsetting")\n', 'RuntimeError: bad setting'),
])
def test_a_plugin_that_fails_to_import_is_one_line_naming_its_file(plugin_folder, code, problem):
    name, folder = plugin_folder
    (folder / 'good.py').write_text('VALUE = 1\n')
    (folder / 'mine.py').write_text(code)
    with pytest.raises(ConfigError) as err:
        importlib.import_module(name)
    message = str(err.value)
    assert '\n' not in message
    assert message.startswith(f'{folder / "mine.py"}: cannot import this plugin (')
    assert problem in message
