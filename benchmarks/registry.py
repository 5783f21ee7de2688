"""The suite's registries, children of mmengine's so configs mix both freely.

Plugins register with the decorators below; `default_scope='matssl_bench'`
makes a config's ``type='MatSSL'`` resolve here first, then in the parents.
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

SCOPE = 'matssl_bench'

# Pretraining methods: each plugin turns a pretraining set into a ResNet encoder state dict.
METHODS = Registry('pretraining method', scope=SCOPE, locations=['matssl_bench.methods'])
# Micrograph data sources: each reads one public layout (or generates data) into splits.
MICROGRAPH_SETS = Registry('micrograph set', scope=SCOPE, locations=['matssl_bench.datasets'])

MODELS = Registry('model', parent=MMENGINE_MODELS, scope=SCOPE,
                  locations=['matssl_bench.methods', 'matssl_bench.models.segmenters'])
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope=SCOPE,
                    locations=['matssl_bench.data.patches'])
METRICS = Registry('metric', parent=MMENGINE_METRICS, scope=SCOPE,
                   locations=['matssl_bench.evaluation.metrics'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope=SCOPE, locations=['matssl_bench.engine.hooks'])
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, scope=SCOPE, locations=['matssl_bench.evaluation.sliding_window'])

# Every other mmengine registry gets a child in this scope too, at the first Runner (so that
# children the suite's modules define themselves, e.g. precision.OPTIM_WRAPPERS, come first).
# Without one, each Runner building its visualizer, loops, optimiser, sampler... under
# default_scope='matssl_bench' logs "Failed to search registry with scope "matssl_bench""
# once per object and job; the children hold nothing, so lookups fall through to mmengine's.
_INHERITED = ('DATA_SAMPLERS', 'EVALUATOR', 'FUNCTIONS', 'INFERENCERS', 'LOG_PROCESSORS',
              'LOOPS', 'MODEL_WRAPPERS', 'OPTIMIZERS', 'OPTIM_WRAPPERS',
              'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS', 'RUNNERS', 'RUNNER_CONSTRUCTORS',
              'STRATEGIES', 'TASK_UTILS', 'TRANSFORMS', 'VISBACKENDS', 'VISUALIZERS',
              'WEIGHT_INITIALIZERS')


def scope_mmengine_registries() -> None:
    """Give each mmengine registry in :data:`_INHERITED` a child in this scope, if it has none."""
    import mmengine.registry as mmengine_registry

    for name in _INHERITED:
        parent = getattr(mmengine_registry, name, None)  # an older mmengine may lack one
        if parent is not None and SCOPE not in parent.children:
            Registry(parent.name, parent=parent, scope=SCOPE)
