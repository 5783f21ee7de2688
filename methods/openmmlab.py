"""Shared base of the methods built on an mmselfsup algorithm with its reference recipe.

Registers no method itself. A subclass names its reference config and returns
the algorithm's model config; this base gives it the reference optimiser
(LARS or SGD, with the reference's per-parameter exclusions), its learning
rate scaled linearly from the reference's batch to the suite's (the rule every
one of these configs follows: ``lr = base_lr * batch / 256``), and its
schedule: a linear warm-up over the reference's share of the epochs (e.g.
10/200), rounded to whole epochs and dropped when that rounds to 0, then a
cosine decay to ``min_lr``. Losses run in float32 under mixed precision
(``float32_loss``). These methods are compared in their own suite
(``methods-cpu``), not in the paper's: a wildcard row (``method='*'``) leaves
them out, a row or ``--methods`` names them.
"""
from __future__ import annotations

from typing import Optional

from mmengine.dist import get_dist_info

from matssl_bench.method_api import SSLMethod
from matssl_bench.models.mmselfsup_bridge import build_mmselfsup_model

def lars_exclusions(lr_mult: Optional[float] = None) -> dict:
    """mmselfsup's LARS configs: batch norm and biases get no weight decay and no trust
    ratio (``lars_exclude``), at ``lr_mult`` times the lr."""
    setting = dict(decay_mult=0, lars_exclude=True)
    if lr_mult is not None:
        setting['lr_mult'] = lr_mult
    # 'downsample.1': the batch norm of a ResNet block's shortcut
    return dict(custom_keys={k: dict(setting) for k in ('bn', 'bias', 'downsample.1')})


class OpenMMLabMethod(SSLMethod):
    """An mmselfsup algorithm trained with its reference config's recipe, scaled to the batch."""

    source: str = ''
    reference_config: str = ''
    in_wildcards = False
    # min_lr_ratio (instead of min_lr): the cosine ends at that fraction of each group's lr
    defaults = dict(SSLMethod.defaults, min_lr=0.0, min_lr_ratio=None, warmup_fraction=0.0,
                    warmup_start_factor=1e-4, paramwise_cfg=None)

    def model_cfg(self, arch: str) -> dict:
        raise NotImplementedError

    def build_model(self, arch, initial_state):
        return build_mmselfsup_model(self.model_cfg(arch), initial_state,
                                     f'{self.name} initial encoder', float32_loss=True)

    def learning_rate(self, total_batch: int) -> float:
        """``optimizer['lr']`` when a suite sets one, else ``base_lr * total_batch / 256``."""
        optimizer = self.hparams['optimizer']
        if 'lr' in optimizer:
            return optimizer['lr']
        return self.hparams['base_lr'] * total_batch / 256

    def optim_wrapper(self, batch_size: int) -> dict:
        # batch_size is per process; the reference's rule scales with the global batch
        total_batch = batch_size * get_dist_info()[1]
        optimizer = dict(self.hparams['optimizer'], lr=self.learning_rate(total_batch))
        wrapper = dict(type='OptimWrapper', optimizer=optimizer)
        if self.hparams['paramwise_cfg']:
            wrapper['paramwise_cfg'] = dict(self.hparams['paramwise_cfg'])
        return wrapper

    def warmup_epochs(self, epochs: int) -> int:
        return round(epochs * self.hparams['warmup_fraction'])

    def param_scheduler(self, epochs: int) -> list:
        per_iter = not self.hparams.get('schedule_per_epoch', False)
        warmup = self.warmup_epochs(epochs)
        schedule = []
        if warmup:
            schedule.append(dict(type='LinearLR', start_factor=self.hparams['warmup_start_factor'],
                                 by_epoch=True, begin=0,
                                 end=warmup, convert_to_iter_based=per_iter))
        ratio = self.hparams['min_lr_ratio']
        floor = (dict(eta_min_ratio=ratio) if ratio is not None
                 else dict(eta_min=self.hparams['min_lr']))
        schedule.append(dict(type='CosineAnnealingLR', T_max=epochs - warmup, by_epoch=True,
                             begin=warmup, end=epochs, convert_to_iter_based=per_iter, **floor))
        return schedule
