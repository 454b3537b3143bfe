"""The AR adapter on a tiny random GPT-2 saved to a folder and loaded through the real ``load_ar`` path.

Ground truth: plain ``transformers`` losses (``labels=`` with -100 on unscored positions), one sequence
at a time; the HF guide's sliding-window loop; per-token conditionals computed one forward per token.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from dlmbench.families.ar.adapter import ARModel, Window, load_ar, pack_batches, plan_windows
from dlmbench.interface import ScoreRequest
from dlmbench.errors import BadSetting, BadSpec, CheckpointError, NotSupported
from dlmbench.specs import CheckpointRef, ModelSpec

CTX = 32  # n_positions of the tiny model


def _train_bpe(folder):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    text = ["the quick brown fox jumps over the lazy dog", "hello world, this is a small test of things"] * 50
    tok.train_from_iterator(text, trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tok.model.save(str(folder))  # vocab.json + merges.txt, as GPT-2 ships them


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer

    root = tmp_path_factory.mktemp("tiny_gpt2")
    _train_bpe(root / "bpe")
    hf_tok = GPT2Tokenizer.from_pretrained(str(root / "bpe"))
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(hf_tok), n_positions=CTX, n_embd=32, n_layer=2, n_head=2,
        bos_token_id=0, eos_token_id=0, initializer_range=0.3,
    )
    model = GPT2LMHeadModel(config).eval()
    model.save_pretrained(str(root / "model"))
    hf_tok.save_pretrained(str(root / "model"))
    return root / "model"


def _spec(folder, **settings) -> ModelSpec:
    return ModelSpec(name="tiny-gpt2", family="ar", checkpoint=CheckpointRef("local", str(folder)), settings=settings)


@pytest.fixture(scope="module")
def ar(tiny_folder) -> ARModel:
    return load_ar(_spec(tiny_folder), batch_size=4)


@pytest.fixture(scope="module")
def ref_model(tiny_folder):
    from transformers import GPT2LMHeadModel

    return GPT2LMHeadModel.from_pretrained(str(tiny_folder)).eval()


def _rand_tokens(rng: random.Random, n: int, vocab: int) -> tuple[int, ...]:
    return tuple(rng.randrange(1, vocab) for _ in range(n))


@torch.no_grad()
def _labels_nll(model, ids: list[int], n_unscored: int) -> float:
    """Summed NLL from transformers' own loss: labels -100 on the first ``n_unscored`` positions."""
    x = torch.tensor([ids])
    labels = x.clone()
    labels[0, :n_unscored] = -100
    n = int((labels[0, 1:] != -100).sum())
    if n == 0:
        return 0.0
    return float(model(input_ids=x, labels=labels).loss) * n


@torch.no_grad()
def _hf_guide_nll(model, ids: list[int], window: int, stride: int) -> tuple[float, int]:
    """The HF guide "Perplexity of fixed-length models" loop (windows of ``window`` tokens), except that
    the last window is widened to a full window of context, as lm-eval's rolling windows do (the guide's
    last window is shorter only because its loop starts windows at multiples of ``stride``)."""
    total, count, prev_end = 0.0, 0, 0
    for begin in range(0, len(ids), stride):
        end = min(begin + window, len(ids))
        trg_len = end - prev_end
        if end == len(ids):
            begin = max(0, end - window)
        x = torch.tensor([ids[begin:end]])
        labels = x.clone()
        labels[:, :-trg_len] = -100
        # the model's loss shifts labels left by one; do that shift by hand so that the window's last
        # token, which is only a target, need not fit in the position table
        logits = model(input_ids=x[:, :-1]).logits[0]
        total += float(torch.nn.functional.cross_entropy(logits, labels[0, 1:], ignore_index=-100, reduction="sum"))
        count += int((labels[0, 1:] != -100).sum())
        prev_end = end
        if end == len(ids):
            break
    return total, count


@torch.no_grad()
def _per_token_nll(model, ids: list[int], first: int, context: int) -> float:
    """sum_t -log p(x_t | previous ``context`` tokens), one forward per target."""
    total = 0.0
    for t in range(first, len(ids)):
        x = torch.tensor([ids[max(0, t - context) : t]])
        logp = torch.log_softmax(model(input_ids=x).logits[0, -1].double(), -1)
        total -= float(logp[ids[t]])
    return total


def test_tokenizer_loaded_and_bos(ar):
    assert ar.tokenizer.bos_id == 0 and ar.tokenizer.eos_id == 0
    ids = ar.tokenizer.encode("the quick brown fox")
    assert len(ids) >= 2 and ar.tokenizer.decode(ids) == "the quick brown fox"
    assert ar.max_length == CTX and ar.stride == CTX // 2


@pytest.mark.parametrize("max_padding", [1.25, 100.0])
def test_nll_matches_plain_transformers_batched(ar, ref_model, monkeypatch, max_padding):
    import dlmbench.families.ar.adapter as ar_module

    monkeypatch.setattr(ar_module, "MAX_PADDING", max_padding)  # 100: every batch heavily padded
    rng = random.Random(1)
    V = ar.tokenizer.vocab_size
    reqs = []
    for _ in range(11):
        ctx = _rand_tokens(rng, rng.randrange(0, 10), V)
        cont = _rand_tokens(rng, rng.randrange(1, 12), V)
        reqs.append(ScoreRequest(ctx, cont))
    res = ar.conditional_nll(reqs)
    assert res.bound == "exact" and np.all(res.stderr == 0)
    for i, r in enumerate(reqs):
        if r.context:
            expect = _labels_nll(ref_model, list(r.context + r.continuation), len(r.context))
            n = len(r.continuation)
        else:  # empty context: scored against BOS (= <|endoftext|>, id 0)
            expect = _labels_nll(ref_model, [0] + list(r.continuation), 1)
            n = len(r.continuation)
        assert res.n_tokens[i] == n
        assert res.nll[i] == pytest.approx(expect, rel=1e-5, abs=1e-5)
    # padding and batch composition do not change the numbers
    single = load_ar(_spec(ar.spec.checkpoint.location), batch_size=1).conditional_nll(reqs)
    np.testing.assert_allclose(res.nll, single.nll, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(res.n_tokens, single.n_tokens)


def test_empty_context_without_bos_leaves_first_token_unscored(tiny_folder, ref_model):
    model = load_ar(_spec(tiny_folder, prefix_token_id="none"))
    seqs = [(5, 9, 11, 40), (7,), (3, 4)]
    res = model.nll(seqs)
    np.testing.assert_array_equal(res.n_tokens, [3, 0, 1])
    for i, s in enumerate(seqs):
        assert res.nll[i] == pytest.approx(_labels_nll(ref_model, list(s), 0), rel=1e-5, abs=1e-6)


def test_sliding_window_matches_hf_guide(ar, ref_model):
    rng = random.Random(2)
    V = ar.tokenizer.vocab_size
    seqs = [_rand_tokens(rng, n, V) for n in (100, 33, 31, 70, 5)]
    res = ar.nll(seqs)
    for i, s in enumerate(seqs):
        # our max_length counts model inputs; the guide's window counts inputs + the last target
        expect, count = _hf_guide_nll(ref_model, [0] + list(s), window=CTX + 1, stride=CTX // 2)
        assert res.n_tokens[i] == count == len(s)
        assert res.nll[i] == pytest.approx(expect, rel=1e-5)


def test_sliding_window_stride_one_long_context(tiny_folder, ref_model):
    model = load_ar(_spec(tiny_folder, stride=1, batch_size=3))
    rng = random.Random(3)
    V = model.tokenizer.vocab_size
    reqs = [ScoreRequest(_rand_tokens(rng, 45, V), _rand_tokens(rng, 12, V)), ScoreRequest((), _rand_tokens(rng, 40, V))]
    res = model.conditional_nll(reqs)
    for i, r in enumerate(reqs):
        ids = list(r.context + r.continuation) if r.context else [0] + list(r.continuation)
        first = len(r.context) if r.context else 1
        assert res.nll[i] == pytest.approx(_per_token_nll(ref_model, ids, first, CTX), rel=1e-5)


def test_plan_windows_scores_every_target_once():
    for length in range(2, 60):
        for first in (1, 3, 20, 40):
            for stride in (1, 5, 16, 32):
                ws = plan_windows(0, length, first, 32, stride)
                targets = [t for w in ws for t in range(w.first, w.end)]
                assert targets == list(range(first, length))
                for w in ws:
                    assert w.end - 1 - w.start <= 32 and w.first > w.start


def test_pack_batches_limits_size_and_padding():
    rng = random.Random(5)
    windows = [Window(i, 0, 1, rng.choice([3, 10, 40, 41, 200])) for i in range(60)]
    batches = pack_batches(windows, 4)
    assert sorted(w.request for b in batches for w in b) == list(range(60))
    for b in batches:
        lengths = [w.end - 1 for w in b]
        assert len(b) <= 4 and lengths == sorted(lengths, reverse=True)
        assert len(b) == 1 or len(b) * lengths[0] <= 1.25 * sum(lengths)


@torch.no_grad()
def test_greedy_match_against_direct_argmax(ar, ref_model):
    rng = random.Random(4)
    V = ar.tokenizer.vocab_size
    reqs, expect = [], []
    for k in range(8):
        ctx = list(_rand_tokens(rng, 6, V))
        cont = []
        for _ in range(5):  # greedy continuation by direct argmax
            cont.append(int(ref_model(input_ids=torch.tensor([ctx + cont])).logits[0, -1].argmax()))
        if k % 2:
            j = rng.randrange(5)
            cont[j] = (cont[j] + 1) % V
        reqs.append(ScoreRequest(tuple(ctx), tuple(cont)))
        logits = ref_model(input_ids=torch.tensor([ctx + cont])).logits[0]
        expect.append(all(int(logits[len(ctx) - 1 + i].argmax()) == cont[i] for i in range(5)))
    res = ar.greedy_match(reqs)
    assert res.method == "ar_argmax"
    assert list(res.matches) == expect == [k % 2 == 0 for k in range(8)]


def test_sample_reproducible_and_independent_of_batching(tiny_folder, ar):
    a = ar.sample(5, 10, prefix=[3, 4], seed=7)
    b = ar.sample(5, 10, prefix=[3, 4], seed=7)
    assert a.tokens == b.tokens and a.nfe == b.nfe == 2 * 10  # batch_size 4: two batches of 10 steps
    other = load_ar(_spec(tiny_folder), batch_size=2).sample(3, 10, prefix=[3, 4], seed=7)
    assert other.tokens == a.tokens[:3]
    assert ar.sample(5, 10, prefix=[3, 4], seed=8).tokens != a.tokens
    assert all(len(t) == 10 for t in a.tokens) and len(a.texts) == 5
    assert a.settings["precision"] == "float64" and a.settings["sampler"] == "ar_ancestral"


@torch.no_grad()
def test_sample_respects_top_k_top_p_and_temperature_zero(ar, ref_model):
    prefix = [3, 4, 5]
    greedy = ar.sample(2, 8, prefix=prefix, temperature=0)
    ids = list(prefix)
    for _ in range(8):
        ids.append(int(ref_model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
    assert greedy.tokens == [ids[3:], ids[3:]]
    assert ar.sample(2, 8, prefix=prefix, top_k=1).tokens == greedy.tokens

    for kw in ({"top_k": 3}, {"top_p": 0.5}):
        out = ar.sample(6, 8, prefix=prefix, seed=1, temperature=1.5, **kw)
        for seq in out.tokens:
            full = prefix + seq
            logits = ref_model(input_ids=torch.tensor([full])).logits[0].double()
            for i, tok in enumerate(seq):
                p = torch.softmax(logits[len(prefix) - 1 + i] / 1.5, -1).numpy()
                order = np.argsort(-p)
                if "top_k" in kw:
                    allowed = set(order[:3].tolist())
                else:  # smallest prefix of the sorted distribution whose mass reaches p
                    cum = np.cumsum(p[order])
                    allowed = set(order[: int(np.searchsorted(cum, 0.5)) + 1].tolist())
                assert tok in allowed


def test_sample_cost_and_errors(ar):
    out = ar.sample(1, 4, seed=0)  # empty prefix: starts from BOS
    assert out.nfe == 4 and len(out.tokens[0]) == 4
    with pytest.raises(BadSpec):
        ar.sample(1, CTX + 5, prefix=[1])
    with pytest.raises(BadSetting, match="ar sampling: unknown setting 'temprature' = .*; did you mean 'temperature'"):
        ar.sample(1, 4, prefix=[1], temprature=0.5)
    with pytest.raises(BadSetting, match="ar sampling: unknown setting 'batch_size'"):  # not a per-call setting
        ar.sample(1, 4, prefix=[1], batch_size=2)
    with pytest.raises(BadSetting, match="'temperature' = -1 is not allowed"):
        ar.sample(1, 4, prefix=[1], temperature=-1)
    with pytest.raises(BadSetting, match="'precision' = 'float16' is not allowed"):
        ar.sample(1, 4, prefix=[1], precision="float16")
    with pytest.raises(NotSupported):
        ar.infill([1, None, 3])


def test_settings_unknown_name_and_describe(tiny_folder, ar):
    with pytest.raises(BadSetting, match="unknown setting 'strde' = .*; did you mean 'stride'"):
        load_ar(_spec(tiny_folder, strde=4))
    with pytest.raises(BadSetting, match=f"'max_length' = 100000 is not allowed: the model has {CTX} positions"):
        load_ar(_spec(tiny_folder, max_length=100000))
    with pytest.raises(BadSetting, match=f"'stride' = {CTX + 1} is not allowed: at most max_length = {CTX}"):
        load_ar(_spec(tiny_folder, stride=CTX + 1))
    d = ar.describe()
    assert d["family"] == "ar" and d["bound"] == "exact" and d["dtype"] == "float32"
    assert d["n_params"] == sum(p.numel() for p in ar.model.parameters())
    assert d["max_length"] == CTX and d["checkpoint"].startswith("local:")
    assert set(ARModel.settings_type.model_fields) <= set(d)


def test_empty_fast_tokenizer_is_rejected(tmp_path, tiny_folder):
    from transformers import GPT2TokenizerFast

    from dlmbench.data.tokenization import HFTokenizer, check_not_empty

    _train_bpe(tmp_path / "bpe")
    broken = GPT2TokenizerFast(vocab_file=str(tmp_path / "bpe" / "vocab.json"), merges_file=str(tmp_path / "bpe" / "merges.txt"))
    with pytest.raises(CheckpointError, match="empty"):
        check_not_empty(HFTokenizer(broken, "broken"))
    # a bare vocab.json + merges.txt folder is opened with the slow GPT-2 class, which works
    from dlmbench.data.tokenization import load_tokenizer

    tok = load_tokenizer(CheckpointRef("local", str(tmp_path / "bpe")))
    assert len(set(tok.encode("the lazy dog"))) >= 2


def test_unknown_token_id_rejected(ar):
    with pytest.raises(ValueError):
        ar.nll([(1, 2, 10**6)])


def test_ppl_is_finite_and_plausible(ar):
    res = ar.nll([tuple(range(1, 30))])
    ppl = math.exp(res.nll[0] / res.n_tokens[0])
    assert 1 < ppl < 50 * ar.tokenizer.vocab_size
