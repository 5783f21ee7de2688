"""torch.profiler over one SSL step and one U-Net++ fine-tuning step, fp32 vs bf16 autocast.

Run from the repository root: python benchmarks/perf/profile_step.py CASE MODE
(CASE: ssl_r18_32px_b64 | ssl_r50_224px_b8 | ft_unetpp_r18_32px_b32; MODE: fp32 | bf16 | bf16_cl)
with ``--alternate``: fp32, bf16 and bf16_cl steps alternated, 4 rounds of 2 steps each.
"""
import sys, time, torch
from torch.profiler import profile, ProfilerActivity
from matssl_bench.plugins import load_builtin_plugins
from matssl_bench.suite.plan import build_method, load_suite
from matssl_bench.models.losses import nt_xent
from matssl_bench.engine import stages
load_builtin_plugins()
torch.manual_seed(0)
suite = load_suite('benchmarks/suites/cpu.py')
method = build_method(suite, 'MatSSL')

def ssl_case(arch, batch, px, channels_last):
    model = method.build_model(arch, None); model.train()
    if channels_last: model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    v1, v2 = torch.randn(batch, 3, px, px), torch.randn(batch, 3, px, px)
    if channels_last: v1, v2 = (v.contiguous(memory_format=torch.channels_last) for v in (v1, v2))
    def step(cast):
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=cast):
            z1, z2 = model.embed(v1), model.embed(v2)
        loss = nt_xent(z1.float(), z2.float(), model.temperature)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    return step

def ft_case(arch, batch, px, channels_last):
    model = stages.build_segmenter(arch, 4, dict(suite.scale['finetune'], channels_last=channels_last)); model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 3, px, px); y = torch.randint(0, 4, (batch, px, px))
    if channels_last: x = x.contiguous(memory_format=torch.channels_last)
    def step(cast):
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=cast):
            out = model.net(x)
        loss = model.loss_fn(out.float(), y)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    return step

CASES = {'ssl_r18_32px_b64': (ssl_case, 'resnet18', 64, 32),
         'ssl_r50_224px_b8': (ssl_case, 'resnet50', 8, 224),
         'ft_unetpp_r18_32px_b32': (ft_case, 'resnet18', 32, 32)}

def alternate(rounds=4):
    import statistics
    times = {}
    for name in ['ssl_r18_32px_b64', 'ft_unetpp_r18_32px_b32']:
        fn, arch, batch, px = CASES[name]
        steps = {m: fn(arch, batch, px, m == 'bf16_cl') for m in ('fp32', 'bf16', 'bf16_cl')}
        for m, s in steps.items():
            s(m != 'fp32')  # warm-up
        for _ in range(rounds):
            for m, s in steps.items():
                t = time.perf_counter(); s(m != 'fp32'); s(m != 'fp32')
                times.setdefault((name, m), []).append((time.perf_counter() - t) / 2 * 1000)
    for (name, m), v in times.items():
        print(f'{name} {m}: median {statistics.median(v):.0f} ms, min {min(v):.0f}, '
              f'max {max(v):.0f}, n={len(v)}')


if sys.argv[1] == '--alternate':
    alternate(); sys.exit(0)
name = sys.argv[1]; mode = sys.argv[2]  # fp32 | bf16 | bf16_cl
fn, arch, batch, px = CASES[name]
step = fn(arch, batch, px, mode == 'bf16_cl')
cast = mode != 'fp32'
for _ in range(2): step(cast)
t = time.perf_counter(); n = 3
for _ in range(n): step(cast)
per = (time.perf_counter() - t) / n
with profile(activities=[ProfilerActivity.CPU]) as prof:
    step(cast)
ka = prof.key_averages()
tot = sum(e.self_cpu_time_total for e in ka)
def share(pred): return sum(e.self_cpu_time_total for e in ka if pred(e.key)) / tot
groups = dict(
    conv=share(lambda k: 'conv' in k or 'mkldnn' in k),
    conversions=share(lambda k: k in ('aten::copy_', 'aten::_to_copy', 'aten::to', 'aten::clone', 'aten::contiguous')),
    batch_norm=share(lambda k: 'batch_norm' in k),
    matmul_linear=share(lambda k: k in ('aten::addmm', 'aten::mm', 'aten::bmm', 'aten::matmul')),
    optimizer=share(lambda k: k.startswith('Optimizer') or '_foreach' in k or k in ('aten::add_', 'aten::mul_', 'aten::addcmul_', 'aten::addcdiv_', 'aten::lerp_', 'aten::sqrt')),
    loss_softmax=share(lambda k: 'softmax' in k or 'nll' in k or 'cross_entropy' in k or 'logsumexp' in k),
)
print(f'## {name} {mode}: {per*1000:.0f} ms/step (median of {n} untimed-profile steps)')
print('groups (share of self CPU time):', {k: round(v, 3) for k, v in groups.items()})
print(ka.table(sort_by='self_cpu_time_total', row_limit=12, max_name_column_width=40))
