"""Shipped suites share their lists instead of restating them."""
from matssl_bench.suite.plan import load_suite


def _tricks(suite) -> list:
    return [(row['trick'], dict(row.get('scale', {}))) for row in suite.rows
            if row['method'] == 'RandomInit' and 'trick' in row]


def test_both_tricks_suites_run_the_one_trick_list():
    paper, smoke = load_suite('tricks'), load_suite('protocols-smoke')
    listed = [(name, dict(settings)) for name, settings in paper._tricks]
    assert _tricks(paper) == _tricks(smoke) == listed
    assert listed[0] == ('baseline', {}) and listed[-1][0] == 'stacked'
    # 'stacked' is every single trick at once
    stacked = {k: v for _, settings in listed[1:-1] for k, v in settings.items()}
    assert listed[-1][1] == stacked
