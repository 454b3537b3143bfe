"""DUO's published format: the HF folder loads key for key into MDLM's DiT (time-conditioned), one-line errors
for anything else, and the DUO-repo Lightning checkpoint (EMA weights) through the same network."""

from __future__ import annotations

import json

import pytest
import torch

from dlmbench.errors import CheckpointError
from dlmbench.families.duo.backbone import PREFIX, load_duo_backbone
from dlmbench.families.duo.writer import tiny_duo_config, write_duo_hub_folder
from dlmbench.nets.dit import DiT


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("duo")
    config = tiny_duo_config()
    state = write_duo_hub_folder(folder, config, seed=3)
    return folder, config, state


def test_published_fields_and_key_for_key_load(tiny):
    folder, config, state = tiny
    data = json.loads((folder / "config.json").read_text())
    assert data["model_type"] == "duo" and data["causal"] is False and "time_conditioning" not in data
    net, cfg, prov = load_duo_backbone(folder, dtype=torch.float64)
    assert cfg.time_conditioning and cfg.vocab_size == 67 and cfg.mask_index == 66
    assert prov["format"] == "hf-duo" and len(prov["sha256"]) == 64
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k].to(v.dtype)), k
    # the same weights in a plain DiT give the same logits; the time input matters (time-conditioned)
    ref = DiT(config.dit).double().eval()
    ref.load_state_dict(state)
    x = torch.randint(0, 67, (2, 16), generator=torch.Generator().manual_seed(0))
    s = torch.tensor([0.1, 2.0], dtype=torch.float64)
    assert torch.equal(net(x, s), ref(x, s))
    assert not torch.allclose(net(x, s), net(x, torch.zeros(2, dtype=torch.float64)))


def test_missing_unexpected_and_misshaped_keys_are_one_line(tmp_path, tiny):
    from safetensors.torch import load_file, save_file

    folder, _config, _state = tiny
    tensors = load_file(str(folder / "model.safetensors"))
    bad = dict(tensors)
    bad.pop(PREFIX + "blocks.1.attn_qkv.weight")
    bad["teacher.blocks.0.norm1.weight"] = torch.ones(3)
    bad[PREFIX + "output_layer.linear.bias"] = torch.zeros(5)
    out = tmp_path / "bad"
    out.mkdir()
    (out / "config.json").write_text((folder / "config.json").read_text())
    save_file(bad, str(out / "model.safetensors"))
    with pytest.raises(CheckpointError) as e:
        load_duo_backbone(out)
    msg = str(e.value)
    assert "\n" not in msg and "missing backbone.blocks.1.attn_qkv.weight" in msg
    assert "unexpected teacher.blocks.0.norm1.weight" in msg and "mis-shaped backbone.output_layer.linear.bias" in msg


def test_wrong_model_type_and_causal_are_refused(tmp_path, tiny):
    folder, _config, _state = tiny
    for change, words in (({"model_type": "mdlm"}, "not duo"), ({"causal": True}, "causal: true")):
        out = tmp_path / words.replace(" ", "_").replace(":", "")
        out.mkdir()
        data = {**json.loads((folder / "config.json").read_text()), **change}
        (out / "config.json").write_text(json.dumps(data))
        (out / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
        with pytest.raises(CheckpointError, match=words):
            load_duo_backbone(out)


def test_lightning_checkpoint_loads_its_ema_weights(tmp_path, tiny):
    from dlmbench.nets.dit_writer import random_state_dict, write_mdlm_lightning_ckpt

    _folder, config, state = tiny
    ema = random_state_dict(config.dit, seed=9)
    path = tmp_path / "duo.ckpt"
    write_mdlm_lightning_ckpt(path, config.dit, state=state, ema_state=ema, parameterization="mean")
    net, cfg, prov = load_duo_backbone(path)
    assert prov["format"] == "lightning-ckpt" and prov["ema"] is True and cfg.time_conditioning
    assert torch.equal(net.state_dict()["blocks.0.attn_qkv.weight"], ema["blocks.0.attn_qkv.weight"])
    raw, _, prov_raw = load_duo_backbone(path, use_ema=False)
    assert prov_raw["ema"] is False and torch.equal(raw.state_dict()["blocks.0.attn_qkv.weight"], state["blocks.0.attn_qkv.weight"])
