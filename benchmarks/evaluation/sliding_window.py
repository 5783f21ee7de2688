"""Scoring a segmenter on whole images (``clean``) or on the authors' patch grid (``published``).

- :func:`slide_logits`: sliding-window logits over one full image, mmseg's ``slide``
  inference (windows of the fine-tuning patch size, last window flush with the border,
  overlapping logits averaged); an image smaller than the window is first padded by
  reflection, and the padding is cut off again.
- :func:`unit_areas`: per-class intersection, union, predicted and true pixel counts of
  one scored unit (a whole image, or a patch named ``image@y,x``); records keep these.
- :class:`SlidingWindowValLoop`: mmengine's ValLoop scoring whole validation images this way.
"""
from __future__ import annotations

import heapq
from typing import Callable, Iterable, Optional, Sequence

import numpy as np
import torch
from mmengine.runner import ValLoop
from torch.utils.data import Dataset

from matssl_bench.data.patches import to_normalized_tensor
from matssl_bench.registry import DATASETS, LOOPS

LogitsFn = Callable[[torch.Tensor], torch.Tensor]


def default_stride(window: int, stride: Optional[int] = None) -> int:
    """The sliding-window stride: ``stride`` if given, else half the window."""
    stride = int(stride) if stride else max(1, window // 2)
    if not 0 < stride <= window:
        raise ValueError(f'eval_stride must be in 1..{window} (the window), got {stride}')
    return stride


def window_origins(length: int, window: int, stride: int) -> list[int]:
    """Window starts along one axis of ``length >= window``: every ``stride``, the last one
    moved back to end at the border (mmseg's slide grid)."""
    count = max(length - window + stride - 1, 0) // stride + 1
    return sorted({min(i * stride, length - window) for i in range(count)})


@torch.no_grad()
def slide_logits(logits_fn: LogitsFn, image: np.ndarray, window: int, stride: int,
                 batch_size: int = 8) -> torch.Tensor:
    """Class logits (C x H x W, float32 on CPU) of an ``HxWx3`` uint8 image.

    ``logits_fn`` maps a normalised ``N x 3 x window x window`` batch to ``N x C x window x
    window`` logits. Windows go through it ``batch_size`` at a time.
    """
    height, width = image.shape[:2]
    pad_h, pad_w = max(window - height, 0), max(window - width, 0)
    if pad_h or pad_w:  # numpy reflects repeatedly, so any small image can be padded
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode='reflect')
    tensor = to_normalized_tensor(image)
    full_h, full_w = tensor.shape[1:]
    origins = [(y, x) for y in window_origins(full_h, window, stride)
               for x in window_origins(full_w, window, stride)]
    total: Optional[torch.Tensor] = None
    count = torch.zeros(1, full_h, full_w)
    for start in range(0, len(origins), batch_size):
        chunk = origins[start:start + batch_size]
        batch = torch.stack([tensor[:, y:y + window, x:x + window] for y, x in chunk])
        logits = logits_fn(batch).float().cpu()
        if total is None:
            total = torch.zeros(logits.shape[1], full_h, full_w)
        for (y, x), part in zip(chunk, logits):
            total[:, y:y + window, x:x + window] += part
            count[:, y:y + window, x:x + window] += 1
    return (total / count)[:, :height, :width]


def unit_areas(name: str, pred: np.ndarray, truth: np.ndarray, num_classes: int) -> dict:
    """Per-class pixel counts of one scored unit, as records keep them (lists of ints)."""
    if np.shape(pred) != np.shape(truth) or np.ndim(truth) != 2:
        raise ValueError(f'{name}: prediction {np.shape(pred)} and truth {np.shape(truth)} '
                         'must be the same HxW')
    height, width = np.shape(truth)
    pred = np.asarray(pred, dtype=np.int64).ravel()
    truth = np.asarray(truth, dtype=np.int64).ravel()
    pred_area = np.bincount(pred, minlength=num_classes)[:num_classes]
    gt_area = np.bincount(truth, minlength=num_classes)[:num_classes]
    intersection = np.bincount(truth[pred == truth], minlength=num_classes)[:num_classes]
    return dict(name=name, height=int(height), width=int(width),
                intersection=intersection.tolist(),
                union=(pred_area + gt_area - intersection).tolist(),
                pred_area=pred_area.tolist(), gt_area=gt_area.tolist())


def model_logits_fn(model) -> LogitsFn:
    """Logits of an mmengine segmenter in ``tensor`` mode, on the model's own device."""
    device = next(model.parameters()).device
    return lambda batch: model(batch.to(device), mode='tensor')


class PreviewKeeper:
    """Keeps the window-sized crops with the most errors and the most foreground.

    Overlay figures show these (titled ``image@y,x``): the places where methods differ,
    rather than whichever patches come first.
    """

    def __init__(self, per_kind: int = 2):
        self.per_kind = per_kind
        self.by_errors: list = []
        self.by_foreground: list = []
        self._order = 0

    def offer(self, name: str, image: np.ndarray, truth: np.ndarray, pred: np.ndarray,
              window: int) -> None:
        """Consider every non-overlapping window-sized crop of one scored unit."""
        height, width = truth.shape
        for y in window_origins(max(height, window), window, window):
            for x in window_origins(max(width, window), window, window):
                sl = (slice(y, y + window), slice(x, x + window))
                entry = (f'{name}@{y},{x}' if '@' not in name else name,
                         image[sl], truth[sl], pred[sl])
                self._order += 1
                errors = int((truth[sl] != pred[sl]).sum())
                foreground = int((truth[sl] != 0).sum())
                for heap, score in ((self.by_errors, errors), (self.by_foreground, foreground)):
                    item = (score, -self._order, entry)
                    if len(heap) < self.per_kind:
                        heapq.heappush(heap, item)
                    elif item[:2] > heap[0][:2]:
                        heapq.heapreplace(heap, item)

    def absorb(self, other: 'PreviewKeeper') -> None:
        """Keep the best of both keepers' crops (another rank's share of the units)."""
        for mine, theirs in ((self.by_errors, other.by_errors),
                             (self.by_foreground, other.by_foreground)):
            for item in theirs:
                if len(mine) < self.per_kind:
                    heapq.heappush(mine, item)
                elif item[:2] > mine[0][:2]:
                    heapq.heapreplace(mine, item)

    def arrays(self) -> Optional[dict]:
        chosen, seen = [], set()
        for heap in (self.by_foreground, self.by_errors):
            for _, _, entry in sorted(heap, key=lambda it: it[:2], reverse=True):
                if entry[0] not in seen:
                    seen.add(entry[0])
                    chosen.append(entry)
        if not chosen:
            return None
        size = max(e[2].shape[0] for e in chosen), max(e[2].shape[1] for e in chosen)

        def fit(array):  # crops of images smaller than the window: pad to one shape
            pad = [(0, size[0] - array.shape[0]), (0, size[1] - array.shape[1])]
            return np.pad(array, pad + [(0, 0)] * (array.ndim - 2))

        return dict(title=np.array([e[0] for e in chosen]),
                    image=np.stack([fit(e[1]) for e in chosen]),
                    truth=np.stack([fit(e[2]) for e in chosen]).astype(np.uint8),
                    pred=np.stack([fit(e[3]) for e in chosen]).astype(np.uint8))


def score_whole_images(logits_fn: LogitsFn, items: Iterable, num_classes: int, window: int,
                       stride: int, batch_size: int = 8,
                       previews: Optional[PreviewKeeper] = None) -> list[dict]:
    """Per-image areas of every labeled image, each predicted whole by sliding windows."""
    out = []
    for item in items:
        pred = slide_logits(logits_fn, item.image, window, stride, batch_size).argmax(0).numpy()
        out.append(unit_areas(item.name, pred, item.mask, num_classes))
        if previews is not None:
            previews.offer(item.name, item.image, item.mask, pred, window)
    return out


def score_patches(logits_fn: LogitsFn, dataset, num_classes: int, batch_size: int = 128,
                  previews: Optional[PreviewKeeper] = None,
                  positions: Optional[Sequence[int]] = None) -> list[dict]:
    """Per-patch areas over a ``SegmentationPatches`` grid (or its ``positions``), in the
    dataset's order (the authors' evaluation order); each unit is named ``image@y,x``."""
    out = []
    positions = list(range(len(dataset))) if positions is None else list(positions)
    for start in range(0, len(positions), batch_size):
        indices = positions[start:start + batch_size]
        pairs = [dataset.patch(i) for i in indices]
        batch = torch.stack([to_normalized_tensor(image) for image, _ in pairs])
        preds = logits_fn(batch).argmax(1).cpu().numpy()
        for i, (image, truth), pred in zip(indices, pairs, preds):
            item, top, left = dataset.index[i]
            name = f'{dataset.items[item].name}@{top},{left}'
            out.append(unit_areas(name, pred, truth, num_classes))
            if previews is not None:
                previews.offer(name, image, truth, pred, dataset.patch_size)
    return out


@DATASETS.register_module()
class WholeImages(Dataset):
    """Labeled images as they are, one per item (for :class:`SlidingWindowValLoop`)."""

    def __init__(self, items: Sequence):
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, idx: int):
        return self.items[idx]


@LOOPS.register_module()
class SlidingWindowValLoop(ValLoop):
    """Validation on whole images: sliding-window logits per image (``clean`` protocol).

    The evaluator receives mmseg-style samples (``pred_sem_seg``/``gt_sem_seg``) of whole
    images, so ``val/mIoU`` keeps its meaning for model selection.
    """

    def __init__(self, runner, dataloader, evaluator, window: int, stride: Optional[int] = None,
                 batch_size: int = 8, fp16: bool = False):
        super().__init__(runner, dataloader, evaluator, fp16)
        self.window = window
        self.stride = default_stride(window, stride)
        self.batch_size = batch_size

    @torch.no_grad()
    def run_iter(self, idx, data_batch: Sequence) -> None:
        self.runner.call_hook('before_val_iter', batch_idx=idx, data_batch=data_batch)
        model = self.runner.model
        model = model.module if hasattr(model, 'module') else model
        logits_fn = model_logits_fn(model)
        outputs = []
        for item in data_batch:
            pred = slide_logits(logits_fn, item.image, self.window, self.stride,
                                self.batch_size).argmax(0)
            outputs.append(dict(pred_sem_seg=dict(data=pred[None]),
                                gt_sem_seg=dict(data=torch.from_numpy(
                                    np.ascontiguousarray(item.mask)).long()[None])))
        self.evaluator.process(data_samples=outputs, data_batch=data_batch)
        self.runner.call_hook('after_val_iter', batch_idx=idx, data_batch=data_batch,
                              outputs=outputs)
