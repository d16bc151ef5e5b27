"""The SAM-family mask decoder re-composed for prompts on a fixed image (clicks, and segment
everything's batches of point prompts).

transformers' decoder is written for batches of prompts: it adds the dense prompt to the image
embedding, repeats it per prompt, recomputes the image's positional encoding, projects the
image tokens again on every call and moves the upscaled features between channels-first and
channels-last layouts. For one prompt on a fixed image most of that is either constant or a
copy. This module computes the same function with the same weights (the transformers modules
are read, never changed), arranged so that:

- everything that does not depend on the prompt is computed once per model (positional
  encoding and its projections) or once per image (the first block's image-side projections,
  the high-resolution features in the layout used below);
- the projections that read the image tokens (keys and values of token→image attention,
  queries of image→token attention) are one matrix product with concatenated weights, the
  positional term folded into a precomputed addend (``(x + p) W = x W + p W``);
- image→token attention is done as ``softmax(Q_img K_tokᵀ)`` per head followed by one product
  with ``V_tok W_o`` (its output projection folded into the values; the bias split over the
  heads, whose softmax rows each sum to one);
- the two transposed convolutions (2×2, stride 2) are matrix products whose output stays in
  "blocked" order (pixel, sub-pixel row, sub-pixel column, channel): layer norm and GELU act per
  pixel, the high-resolution features are stored in the same order, and only the final
  (K, 256, 256) masks are put back into image order;
- a batch of P prompts shares the first block's image side (its image tokens are the same for
  every prompt); the per-head products run prompt by prompt on strided views, since a product
  batched over prompts and heads would first copy the projections into head order.

The weights are read when the decoder is built (derived matrices are precomputed): build a new
one after changing the model's weights. The results equal transformers' up to floating-point
reassociation (tests compare the logits). Supported: SAM, SAM 2 / 2.1, EdgeTAM (the SAM 2
decoder); SAM-HQ keeps the transformers path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FAMILIES = ("sam", "sam2", "edgetam")


def _out_proj(attn) -> torch.nn.Linear:
    return attn.o_proj if hasattr(attn, "o_proj") else attn.out_proj


class _Attn:
    """The weights of one (SAM-style, possibly down-projected) attention layer."""

    def __init__(self, attn):
        self.q, self.k, self.v, self.o = attn.q_proj, attn.k_proj, attn.v_proj, _out_proj(attn)
        self.heads = attn.num_attention_heads
        self.dim = attn.q_proj.out_features
        self.scale = (self.dim // self.heads) ** -0.5

    def tokens(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attention for few queries (P, T, C) over keys/values already projected: (P, N, dim)
        per prompt or (N, dim) shared by all prompts."""
        h, d = self.heads, self.dim // self.heads
        n_p, n_t = q.shape[:2]
        qh = (F.linear(q, self.q.weight, self.q.bias) * self.scale).view(n_p, n_t, h, d) \
            .transpose(1, 2)  # (P, h, T, d)
        shared = k.dim() == 2
        p = torch.softmax(_stack([torch.bmm(qh[i], _heads_t(k if shared else k[i], h))
                                  for i in range(n_p)]), dim=-1)  # (P, h, T, N)
        out = _stack([torch.bmm(p[i], _heads(v if shared else v[i], h)) for i in range(n_p)])
        return F.linear(out.transpose(1, 2).reshape(n_p, n_t, self.dim), self.o.weight,
                        self.o.bias)

    def tokens_folded(self, q: torch.Tensor, keys: torch.Tensor, ckt: torch.Tensor,
                      bv: torch.Tensor) -> torch.Tensor:
        """``tokens`` over image tokens ``keys`` (N, C) shared or (P, N, C) whose projections
        were never made: keys ``keys Wkᵀ + ck`` (``ck`` (N, dim): bias plus the positional
        term, given per head as ``ckt`` (h, d, N)), values ``keys Wvᵀ + bv``. Per head the
        products are regrouped, ``q_h (keys W_k,hᵀ)ᵀ = (q_h W_k,h) keysᵀ`` and ``p_h (keys
        W_v,hᵀ) = (p_h keys) W_v,hᵀ``, so the image tokens are read by products with h·T rows
        instead of being projected (N rows)."""
        h, d = self.heads, self.dim // self.heads
        n_p, n_t = q.shape[:2]
        qh = (F.linear(q, self.q.weight, self.q.bias) * self.scale).view(n_p, n_t, h, d) \
            .transpose(1, 2)  # (P, h, T, d)
        p = torch.softmax(_folded_scores(qh, self.k.weight, keys, ckt), dim=-1)  # (P, h, T, N)
        pk = _times(p.reshape(n_p, h * n_t, -1), keys).view(n_p, h, n_t, -1)  # (P, h, T, C)
        out = torch.einsum("phtc,hdc->pthd", pk, self.v.weight.view(h, d, -1))
        out = out.reshape(n_p, n_t, self.dim) + bv  # softmax rows sum to one
        return F.linear(out, self.o.weight, self.o.bias)

    def self_tokens(self, q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Self-attention among the tokens: queries and keys from ``q``, values from ``v``."""
        return self.tokens(q, F.linear(q, self.k.weight, self.k.bias),
                           F.linear(v, self.v.weight, self.v.bias))


def _times(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a`` (P, M, K) @ ``b`` (K, N) shared by the prompts, or (P, K, N) one per prompt."""
    if b.dim() == 2:
        return (a.reshape(-1, a.shape[-1]) @ b).view(*a.shape[:-1], b.shape[-1])
    return torch.bmm(a, b)


def _folded_scores(qh: torch.Tensor, w: torch.Tensor, keys: torch.Tensor,
                   ct: torch.Tensor) -> torch.Tensor:
    """Attention scores (P, h, T, N) of per-head queries ``qh`` (P, h, T, d) against image
    tokens projected as ``keys Wᵀ + c`` (``w`` (h*d, C); ``ct``: ``c`` (N, h*d) per head,
    (h, d, N)), without projecting them: ``(q_h W_h) keysᵀ + q_h c_hᵀ``."""
    n_p, h, n_t, d = qh.shape
    a = torch.einsum("phtd,hdc->phtc", qh, w.view(h, d, -1)).reshape(n_p, h * n_t, -1)
    keys_t = keys.t() if keys.dim() == 2 else keys.transpose(1, 2)
    s = _times(a, keys_t).view(n_p, h, n_t, -1)
    return s + torch.matmul(qh, ct)


def _heads_t(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(N, heads*d) → (heads, d, N) as a strided view (matrix products take it as is)."""
    return x.unflatten(-1, (heads, -1)).permute(1, 2, 0)


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(N, heads*d) → (heads, N, d) as a strided view."""
    return x.unflatten(-1, (heads, -1)).transpose(0, 1)


def _stack(xs: list[torch.Tensor]) -> torch.Tensor:
    """Per-prompt results (matrix products run per prompt on strided per-head views: a batched
    product over prompts and heads would first copy the projections into head order)."""
    return xs[0][None] if len(xs) == 1 else torch.stack(xs)


def _addmm(c: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``c + a @ b`` where each operand is shared by the prompts (2-D) or one per prompt (3-D,
    prompts first); 2-D out when all are shared, else (P, ., .)."""
    per_prompt = [t.shape[0] for t in (c, a, b) if t.dim() == 3]
    if not per_prompt:
        return torch.addmm(c, a, b)
    n_p = per_prompt[0]
    if n_p == 1:
        return torch.addmm(*(t[0] if t.dim() == 3 else t for t in (c, a, b)))[None]
    return torch.baddbmm(*(t if t.dim() == 3 else t.expand(n_p, *t.shape) for t in (c, a, b)))


class FastSamDecoder:
    """Prompt encoder + mask decoder of a SAM-family ``model`` for one image.

    ``__call__(state, points, labels, boxes, masks, multimask)`` takes the model's prompt
    tensors for one image (``points`` (1, P, n, 2): P prompts) and returns ``(low-res mask
    logits (1, P, K, h, w), predicted IoU (1, P, K))`` like ``model(...).pred_masks /
    .iou_scores``. The first block's image-side work is shared by the P prompts.
    """

    def __init__(self, model, family: str):
        if family not in FAMILIES:
            raise ValueError(f"no fast decoder for {family!r}")
        self.model, self.sam2 = model, family != "sam"
        md = model.mask_decoder
        self.md = md
        self.num_mask_tokens = md.num_mask_tokens
        tr = md.transformer
        self.layers = list(tr.layers)
        self.attns = [(_Attn(b.self_attn), _Attn(b.cross_attn_token_to_image),
                       _Attn(b.cross_attn_image_to_token)) for b in self.layers]
        self.final = _Attn(tr.final_attn_token_to_image)
        self.ln_final = tr.layer_norm_final_attn
        with torch.no_grad():
            pe = model.get_image_wide_positional_embeddings()[0]  # (C, h, w)
            self.grid = tuple(pe.shape[1:])
            pe = pe.flatten(1).t().contiguous()  # (h*w, C)
            # per block: image tokens x -> [k (token->image) | q (image->token) | v (t->i)]
            self.block_w, self.block_c = [], []
            for layer in self.layers:
                t2i, i2t = layer.cross_attn_token_to_image, layer.cross_attn_image_to_token
                w, c = self._fused((t2i.k_proj, True), (i2t.q_proj, True), (t2i.v_proj, False),
                                   pe=pe)
                self.block_w.append(w)
                self.block_c.append(c)
            fa = tr.final_attn_token_to_image
            self.final_w, self.final_c = self._fused((fa.k_proj, True), (fa.v_proj, False),
                                                     pe=pe)
            # the folded attentions' addends (keys', queries' bias and positional term) per
            # head, (h, d, N); values' bias
            self.block_ct = []
            for (_, t2i, i2t), c in zip(self.attns, self.block_c, strict=True):
                d = t2i.dim
                self.block_ct.append((_heads_t(c[:, :d], t2i.heads).contiguous(),
                                      _heads_t(c[:, d:2 * d], i2t.heads).contiguous(),
                                      c[0, 2 * d:].contiguous()))
            d = self.final.dim
            self.final_ct = (_heads_t(self.final_c[:, :d], self.final.heads).contiguous(),
                             self.final_c[0, d:].contiguous())
            c1 = md.upscale_conv1
            self.up1_w = c1.weight.permute(0, 2, 3, 1).reshape(c1.in_channels, -1).t() \
                .contiguous()  # (4*C1, C): output columns ordered (ky, kx, c)
            self.up1_b = c1.bias.repeat(4)
            c2 = md.upscale_conv2
            self.up2_w = c2.weight.permute(0, 2, 3, 1).reshape(c2.in_channels, -1).t() \
                .contiguous()
            self.up2_b = c2.bias.repeat(4)
        self.c1, self.c2 = c1.out_channels, c2.out_channels
        self._cached = None  # (state, its image side)

    @staticmethod
    def _fused(*projections, pe):
        """Concatenated weights of linears applied to the image tokens and the addend that
        holds their biases plus, where the input is ``x + pe``, ``pe``'s projection."""
        ws, cs = [], []
        for lin, with_pe in projections:
            ws.append(lin.weight)
            cs.append(F.linear(pe, lin.weight, lin.bias) if with_pe
                      else lin.bias.expand(pe.shape[0], -1))
        return torch.cat(ws).contiguous(), torch.cat(cs, dim=1).contiguous()

    # --- per image -------------------------------------------------------------------
    def _blocked(self, feat: torch.Tensor, levels: int, bias: torch.Tensor) -> torch.Tensor:
        """A (1, c, h*2^L, w*2^L) feature map in the blocked order of the upscaled
        embedding: (y, x, [ky, kx] per level, c), plus the transposed convolution's bias."""
        c = feat.shape[1]
        h, w = self.grid
        split = [c, h] + [2] * levels + [w] + [2] * levels
        x = feat.reshape(split)  # (c, h, ky1.., w, kx1..)
        order = [1, 2 + levels]  # y, x
        for i in range(levels):
            order += [2 + i, 3 + levels + i]  # ky_i, kx_i
        order.append(0)
        return (x.permute(order).reshape(h * w * 4 ** levels // 4, -1) + bias).contiguous()

    def _image_side(self, state: dict, dense: torch.Tensor | None) -> dict:
        """Per image (cached on the state while the dense prompt is the constant no-mask
        embedding): the first block's keys and image-side projections, high-res features."""
        if dense is None and self._cached is not None and self._cached[0] is state:
            return self._cached[1]
        emb = state["embeddings"]
        last = emb[-1] if self.sam2 else emb
        dense_emb = self.model.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1) \
            if dense is None else dense
        keys = (last + dense_emb).flatten(2)[0].t().contiguous()  # (h*w, C)
        image = {"keys": keys, "proj": _addmm(self.block_c[0], keys, self.block_w[0].t())}
        if self.sam2:
            image["s1"] = self._blocked(emb[1], 1, self.up1_b)
            image["s0"] = self._blocked(emb[0], 2, self.up2_b).view(-1, 4 * self.c2)
        if dense is None:
            self._cached = (state, image)
        return image

    # --- per prompt ------------------------------------------------------------------
    def __call__(self, state, points=None, labels=None, boxes=None, masks=None,
                 multimask: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        model, md = self.model, self.md
        emb = state["embeddings"]
        dev = (emb[-1] if self.sam2 else emb).device
        if self.sam2 and points is None and boxes is None:  # as Sam2Model: one empty point
            points = torch.zeros(1, 1, 1, 2, device=dev)
            labels = -torch.ones(1, 1, 1, dtype=torch.int32, device=dev)
        sparse, dense = model.prompt_encoder(input_points=points, input_labels=labels,
                                             input_boxes=boxes, input_masks=masks)
        out_tokens = [md.iou_token.weight, md.mask_tokens.weight]
        if self.sam2:
            out_tokens.insert(0, md.obj_score_token.weight)
        out_tokens = torch.cat(out_tokens)
        if sparse is not None:
            n_p = sparse.shape[1]
            tokens = torch.cat([out_tokens.expand(n_p, -1, -1), sparse[0]], dim=1)
        else:
            tokens = out_tokens[None]
        first = 1 if self.sam2 else 0  # index of the iou token
        image = self._image_side(state, dense if masks is not None else None)

        queries, keys = self.transformer(tokens, image["keys"], image["proj"])

        iou = md.iou_prediction_head(queries[:, first])  # (P, K_all)
        mask_tokens = queries[:, first + 1:first + 1 + self.num_mask_tokens]
        if multimask:
            sel = list(range(1, self.num_mask_tokens))
        elif self.sam2 and md.dynamic_multimask_via_stability:
            sel = list(range(self.num_mask_tokens))  # token 0 may fall back to 1..3
        else:
            sel = [0]
        hyper = torch.stack([md.output_hypernetworks_mlps[j](mask_tokens[:, j]) for j in sel],
                            dim=1)  # (P, K, C2)
        iou = iou[:, sel]
        if not multimask and len(sel) > 1:
            logits, iou = self._dynamic_masks(keys, image, hyper, iou)
        else:
            logits = self._masks(keys, image, hyper)  # (P, K, 4h, 4w)
        return logits[None], iou[None]

    def transformer(self, tokens, keys, proj0):
        """The two-way transformer and the final attention on ``tokens`` (P, T, C) and image
        tokens ``keys`` (N, C) with the first block's image-side projections ``proj0``:
        (queries, keys). Later blocks read the image tokens through ``tokens_folded`` /
        ``_folded_scores`` (products with h·T rows) instead of projecting them."""
        qpe = queries = tokens
        for i in range(len(self.layers)):
            queries, keys = self._block(i, queries, keys, qpe, proj0 if i == 0 else None)
        queries = self.ln_final(queries + self.final.tokens_folded(queries + qpe, keys,
                                                                   *self.final_ct))
        return queries, keys

    def _block(self, i, queries, keys, qpe, proj):
        """Block ``i`` on tokens (P, T, C) and image tokens (N, C) shared or (P, N, C);
        ``proj``: the image tokens' [k | q | v] projections (block 0's, made once per
        image), or None: the attentions fold the projections into their products."""
        layer, (sa, t2i, i2t) = self.layers[i], self.attns[i]
        if i == 0:
            queries = sa.self_tokens(queries, queries)
        else:
            queries = queries + sa.self_tokens(queries + qpe, queries)
        queries = layer.layer_norm1(queries)
        d = t2i.dim
        ckt, cqt, bv = self.block_ct[i]
        if proj is None:
            att = t2i.tokens_folded(queries + qpe, keys, ckt, bv)
        else:
            att = t2i.tokens(queries + qpe, proj[..., :d], proj[..., 2 * d:])
        queries = layer.layer_norm2(queries + att)
        queries = layer.layer_norm3(queries + layer.mlp(queries))
        # image -> token: every image token attends to the few tokens
        h, dh = i2t.heads, i2t.dim // i2t.heads
        n_p, n_tok = queries.shape[:2]
        k = F.linear(queries + qpe, i2t.k.weight, i2t.k.bias)  # (P, T, dim)
        v = F.linear(queries, i2t.v.weight, i2t.v.bias)
        kh = (k * i2t.scale).view(n_p, n_tok, h, dh).transpose(1, 2)  # (P, h, T, dh)
        # scores as (P, h, T, N): the softmax over T then runs along a non-minor axis, which
        # is ~10x faster than over a minor axis of length T
        if proj is None:
            p = _folded_scores(kh, self.block_w[i][d:2 * d], keys, cqt)
        else:
            qi = proj[..., d:2 * d]  # (N, dim) shared or (P, N, dim)
            p = _stack([torch.bmm(kh[j], _heads_t(qi if qi.dim() == 2 else qi[j], h))
                        for j in range(n_p)])
        p = torch.softmax(p, dim=2).view(n_p, h * n_tok, -1)  # (P, hT, N)
        # (p_h v_h) W_o,hᵀ summed over heads = pᵀ (v_h W_o,hᵀ stacked); the bias shared out
        wo = i2t.o.weight.view(-1, h, dh)  # (C, h, dh)
        vw = torch.einsum("pthd,chd->phtc", v.view(n_p, n_tok, h, dh), wo) + i2t.o.bias / h
        vw = vw.reshape(n_p, h * n_tok, -1)
        return queries, layer.layer_norm4(_addmm(keys, p.transpose(1, 2), vw))

    def _masks(self, keys, image, hyper) -> torch.Tensor:
        """Upscale the image tokens (P, N, C) (two 2×2 transposed convolutions, in blocked
        order) and take each mask token's product with them: logits (P, K, 4h, 4w)."""
        up = self._upscaled(keys, image)
        return self._unblock(torch.bmm(up, hyper.transpose(1, 2)))  # (P, 16N, K) blocked

    def _upscaled(self, keys, image) -> torch.Tensor:
        """The upscaled image tokens (P, 16N, C2), in blocked order."""
        md = self.md
        ln = md.upscale_layer_norm
        n_p = keys.shape[0]
        c1 = image["s1"] if self.sam2 else self.up1_b.expand(keys.shape[1], -1)
        up = _addmm(c1, keys, self.up1_w.t())
        up = F.layer_norm(up.reshape(-1, self.c1), (self.c1,), ln.weight, ln.bias, ln.eps)
        up = md.activation(up).view(n_p, -1, self.c1)  # (P, 4N, C1)
        c2 = image["s0"] if self.sam2 else self.up2_b.expand(up.shape[1], -1)
        up = _addmm(c2, up, self.up2_w.t())
        return md.activation(up).view(n_p, -1, self.c2)  # (P, 16N, C2)

    def _unblock(self, m: torch.Tensor) -> torch.Tensor:
        """Blocked-order logits (P, 16N, K) → (P, K, 4h, 4w)."""
        h, w = self.grid
        n_p, k = m.shape[0], m.shape[-1]
        m = m.view(n_p, h, w, 2, 2, 2, 2, k).permute(0, 7, 1, 3, 5, 2, 4, 6)
        return m.reshape(n_p, k, 4 * h, 4 * w)

    def _stable(self, flat: torch.Tensor) -> torch.Tensor:
        """SAM 2's stability test of token 0's logits (P, M): (P,) bool."""
        md = self.md
        delta = md.dynamic_multimask_stability_delta
        inter = (flat > delta).sum(-1).float()
        union = (flat > -delta).sum(-1).float()
        return torch.where(union > 0, inter / union.clamp(min=1), 1.0) \
            >= md.dynamic_multimask_stability_thresh

    def _dynamic(self, logits, iou):
        """SAM 2's single-mask output: per prompt, token 0's mask unless its stability score
        is below the threshold, then the multimask output with the best predicted IoU."""
        stable = self._stable(logits[:, 0].flatten(1))  # (P,)
        best = 1 + torch.argmax(iou[:, 1:], dim=-1)  # (P,)
        pick = torch.where(stable, torch.zeros_like(best), best)
        rows = torch.arange(len(pick), device=pick.device)
        return logits[rows, pick][:, None], iou[rows, pick][:, None]

    def _dynamic_masks(self, keys, image, hyper, iou):
        """``_dynamic(_masks(...), iou)`` with two mask products instead of four: token 0's
        mask and the best of the others by predicted IoU, one of them kept (stability is a
        count over the mask, so it is taken in blocked order)."""
        up = self._upscaled(keys, image)
        best = 1 + torch.argmax(iou[:, 1:], dim=-1)  # (P,)
        rows = torch.arange(len(best), device=best.device)
        two = torch.stack([hyper[:, 0], hyper[rows, best]], dim=2)  # (P, C2, 2)
        m = torch.bmm(up, two)  # (P, 16N, 2)
        stable = self._stable(m[..., 0])
        keep = torch.where(stable[:, None, None], m[..., :1], m[..., 1:])
        out_iou = torch.where(stable, iou[:, 0], iou[rows, best])[:, None]
        return self._unblock(keep), out_iou
