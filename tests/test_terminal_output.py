"""What a run prints: lines that fit a terminal, no escape codes, library chatter in the
log file, a compact summary with footnotes, and the file to open first."""
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from conftest import run_cli, write_tiny_suite
from matssl_bench.report.summary import find_columns, split_notes, summarize_table

MAX_WIDTH = 120


@pytest.mark.slow
def test_tiny_suite_output_fits_120_columns(tmp_path):
    # MatSSL pretrains, RandomInit is the baseline, MicroNet is unavailable (no weights:
    # a note with a URL and a path); run from the work dir's folder as a user would
    suite = write_tiny_suite(tmp_path, methods='[RM][ai]*', epochs=1)
    env_home = {'TORCH_HOME': str(tmp_path / 'torch'), 'MATSSL_WEIGHTS': str(tmp_path / 'none')}
    out = run_cli('--suite', str(suite), '--work-dir', 'work', cwd=tmp_path,
                  env={**os.environ, **env_home, 'OMP_NUM_THREADS': '1'})
    assert out.returncode == 0, out.stderr[-3000:]
    for stream in (out.stdout, out.stderr):
        assert '\x1b' not in stream and '\r' not in stream
        too_wide = [line for line in stream.splitlines() if len(line) > MAX_WIDTH]
        assert not too_wide, too_wide
    # progress names jobs by stage, method, set and seed, not by hash
    assert re.search(r'^\[\d/4\] pretrain/MatSSL/synthetic/seed0: finished', out.stderr, re.M)
    assert 'finetune/MatSSL/synthetic@synthetic/seed0' in out.stderr
    # library warnings went to the log file named on the terminal
    logs = list((tmp_path / 'work' / 'logs').glob('run-*.log'))
    assert len(logs) == 1 and 'mmengine' in logs[0].read_text()
    assert 'mmengine - WARNING' not in out.stderr and 'warnings.warn' not in out.stderr
    # the summary: one line per row, footnotes, other tables named, not printed
    lines = out.stdout.splitlines()
    assert any(line.startswith('table4: 3 rows') for line in lines)
    assert any(re.match(r'synthetic\s+MicroNet\s+n/a\s+.*\b\d\b', line) for line in lines)
    assert any(re.match(r'  \[\d\] MicroNet', line) and '<URL>' in line for line in lines)
    # one seed: no interval, no verdict, a footnote says why
    assert any(re.match(r'  \[\d\] 1 seed: seed-to-seed variance not estimable', line)
               for line in lines)
    assert not any(re.search(r'\b(better|worse)\b', line) for line in lines)
    assert 'table4_per_class_iou' in out.stdout and '|---' not in out.stdout
    assert lines[-1].startswith('Open first: ') and (tmp_path / lines[-1].split()[2]).is_file()


def test_summary_reads_columns_by_name_pattern():
    table = pd.DataFrame({
        'fine-tune set': ['A', 'A'], 'method': ['X', 'Base'], 'pretrain set': ['P', '-'],
        'mean': [50.0, 40.0], 'interval_low': [48.0, 38.0], 'interval_high': [52.0, 42.0],
        'delta vs Base': [10.0, float('nan')], 'delta_low': [8.0, float('nan')],
        'delta_high': [12.0, float('nan')], 'verdict': ['better', 'baseline'],
        'notes': ['seeds differ (0; 1); see https://example.org/a/b', 'seeds differ (0; 1)']})
    cols = find_columns(table.columns)
    assert (cols['low'], cols['high'], cols['delta']) == ('interval_low', 'interval_high',
                                                         'delta vs Base')
    lines = summarize_table(table, 't', Path('t.md'))
    assert re.search(r'^A\s+X \(P\)\s+50\.0 \[48\.0, 52\.0\]\s+\+10\.0 \[\+8\.0, \+12\.0\]'
                     r'\s+better\s+1,2$', lines[2])
    assert lines[3].rstrip().endswith('baseline  1')
    assert lines[-2:] == ['  [1] seeds differ (0; 1)', '  [2] see <URL>']
    assert split_notes('a (b; c); d') == ['a (b; c)', 'd']
