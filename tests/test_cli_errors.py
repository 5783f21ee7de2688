"""Every configuration mistake: exit status 2, one `error:` line naming the key or file, no traceback."""
import pytest

from conftest import SMOKE_SUITE, run_cli
from matssl_bench.commands.run_benchmark import main


def suite_file(tmp_path, old=None, new=None):
    """A user's own suite file: the text of suites/smoke.py, with ``old`` replaced."""
    text = SMOKE_SUITE.read_text()
    if old is not None:
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / 'my_suite.py'
    path.write_text(text)
    return path


def run_main(capsys, *argv):
    try:
        status = main([*argv])
    except SystemExit as exit_:  # argparse usage errors
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_error(status, err, *fragments):
    assert status == 2
    assert 'Traceback' not in err
    error_lines = [line for line in err.splitlines() if 'error:' in line]
    assert len(error_lines) == 1, err
    assert err.strip().splitlines()[-1].startswith('error: ')
    for fragment in fragments:
        assert fragment in error_lines[0], error_lines[0]
    return error_lines[0]


SUITE_MISTAKES = [
    # (text replaced in the tiny suite, by, what the error line must name)
    ('finetune=dict(epochs=', 'finetune=dict(epoch=',
     ["scale.finetune", "unknown key 'epoch'", "did you mean 'epochs'?"]),
    ('pretrain=dict(epochs=2, ', 'pretrain=dict(',
     ['scale.pretrain', "missing required key 'epochs'"]),
    ("seeds = [0]", "seed = [0]", ["unknown key 'seed'", "did you mean 'seeds'?"]),
    ("type='SyntheticMicrographs', train=12", "type='SyntheticMicrographs', sise=64, train=12",
     ['finetune_sets.synthetic', "no option 'sise'", "did you mean 'size'?"]),
    ("type='SyntheticMicrographs', train=12", "type='Synthetic', train=12",
     ["data-set type 'Synthetic' is not registered", '--plugin']),
    ("method='*'", "method='SwAV'",
     ['rows[0]', "method 'SwAV' is not registered", 'load it with --plugin']),
    ("method='*'", "method='MatSSl'", ["did you mean 'MatSSL'?"]),
    ("finetune='synthetic', method", "finetune='synth', method",
     ['rows[0]', "finetune 'synth' is not in finetune_sets"]),
    ("rows = [dict(", "rows = [dict(pretrian='synthetic', ",
     ['rows[0]', "unknown key 'pretrian'", "did you mean 'pretrain'?"]),
    ("protocol = 'clean'", "protocol = 'cleen'", ["protocol is 'cleen'", "did you mean 'clean'?"]),
]


@pytest.mark.parametrize('old,new,fragments', SUITE_MISTAKES)
def test_suite_mistakes(tmp_path, capsys, old, new, fragments):
    path = suite_file(tmp_path, old, new)
    status, out, err = run_main(capsys, '--suite', str(path), '--dry-run')
    line = assert_one_error(status, err, *fragments)
    assert str(path) in line and out == ''


def test_unknown_reader_option_is_checked_against_the_reader_signature(tmp_path, capsys):
    path = suite_file(tmp_path, "pretrain_sets = dict(synthetic=[",
                      "pretrain_sets = dict(uhcs=[dict(type='UHCS', root='x', crop_botom=0)], "
                      "synthetic=[")
    status, _, err = run_main(capsys, '--suite', str(path), '--dry-run')
    assert_one_error(status, err, 'pretrain_sets.uhcs[0]', "UHCS has no option 'crop_botom'",
                     "did you mean 'crop_bottom'?")


def test_missing_required_dataset_key(tmp_path, capsys):
    path = suite_file(tmp_path, "finetune_sets = dict(synthetic=",
                      "finetune_sets = dict(mine=dict(type='Folder', root='x'), synthetic=")
    status, _, err = run_main(capsys, '--suite', str(path), '--dry-run')
    assert_one_error(status, err, 'finetune_sets.mine', "missing required key 'classes'")


@pytest.mark.parametrize('option,fragments', [
    ('scale.finetune.epochs', ["'scale.finetune.epochs'", 'expected KEY=VALUE']),
    ('=3', ["'=3'", 'expected KEY=VALUE']),
    ('scale.finetune.epochs=three', ['scale.finetune.epochs', 'positive integer', "'three'"]),
    ('scale.finetune.epochs=[1', ['cannot parse']),
    ('scale.finetune.epohcs=3', ["unknown key 'epohcs'", "did you mean 'epochs'?"]),
])
def test_malformed_cfg_options(tmp_path, capsys, option, fragments):
    status, _, err = run_main(capsys, '--suite', str(suite_file(tmp_path)), '--dry-run',
                              '--cfg-options', option)
    assert_one_error(status, err, *fragments)


def test_cfg_options_change_the_suite(tmp_path, capsys):
    import json
    status, out, _ = run_main(capsys, '--suite', str(suite_file(tmp_path)), '--dry-run',
                              '--format', 'json', '--methods', 'RandomInit',
                              '--cfg-options', 'scale.finetune.epochs=3', 'seeds=[4,5]')
    jobs = json.loads(out)['jobs']
    assert status == 0 and [j['seed'] for j in jobs] == [4, 5]
    from matssl_bench.suite.plan import load_suite
    suite = load_suite(str(suite_file(tmp_path)), {'scale.finetune.epochs': 3})
    assert suite.scale.finetune.epochs == 3


def test_plugin_that_cannot_be_imported(tmp_path, capsys):
    status, _, err = run_main(capsys, '--plugin', 'no_such_plugin_module_xyz', '--list')
    assert_one_error(status, err, '--plugin no_such_plugin_module_xyz', 'cannot import',
                     'ModuleNotFoundError')
    status, _, err = run_main(capsys, '--plugin', str(tmp_path / 'absent.py'), '--list')
    assert_one_error(status, err, str(tmp_path / 'absent.py'), 'no such file')
    broken = tmp_path / 'broken.py'
    broken.write_text('import torch\ndef (:\n')
    status, _, err = run_main(capsys, '--plugin', str(broken), '--list')
    assert_one_error(status, err, str(broken), 'SyntaxError')


def test_plugin_registering_an_existing_name(tmp_path, capsys):
    plugin = tmp_path / 'clash.py'
    plugin.write_text('from matssl_bench.method_api import PretrainingMethod\n'
                      'from matssl_bench.registry import METHODS\n\n'
                      '@METHODS.register_module()\n'
                      'class MatSSL(PretrainingMethod):\n'
                      '    """A second MatSSL."""\n')
    status, _, err = run_main(capsys, '--plugin', str(plugin), '--list')
    assert_one_error(status, err, f'--plugin {plugin}', 'MatSSL is already registered',
                     'rename the class')


def test_usage_errors_are_one_line(capsys):
    status, _, err = run_main(capsys, '--format', 'yaml')
    assert_one_error(status, err, "--format", "'yaml'")


def test_missing_suite_file_names_it(tmp_path, capsys):
    status, _, err = run_main(capsys, '--suite', str(tmp_path / 'nope.py'), '--dry-run')
    assert_one_error(status, err, str(tmp_path / 'nope.py'), 'built-in suites')


def test_debug_shows_the_traceback(tmp_path, capsys):
    path = suite_file(tmp_path, 'finetune=dict(epochs=', 'finetune=dict(epoch=')
    status, _, err = run_main(capsys, '--suite', str(path), '--dry-run', '--debug')
    assert status == 2 and 'Traceback' in err and 'ConfigError' in err
    assert err.strip().splitlines()[-1].startswith('error: ')


@pytest.mark.slow
def test_in_a_fresh_process(tmp_path):
    """What a user sees: exit status 2 and one line, no traceback."""
    path = suite_file(tmp_path, "method='*'", "method='SwAV'")
    result = run_cli('--suite', str(path), '--dry-run', timeout=300, fresh_process=True)
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith('error: ')
    assert "'SwAV' is not registered" in result.stderr and result.stdout == ''


@pytest.mark.parametrize('option,fragments', [
    ('seed', ["--option 'seed'", 'expected KEY=JSON']),
    ('seed=abc', ["--option 'seed=abc'", 'not JSON']),
    ('crop_botom=0', ["UHCS has no option 'crop_botom'", "did you mean 'crop_bottom'?"]),
])
def test_prepare_data_option_mistakes(tmp_path, capsys, option, fragments):
    import importlib.util

    from conftest import REPO
    spec = importlib.util.spec_from_file_location('prepare_data_tool',
                                                  REPO / 'tools' / 'prepare_data.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    status = tool.main(['UHCS', '--src', str(tmp_path / 'src'), '--out', str(tmp_path / 'out'),
                        '--option', option])
    assert_one_error(status, capsys.readouterr().err, *fragments)
    assert not (tmp_path / 'out').exists()
