"""`tools/submit_slurm.py`: a suite's jobs as Slurm job arrays, through submitit.

    python tools/submit_slurm.py --suite paper --work-dir /shared/work_dirs/paper \\
        --partition gpu --time-pretrain 1440 --time-finetune 480

Every option of ``tools/run_benchmark.py`` that selects or changes jobs (``--suite``,
``--work-dir``, ``--cfg-options``, ``--seeds``, ``--methods``, ``--datasets``, ``--rows``,
``--protocol``, ``--precision``, ``--plugin``) is accepted and passed on to every job. The
plan is checked first (as ``--dry-run`` does); jobs already cached are not submitted, and
jobs that lack a resource (weight file, data) or whose pretraining does are listed and
left out. Then:

- one array of every pretraining job (``run_benchmark.py --job KEY`` per task);
- per pretraining job, one array of the fine-tuning jobs that use its encoder, starting
  only after that task succeeded (``afterok:<array>_<task>``; dependants of a failed task
  are cancelled, ``--kill-on-invalid-dep=yes``); fine-tuning jobs whose encoder needs no
  pretraining or is cached form one more array without dependency;
- one job that writes the tables once every fine-tuning array has ended (``afterany``).

A task that reaches its time limit is requeued by submitit (USR2 ``--time-pretrain`` /
``--time-finetune`` minus 90 s before the end): it frees its job lock and the requeued
task resumes from the job's ``resume.pth``. The work dir's job locks stay as a safety
net, e.g. against a plain runner started on the same work dir.

``--executor local`` runs the same arrays on this machine through submitit's
LocalExecutor (one process per task, all at once; the dependencies are waited for here)
and writes the tables; ``--executor debug`` runs them one after the other in this process.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path
from typing import Optional

from matssl_bench.commands.run_benchmark import (EXIT_BLOCKED, EXIT_UNAVAILABLE, OneLineParser,
                                                 one_line, parse_args as parse_run_args,
                                                 plan_jobs, route_logs_to_stderr)
from matssl_bench.errors import BenchmarkError, ConfigError

# The paper's loaders use 8 workers; one core for the training process and one spare.
CPUS_BEYOND_WORKERS = 2
DEFAULT_TIME_MIN = dict(pretrain=24 * 60, finetune=12 * 60, report=30)
REQUEUE_SIGNAL_S = 90


class JobTask:
    """One ``run_benchmark.py --job KEY`` run as a submitit task (picklable, checkpointable)."""

    def __init__(self, argv: list[str], key: str, work_dir: str):
        self.argv = list(argv)
        self.key = key
        self.work_dir = work_dir

    def __call__(self) -> int:
        from matssl_bench.commands.run_benchmark import main
        code = main(self.argv)
        if code != 0:  # a failed task: Slurm's afterok dependants are cancelled
            why = {EXIT_BLOCKED: 'blocked: its pretraining job has not finished',
                   EXIT_UNAVAILABLE: 'unavailable: it lacks a resource'}.get(code, 'error')
            raise RuntimeError(f'job {self.key}: run_benchmark.py exited {code} ({why}); '
                               'see this task\'s stderr')
        return code

    def checkpoint(self, *args, **kwargs):
        """Called by submitit on time-out or pre-emption: free the job's lock, requeue the
        same task; the requeued run resumes from the job's resume.pth."""
        import submitit

        release_locks_of_this_process(Path(self.work_dir) / 'locks')
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


class ReportTask:
    """Writes the work dir's tables from its records (after the fine-tuning arrays)."""

    def __init__(self, work_dir: str, plugins: list[str]):
        self.work_dir = work_dir
        self.plugins = list(plugins)

    def __call__(self) -> str:
        from matssl_bench.plugins import import_user_plugin, load_builtin_plugins
        from matssl_bench.report.build import make_report

        load_builtin_plugins()
        for plugin in self.plugins:
            import_user_plugin(plugin)
        make_report(Path(self.work_dir))
        return str(Path(self.work_dir) / 'tables')


def release_locks_of_this_process(locks_dir: Path) -> list[Path]:
    """Delete the job locks this process holds (host and pid), under the locks' guard."""
    from filelock import FileLock

    from matssl_bench.fileio.locks import GUARD_NAME, JobLock

    if not locks_dir.is_dir():
        return []
    freed = []
    with FileLock(str(locks_dir / GUARD_NAME)):
        for path in sorted(locks_dir.glob('*.lock')):
            owner = JobLock(path).owner() or {}
            if owner.get('host') == socket.gethostname() and owner.get('pid') == os.getpid():
                path.unlink(missing_ok=True)
                freed.append(path)
    return freed


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition('=')
    if not sep or not key:
        raise argparse.ArgumentTypeError(f'expected KEY=VALUE, e.g. account=proj123, got {text!r}')
    return key, value


def parse_args(argv=None) -> tuple[argparse.Namespace, list[str]]:
    """(scheduler options, the run_benchmark.py options to pass on to every job)."""
    p = OneLineParser(prog='submit_slurm.py', description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter,
                      epilog='Any other option is a tools/run_benchmark.py option (see its --help).')
    p.add_argument('--executor', choices=['slurm', 'local', 'debug'], default='slurm',
                   help='slurm: submit and return; local: run the arrays here through '
                   "submitit's LocalExecutor and wait; debug: run them in this process")
    p.add_argument('--partition', help='Slurm partition (default: the cluster\'s)')
    p.add_argument('--gpus-per-node', type=int, default=1,
                   help='GPUs per job; above 1 each job runs one task per GPU under '
                   "mmengine's slurm launcher (default 1)")
    p.add_argument('--cpus-per-task', type=int,
                   help='CPU cores per task (default: the suite\'s largest num_workers + '
                   f'{CPUS_BEYOND_WORKERS}, i.e. 10 for the paper suite\'s 8 loader workers)')
    p.add_argument('--mem-gb', type=int, default=64, help='memory per job in GB (default 64)')
    p.add_argument('--time-pretrain', type=int, default=DEFAULT_TIME_MIN['pretrain'],
                   metavar='MIN', help='time limit of a pretraining task in minutes '
                   '(default %(default)s); a task that reaches it is requeued and resumes')
    p.add_argument('--time-finetune', type=int, default=DEFAULT_TIME_MIN['finetune'],
                   metavar='MIN', help='time limit of a fine-tuning task in minutes '
                   '(default %(default)s)')
    p.add_argument('--array-parallelism', type=int, default=64,
                   help='at most this many tasks of one array run at once (default 64)')
    p.add_argument('--slurm-option', type=_key_value, action='append', default=[],
                   metavar='KEY=VALUE', help='extra #SBATCH option, e.g. account=proj123, '
                   'qos=high, constraint=h100 (repeatable)')
    p.add_argument('--setup', action='append', default=[], metavar='LINE',
                   help="shell line run before each task, e.g. 'module load cuda/12.4' or "
                   "'source .venv/bin/activate' (repeatable)")
    p.add_argument('--log-dir', type=Path,
                   help="submitit's folder of pickled tasks and logs (default WORK_DIR/slurm)")
    p.add_argument('--no-report', action='store_true', help='submit no table-writing job')
    args, rest = p.parse_known_args(argv)
    for flag in ('--job', '--dry-run', '--list', '--launcher', '--format', '--threads'):
        if any(r == flag or r.startswith(flag + '=') for r in rest):
            p.error(f'{flag} is not an option of submit_slurm.py (it sets it for each job)')
    return args, rest


def _forwarded(rest: list[str], work_dir: Path) -> list[str]:
    """run_benchmark.py options of every job: the user's, with an absolute work dir."""
    return [*rest, '--work-dir', str(work_dir.resolve())]


def submittable(suite, jobs, work_dir: Path) -> tuple[list, list[str]]:
    """(jobs to submit: ready ones in plan order, lines about the ones left out)."""
    from matssl_bench.engine.dry_run import inspect_plan

    ready, notes = [], []
    for job, entry in zip(jobs, inspect_plan(suite, jobs, work_dir)):
        if entry['status'] == 'ready':
            ready.append(job)
        elif entry['status'] != 'cached':
            why = '; '.join(m['message'] for m in entry['missing']) or \
                f'pretraining {entry["blocked_by"]} cannot run'
            notes.append(f'left out {entry["status"]} {job.stage} {job.key} '
                         f'({job.method} / {job.dataset or job.pretrain_set}): {why}')
    return ready, notes


class Submitter:
    """Builds the executors and submits the arrays; remembers what it submitted."""

    def __init__(self, args: argparse.Namespace, suite, log_dir: Path):
        import submitit

        self.args = args
        self.executor = submitit.AutoExecutor(folder=str(log_dir / '%j'),
                                              cluster=args.executor)
        workers = max(int(suite.scale[s].get('num_workers', 0)) for s in ('pretrain', 'finetune'))
        self.cpus = args.cpus_per_task or workers + CPUS_BEYOND_WORKERS
        self.submitted: list[tuple[str, object]] = []  # (what, submitit job)

    def _parameters(self, stage: str, dependency: Optional[str]) -> dict:
        args = self.args
        extra = dict(args.slurm_option)
        if dependency:
            extra.update(dependency=dependency, **{'kill-on-invalid-dep': 'yes'})
        gpus = args.gpus_per_node if stage != 'report' else 0
        if args.executor != 'slurm':
            import torch
            gpus = min(gpus, torch.cuda.device_count())
        minutes = dict(pretrain=args.time_pretrain, finetune=args.time_finetune).get(
            stage, DEFAULT_TIME_MIN['report'])
        params = dict(name=f'matssl-{stage}', timeout_min=minutes, gpus_per_node=gpus,
                      tasks_per_node=max(1, gpus), cpus_per_task=self.cpus,
                      mem_gb=args.mem_gb if stage != 'report' else 16,
                      slurm_signal_delay_s=REQUEUE_SIGNAL_S,
                      slurm_array_parallelism=args.array_parallelism,
                      slurm_additional_parameters=extra, slurm_setup=list(args.setup))
        if args.partition:
            params['slurm_partition'] = args.partition
        return params

    def submit(self, stage: str, tasks: list, dependency: Optional[str] = None) -> list:
        self.executor.update_parameters(**self._parameters(stage, dependency))
        jobs = self.executor.submit_array(tasks)
        self.submitted += [(stage, job) for job in jobs]
        return jobs


def _task_argv(rest: list[str], work_dir: Path, key: str, gpus: int) -> list[str]:
    argv = [*_forwarded(rest, work_dir), '--job', key]
    return argv + ['--launcher', 'slurm'] if gpus > 1 else argv


def submit(args: argparse.Namespace, rest: list[str], out) -> int:
    run_args = parse_run_args([*rest])
    from matssl_bench.plugins import import_user_plugin, load_builtin_plugins

    load_builtin_plugins()
    for plugin in run_args.plugin:
        import_user_plugin(plugin)
    suite, jobs, work_dir = plan_jobs(run_args)
    work_dir = Path(work_dir).resolve()
    ready, notes = submittable(suite, jobs, work_dir)
    for note in notes:
        print(note, file=sys.stderr)
    log_dir = (args.log_dir or work_dir / 'slurm').resolve()
    sub = Submitter(args, suite, log_dir)
    gpus = args.gpus_per_node if args.executor == 'slurm' else 1

    def task(job):
        # the plan id, not the key: the node that runs it adds its own runtime facts
        return JobTask(_task_argv(rest, work_dir, job.plan_id, gpus), job.key, str(work_dir))

    pretrain = [j for j in ready if j.stage == 'pretrain']
    finetune = [j for j in ready if j.stage == 'finetune']
    by_parent: dict[Optional[str], list] = {}
    for job in finetune:
        parent = job.depends_on if any(p.key == job.depends_on for p in pretrain) else None
        by_parent.setdefault(parent, []).append(job)
    waits_here = args.executor != 'slurm'  # no scheduler: dependencies are waited for here
    parent_ids = dict(zip([j.key for j in pretrain],
                          sub.submit('pretrain', [task(j) for j in pretrain]) if pretrain else []))
    failures = _wait([job for _, job in sub.submitted]) if waits_here else []
    finetune_jobs = []
    for parent, group in by_parent.items():
        dependency = (f'afterok:{parent_ids[parent].job_id}'
                      if parent is not None and not waits_here else None)
        finetune_jobs += sub.submit('finetune', [task(j) for j in group], dependency)
    if waits_here:
        failures += _wait(finetune_jobs)
    if not args.no_report:
        ids = sorted({str(j.job_id).split('_')[0] for j in finetune_jobs})
        dependency = f'afterany:{":".join(ids)}' if ids and not waits_here else None
        report = ReportTask(str(work_dir), run_args.plugin)
        if waits_here:
            report()
        else:
            sub.submit('report', [report], dependency)
    _summarise(sub, ready, notes, work_dir, log_dir, out)
    return 1 if failures else 0


def _wait(jobs: list) -> list:
    """Wait for local tasks; each failed one is reported (and returned), the others go on."""
    failed = []
    for job in jobs:
        try:
            job.result()
        except Exception as err:  # noqa: BLE001 - submitit re-raises the task's error
            print(f'task {job.job_id} failed: {one_line(err)[-400:]}', file=sys.stderr)
            failed.append(job)
    return failed


def _summarise(sub: Submitter, ready: list, notes: list, work_dir: Path, log_dir: Path,
               out) -> None:
    counts: dict[str, int] = {}
    for stage, _ in sub.submitted:
        counts[stage] = counts.get(stage, 0) + 1
    ids = sorted({str(job.job_id).split('_')[0] for _, job in sub.submitted})
    print(f'{len(ready)} jobs submitted through submitit ({sub.args.executor}): '
          + ', '.join(f'{n} {s}' for s, n in counts.items())
          + f'; {len(notes)} left out; scheduler ids {" ".join(ids) or "-"}; logs in {log_dir}; '
          f'tables in {work_dir / "tables"}', file=out)


def main(argv=None) -> int:
    args, rest = parse_args(argv)
    out = sys.stdout
    try:
        import contextlib
        with contextlib.redirect_stdout(sys.stderr):
            route_logs_to_stderr(out)
            return submit(args, rest, out)
    except (BenchmarkError, FileNotFoundError, KeyError, ValueError, ConfigError) as err:
        print(f'error: {one_line(err)}', file=sys.stderr)
        return 2
