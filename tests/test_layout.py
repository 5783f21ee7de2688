"""The core's layout: subpackages by concern, imports that run one way, no cycle, no
private name imported across modules, nothing loose under benchmarks/ but the contract."""
import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / 'benchmarks'
CONTRACT = {'__init__', 'method_api', 'data_api', 'registry', 'errors', 'plugins'}
# Lower rank = lower layer; a module may import its own layer or lower ones.
RANK = {'fileio': 0, 'registry': 0, 'errors': 0, 'models': 1, 'data_api': 1, 'data': 2,
        'evaluation': 3, 'method_api': 3, 'plugins': 3, 'suite': 4, 'engine': 5, 'report': 6,
        'perf': 7, 'commands': 7}


def _modules():
    for path in sorted(CORE.rglob('*.py')):
        rel = path.relative_to(CORE)
        if rel.parts[0] == 'suites':
            continue
        parts = list(rel.with_suffix('').parts)
        if parts[-1] == '__init__':
            parts = parts[:-1]
        yield '.'.join(['matssl_bench', *parts]), path


def _imports(path):
    """(imported module, names, at module level) for every import of the core in ``path``."""
    tree = ast.parse(path.read_text())
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.startswith('matssl_bench'):
            yield node.module, [a.name for a in node.names], id(node) in top
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith('matssl_bench.'):
                    yield alias.name, [], id(node) in top


def _layer(module):
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else None


def test_only_the_contract_sits_at_the_top():
    loose = {p.stem for p in CORE.glob('*.py')} - CONTRACT
    assert not loose, f'modules outside a subpackage: {sorted(loose)}'


def test_no_relative_imports_and_no_private_names_across_modules():
    problems = []
    for module, path in _modules():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                problems.append(f'{path.name}: relative import')
        for target, names, _ in _imports(path):
            problems += [f'{module} imports {target}.{n}' for n in names
                         if n.startswith('_') and not n.startswith('__')]
    assert not problems, problems


def test_layers_run_one_way():
    upward = []
    for module, path in _modules():
        own = RANK.get(_layer(module), -1)
        for target, names, _ in _imports(path):
            if target == 'matssl_bench':  # `from matssl_bench import x`: the subpackage x
                targets = [f'matssl_bench.{n}' for n in names]
            else:
                targets = [target]
            for t in targets:
                layer = _layer(t)
                if layer in RANK and RANK[layer] > own and _layer(module) is not None:
                    upward.append(f'{module} -> {t}')
    assert not upward, upward


def test_no_import_cycle_among_module_level_imports():
    graph = {}
    for module, path in _modules():
        graph[module] = {t for t, _, at_top in _imports(path) if at_top and t != module}
    state = {}

    def visit(node, stack):
        state[node] = 'open'
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 'open':
                pytest.fail('import cycle: ' + ' -> '.join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 'done'

    for module in graph:
        if module not in state:
            visit(module, [module])
