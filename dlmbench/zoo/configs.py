"""Typed sizes and optimiser settings of the zoo.

One :class:`ZooConfig` describes every family at the same width, depth, heads, context, data and optimiser,
so the families differ only in what the network is asked to predict and in their loss:

* ``ar``    GPT-2 (learned positions, causal attention, untied LM head), cross-entropy;
* ``mdlm``  MDLM's DiT (rotary, adaLN from ``cond_dim``, not time-conditioned as ``mdlm-owt``), NELBO;
* ``sedd``  the same DiT, time-conditioned, ``scale_by_sigma`` score head, score entropy (absorbing graph);
* ``llada`` LLaDA's bidirectional LLaMA (RMSNorm, SwiGLU with ``8/3 d`` hidden so the MLP has the
            same number of weights as the others' ``4 d`` GELU MLP), LLaDA's masked bound;
* ``plaid`` Plaid's Transformer (RMSNorm, GELU MLP, rotary) over ``embed_dim``-dimensional unit token
            embeddings, with its learned noise schedule and γ bounds, Plaid's training loss (its VLB).

The DiT families carry the adaLN modulation (``6 d cond_dim`` per block) in addition; the parameter counts
of each built model are written to its card. ``tiny`` is sized for the issue's budget (about 2M
parameters, 2048 BPE ids, 4 layers of width 160; the four KJV models in under an hour on 2 CPU cores); ``tiny-plaid``
is ``tiny`` with fewer steps (what the zoo's time budget leaves); ``test`` trains in seconds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from dlmbench.errors import UnknownName


@dataclass(frozen=True)
class ZooConfig:
    name: str
    vocab_size: int = 2048  # BPE ids incl. <|endoftext|>; the diffusion families add one mask id
    d_model: int = 160
    n_layers: int = 4
    n_heads: int = 4
    cond_dim: int = 64  # DiT only: width of the noise-level conditioning
    max_len: int = 128  # context (KJV verses: at most ~120 tokens + BOS with this BPE; longer rows are cut)
    # optimisation (AdamW, linear warm-up then linear decay to 10% over max_steps)
    batch_tokens: int = 4096
    lr: float = 2e-3
    warmup_steps: int = 50
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.98
    grad_clip: float = 1.0
    max_steps: int = 300
    max_seconds: float | None = None  # wall-clock budget (also ends the lr decay); only max_steps is reproducible
    seed: int = 0
    sampling_eps: float = 1e-3  # diffusion time t ~ U[eps, 1] and the log-linear schedule's eps
    checkpoint_every: int = 0  # steps between intermediate checkpoints (0: only at the end)
    save_dtype: str = "float32"  # weights on disk; the zoo stores bfloat16 (as LLaDA publishes) to stay small
    # Plaid only: width of its token embeddings (the reference default and Plaid 1B: 16) and the steps over which
    # the output-prior term is ramped in (train.py bias_warmup_steps: 5000 = 2x its lr warm-up of 2500)
    embed_dim: int = 16
    bias_warmup_steps: int = 100
    # MDLM only: "nelbo" (MDLM's continuous-time bound) or "ye2024" (the MDM loss of Ye et al. 2024,
    # :func:`dlmbench.zoo.train.ye2024_mdm_loss`: t ~ U{0..T-1}, mask rate (t+1)/T, token reweighting
    # alpha (1 - p)^gamma, linear time weight T - t); T = mdm_steps, alpha = mdm_alpha, gamma = mdm_gamma
    mdm_loss: str = "nelbo"
    mdm_steps: int = 20
    mdm_alpha: float = 0.25
    mdm_gamma: float = 1.0

    def replace(self, **changes) -> ZooConfig:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise UnknownName("zoo config field", sorted(unknown)[0], [f.name for f in dataclasses.fields(self)])
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


CONFIGS: dict[str, ZooConfig] = {
    "tiny": ZooConfig("tiny", max_steps=1500, save_dtype="bfloat16"),
    # the Plaid model of the KJV zoo: tiny's sizes and optimiser, but only the steps that fit the ~3 minutes left
    # of the zoo's hour on 2 CPU cores (a Plaid step costs about an MDLM step: ~0.3 s at 4096 tokens)
    "tiny-plaid": ZooConfig("tiny-plaid", max_steps=550, save_dtype="bfloat16"),
    # findings 2 and 3 (AR vs MDLM, same network size and training tokens within a pair): narrower and shallower than
    # tiny (d=128, 3 layers) and smaller batches. reversal: 2400 steps, ~19 epochs of the EOS-padded Berglund set
    # (about 9-10 min per model on one CPU thread, OMP_NUM_THREADS=1; at 800 steps, ~8 epochs, the MDLM had not
    # learned the facts: training loss 2.87 and still falling), a 1024-id BPE of the Berglund training set and a
    # context that holds the longest test prompt (44 tokens) + the 36-token completion canvas; cd3: one epoch of the
    # cd3 split in ~4-5 min, the character tokenizer (vocab_size unused), rows of at most 14 prompt + 24 answer
    # characters.
    "reversal": ZooConfig("reversal", vocab_size=1024, d_model=128, n_layers=3, max_len=80, batch_tokens=2048, lr=3e-3,
                          warmup_steps=30, max_steps=2400, save_dtype="bfloat16"),
    # reversal10: the reversal config on 600 texts (20 people): 2000 steps are ~53 epochs (~3 min per model; the
    # length-bucketed batches of so few rows hold ~900 tokens on average)
    "reversal10": ZooConfig("reversal10", vocab_size=1024, d_model=128, n_layers=3, max_len=80, batch_tokens=2048,
                            lr=3e-3, warmup_steps=30, max_steps=2000, save_dtype="bfloat16", checkpoint_every=200),
    "cd3": ZooConfig("cd3", d_model=128, n_layers=3, max_len=40, batch_tokens=2048, lr=3e-3, warmup_steps=30,
                     max_steps=1000, save_dtype="bfloat16"),
    # minimal planning (Ye et al. 2024): 3 layers as the paper's tiny model (d=384, "~6M") but d=128 (~0.6M) so
    # that each model trains in ~5 min on one CPU thread; rows are 26 prompt + 12 answer edge tokens. The MDLM is
    # trained with the paper's MDM recipe (its scripts/path/train-mdm.sh: T=20, token reweighting alpha 0.25,
    # gamma 1, linear time reweighting), the AR model with cross-entropy on the answer (train-sft.sh).
    "planning": ZooConfig("planning", d_model=128, n_layers=3, max_len=40, batch_tokens=2048, lr=2e-3,
                          warmup_steps=50, max_steps=2000, save_dtype="bfloat16", checkpoint_every=200,
                          mdm_loss="ye2024"),
    "test": ZooConfig("test", vocab_size=300, d_model=32, n_layers=2, n_heads=2, cond_dim=16, max_len=32,
                      batch_tokens=512, lr=3e-3, warmup_steps=5, max_steps=30, embed_dim=8, bias_warmup_steps=10),
}


def get_config(name: str, **overrides) -> ZooConfig:
    if name not in CONFIGS:
        raise UnknownName("zoo config", name, list(CONFIGS))
    return CONFIGS[name].replace(**overrides) if overrides else CONFIGS[name]
