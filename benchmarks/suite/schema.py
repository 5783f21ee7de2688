"""What a suite file may contain, in one place: keys, defaults, and the checks behind one-line errors.

README "Suite file format" mirrors the declarations below (a test checks that every
key is documented there). A new setting is one line in :data:`SUITE_KEYS`,
:data:`PRETRAIN_SCALE_KEYS` or :data:`FINETUNE_SCALE_KEYS`; nothing else in this
module needs to change. Unknown keys are errors, never ignored.
"""
from __future__ import annotations

import difflib
import fnmatch
import inspect
from typing import Any, Iterable, Mapping, Optional

from matssl_bench.errors import ConfigError

REQUIRED = object()  # marks a key without default

# Top-level keys of a suite: name -> (default, what it changes). Names starting with '_'
# are the file's private helper variables and are not checked.
SUITE_KEYS: dict[str, tuple[Any, str]] = dict(
    description=('', 'one line shown by --list'),
    suite_name=(None, 'name in records and tables (default: the file name without .py)'),
    table=('table4', 'table of the rows that do not name one'),
    protocol=('clean', "'published' or 'clean' (--protocol overrides it)"),
    seeds=([0], 'seeds; each row runs once per seed (--seeds overrides them)'),
    pretrain_seeds=(None, 'SSL seeds the fine-tuning seeds share, in turn (None: each its own)'),
    backbone=('resnet50', 'ResNet encoder of every method: resnet18/34/50/101/152'),
    ssl_init=('imagenet', "encoder SSL methods start from: 'imagenet', 'micronet' or 'random'"),
    plugins=([], 'plugin modules imported first: dotted names or .py paths relative to the suite'),
    data_root=(None, 'conventional variable for the data folder; not read by the suite runner'),
    method_cfg=({}, 'per-method settings on top of the plugin defaults: {method: {key: value}}'),
    pretrain_sets=({}, 'pretraining set name -> list of data-set configs (each may add overlap=)'),
    finetune_sets=(REQUIRED, 'fine-tuning set name -> data-set config'),
    finetune_scale=({}, 'fine-tuning set name -> fine-tuning scale keys that differ for it'),
    rows=(REQUIRED, 'list of rows: dict(finetune=, method=, pretrain=, table=, published=)'),
    scale=(REQUIRED, 'dict(pretrain=dict(...), finetune=dict(...)): see the scale keys'),
    quoted=([], 'reference values from other papers shown beside a table, marked quoted'),
    notes=('', "text appended to the tables' titles"),
    recipe=('paper', "label of the reading a suite follows: 'paper' or 'authors-code'"),
    duplicate_threshold=(0.95, 'near-duplicate similarity for pretraining exclusion; None: off'),
    baseline=('RandomInit', 'method the tables compare the other rows against'),
    transfer=(False, 'score every fine-tuned model on the other sets with the same classes'),
    label_efficiency=(None, "dict(n_labelled=[1, 2, 'all'], draws=k) for every row"),
    morphology=({}, 'fine-tuning set -> class names whose connected regions are counted'),
    cli_overrides=({}, 'set by run_benchmark: the --cfg-options given, shown on the rows they '
                       'change'),
    deterministic=(True, 'deterministic algorithms (False: cuDNN autotuning, faster on GPUs, '
                         'results may differ run to run); recorded'),
)

# Keys of scale['pretrain'] and scale['finetune'] (and of finetune_scale entries).
_COMMON_SCALE_KEYS: dict[str, tuple[Any, str]] = dict(
    epochs=(REQUIRED, 'training epochs'),
    batch_size=(REQUIRED, 'total batch over all processes'),
    patch_size=(REQUIRED, 'side of the square patches cut from each image (px)'),
    rescale=(None, 'resize every image by this factor first (CPU-sized suites)'),
    num_workers=(0, 'data-loader worker processes'),
    precision=('fp32', "'fp32', 'bf16', 'fp16' or 'auto' (--precision overrides it)"),
    channels_last=(False, 'channels-last convolutions'),
    sync_bn=(None, 'SyncBatchNorm under a launcher (default: on with several CUDA processes; '
                   'fine-tuning without it needs >= 4 patches per process)'),
)
PRETRAIN_SCALE_KEYS: dict[str, tuple[Any, str]] = dict(
    _COMMON_SCALE_KEYS,
    crop_size=(None, 'random-resized-crop output of each view (default: patch_size)'),
    overlap=(0.0, 'patch overlap of sources that set none (0.5 = half a patch)'),
    views=('workers', "where SSL views are made: 'workers' (CPU, torchvision) or 'device' "
                      "(the training device, kornia, from uint8 batches)"),
)
FINETUNE_SCALE_KEYS: dict[str, tuple[Any, str]] = dict(
    _COMMON_SCALE_KEYS,
    lr=(1e-4, 'Adam learning rate'),
    weight_decay=(1e-5, 'Adam weight decay'),
    decoder_channels=((256, 128, 64, 32, 16), 'U-Net++ decoder widths'),
    eval_batch_size=(None, 'batch of validation and test (default: batch_size; test: 8)'),
    val_interval=(1, 'epochs between validations'),
    resize=(None, 'resize every image to resize x resize first (the authors\' EBC input)'),
    eval_stride=(None, 'sliding-window stride of whole-image evaluation (default: half the '
                       'patch)'),
    encoder_mode=('full', "'full', 'frozen-decoder' or 'linear-probe'"),
    augment=('none', "'none', 'flips', 'flips+rot90', 'photometric' or 'strong'"),
    balanced_crops=(False, 'random crops whose largest class covers at most cat_max_ratio'),
    cat_max_ratio=(0.75, 'largest-class share allowed in a balanced crop'),
    downscale=(1.0, 'input down-scaling factor (0.5 halves it; predictions upsampled back)'),
    tta=('none', "'none', 'flips', 'multiscale' or 'flips+multiscale'"),
    tta_scales=((0.75, 1.0, 1.25), 'scales of multi-scale test-time augmentation'),
    encoder_lr_mult=(1.0, 'encoder learning rate / decoder learning rate'),
)
SCALE_STAGES = dict(pretrain=PRETRAIN_SCALE_KEYS, finetune=FINETUNE_SCALE_KEYS)
POSITIVE_INT_KEYS = ('epochs', 'batch_size', 'patch_size', 'crop_size', 'eval_batch_size',
                     'val_interval', 'resize')

ROW_KEYS = dict(finetune=REQUIRED, method=REQUIRED, pretrain=None, table=None, published=None,
                label=None, note=None, baseline=None, scale=None, trick=None, transfer=None,
                label_efficiency=None, seeds=None)
PROTOCOLS = ('published', 'clean')
# Options every data-set config may carry beside its reader's own.
DATASET_EXTRA_KEYS = ('type', 'protocol_options')
POOL_SOURCE_EXTRA_KEYS = ('overlap',)


# Keys whose default the suite loader fills in (the code reads them directly).
FILLED_DEFAULTS = ('description', 'table', 'protocol', 'seeds', 'backbone', 'method_cfg',
                   'pretrain_sets', 'finetune_scale', 'quoted', 'notes')



def _check_seed_list(where: str, seeds) -> None:
    """An optional seed list: None, or a non-empty list of integers."""
    if seeds is not None and (not isinstance(seeds, (list, tuple)) or not seeds
                              or not all(isinstance(s, int) for s in seeds)):
        raise ConfigError(f'{where} must be None or a non-empty list of integers, got {seeds!r}')

def apply_defaults(suite) -> None:
    """Fill the defaults of :data:`FILLED_DEFAULTS` into a validated suite config."""
    import copy

    for key in FILLED_DEFAULTS:
        if key not in suite:
            suite[key] = copy.deepcopy(SUITE_KEYS[key][0])


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return f'; did you mean {close[0]!r}?' if close else ''


def unknown_key_error(where: str, key: str, allowed: Iterable[str]) -> ConfigError:
    allowed = sorted(allowed)
    return ConfigError(f'{where}: unknown key {key!r}{did_you_mean(key, allowed)} '
                       f'(allowed: {", ".join(allowed)})')


def check_keys(where: str, given: Mapping, declared: Mapping, skip_private: bool = False) -> None:
    """Unknown keys and missing required keys of ``given`` against ``declared``."""
    for key in given:
        if skip_private and str(key).startswith('_'):
            continue
        if key not in declared:
            raise unknown_key_error(where, key, declared)
    for key, spec in declared.items():
        default = spec[0] if isinstance(spec, tuple) else spec
        if default is REQUIRED and key not in given:
            raise ConfigError(f'{where}: missing required key {key!r}')


def check_scale(where: str, scale: Any, stage: str, partial: bool = False) -> None:
    if not isinstance(scale, Mapping):
        raise ConfigError(f'{where}: expected a dict of {stage} scale keys, got {scale!r}')
    declared = SCALE_STAGES[stage]
    if partial:  # overrides (finetune_scale) need no required key
        declared = {k: (None, d) for k, (_, d) in declared.items()}
    check_keys(where, scale, declared)
    if scale.get('views') not in (None, 'workers', 'device'):
        raise ConfigError(f"{where}.views: expected 'workers' or 'device', got {scale['views']!r}")
    for key in POSITIVE_INT_KEYS:
        value = scale.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise ConfigError(f'{where}.{key}: expected a positive integer, got {value!r}')


def _reader_parameters(cls) -> tuple[Optional[set], set]:
    """(accepted option names or None when the reader takes **kwargs, required names)."""
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    if any(p.kind is p.VAR_KEYWORD for p in params):
        accepted = None
    else:
        accepted = {p.name for p in params if p.kind is not p.VAR_POSITIONAL}
    required = {p.name for p in params
                if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    return accepted, required


def check_dataset_cfg(where: str, cfg: Any, extra: Iterable[str] = ()) -> None:
    """A data-set config against its reader's ``__init__`` signature."""
    from matssl_bench.registry import MICROGRAPH_SETS

    if not isinstance(cfg, Mapping) or 'type' not in cfg:
        raise ConfigError(f'{where}: expected a data-set config dict(type=..., ...), got {cfg!r}')
    registered = sorted(MICROGRAPH_SETS.module_dict)
    cls = MICROGRAPH_SETS.get(cfg['type'])
    if cls is None:
        raise ConfigError(f'{where}: data-set type {cfg["type"]!r} is not registered'
                          f'{did_you_mean(cfg["type"], registered)} (registered: '
                          f'{", ".join(registered)}; load a reader plugin with --plugin)')
    accepted, required = _reader_parameters(cls)
    allowed = set(DATASET_EXTRA_KEYS) | set(extra)
    options = {k: v for k, v in cfg.items() if k not in allowed}
    per_protocol = cfg.get('protocol_options') or {}
    if not isinstance(per_protocol, Mapping):
        raise ConfigError(f'{where}.protocol_options: expected {{protocol: {{option: value}}}}')
    for protocol, extra_options in per_protocol.items():
        if protocol not in PROTOCOLS:
            raise ConfigError(f'{where}.protocol_options: unknown protocol {protocol!r}'
                              f'{did_you_mean(protocol, PROTOCOLS)} (allowed: {", ".join(PROTOCOLS)})')
        _check_options(f'{where}.protocol_options.{protocol}', cfg['type'], extra_options,
                       accepted)
    _check_options(where, cfg['type'], options, accepted)
    for name in sorted(required - set(options)):
        raise ConfigError(f'{where}: missing required key {name!r} of data set {cfg["type"]}')


def _check_options(where: str, type_name: str, options: Mapping, accepted: Optional[set]) -> None:
    if accepted is None:
        return
    for key in options:
        if key not in accepted:
            raise ConfigError(f'{where}: {type_name} has no option {key!r}'
                              f'{did_you_mean(key, accepted)} (options: {", ".join(sorted(accepted))})')


def resolve_method_names(pattern: str, where: str) -> list[str]:
    """Registered method names matching a row's ``method`` (a name or a glob)."""
    from matssl_bench.registry import METHODS

    registered = sorted(METHODS.module_dict)
    if any(c in pattern for c in '*?['):
        # methods with in_wildcards=False (comparison methods; Checkpoint, which needs
        # path=) run only where a row or --methods names them
        names = [n for n in registered if fnmatch.fnmatch(n, pattern)
                 and getattr(METHODS.module_dict[n], 'in_wildcards', True)]
        if not names:
            raise ConfigError(f'{where}: method pattern {pattern!r} matches no registered method '
                              f'(registered: {", ".join(registered)})')
        return names
    if pattern not in METHODS.module_dict:
        raise unregistered_method_error(where, pattern)
    return [pattern]


def unregistered_method_error(where: str, name: str) -> ConfigError:
    from matssl_bench.registry import METHODS

    registered = sorted(METHODS.module_dict)
    return ConfigError(f'{where}: method {name!r} is not registered{did_you_mean(name, registered)} '
                       f'(registered: {", ".join(registered)}; load it with --plugin MODULE_OR_FILE)')


def validate_suite(suite: Mapping, where: Optional[str] = None) -> None:
    """Raise :class:`ConfigError` on the first mistake of a suite config, naming the key."""
    from matssl_bench.method_api import INITS
    from matssl_bench.suite.cost import ARCH_COST
    from matssl_bench.plugins import load_builtin_plugins

    load_builtin_plugins()
    where = where or f'suite {suite.get("suite_name", "?")}'
    check_keys(where, suite, SUITE_KEYS, skip_private=True)
    _check_choice(f'{where}: protocol', suite.get('protocol', 'clean'), PROTOCOLS)
    _check_choice(f'{where}: backbone', suite.get('backbone', 'resnet50'), ARCH_COST)
    _check_choice(f'{where}: ssl_init', suite.get('ssl_init', 'imagenet'), INITS)
    seeds = suite.get('seeds', [0])
    if not isinstance(seeds, (list, tuple)) or not all(isinstance(s, int) for s in seeds):
        raise ConfigError(f'{where}: seeds must be a list of integers, got {seeds!r}')
    _check_seed_list(f'{where}: pretrain_seeds', suite.get('pretrain_seeds'))
    if not isinstance(suite.get('deterministic', True), bool):
        raise ConfigError(f'{where}: deterministic must be True or False, '
                          f'got {suite["deterministic"]!r}')

    scale = suite['scale']
    if not isinstance(scale, Mapping):
        raise ConfigError(f'{where}: scale must be dict(pretrain=dict(...), finetune=dict(...))')
    check_keys(f'{where}: scale', scale, dict(pretrain=REQUIRED, finetune=REQUIRED))
    for stage in SCALE_STAGES:
        # a suite without pretraining (no pretraining sets) may leave scale.pretrain empty
        no_ssl = stage == 'pretrain' and not scale[stage] and not suite.get('pretrain_sets')
        check_scale(f'{where}: scale.{stage}', scale[stage], stage, partial=no_ssl)

    finetune_sets = suite['finetune_sets']
    pretrain_sets = suite.get('pretrain_sets', {})
    for name, cfg in finetune_sets.items():
        check_dataset_cfg(f'{where}: finetune_sets.{name}', cfg)
    for name, sources in pretrain_sets.items():
        if not isinstance(sources, (list, tuple)):
            raise ConfigError(f'{where}: pretrain_sets.{name} must be a list of data-set configs')
        for i, cfg in enumerate(sources):
            check_dataset_cfg(f'{where}: pretrain_sets.{name}[{i}]', cfg, POOL_SOURCE_EXTRA_KEYS)
    for name, overrides in suite.get('finetune_scale', {}).items():
        if name not in finetune_sets:
            raise unknown_key_error(f'{where}: finetune_scale', name, finetune_sets)
        check_scale(f'{where}: finetune_scale.{name}', overrides, 'finetune', partial=True)

    method_cfg = suite.get('method_cfg', {})
    if not isinstance(method_cfg, Mapping):
        raise ConfigError(f'{where}: method_cfg must be {{method: {{setting: value}}}}, '
                          f'got {method_cfg!r}')
    for name, settings in method_cfg.items():
        for method in resolve_method_names(name, f'{where}: method_cfg'):
            check_method_settings(f'{where}: method_cfg.{name}', method, settings)
    if not isinstance(suite['rows'], (list, tuple)) or not suite['rows']:
        raise ConfigError(f'{where}: rows must be a non-empty list of dict(finetune=, method=, ...)')
    from matssl_bench.registry import METHODS
    for i, row in enumerate(suite['rows']):
        at = f'{where}: rows[{i}]'
        if not isinstance(row, Mapping):
            raise ConfigError(f'{at}: expected dict(finetune=, method=, pretrain=), got {row!r}')
        check_keys(at, row, ROW_KEYS)
        _check_seed_list(f'{at}: seeds', row.get('seeds'))
        if row['finetune'] not in finetune_sets:
            raise ConfigError(f'{at}: finetune {row["finetune"]!r} is not in finetune_sets'
                              f'{did_you_mean(row["finetune"], finetune_sets)} '
                              f'(finetune_sets: {", ".join(finetune_sets)})')
        names = resolve_method_names(row['method'], at)
        if any(METHODS.get(n).needs_pretraining for n in names):
            pretrain = row.get('pretrain')
            if pretrain not in pretrain_sets:
                raise ConfigError(f'{at}: pretrain {pretrain!r} is not in pretrain_sets'
                                  f'{did_you_mean(pretrain, pretrain_sets)} (pretrain_sets: '
                                  f'{", ".join(pretrain_sets) or "none"}); methods with an SSL '
                                  'stage need one')


def check_method_settings(where: str, method: str, settings: Any) -> None:
    """A method's ``method_cfg`` entry against the settings its plugin declares
    (``PretrainingMethod.declared_settings``); SimCLR view options under ``augmentation``
    against the view transform's arguments."""
    from matssl_bench.data.ssl_views import simclr_view_transform
    from matssl_bench.method_api import SSLMethod
    from matssl_bench.registry import METHODS

    if not isinstance(settings, Mapping):
        raise ConfigError(f'{where}: expected a dict of settings, got {settings!r}')
    cls = METHODS.get(method)
    declared = cls.declared_settings()
    if declared is not None:
        for key in settings:
            if key not in declared:
                raise ConfigError(f'{where}: {method} has no setting {key!r}'
                                  f'{did_you_mean(key, declared)} (settings: '
                                  f'{", ".join(sorted(declared))}; a plugin taking free-form '
                                  'settings sets free_form_settings = True)')
    augmentation = settings.get('augmentation')
    # the shared SimCLR views (SSLMethod.view_transform) take these options; a plugin with its
    # own view transform checks its own
    if augmentation is not None and getattr(cls, 'view_transform', None) is SSLMethod.view_transform:
        if not isinstance(augmentation, Mapping):
            raise ConfigError(f'{where}.augmentation: expected a dict of view options, '
                              f'got {augmentation!r}')
        options = set(list(inspect.signature(simclr_view_transform).parameters)[1:])
        for key in augmentation:
            if key not in options:
                raise ConfigError(f'{where}.augmentation: no view option {key!r}'
                                  f'{did_you_mean(key, options)} (options: '
                                  f'{", ".join(sorted(options))})')


def _check_choice(where: str, value: Any, choices: Iterable[str]) -> None:
    choices = list(choices)
    if value not in choices:
        raise ConfigError(f'{where} is {value!r}{did_you_mean(value, choices)} '
                          f'(allowed: {", ".join(choices)})')
