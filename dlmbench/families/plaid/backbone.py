"""Plaid (Gulrajani & Hashimoto, 2023; ``igul222/plaid``): the four released modules, key for key.

The Plaid 1B release (``plaid1b_weights.tar.gz.*`` on the repository's v1.0.0 GitHub release) is a folder of
four ``torch.save(module.state_dict())`` files, loaded by name in ``train.py: load_weights`` and ``sample.py``:

=======================  =====================================================================================
file                     keys (Plaid 1B shapes; ``lib/models.py``)
=======================  =====================================================================================
``noise_schedule.pt``    ``W1 [1024, 1]``, ``b1 [1024]``, ``W2 [1, 1024]``
``gamma_bounds.pt``      ``gamma_0 []``, ``gamma_1 []`` (learned scalars)
``embedding_matrix.pt``  ``matrix [32768, 16]``
``model.pt``             ``input_linear.weight [2048, 16]``, ``selfcond_linear.weight [2048, 16]``,
                         ``gamma_linear.weight [2048, 64]``, ``rotary_emb.inv_freq [32]``,
                         ``blocks.{i}.rmsnorm1.weight``, ``.attn_qkv.weight [6144, 2048]``,
                         ``.attn_out.weight``, ``.rmsnorm2.weight``, ``.mlp.fc1.weight [8192, 2048]``,
                         ``.mlp.fc2.weight [2048, 8192]`` (i < 24, no biases), ``output_norm.weight``,
                         ``output_linear.weight [32768, 2048]``, ``output_linear.bias [32768]``
=======================  =====================================================================================

Each file may also be given as a safetensors copy (``model.safetensors`` etc., same keys), which is read in
preference. Torch pickles are read only with ``torch.load(weights_only=True)``.

Numerics follow the reference forward (``lib/models.py: DiffusionModel.forward``, run under
``torch.set_default_dtype(torch.float64)``): the noise schedule, γ bounds, α/σ and the γ embedding are float64,
the input/output layers float32, the Transformer blocks in the compute dtype (bfloat16 autocast on GPU in the
reference; float32 here on CPU). The reference's fused kernels are replaced by their definitions: Apex
``FusedRMSNorm`` (eps 1e-5, fp32 math), flash-attn ``FusedMLP`` (GELU-tanh, no biases), flash-attn rotary
(GPT-NeoX ``rotate_half`` on q and k, v untouched), non-causal unpadded flash attention (SDPA).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dlmbench.errors import CheckpointError
from dlmbench.nets.rotary import rotate_half  # noqa: F401 - re-exported, used below

MODULE_NAMES = ("noise_schedule", "gamma_bounds", "embedding_matrix", "model")
"""The four files of a Plaid weights folder (``{name}.pt`` or ``{name}.safetensors``)."""

MUP_BASE_DIM = 256
"""``mup.set_base_shapes(main, base=create_modules(256, 4), ...)`` in ``train.py``/``sample.py``: the readout
multiplier is ``output_mult / width_mult = 1 / (dim / 256)`` (``mup.MuReadout``, ``output_mult = 1``)."""

NOISE_SCHEDULE_WIDTH = 1024
GAMMA_EMBED_DIM = 64
ROPE_BASE = 10_000.0


@dataclass(frozen=True)
class PlaidConfig:
    """Sizes of a Plaid model (Plaid 1B: ``--dim=2048 --n_blocks=24 --n_heads=32``, embed 16, vocab 32768)."""

    dim: int = 2048
    embed_dim: int = 16
    n_blocks: int = 24
    n_heads: int = 32
    vocab_size: int = 32768
    noise_schedule_width: int = NOISE_SCHEDULE_WIDTH

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def readout_scale(self) -> float:
        """``MuReadout``: ``output_mult / width_mult()`` with ``width_mult = dim / 256``."""
        return MUP_BASE_DIM / self.dim


def plaid_1b_config() -> PlaidConfig:
    return PlaidConfig()


# ----------------------------------------------------------------------------------------------------
# The three small modules
# ----------------------------------------------------------------------------------------------------


class NoiseSchedule(nn.Module):
    """Learned monotone schedule ``γ̃n(t) ∈ [0, 1]`` (``lib/models.py: NoiseSchedule``), float64 math.

    ``γ̃(t) = Σ_j w2_j · tanh(w1_j (t − ½) + b1_j)`` with ``w1 = softplus(W1)``, ``w2 = 0.01 softplus(W2)``
    (both positive, so γ̃ is increasing), normalised ``γ̃n(t) = (γ̃(t) − γ̃(0)) / (γ̃(1) − γ̃(0))``.
    """

    def __init__(self, width: int = NOISE_SCHEDULE_WIDTH):
        super().__init__()
        self.W1 = nn.Parameter(torch.randn(width, 1))
        self.b1 = nn.Parameter(torch.randn(width))
        self.W2 = nn.Parameter(torch.randn(1, width))

    def _params(self):
        w1 = F.softplus(self.W1.double())[:, 0]
        w2 = 0.01 * F.softplus(self.W2.double())[0]
        return w1, self.b1.double(), w2

    def _tilde(self, t: torch.Tensor) -> torch.Tensor:
        w1, b1, w2 = self._params()
        return torch.tanh((t.double()[:, None] - 0.5) * w1 + b1) @ w2

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """``γ̃n(t)`` for ``t [n]`` (float64)."""
        ends = self._tilde(torch.tensor([0.0, 1.0], dtype=torch.float64, device=self.W1.device))
        return (self._tilde(t) - ends[0]) / (ends[1] - ends[0])

    def derivative(self, t: torch.Tensor) -> torch.Tensor:
        """``dγ̃n/dt`` analytically: ``Σ_j w2_j w1_j (1 − tanh²(h_j)) / (γ̃(1) − γ̃(0))`` (float64).

        The reference takes this derivative with ``autograd.grad`` (``train.py``); the closed form is the same.
        """
        w1, b1, w2 = self._params()
        h = torch.tanh((t.double()[:, None] - 0.5) * w1 + b1)
        ends = self._tilde(torch.tensor([0.0, 1.0], dtype=torch.float64, device=self.W1.device))
        return ((1 - h * h) * w1) @ w2 / (ends[1] - ends[0])


class GammaBounds(nn.Module):
    """Learned ``γ_0 = γ(t=0)`` and ``γ_1 = γ(t=1)`` (``lib/models.py: GammaBounds``); read as float64."""

    def __init__(self, gamma_0: float = -3.0, gamma_1: float = 6.0):
        super().__init__()
        self.gamma_0 = nn.Parameter(torch.tensor(float(gamma_0)))
        self.gamma_1 = nn.Parameter(torch.tensor(float(gamma_1)))

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.gamma_0.detach().double(), self.gamma_1.detach().double()


class EmbeddingMatrix(nn.Module):
    """Token embeddings normalised to unit rows: ``E = M / (‖M‖_row + 1e-8)`` (``EmbeddingMatrix.forward``)."""

    def __init__(self, vocab_size: int, embed_dim: int):
        super().__init__()
        self.matrix = nn.Parameter(torch.randn(vocab_size, embed_dim))

    def forward(self) -> torch.Tensor:
        return self.matrix / (torch.linalg.norm(self.matrix, dim=1, keepdim=True) + 1e-8)


# ----------------------------------------------------------------------------------------------------
# The Transformer
# ----------------------------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    """Apex ``FusedRMSNorm(dim)``: ``x / sqrt(mean(x²) + 1e-5) · w`` in float32, cast back to the input dtype."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight.float()
        return y.to(x.dtype)


class LayerNormNoBias(nn.Module):
    """``lib/models.py: LayerNorm``: ``F.layer_norm(x.float())`` (eps 1e-5, no affine) times ``weight``."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.float(), [self.dim]) * self.weight


class Rotary(nn.Module):
    """``lib/rotary.py: Rotary``: ``inv_freq = 1 / 10000^(2i/d)`` (a float32 buffer saved in ``model.pt``)."""

    def __init__(self, head_dim: int, base: float = ROPE_BASE):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2).float() / head_dim))
        self.register_buffer("inv_freq", inv_freq)

    def forward(self, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``cos, sin`` of shape ``[seq_len, head_dim]`` (frequencies repeated: ``cat(freqs, freqs)``)."""
        pos = torch.arange(seq_len, device=self.inv_freq.device, dtype=self.inv_freq.dtype)
        freqs = torch.outer(pos, self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()



def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``x cos + rotate_half(x) sin`` for ``x [B, L, H, D]``.

    As the reference (flash-attn ``apply_rotary_emb_qkv_``): cos/sin are first rounded to the qkv dtype, the
    rotation is computed in float32 and rounded once to the qkv dtype.
    """
    cos = cos.to(x.dtype).float()[None, :, None, :]
    sin = sin.to(x.dtype).float()[None, :, None, :]
    xf = x.float()
    return (xf * cos + rotate_half(xf) * sin).to(x.dtype)


class MLP(nn.Module):
    """flash-attn ``FusedMLP(dim, 4 dim, bias1=False, bias2=False)``: ``fc2(gelu_tanh(fc1(x)))``."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class TransformerBlock(nn.Module):
    """Pre-norm block, residual branches scaled by ``1/sqrt(n_blocks)`` (``lib/models.py: TransformerBlock``)."""

    def __init__(self, dim: int, n_heads: int, residual_scale: float):
        super().__init__()
        self.n_heads = n_heads
        self.residual_scale = residual_scale
        self.rmsnorm1 = RMSNorm(dim)
        self.attn_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.attn_out = nn.Linear(dim, dim, bias=False)
        self.rmsnorm2 = RMSNorm(dim)
        self.mlp = MLP(dim, 4 * dim)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.attn_qkv(self.rmsnorm1(x)).view(b, n, 3, self.n_heads, d // self.n_heads)
        q, k, v = qkv.unbind(dim=2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        # non-causal attention over the whole sequence (flash_attn_unpadded_qkvpacked_func, causal=False)
        h = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=False)
        h = h.transpose(1, 2).reshape(b, n, d)
        # x_skip + scale · W_out h as one addmm (``residual_linear``): under bf16 autocast the residual stream
        # becomes bf16 here, exactly as in the reference
        x = torch.addmm(x.reshape(-1, d), h.reshape(-1, d), self.attn_out.weight.T, alpha=self.residual_scale).view(b, n, d)
        return torch.add(x, self.mlp(self.rmsnorm2(x)), alpha=self.residual_scale)


class PlaidTransformer(nn.Module):
    """``lib/models.py: DiffusionModel``: ``(z_t, γ_t, E, x_selfcond) → (logits, x̂)``.

    ::

        h  = input_linear(z / sqrt(α²/d_e + σ²)) + selfcond_linear(sqrt(d_e) · x_sc)
             + gamma_linear([sin(γ f), cos(γ f)]),   f = exp(linspace(−5, 5, 32))
        h  = blocks(h);  h = LayerNorm(h) · w · (256 / dim)                         (muP readout)
        logits = h W_outᵀ + b_out + bias_scale · (α / σ²) · z Eᵀ                    (output prior)
        x̂  = softmax(logits) E                                                     (categorical reparam.)

    The output-prior term ``(α/σ²) z·E_v`` is, up to a constant in ``v``, the Gaussian log-likelihood
    ``log N(z; α E_v, σ²)`` of each token (unit-norm rows), so the network learns a correction to it.
    """

    def __init__(self, config: PlaidConfig):
        super().__init__()
        c = config
        self.config = c
        self.input_linear = nn.Linear(c.embed_dim, c.dim, bias=False)
        self.selfcond_linear = nn.Linear(c.embed_dim, c.dim, bias=False)
        self.gamma_linear = nn.Linear(GAMMA_EMBED_DIM, c.dim, bias=False)
        self.rotary_emb = Rotary(c.head_dim)
        scale = float(1.0 / math.sqrt(c.n_blocks))
        self.blocks = nn.ModuleList([TransformerBlock(c.dim, c.n_heads, scale) for _ in range(c.n_blocks)])
        self.output_norm = LayerNormNoBias(c.dim)
        self.output_linear = nn.Linear(c.dim, c.vocab_size)
        self.compute_dtype: torch.dtype = torch.float32

    def forward(
        self,
        z: torch.Tensor,
        gamma: torch.Tensor,
        embedding_matrix: torch.Tensor,
        x_selfcond: torch.Tensor,
        bias_scale: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``z [B, L, d_e]``, ``gamma [B]`` (float64), ``embedding_matrix [V, d_e]`` (normalised),
        ``x_selfcond [B, L, d_e]`` → ``logits [B, L, V]`` (float32), ``x̂ [B, L, d_e]`` (float32)."""
        c = self.config
        gamma = gamma.double()
        alpha_sq = torch.sigmoid(-gamma)[:, None, None]
        sigma_sq = torch.sigmoid(gamma)[:, None, None]
        z = z.float()
        x = z / ((alpha_sq / c.embed_dim) + sigma_sq).sqrt().float()  # rescale the input to unit variance
        x = self.input_linear(x)
        x = x + self.selfcond_linear(x_selfcond.float() * float(math.sqrt(c.embed_dim)))
        freqs = torch.linspace(-5.0, 5.0, GAMMA_EMBED_DIM // 2, dtype=torch.float64, device=z.device).exp()
        g = freqs[None, :] * gamma[:, None]
        x = x + self.gamma_linear(torch.cat([g.sin(), g.cos()], dim=1).float())[:, None, :]

        cos, sin = self.rotary_emb(z.shape[1])
        autocast = self.compute_dtype in (torch.bfloat16, torch.float16)
        with torch.autocast(device_type=z.device.type, dtype=self.compute_dtype, enabled=autocast):
            for block in self.blocks:
                x = block(x, cos, sin)

        x = self.output_norm(x.float()) * c.readout_scale
        prior = (bias_scale * (alpha_sq.sqrt() / sigma_sq)).float() * z
        e = embedding_matrix.float()
        logits = F.linear(x, self.output_linear.weight.float(), self.output_linear.bias.float()) + prior @ e.T
        x_reconst = torch.softmax(logits, dim=-1) @ e
        return logits, x_reconst


# ----------------------------------------------------------------------------------------------------
# The bundle of four modules and its loader
# ----------------------------------------------------------------------------------------------------


class PlaidModules(nn.Module):
    """The four released modules together, with the schedule read in float64.

    ``gamma(t) = γ_0 + (γ_1 − γ_0) · γ̃n(t)``, ``gamma_prime(t) = (γ_1 − γ_0) · γ̃n'(t)`` (``train.py``).
    """

    def __init__(self, config: PlaidConfig, gamma_0: float = -3.0, gamma_1: float = 6.0):
        super().__init__()
        self.config = config
        self.noise_schedule = NoiseSchedule(config.noise_schedule_width)
        self.gamma_bounds = GammaBounds(gamma_0, gamma_1)
        self.embedding_matrix = EmbeddingMatrix(config.vocab_size, config.embed_dim)
        self.model = PlaidTransformer(config)

    def gamma(self, t: torch.Tensor) -> torch.Tensor:
        g0, g1 = self.gamma_bounds()
        return g0 + (g1 - g0) * self.noise_schedule(t)

    def gamma_prime(self, t: torch.Tensor) -> torch.Tensor:
        g0, g1 = self.gamma_bounds()
        return (g1 - g0) * self.noise_schedule.derivative(t)

    def embeddings(self) -> torch.Tensor:
        return self.embedding_matrix()

    def denoise(self, z: torch.Tensor, gamma: torch.Tensor, x_selfcond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One network evaluation at eval settings (``bias_scale = 1``)."""
        return self.model(z, gamma, self.embeddings(), x_selfcond, 1.0)

    def submodule(self, name: str) -> nn.Module:
        return getattr(self, name)


def expected_shapes(config: PlaidConfig) -> dict[str, dict[str, tuple[int, ...]]]:
    """``{file name: {key: shape}}`` of the released state dicts for ``config``."""
    with torch.device("meta"):
        mods = PlaidModules(config)
    return {name: {k: tuple(v.shape) for k, v in mods.submodule(name).state_dict().items()} for name in MODULE_NAMES}


def _convert_hint(path: Path) -> str:
    return (
        f"convert it once to safetensors in a trusted environment: python -c \"import torch, safetensors.torch as s; "
        f"s.save_file({{k: v.contiguous() for k, v in torch.load('{path}', map_location='cpu').items()}}, "
        f"'{path.with_suffix('.safetensors')}')\""
    )


def read_module_file(folder: Path, name: str) -> dict[str, torch.Tensor]:
    """Read ``{name}.safetensors`` (preferred) or ``{name}.pt`` (``torch.load(weights_only=True)``) from ``folder``."""
    st, pt = folder / f"{name}.safetensors", folder / f"{name}.pt"
    if st.is_file():
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(st), device="cpu"))
        except Exception as e:  # noqa: BLE001 - a corrupt file is a user-facing error
            raise CheckpointError(f"{st}: not a readable safetensors file ({e})") from None
    if pt.is_file():
        try:
            try:
                obj = torch.load(str(pt), weights_only=True, map_location="cpu", mmap=True)
            except RuntimeError as e:
                if "mmap" not in str(e):
                    raise
                obj = torch.load(str(pt), weights_only=True, map_location="cpu")
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(
                f"{pt} cannot be read with torch.load(weights_only=True) ({str(e).splitlines()[0]}); dlmbench never "
                f"unpickles arbitrary objects: {_convert_hint(pt)}"
            ) from None
        if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise CheckpointError(f"{pt}: expected a state dict (name -> tensor), found {type(obj).__name__}")
        return dict(obj)
    raise CheckpointError(f"{folder}: missing {name}.pt (or {name}.safetensors), one of the four Plaid weight files")


def infer_config(states: Mapping[str, Mapping[str, torch.Tensor]]) -> PlaidConfig:
    """Sizes from the state dicts: dim/embed_dim from ``input_linear``, heads from ``rotary_emb.inv_freq``."""
    m = states["model"]
    shapes = {"model": ("input_linear.weight", "rotary_emb.inv_freq", "output_linear.weight"), "noise_schedule": ("W1",)}
    for name, keys in shapes.items():
        for key in keys:
            if key not in states[name]:
                raise CheckpointError(f"not a Plaid checkpoint: {name}: missing {key}, from which the sizes are read "
                                      f"(found {', '.join(sorted(states[name])[:3]) or 'no tensors'})")
    if m["input_linear.weight"].dim() != 2 or m["output_linear.weight"].dim() != 2 or states["noise_schedule"]["W1"].dim() != 2:
        raise CheckpointError("not a Plaid checkpoint: model input_linear.weight / output_linear.weight and "
                              "noise_schedule W1 must be matrices, found shapes "
                              f"{list(m['input_linear.weight'].shape)}, {list(m['output_linear.weight'].shape)}, "
                              f"{list(states['noise_schedule']['W1'].shape)}")
    dim, embed_dim = m["input_linear.weight"].shape
    head_dim = 2 * m["rotary_emb.inv_freq"].numel()
    vocab = m["output_linear.weight"].shape[0]
    width = states["noise_schedule"]["W1"].shape[0]
    n_blocks = len({k.split(".")[1] for k in m if k.startswith("blocks.")})
    if head_dim == 0 or dim % head_dim:
        raise CheckpointError(f"rotary_emb.inv_freq has {head_dim // 2} entries, which does not divide dim {dim}")
    return PlaidConfig(dim=int(dim), embed_dim=int(embed_dim), n_blocks=n_blocks, n_heads=int(dim // head_dim),
                       vocab_size=int(vocab), noise_schedule_width=int(width))


def check_states(config: PlaidConfig, states: Mapping[str, Mapping[str, torch.Tensor]], where: str) -> None:
    """Every released key present with its shape, nothing else (one CheckpointError line otherwise)."""
    from dlmbench.nets.dit_checkpoints import check_shapes

    for name, shapes in expected_shapes(config).items():
        found = {k: tuple(v.shape) for k, v in states[name].items()}
        check_shapes(shapes, found, where=f"{where}/{name}", architecture="a Plaid model")


def load_plaid_modules(folder: str | Path, device: str | torch.device = "cpu", compute_dtype: torch.dtype = torch.float32) -> PlaidModules:
    """Build :class:`PlaidModules` from a weights folder (four files), strictly, key for key.

    Every parameter and buffer comes from the files: :func:`check_states` compares each file's keys and shapes
    with the modules built from the sizes read off the tensors (:func:`infer_config`) and names the first missing,
    unexpected or mis-shaped keys in one line; ``load_state_dict(strict=True)`` then fills everything, including
    the ``rotary_emb.inv_freq`` buffer, which the release stores (it is not recomputed, so a file whose table
    differs from ``base^(-2j/d)`` is used as stored, as the reference does). Derived, not stored: the cos/sin
    rotary tables (from ``inv_freq`` at each call), the unit-norm embeddings ``E = matrix / ‖matrix‖`` and the
    muP readout scale ``256 / dim`` (from the config); nothing is tied.

    Weights are kept in float32 as in the reference (``create_modules(...).float()``); ``compute_dtype``
    is the autocast dtype of the Transformer blocks (bfloat16 reproduces the reference on GPU).
    """
    folder = Path(folder).expanduser()
    states = {name: read_module_file(folder, name) for name in MODULE_NAMES}
    config = infer_config(states)
    check_states(config, states, str(folder))
    with torch.device("meta"):
        mods = PlaidModules(config)
    for name in MODULE_NAMES:
        sd = {k: v.to(torch.float32) for k, v in states[name].items()}
        try:  # check_states has compared every key and shape; this guards the rest (dtype, storage) in one line
            mods.submodule(name).load_state_dict(sd, strict=True, assign=True)
        except RuntimeError as e:
            detail = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
            raise CheckpointError(f"{folder}/{name}: does not load into a Plaid model: {detail[:300]}") from None
    mods = mods.to(device)
    mods.model.compute_dtype = compute_dtype
    mods.eval().requires_grad_(False)
    return mods


def save_plaid_modules(mods: PlaidModules, folder: str | Path, fmt: str = "pt", dtype: torch.dtype | None = None) -> list[Path]:
    """Write the four state dicts as the release does (``torch.save(state_dict)`` per ``{name}.pt``), or as
    safetensors (``fmt="safetensors"``). ``dtype``: store the parameters in it (the release: float32, the
    default, i.e. as they are); buffers (``rotary_emb.inv_freq``) keep their own dtype. Returns the written paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in MODULE_NAMES:
        module = mods.submodule(name)
        params = {k for k, _ in module.named_parameters()}
        sd = {k: v.detach().cpu().to(dtype if (dtype is not None and k in params) else v.dtype).contiguous()
              for k, v in module.state_dict().items()}
        if fmt == "pt":
            path = folder / f"{name}.pt"
            torch.save(sd, path)
        elif fmt == "safetensors":
            from safetensors.torch import save_file

            path = folder / f"{name}.safetensors"
            save_file(sd, str(path))
        else:
            raise ValueError(f"fmt must be 'pt' or 'safetensors', not {fmt!r}")
        out.append(path)
    return out
