"""Runs a suite's job graph: skips what is cached, runs what is missing, writes records and tables."""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.dist import barrier, broadcast_object_list, get_dist_info, init_dist, is_distributed
from matssl_bench.engine import stages
from matssl_bench.engine.console import SuiteProgress, run_name, say
from matssl_bench.engine.hooks import finish_tracking
from matssl_bench.data_api import MicrographSet
from matssl_bench.data.sources import build_audited_pool, build_micrograph_set
from matssl_bench.models.encoders import read_state_dict
from matssl_bench.errors import ConfigError, EncoderMismatchError, MissingResourceError
from matssl_bench.data.image_io import BIT_DEPTH_POLICY
from matssl_bench.fileio.locks import JobLock
from matssl_bench.fileio.stale_files import clear_stale_temporaries
from matssl_bench.suite.plan import Job, build_method
from matssl_bench.suite.precision import resolve_precision, run_settings
from matssl_bench.suite.runtime import device_class, runtime_mismatch
from matssl_bench.evaluation.morphology import evaluate_morphology
from matssl_bench.data.subsets import with_labels
from matssl_bench.engine.transfer import evaluate_targets
from matssl_bench.engine.records import RecordStore, environment_versions
from matssl_bench.fileio.atomic import save_torch_atomic


@dataclass
class Outcome:
    job: Job
    status: str          # finished | cached | unavailable | running-elsewhere | blocked
    reason: str = ''
    record: Optional[dict] = None


def selection_and_metric(data: MicrographSet, protocol: str) -> tuple[str, dict]:
    """Model-selection split and IoU convention of a protocol on a data set."""
    metric = dict(num_classes=data.num_classes, class_names=list(data.classes))
    if protocol == 'published':  # the authors' per-batch IoU over 128-patch batches
        mean_classes = data.published_mean_classes
        return data.published_selection_split, dict(
            metric, convention='authors-batch', batch_units=128,
            mean_classes=list(mean_classes) if mean_classes is not None else None)
    if protocol == 'clean':
        return 'val', dict(metric, convention='clean')
    raise ValueError(f'unknown protocol {protocol!r}: use "published" or "clean"')


def init_distributed(launcher: str) -> None:
    """mmengine's launchers on GPUs; on CPU-only machines torchrun with gloo (for testing)."""
    if torch.cuda.is_available():
        init_dist(launcher)
    elif launcher == 'pytorch':
        torch.distributed.init_process_group('gloo')
    else:
        raise ValueError(f'--launcher {launcher} needs CUDA devices; on CPU use torchrun '
                         'with --launcher pytorch')


class SuiteRunner:
    """Executes jobs; several runners may share a work dir, and one runner may span many GPUs.

    Jobs are locked per work dir, so runners started side by side (e.g. one per
    node or a slurm array) split the jobs between them and wait for each
    other's pretraining. With a launcher, every rank runs each job together
    (mmengine's DDP) and rank 0 alone writes records and encoders.
    """

    poll_seconds = float(os.environ.get('MATSSL_POLL_SECONDS', 10))

    def __init__(self, suite: Config, work_dir: Path, launcher: str = 'none',
                 vis_backend: str = 'local', keep_checkpoints: bool = False,
                 threads: Optional[int] = None):
        self.suite = suite
        self.work_dir = Path(work_dir)
        self.launcher = launcher
        # How to run, not what: the backend and checkpoint keeping change no result.
        self.vis_backend = vis_backend
        self.keep_checkpoints = keep_checkpoints
        # --threads changes results (and is in every job key, with the loader workers it sets)
        self.threads = threads
        if threads is not None:
            torch.set_num_threads(threads)
        if launcher != 'none' and not is_distributed():
            init_distributed(launcher)
        self.store = RecordStore(self.work_dir)
        self.rank, self.world_size = get_dist_info()
        if self.rank == 0:
            self._clear_stale_temporaries()
        self._methods: dict = {}

    def _clear_stale_temporaries(self) -> None:
        """Half-written files of runners killed mid-write (their process is gone)."""
        removed = [p for sub in ('records', 'encoders', 'runs', 'tables')
                   for p in clear_stale_temporaries(self.work_dir / sub)]
        if removed:
            print(f'removed {len(removed)} temporary file(s) of killed writers, e.g. '
                  f'{removed[0]}', file=sys.stderr)

    def _method(self, name: str):
        """Each method is built once per runner from the suite's settings."""
        if name not in self._methods:
            self._methods[name] = build_method(self.suite, name)
        return self._methods[name]

    # -- paths -------------------------------------------------------------
    def encoder_path(self, key: str) -> Path:
        return self.work_dir / 'encoders' / f'{key}.pth'

    def run_dir(self, job: Job) -> Path:
        return self.work_dir / 'runs' / job.stage / job.key

    # -- execution ---------------------------------------------------------
    def run(self, jobs: list[Job]) -> list[Outcome]:
        """Run ``jobs`` in order; then wait for the ones another runner was doing."""
        self.check_runtime(jobs)
        outcomes: dict[str, Outcome] = {}
        deferred: list[Job] = []  # their pretraining runs in another runner: do others first
        progress = SuiteProgress(jobs, self.suite.suite_name, enabled=self.rank == 0)

        def run_counted(job: Job, run) -> Outcome:
            progress.started(job)
            start = time.monotonic()
            outcome = run(job, outcomes)
            if outcome.status != 'running-elsewhere':
                progress.finished(job, outcome.status, time.monotonic() - start)
            return outcome

        for job in jobs:
            parent = outcomes.get(job.depends_on) if job.depends_on else None
            if parent is not None and parent.status == 'running-elsewhere':
                deferred.append(job)
                continue
            outcomes[job.key] = run_counted(job, self._run_one)
        for job in deferred:  # waits for the pretraining only if it is still running
            outcomes[job.key] = run_counted(job, self._run_one)
        for key, outcome in list(outcomes.items()):
            if outcome.status == 'running-elsewhere':
                outcomes[key] = run_counted(outcome.job, self._wait_for)
        progress.close()
        return [outcomes[key] for key in dict.fromkeys(job.key for job in jobs) if key in outcomes]

    def check_runtime(self, jobs: list[Job]) -> None:
        """Jobs planned for other threads, world size or device would be stored under keys
        that do not describe how they ran: refuse them."""
        actual = dict(threads=torch.get_num_threads(), world_size=self.world_size,
                      device=device_class())
        for job in jobs:
            problem = runtime_mismatch(job.spec.get('runtime'), actual)
            if problem:
                raise ConfigError(f'{job.stage} job {job.key} was planned for another runtime '
                                  f'({problem}); plan the jobs in the process that runs them')

    def _lock(self, job: Job) -> JobLock:
        return JobLock(self.work_dir / 'locks' / f'{job.stage}-{job.key}.lock')

    def _agreed(self, value):
        """Rank 0's value on every rank, so all ranks of a distributed run take the same path."""
        if self.world_size == 1:
            return value
        box = [value]
        broadcast_object_list(box, src=0)
        return box[0]

    def _wait_for(self, job: Job, outcomes: dict[str, Outcome]) -> Outcome:
        """Wait while another live runner holds ``job``; then use its record or run it here."""
        lock = self._lock(job)
        last_said = 0.0
        while self._agreed(lock.held_by_other() and self.store.finished(job.stage, job.key) is None):
            if self.rank == 0 and time.time() - last_said > 300:  # say who holds it, now and then
                say(f'waiting for {run_name(job)} ({job.key[:8]}): {lock.describe()}')
                last_said = time.time()
            time.sleep(self.poll_seconds)
        return self._run_one(job, outcomes)

    def _run_one(self, job: Job, outcomes: dict[str, Outcome]) -> Outcome:
        cached = self._agreed(self.store.finished(job.stage, job.key))
        if cached is not None:
            return Outcome(job, 'cached', record=cached)
        if job.depends_on is not None:
            parent = outcomes.get(job.depends_on)
            if parent is not None and parent.status == 'running-elsewhere':
                parent = outcomes[job.depends_on] = self._wait_for(parent.job, outcomes)
            if parent is None or parent.status not in ('finished', 'cached'):
                reason = parent.reason if parent else 'pretraining job not selected'
                return self._unavailable(job, f'pretraining unavailable: {reason}', blocked=True)
        lock = self._lock(job)
        acquired = self._agreed(lock.acquire() if self.rank == 0 else None)
        if not acquired:
            return Outcome(job, 'running-elsewhere', 'another runner holds this job')
        try:
            cached = self._agreed(self.store.finished(job.stage, job.key))
            if cached is not None:  # finished by another runner just before we locked it
                return Outcome(job, 'cached', record=cached)
            try:
                record = (self._pretrain(job) if job.stage == 'pretrain' else self._finetune(job))
            except (MissingResourceError, EncoderMismatchError) as err:
                # missing or unusable weight files: the row says why, the other jobs go on
                return self._unavailable(job, str(err))
            finally:
                finish_tracking()  # a job that failed still closes its tracking run
            barrier()  # rank 0 has written the record and the encoder
            return Outcome(job, 'finished', record=record)
        finally:
            if self.rank == 0:
                lock.release()

    def _scale(self, scale: dict) -> dict:
        """A stage's scale with ``--threads`` as its data-loader workers (as the plan put it
        in the job key: the worker count decides which worker draws which augmentation)."""
        return scale if self.threads is None else dict(scale, num_workers=self.threads)

    @property
    def deterministic(self) -> bool:
        return bool(self.suite.get('deterministic', True))

    def run_settings(self, job: Job) -> dict:
        """The resolved settings ``job``'s numbers depend on beyond its config (precision on
        this device, ``deterministic``, world size): recorded, and part of its key."""
        return run_settings(job.stage, job.spec['scale'], self.deterministic, self.world_size)

    def _drop_resume_checkpoint(self, job: Job) -> None:
        """A finished job keeps its record, encoder or selected weights and previews; its
        resume checkpoint (model, optimiser and RNG states) only served interruptions."""
        if self.rank == 0 and not self.keep_checkpoints:
            (self.run_dir(job) / 'resume.pth').unlink(missing_ok=True)

    def _unavailable(self, job: Job, reason: str, blocked: bool = False) -> Outcome:
        """Recorded so tables can say why, but never treated as cached: the next run retries."""
        record = dict(self._base_record(job), status='unavailable', reason=reason)
        if self.rank == 0:
            self.store.put(job.stage, job.key, record)
        if self.rank == 0:
            say(f'{run_name(job)} unavailable: {reason}')
        return Outcome(job, 'blocked' if blocked else 'unavailable', reason, record)

    def _tracking(self, job: Job) -> dict:
        """How a job's run is named and described to the tracking backend."""
        method = self._method(job.method)
        scale = job.spec['scale']
        hparams = dict(stage=job.stage, method=method.name, pretrain_set=job.pretrain_set or '-',
                       dataset=job.dataset or '-', seed=job.seed, arch=job.spec['arch'],
                       protocol=job.spec.get('protocol') or self.suite.protocol,
                       key=job.key, scale=scale, method_cfg=method.config())
        return dict(run_name=run_name(job), root=str(self.work_dir), hparams=hparams,
                    experiment=f'matssl-bench-{self.suite.suite_name}')

    def _base_record(self, job: Job) -> dict:
        method = self._method(job.method)
        return dict(stage=job.stage, key=job.key, suite=self.suite.suite_name,
                    method=job.method, method_label=method.name,
                    encoder_init=method.init, encoder_init_variant=method.init_label(job.spec['arch']),
                    weights_sha256=job.spec.get('weights_sha256', {}), pretrain_set=job.pretrain_set,
                    dataset=job.dataset, seed=job.seed, arch=job.spec['arch'],
                    protocol=job.spec.get('protocol'), row=job.row, config=job.spec,
                    image_bit_depth_policy=BIT_DEPTH_POLICY,
                    depends_on=job.depends_on)

    def _pretrain(self, job: Job) -> dict:
        start = time.time()
        method = self._method(job.method)
        pool, audit = build_audited_pool(job.spec['sources'], job.spec['exclude_test_images_of'],
                                         self.suite.protocol,
                                         job.spec.get('duplicate_threshold', 0.95))
        encoder, history = stages.pretrain(method, pool, job.spec['arch'],
                                           self._scale(job.spec['scale']), job.seed,
                                           self.run_dir(job), self.launcher, self.vis_backend,
                                           tracking=self._tracking(job),
                                           deterministic=self.deterministic)
        record = dict(self._base_record(job), status='finished',
                      encoder=str(self.encoder_path(job.key).relative_to(self.work_dir)),
                      pool_size=len(pool), excluded=audit.excluded,
                      excluded_test_images=len(audit.excluded),
                      duplicates_dropped=audit.duplicates,
                      duplicate_threshold=audit.threshold, history=history,
                      sync_bn=stages.uses_sync_bn(job.spec['scale'], self.launcher),
                      **self.run_settings(job),
                      versions=environment_versions(), wall_time_s=time.time() - start)
        losses = [h['train_loss'] for h in history if 'train_loss' in h]
        finish_tracking({'train/final_loss': losses[-1]} if losses else None)
        if self.rank == 0:
            save_torch_atomic(self.encoder_path(job.key), encoder)
            self.store.put(job.stage, job.key, record)
        self._drop_resume_checkpoint(job)
        return record

    def _encoder_for(self, job: Job) -> tuple[Optional[dict], str]:
        method = self._method(job.method)
        if job.depends_on is None:
            state = method.encoder_state(job.spec['arch'])
            return state, f'{method.name} encoder'
        path = self.encoder_path(job.depends_on)
        if not path.is_file():
            raise MissingResourceError(f'{path}: pretrained encoder missing although its record '
                                       'exists; delete the record to pretrain again')
        return read_state_dict(path), str(path)

    def _finetune(self, job: Job) -> dict:
        start = time.time()
        encoder, source = self._encoder_for(job)
        data = with_labels(build_micrograph_set(job.spec['data'], job.spec['protocol']),
                           job.spec['finetune_set'], job.spec.get('labels'))
        selection, metric_cfg = selection_and_metric(data, job.spec['protocol'])
        arch, scale = job.spec['arch'], self._scale(job.spec['scale'])
        batches: dict = {}
        weights, history = stages.finetune(encoder, source, data, selection, arch, scale,
                                           job.seed, self.run_dir(job), self.launcher,
                                           metric_cfg, report=batches,
                                           vis_backend=self.vis_backend,
                                           tracking=self._tracking(job),
                                           deterministic=self.deterministic)
        previews = self.run_dir(job) / 'test_previews.npz'
        # both scored once, after training: the selected epoch and the last one
        metrics = stages.evaluate(weights, data, 'test', arch, scale, metric_cfg, previews)
        extra = {}  # variants beyond Tables 4-5 (benchmarks/suite/variants.py, transfer.py)
        if job.spec.get('transfer_targets'):
            extra['transfer'] = evaluate_targets(weights, data, job.spec['transfer_targets'],
                                                 arch, scale, job.spec['protocol'],
                                                 selection_and_metric)
        if job.spec.get('morphology_classes'):
            extra['morphology'] = evaluate_morphology(weights, data, 'test', arch, scale,
                                                      job.spec['morphology_classes'],
                                                      stages.finetune_precision(scale))
        last = stages.evaluate(stages.last_weights_path(self.run_dir(job)), data, 'test', arch,
                               scale, metric_cfg)
        finish_tracking({'test/mIoU': metrics['mIoU'], 'test_last/mIoU': last['mIoU'],
                         'test/selected_epoch': metrics.get('selected_epoch') or 0})
        record = dict(self._base_record(job), status='finished', selection_split=selection,
                      metric=metric_cfg, test=metrics, test_last=last, history=history, **extra,
                      dropped_last_batch=batches.get('dropped_last_batch', False),
                      n_labelled=len(data.labeled_split('train')),
                      sync_bn=stages.uses_sync_bn(scale, self.launcher), **self.run_settings(job),
                      predictions=str(previews.relative_to(self.work_dir)),
                      dataset_meta=data.meta(), weights=str(weights.relative_to(self.work_dir)),
                      versions=environment_versions(), wall_time_s=time.time() - start)
        if self.rank == 0:
            self.store.put(job.stage, job.key, record)
        self._drop_resume_checkpoint(job)
        return record
