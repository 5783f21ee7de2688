# A suite for your own micrographs. Copy this file next to your data, edit it, and run it by path:
#   python tools/run_benchmark.py --suite path/to/my_suite.py --dry-run
#   python tools/run_benchmark.py --suite path/to/my_suite.py --work-dir work_dirs/mine
# Every key is described in the README, "Suite file format"; any value can be overridden from
# the command line, e.g. --cfg-options scale.finetune.epochs=20 backbone=resnet18.
description = 'my micrographs: MatSSL, MoCoV2, DenseCL, ImageNet and random init'
protocol = 'clean'          # best epoch chosen on a validation part; test touched once
seeds = [0]
backbone = 'resnet50'
ssl_init = 'imagenet'       # 'random' when you have no ImageNet weights file

# The data: a folder beside this file holding images/, masks/ and (optional) unlabeled/.
data_root = '{{ fileDirname }}/my_micrographs'
_mine = dict(
    type='Folder', root=data_root,
    classes=['matrix', 'ferrite', 'pearlite', 'pore'],   # index = class id
    # Masks stored as grey values: value -> class id (delete when masks hold class ids).
    label_map={0: 0, 85: 1, 170: 2, 255: 3},
)
pretrain_sets = dict(mine=[_mine])    # SSL on all your images except the test images
finetune_sets = dict(mine=_mine)
rows = [dict(finetune='mine', method=method, pretrain='mine')
        for method in ('MatSSL', 'MoCoV2', 'DenseCL', 'SupervisedImageNet', 'RandomInit')]

scale = dict(
    pretrain=dict(epochs=50, batch_size=64, patch_size=256, crop_size=224, overlap=0.5,
                  num_workers=4),
    finetune=dict(epochs=100, batch_size=16, patch_size=256, lr=1e-4, weight_decay=1e-5,
                  num_workers=4),
)
