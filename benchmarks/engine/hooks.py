"""Hooks: a progress bar for training, experiment tracking, and a per-epoch history kept
inside checkpoints."""
from __future__ import annotations

import json
import logging
import math
import os
import random
import socket
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.registry import VISUALIZERS
from mmengine.runner import CheckpointLoader
from mmengine.visualization import Visualizer
from tqdm.auto import tqdm

from matssl_bench.engine.console import interactive
from matssl_bench.fileio.atomic import raise_if_disk_full, save_torch_atomic
from matssl_bench.models.encoders import describe_load_error
from matssl_bench.registry import HOOKS

LOG = logging.getLogger(__name__)
WEIGHTS_ONLY_SCHEME = 'weights-only://'
# Seconds of training between resume checkpoints (0: after every epoch). The last epoch always
# saves. Results do not depend on it; an interruption repeats at most this much training.
RESUME_EVERY_ENV = 'MATSSL_RESUME_EVERY_S'
_checked: dict[str, dict] = {}  # resume checkpoints already loaded by check_resume_checkpoint


@CheckpointLoader.register_scheme(prefixes=WEIGHTS_ONLY_SCHEME, force=True)
def load_weights_only(filename: str, map_location=None) -> dict:
    """mmengine's checkpoint loader for resume files: never unpickles anything but tensors
    and plain containers, whatever torch's default."""
    path = filename[len(WEIGHTS_ONLY_SCHEME):]
    checkpoint = _checked.pop(path, None)
    if checkpoint is None:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    return checkpoint


def check_resume_checkpoint(path: Path) -> Optional[str]:
    """``load_from`` for mmengine's resume: the checkpoint loaded weights-only, or None.

    A file that does not load (truncated, random bytes, or objects a weights-only
    load refuses) is renamed ``*.corrupt`` with a warning and the job starts afresh.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
        if not isinstance(checkpoint, dict) or 'state_dict' not in checkpoint:
            raise ValueError('no state_dict')
    except Exception as err:  # noqa: BLE001 - any load failure means the file is unusable
        corrupt = path.with_name(path.name + '.corrupt')
        if is_main_process():
            os.replace(path, corrupt)
        LOG.warning('warning: %s: unreadable resume checkpoint (%s); moved to %s, the job '
                    'starts again', path, describe_load_error(err), corrupt)
        return None
    _checked[str(path)] = checkpoint
    return WEIGHTS_ONLY_SCHEME + str(path)


# --vis-backend: mmengine's visualizer backends, and the package each needs.
VIS_BACKENDS = dict(
    local=('LocalVisBackend', None),
    tensorboard=('TensorboardVisBackend', 'tensorboard'),
    wandb=('WandbVisBackend', 'wandb'),
    mlflow=('MLflowVisBackend', 'mlflow'),
)


def visualizer_cfg(backend: str = 'local', run_name: Optional[str] = None,
                   root: Optional[str] = None, hparams: Optional[dict] = None,
                   experiment: str = 'matssl-bench') -> dict:
    """The Runner's ``visualizer`` config logging losses and validation metrics to ``backend``
    (local JSON files are always written too); a missing package is a clear error.

    With ``run_name`` (``<stage>/<method>/<set>/seed<k>``) and ``root`` (the work dir) a run
    is named after its job rather than its hash: TensorBoard writes under
    ``<root>/tensorboard/<run_name>``, W&B names the run and groups it by stage and method
    (files under ``<root>/wandb``), MLflow names the run in the experiment ``experiment``
    (a file store ``<root>/mlruns``). ``hparams`` go to W&B's config and MLflow's params
    at the start, and to TensorBoard's hparams with the final metrics (:func:`finish_tracking`).
    """
    import importlib.util

    from matssl_bench.errors import MissingResourceError

    if backend not in VIS_BACKENDS:
        raise ValueError(f'--vis-backend must be one of {", ".join(VIS_BACKENDS)}, got {backend!r}')
    vis_type, package = VIS_BACKENDS[backend]
    if package and importlib.util.find_spec(package) is None:
        raise MissingResourceError(f'--vis-backend {backend} needs the Python package '
                                   f'{package!r}: pip install {package}')
    backends = [dict(type='LocalVisBackend')]
    named = run_name is not None and root is not None
    params = flat_hparams(hparams or {})
    if backend == 'tensorboard':
        backends.append(dict(type=vis_type, **(
            dict(save_dir=str(Path(root) / 'tensorboard' / run_name)) if named else {})))
    elif backend == 'wandb':
        kwargs = dict(project=experiment, config=params, reinit=True)
        if named:
            kwargs.update(name=run_name, group='/'.join(run_name.split('/')[:2]),
                          dir=str(Path(root) / 'wandb'))
        backends.append(dict(type=vis_type, init_kwargs=kwargs,
                             **(dict(save_dir=str(Path(root) / 'wandb')) if named else {})))
    elif backend == 'mlflow':
        backends.append(dict(type=vis_type, exp_name=experiment, run_name=run_name,
                             params={k: str(v)[:500] for k, v in params.items()},
                             **(dict(save_dir=str(Path(root) / 'mlruns')) if named else {})))
    return dict(type='TrackingVisualizer', vis_backends=backends, hparams=params)


def flat_hparams(hparams: dict, prefix: str = '') -> dict:
    """Nested settings as ``{'scale.lr': 0.001, ...}`` with scalar values (others as JSON)."""
    flat = {}
    for key, value in hparams.items():
        name = f'{prefix}{key}'
        if isinstance(value, dict):
            flat.update(flat_hparams(value, f'{name}.'))
        elif value is None or isinstance(value, (bool, int, float, str)):
            flat[name] = 'None' if value is None else value
        else:
            flat[name] = json.dumps(value, default=str)
    return flat


@VISUALIZERS.register_module(force=True)
class TrackingVisualizer(Visualizer):
    """mmengine's Visualizer with experiment-log tags: ``train/loss``, ``train/lr`` per
    iteration and ``val/mIoU`` per epoch (the phase is set by :class:`TrackingHook`), and
    closed by :func:`finish_tracking` once the final metrics are logged, not by the Runner."""

    def __init__(self, name: str = 'visualizer', hparams: Optional[dict] = None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.hparams = dict(hparams or {})
        self.phase = 'train'
        self.finished = False

    def _tagged(self, name: str) -> str:
        return name if '/' in name else f'{self.phase}/{name}'

    def add_scalar(self, name, value, step: int = 0, **kwargs) -> None:
        super().add_scalar(self._tagged(name), value, step, **kwargs)

    def add_scalars(self, scalar_dict: dict, step: int = 0, file_path=None, **kwargs) -> None:
        super().add_scalars({self._tagged(k): v for k, v in scalar_dict.items()}, step,
                            file_path, **kwargs)

    def close(self) -> None:
        """Deferred to :meth:`finish` (the Runner closes its visualizer after training, before
        the test set is scored)."""

    def finish(self, metrics: Optional[dict] = None) -> None:
        """Log the final ``metrics`` (and TensorBoard's hparams) once, then close."""
        if self.finished:
            return
        self.finished = True
        if metrics and is_main_process():
            metrics = {k: float(v) for k, v in metrics.items()}
            for backend in self._vis_backends.values():
                _log_final(backend, self.hparams, metrics)
        super().close()


def _log_final(backend, hparams: dict, metrics: dict) -> None:
    kind = type(backend).__name__
    if kind == 'TensorboardVisBackend':
        backend.experiment.add_hparams(hparams, metrics, run_name='.')
    elif kind == 'WandbVisBackend':
        backend.experiment.summary.update(metrics)
    elif kind == 'MLflowVisBackend':
        backend.experiment.log_metrics(metrics)
    elif kind == 'LocalVisBackend':
        backend.add_scalars(metrics, step=0)


def finish_tracking(metrics: Optional[dict] = None) -> None:
    """Log a finished run's final metrics (e.g. ``{'test/mIoU': 61.2}``) with its
    hyper-parameters and close its tracking; a no-op without a live tracking visualizer."""
    try:
        visualizer = Visualizer.get_current_instance()
    except RuntimeError:  # no visualizer built in this process yet
        return
    if isinstance(visualizer, TrackingVisualizer):
        visualizer.finish(metrics)


@HOOKS.register_module()
class TrackingHook(Hook):
    """Sets the tag prefix of :class:`TrackingVisualizer`: ``val/`` while validation scalars
    are logged (mmengine's LoggerHook writes them per epoch), ``train/`` otherwise; logs
    each epoch's mean training loss as ``train/epoch_loss`` with the epoch as step."""

    priority = 'LOWEST'  # after LoggerHook has written the validation scalars

    def __init__(self):
        self._losses: list[float] = []

    @staticmethod
    def _visualizer(runner) -> Optional[TrackingVisualizer]:
        vis = runner.visualizer
        return vis if isinstance(vis, TrackingVisualizer) else None

    def before_val_epoch(self, runner) -> None:
        if self._visualizer(runner):
            self._visualizer(runner).phase = 'val'

    def after_val_epoch(self, runner, metrics=None) -> None:
        if self._visualizer(runner):
            self._visualizer(runner).phase = 'train'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if outputs and 'loss' in outputs:
            self._losses.append(_scalar(outputs['loss']))

    def after_train_epoch(self, runner) -> None:
        if self._losses and self._visualizer(runner):
            self._visualizer(runner).add_scalar('train/epoch_loss',
                                                sum(self._losses) / len(self._losses),
                                                step=runner.epoch + 1)
        self._losses = []


def _scalar(value) -> float:
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)


@HOOKS.register_module()
class ProgressBarHook(Hook):
    """One tqdm bar over a run's training iterations, with the current loss."""

    priority = 'VERY_LOW'

    def __init__(self, description: str = 'train'):
        self.description = description
        self.bar: Optional[tqdm] = None

    def before_train(self, runner) -> None:
        # on a terminal only: written to a file or pipe, progress is one line per job
        if is_main_process() and interactive():
            self.bar = tqdm(total=runner.max_iters, initial=runner.iter, desc=self.description,
                            leave=False, dynamic_ncols=True, unit='it', file=sys.stderr)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        if outputs and 'loss' in outputs:
            self.bar.set_postfix(loss=f'{_scalar(outputs["loss"]):.4f}', refresh=False)

    def after_train(self, runner) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def resume_interval() -> float:
    """``MATSSL_RESUME_EVERY_S`` as seconds >= 0 (unset: 0, a resume checkpoint per epoch)."""
    raw = os.environ.get(RESUME_EVERY_ENV, '0')
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ValueError(f'{RESUME_EVERY_ENV} must be a number of seconds >= 0, got {raw!r}')
    return value


@HOOKS.register_module()
class RunStateHook(Hook):
    """Per-epoch history, best-epoch selection and a resume checkpoint written after validation.

    At the end of each epoch (after its validation, if any) it saves the best
    model weights to ``best.pth`` when the selection metric improved, then a
    full resume checkpoint ``resume.pth`` holding the optimiser, the history
    and the RNG states, so that a resumed run repeats an uninterrupted one
    (with ``MATSSL_RESUME_EVERY_S`` set: only once that many seconds have passed
    since the last one, and after the last epoch).
    """

    priority = 'LOW'

    def __init__(self, out_dir: str, select_metric: Optional[str] = None):
        self.out_dir = Path(out_dir)
        self.select_metric = select_metric
        self.resume_every_s = resume_interval()
        self._last_saved = time.monotonic()
        self.history: list[dict] = []
        self.best: Optional[dict] = None
        self._losses: list[float] = []

    @property
    def resume_path(self) -> Path:
        return self.out_dir / 'resume.pth'

    @property
    def best_path(self) -> Path:
        return self.out_dir / 'best.pth'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if outputs and 'loss' in outputs:
            self._losses.append(_scalar(outputs['loss']))

    def after_train_epoch(self, runner) -> None:
        loss = sum(self._losses) / len(self._losses) if self._losses else math.nan
        self.history.append(dict(epoch=runner.epoch + 1, train_loss=loss))
        self._losses = []
        if not self._validates_after(runner, runner.epoch + 1):
            self._save(runner, completed_epochs=runner.epoch + 1)

    def after_val_epoch(self, runner, metrics=None) -> None:
        if not self.history or runner.train_loop is None:
            return
        metrics = metrics or {}
        self.history[-1].update({f'val/{k}': float(v) for k, v in metrics.items()})
        if self.select_metric is not None:
            score = float(metrics[self.select_metric])
            if self.best is None or score > self.best['score']:
                self.best = dict(epoch=self.history[-1]['epoch'], score=score)
                if is_main_process():
                    model = runner.model.module if hasattr(runner.model, 'module') else runner.model
                    save_torch_atomic(self.best_path, dict(
                        state_dict={k: v.detach().cpu() for k, v in model.state_dict().items()},
                        epoch=self.best['epoch'], score=score))
        self._save(runner, completed_epochs=self.history[-1]['epoch'])

    @staticmethod
    def _validates_after(runner, epoch: int) -> bool:
        loop = runner.train_loop
        if getattr(runner, '_val_loop', None) is None:
            return False
        return epoch >= loop.val_begin and (epoch % loop.val_interval == 0
                                            or epoch == loop.max_epochs)

    def _save(self, runner, completed_epochs: int) -> None:
        if (self.resume_every_s > 0 and completed_epochs < runner.train_loop.max_epochs
                and time.monotonic() - self._last_saved < self.resume_every_s):
            return  # the last epoch always saves
        self._last_saved = time.monotonic()
        # a per-process temporary name: two writers never share a half-written file
        tmp_name = f'.resume.pth.{socket.gethostname()}.{os.getpid()}.tmp'
        schedulers = bool(getattr(runner, 'param_schedulers', None))  # none: no warning
        try:
            runner.save_checkpoint(str(self.out_dir), tmp_name, save_optimizer=True,
                                   save_param_scheduler=schedulers,
                                   meta=dict(epoch=completed_epochs, iter=runner.iter))
            if is_main_process():
                os.replace(self.out_dir / tmp_name, self.resume_path)
        except BaseException as err:  # a full disk or Ctrl-C leaves no temporary file behind
            if is_main_process():
                (self.out_dir / tmp_name).unlink(missing_ok=True)
            raise_if_disk_full(err, self.resume_path)
            raise

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # Logged scalar buffers pickle bound methods, which torch.load(weights_only=True)
        # refuses; they only smooth log lines, so a resumed run starts them afresh.
        if isinstance(checkpoint.get('message_hub'), dict):
            checkpoint['message_hub']['log_scalars'] = {}
        meta = checkpoint.setdefault('meta', {})
        meta['run_state'] = dict(history=list(self.history), best=self.best,
                                 rng=capture_rng_state())

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('meta', {}).get('run_state')
        if state:
            self.history = list(state['history'])
            self.best = state['best']
            restore_rng_state(state['rng'])


def capture_rng_state() -> dict:
    return dict(torch=torch.get_rng_state(), numpy=np.random.get_state(),
                python=random.getstate(),
                cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)


def restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state['torch'])
    np.random.set_state(state['numpy'])
    random.setstate(state['python'])
    if state.get('cuda') is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])
