"""The committed result folders can be recomputed: their records rebuild their tables."""
from __future__ import annotations

from pathlib import Path

import pytest

from matssl_bench.report.build import RECORDS_ARCHIVE, SUITE_META, make_report

RESULTS = Path(__file__).resolve().parent.parent / 'results'
FOLDERS = ['cpu', 'cpu-protocols', 'methods-cpu']


@pytest.mark.parametrize('name', FOLDERS)
def test_records_rebuild_the_committed_tables_byte_for_byte(name, tmp_path):
    folder = RESULTS / name
    assert (folder / RECORDS_ARCHIVE).is_file() and (folder / SUITE_META).is_file()
    written = make_report(folder, tmp_path)
    tables = sorted(p.name for paths in written.values() for p in paths if p.suffix == '.csv')
    assert 'table4.csv' in tables or 'label_efficiency.csv' in tables
    for table in tables:
        assert (tmp_path / table).read_bytes() == (folder / table).read_bytes(), table
