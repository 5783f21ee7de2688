"""A small run of the calibration benchmark: the suite's intervals cover a known truth."""
from matssl_bench.perf import calibration


def test_intervals_cover_the_truth_in_the_crossed_design():
    # 200 repetitions: a coverage of 0.95 lands below 0.9 with probability < 1e-4
    for k, m, design in ((5, 20, 'own'), (3, 6, 'own'), (6, 20, 'shared-3')):
        cell = calibration.cell(k, m, design, reps=200, n_resamples=400)
        assert cell['verdicts_issued'], cell
        assert cell['delta_coverage']['rate'] >= 0.9, cell
        assert cell['row_coverage']['rate'] >= 0.9, cell
        assert cell['false_verdict']['rate'] <= 0.1, cell


def test_one_seed_gets_no_interval_and_the_command_checks_its_arguments(tmp_path, capsys):
    cell = calibration.cell(1, 6, 'own', reps=10, n_resamples=100)
    assert not cell['verdicts_issued'] and cell['delta_coverage']['rate'] is None
    assert 'seed-to-seed variance not estimable' in cell['no_verdict_because']
    out = tmp_path / 'c.json'
    assert calibration.main(['--out', str(out), '--reps', '3']) == 2
    assert '--reps' in capsys.readouterr().err and not out.exists()
