import pytest
import torch
import torchvision

from matssl_bench.models.encoders import encoder_state_of
from matssl_bench.errors import EncoderMismatchError
from matssl_bench.models.segmenters import UNetPlusPlusSegmenter


def _pair(**kwargs):
    torch.manual_seed(0)
    a = UNetPlusPlusSegmenter('resnet18', 3, decoder_channels=(16, 16, 8, 8, 8), **kwargs)
    return a


def test_channels_last_changes_layout_not_results():
    plain, fast = _pair(), _pair(channels_last=True)
    fast.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(plain.eval()(x), fast.eval()(x), atol=1e-4)
    conv = fast.net.encoder.conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()


def test_encoder_state_is_loaded_strictly():
    resnet = torchvision.models.resnet18()
    state = encoder_state_of(resnet)
    model = _pair(encoder_state=state)
    assert torch.equal(model.net.encoder.layer4[1].conv2.weight, resnet.layer4[1].conv2.weight)
    state.pop('layer4.1.conv2.weight')
    with pytest.raises(EncoderMismatchError, match='layer4.1.conv2.weight'):
        _pair(encoder_state=state, encoder_source='broken.pth')


def test_loss_and_predict_modes():
    model = _pair()
    x, gt = torch.randn(2, 3, 32, 32), torch.randint(0, 3, (2, 32, 32))
    loss = model(x, dict(gt=gt), mode='loss')['loss']
    assert loss.ndim == 0 and 0 <= float(loss) <= 1
    preds = model(x, dict(gt=gt), mode='predict')
    assert len(preds) == 2 and preds[0]['pred_sem_seg']['data'].shape == (1, 32, 32)
