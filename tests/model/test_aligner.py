import torch

from videorecap.config import AlignerConfig
from videorecap.model.aligner import QueryAligner


def test_cross_attention_every_second_layer_and_init_scale():
    cfg = AlignerConfig(width=64, layers=4, heads=2, intermediate=128, context_width=48)
    al = QueryAligner(cfg)
    assert [layer.xattn is not None for layer in al.layers] == [True, False, True, False]
    assert al.layers[0].xattn.key.in_features == 48  # keys/values from the context width
    big = QueryAligner(AlignerConfig(width=64, layers=2, heads=2, intermediate=128, context_width=48,
                                     cross_init_std=0.2))  # fmt: skip
    assert 0.15 < big.layers[0].xattn.out.weight.std().item() < 0.25
    assert al.layers[0].xattn.out.weight.std().item() < 0.03


def test_padding_is_ignored_and_an_empty_context_gives_no_nan():
    torch.manual_seed(0)
    al = QueryAligner(AlignerConfig(width=32, layers=2, heads=2, intermediate=64, context_width=32)).eval()
    q = torch.randn(2, 3, 32)
    ctx = torch.randn(2, 5, 32)
    mask = torch.tensor([[True, True, False, False, False], [False] * 5])
    out = al(q, ctx, mask)
    changed = ctx.clone()
    changed[0, 2:] = torch.randn(3, 32)  # only masked positions of row 0
    torch.testing.assert_close(al(q, changed, mask)[0], out[0])
    assert torch.isfinite(out).all()  # row 1 has nothing to attend to
