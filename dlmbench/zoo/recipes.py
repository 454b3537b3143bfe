"""The zoo recipes of the built-in families: network, training loss, published-format writer, card text.

Each is named by its family's record in the family table (``Family.zoo = "dlmbench.zoo.recipes:MDLM"``,
:mod:`dlmbench.plugins`), so the zoo's command, trainer, writers and card builder read the table instead of
listing families; a third-party family ships its own :class:`~dlmbench.zoo.ZooRecipe` the same way
(``docs/plugins.md``). The losses are those of :mod:`dlmbench.zoo.train`, the networks and writers those of
:mod:`dlmbench.zoo.writers`; the card settings are the published cards' estimators with fewer MC draws and
sampling steps for 128-token models (names as in ``mdlm-owt.yaml`` / ``sedd-small.yaml`` / ``llada-8b-base.yaml``).
"""

from __future__ import annotations

from dlmbench.zoo import ZooRecipe
from dlmbench.zoo.train import (
    _plaid_param_groups,
    ar_loss,
    bd3lm_loss,
    dream_loss,
    duo_loss,
    llada_loss,
    mdlm_loss,
    plaid_loss,
    sedd_loss,
)
from dlmbench.zoo.writers import (
    bd3lm_network,
    dream_network,
    duo_network,
    gpt2_network,
    llada_network,
    mdlm_network,
    plaid_network,
    sedd_network,
    write_bd3lm,
    write_dream,
    write_duo,
    write_gpt2,
    write_llada,
    write_mdlm,
    write_plaid,
    write_sedd,
)

AR = ZooRecipe(
    network=gpt2_network,
    loss=ar_loss,
    write=write_gpt2,
    text="GPT-2 architecture (causal, learned positions, untied head), trained with cross-entropy",
    loss_text="cross-entropy",
    card_settings={"batch_size": 16},
    tokenizer_subfolder="",
)

MDLM = ZooRecipe(
    network=mdlm_network,
    loss=mdlm_loss,
    write=write_mdlm,
    text="MDLM DiT (bidirectional, rotary, adaLN; not time-conditioned like mdlm-owt), trained with the MDLM NELBO",
    loss_text="MDLM NELBO (SUBS, antithetic t, log-linear)",
    card_settings={"batch_size": 16, "mc_samples": 32, "time_sampling": "antithetic", "sampling_eps": 0.001, "steps": 128},
    mask="appended",
    ye2024_loss=True,
)

SEDD = ZooRecipe(
    network=sedd_network,
    loss=sedd_loss,
    write=write_sedd,
    text="SEDD DiT (time-conditioned, scale_by_sigma, absorbing graph), trained with score entropy",
    loss_text="SEDD score entropy (absorbing, scale_by_sigma, iid t, log-linear)",
    card_settings={"batch_size": 16, "mc_samples": 32, "time_sampling": "antithetic", "sampling_eps": 0.001, "steps": 128},
    mask="appended",
)

LLADA = ZooRecipe(
    network=llada_network,
    loss=llada_loss,
    write=write_llada,
    text=("LLaDA-style bidirectional LLaMA (RMSNorm, SwiGLU, rotary), trained with LLaDA's masked bound; its "
          "special ids are those of its own BPE (<|endoftext|> 0 as BOS/EOS, <|mdm_mask|> = last id, also in "
          "config.json mask_token_id), not the 8B tokenizer's 126080/126081/126336"),
    loss_text="LLaDA bound (l ~ U{1..T}, weight T/l)",
    card_settings={"batch_size": 16, "mc_samples": 32, "steps": 128},
    mask="in_vocab",
)

PLAID = ZooRecipe(
    network=plaid_network,
    loss=plaid_loss,
    write=write_plaid,
    text=("Plaid (continuous diffusion over unit-norm token embeddings, learned noise schedule and gamma bounds, "
          "self-conditioning; saved as the four state dicts of the plaid1b release), trained with Plaid's own loss; "
          "no BOS: its rows are the verse's tokens, all scored, as the kjv task scores Plaid"),
    loss_text=("Plaid VLB as train.py trains it (adaptive reconstruction rows, stratified t, self-conditioning "
               "on 1/4 of rows, learned schedule minimising the loss variance, output prior ramped in)"),
    card_settings={"batch_size": 16, "mc_samples": 32, "steps": 256, "greedy_steps": 64},
    bos=False,
    param_groups=_plaid_param_groups,
    size_note="{embed_dim}-dim token embeddings, ",
)

BD3LM = ZooRecipe(
    network=bd3lm_network,
    loss=bd3lm_loss,
    write=write_bd3lm,
    text=("BD3-LM: MDLM's DiT (bidirectional within a block, rotary, adaLN; not time-conditioned like the "
          "bd3lm-owt cards) with block size 4 and the block-causal x_t ⊕ x_0 attention, trained with the block NELBO"),
    loss_text="BD3-LM block NELBO (one t per block, antithetic, masking probability t, weight 1/t)",
    card_settings={"batch_size": 16, "mc_samples": 32, "time_sampling": "antithetic", "sampling_eps": 0.001},
    mask="appended",
)

DUO = ZooRecipe(
    network=duo_network,
    loss=duo_loss,
    write=write_duo,
    text=("DUO: MDLM's DiT (bidirectional, rotary, adaLN), time-conditioned like s-sahoo/duo, over the BPE ids plus one "
          "appended row (the reference's [PAD], a state of the uniform process), trained with the plain uniform-state "
          "NELBO (no Gaussian-relaxation curriculum, no distillation)"),
    loss_text="DUO uniform-state NELBO (antithetic t, log-linear alpha_t = 1 - (1 - eps) t, uniform noise over all ids)",
    card_settings={"batch_size": 16, "mc_samples": 32, "time_sampling": "antithetic", "sampling_eps": 0.001, "steps": 128},
    mask="appended",
)

DREAM = ZooRecipe(
    network=dream_network,
    loss=dream_loss,
    write=write_dream,
    text=("Dream: bidirectional Qwen2-style transformer (RMSNorm, SwiGLU, rotary, q/k/v biases, 2 key-value heads "
          "for 4 query heads) read with shifted logits (the output at i-1 predicts token i), initialised as Dream-7B "
          "was from an autoregressive model: the first 20% of the steps train the same network causally on next-token "
          "cross-entropy, the rest on the masked-diffusion NELBO; its special ids are those of its own BPE "
          "(<|endoftext|> 0 as BOS/EOS, <|mdm_mask|> = last id, config.json mask_token_id)"),
    loss_text="AR cross-entropy (first 20% of steps), then Dream NELBO (shifted logits, antithetic t, masking probability t, weight 1/t)",
    card_settings={"batch_size": 16, "mc_samples": 32, "time_sampling": "stratified", "sampling_eps": 0.001, "steps": 128},
    mask="in_vocab",
)
