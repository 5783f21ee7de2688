"""Figure house style: host named, svg/pdf on request, whole-epoch ticks, one colour per
class name, intervals with a legend, published values and unavailable rows."""
import socket

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from matssl_bench.report import figures


def _texts(fig):
    return [t.get_text() for t in fig.texts] + [t.get_text() for ax in fig.axes
                                                for t in ax.texts]


def test_save_figure_names_the_host_and_writes_asked_formats(tmp_path, monkeypatch):
    kept = {}

    def keep(fig):
        kept.setdefault('fig', fig)
        kept['last'] = fig
    monkeypatch.setattr(plt, 'close', keep)
    with figures.figure_formats(['svg', 'pdf']):
        path = figures.save_figure(plt.figure(), tmp_path / 'f.png')
    assert path == tmp_path / 'f.png'
    assert (tmp_path / 'f.png').read_bytes()[:4] == b'\x89PNG'
    assert (tmp_path / 'f.pdf').read_bytes()[:4] == b'%PDF'
    assert b'<svg' in (tmp_path / 'f.svg').read_bytes()[:2000]
    assert f'drawn on {socket.gethostname()}' in _texts(kept['fig'])
    # with records: the devices their runs used, then the drawing host
    runs = [dict(status='finished', config=dict(runtime=dict(device=d)))
            for d in ('cuda:NVIDIA H200', 'cpu:x86_64/AVX512', 'cpu:x86_64/AVX512')]
    with figures.figure_hosts(runs + [dict(status='unavailable')]):
        figures.save_figure(plt.figure(), tmp_path / 'g.png')
    assert (f'runs on cpu:x86_64/AVX512, cuda:NVIDIA H200; drawn on {socket.gethostname()}'
            in _texts(kept['last']))
    with pytest.raises(ValueError, match='figure formats'):
        with figures.figure_formats(['jpg']):
            pass


def _finetune_record(dataset, label, curve, classes):
    return dict(status='finished', stage='finetune', dataset=dataset, method_label=label,
                pretrain_set=None, seed=0, selection_split='val', protocol='clean',
                history=[{'epoch': i + 1, 'val/mIoU': v} for i, v in enumerate(curve)],
                dataset_meta=dict(classes=classes))


def test_one_epoch_curve_is_a_marked_point_on_whole_epoch_ticks(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(figures, 'save_figure', lambda fig, path: drawn.append(fig) or path)
    figures.validation_curves([_finetune_record('A', 'M', [42.0], ['a', 'b'])], tmp_path)
    (ax,) = drawn[0].axes
    (line,) = ax.lines
    assert line.get_marker() == 'o' and list(line.get_xdata()) == [1]
    assert list(ax.get_xticks()) == [1] and ax.get_xlim() == (0.5, 1.5)


def test_class_colours_follow_the_name_across_sets():
    colours = figures.class_colour_map(['matrix', 'pore', 'background', 'matrix'])
    one = figures.class_colours(np.array([[0, 1]]), ['matrix', 'pore'], colours)
    other = figures.class_colours(np.array([[1, 0]]), ['background', 'matrix'], colours)
    assert (one[0, 0] == other[0, 0]).all() and (one[0, 0] != one[0, 1]).any()  # matrix
    painted = figures.paint_over(np.zeros((1, 2, 3), np.uint8), one)
    assert (painted > 0).any() and (painted < one).any()  # blended, the image shows through


def test_interval_figure_legend_published_and_unavailable(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(figures, 'save_figure', lambda fig, path: drawn.append(fig) or path)
    table = pd.DataFrame({
        'fine-tune set': ['S'] * 3, 'method': ['A', 'B', 'C'], 'pretrain set': ['P', '-', '-'],
        'metric': ['clean'] * 3, 'mean': [50.0, 40.0, np.nan],
        'ci95_low': [48.0, 39.0, np.nan], 'ci95_high': [52.0, 41.0, np.nan],
        'verdict': ['better', 'baseline', ''], 'published mIoU (%)': [55.0, np.nan, 60.0]})
    figures.miou_intervals([table], tmp_path)
    fig = drawn[0]
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert labels == ['mean, 95 % interval', 'baseline (mean, interval; dashed line)',
                      'published value', 'unavailable (no result; see the table notes)']
    (ax,) = fig.axes
    published = [line for line in ax.lines if line.get_marker() == 'D']
    assert sorted(x for line in published for x in line.get_xdata()) == [0, 2]
    assert 'unavailable' in _texts(fig) and len(ax.get_xticks()) == 3
