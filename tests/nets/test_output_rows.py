"""Backbones' ``positions=``: the output layer applied to chosen rows gives exactly those rows of the full
output (the likelihood bounds read masked positions only), for the DiT (time-conditioned: each row keeps its
own sequence's conditioning) and LLaDA; and the bound is the same through either path."""

from __future__ import annotations

import torch

from dlmbench.nets.dit import DiT
from dlmbench.families.llada.backbone import LLaDABackbone
from dlmbench.families.llada.writer import tiny_llada_config
from dlmbench.nets.dit_writer import random_state_dict, tiny_config
from dlmbench.diffusion.masked import PositionalDenoiser, llada_bound_mc, mdlm_nelbo_mc
from dlmbench.diffusion.schedules import LogLinearNoise


def _positions(shape, seed):
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(shape, generator=g) < 0.4
    pos[0, 0] = True
    return pos


def test_dit_rows_equal_the_full_output_rows():
    cfg = tiny_config(time_conditioning=True)
    net = DiT(cfg).eval()
    net.load_state_dict(random_state_dict(cfg, seed=1), strict=False)
    x = torch.randint(0, cfg.vocab_size - 1, (3, 16), generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.1, 1.0, 3.0])
    pos = _positions(x.shape, 1)
    with torch.no_grad():
        full, rows = net(x, sigma), net(x, sigma, positions=pos)
    assert rows.shape == (int(pos.sum()), cfg.vocab_size)
    torch.testing.assert_close(rows, full[pos], rtol=1e-5, atol=1e-5)


def test_llada_rows_equal_the_full_output_rows():
    cfg = tiny_llada_config()
    torch.manual_seed(0)
    net = LLaDABackbone(cfg).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.05)
    x = torch.randint(0, 1000, (2, 12), generator=torch.Generator().manual_seed(2))
    pos = _positions(x.shape, 3)
    with torch.no_grad():
        torch.testing.assert_close(net(x, positions=pos), net(x)[pos], rtol=1e-5, atol=1e-5)


def test_bounds_are_the_same_through_rows_or_the_full_canvas():
    cfg = tiny_config(time_conditioning=True)
    net = DiT(cfg).eval()
    net.load_state_dict(random_state_dict(cfg, seed=4), strict=False)
    mask_id = cfg.vocab_size - 1

    def full(x_t, sigma, positions=None):
        out = net(x_t, sigma.float()) if positions is None else net(x_t, sigma.float(), positions=positions)
        return torch.log_softmax(out.double(), dim=-1)

    x0 = torch.randint(0, mask_id, (3, 10), generator=torch.Generator().manual_seed(5))
    score = torch.ones_like(x0, dtype=torch.bool)
    score[:, :3] = False
    kw = dict(mask_id=mask_id, schedule=LogLinearNoise(1e-3), num_samples=6, batch_size=4)
    with torch.no_grad():
        a = mdlm_nelbo_mc(full, x0, score, [1, 2, 3], **kw)
        b = mdlm_nelbo_mc(PositionalDenoiser(full, full), x0, score, [1, 2, 3], **kw)
        la = llada_bound_mc(lambda x, s: full(x, torch.zeros(x.shape[0])), x0, score, [1, 2, 3], mask_id=mask_id, num_samples=6)
        lb = llada_bound_mc(PositionalDenoiser(lambda x, s: full(x, torch.zeros(x.shape[0])),
                                               lambda x, s, p: full(x, torch.zeros(x.shape[0]), p)),
                            x0, score, [1, 2, 3], mask_id=mask_id, num_samples=6)
    torch.testing.assert_close(torch.as_tensor(b.mean), torch.as_tensor(a.mean), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(torch.as_tensor(lb.mean), torch.as_tensor(la.mean), rtol=1e-9, atol=1e-9)
