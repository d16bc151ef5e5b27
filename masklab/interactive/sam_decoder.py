"""The SAM-family mask decoder re-composed for one prompt at a time (the interactive case).

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
  (K, 256, 256) masks are put back into image order.

The results equal transformers' up to floating-point reassociation (tests compare the logits).
Supported: SAM, SAM 2 / 2.1, EdgeTAM (the SAM 2 decoder); SAM-HQ keeps the transformers path.
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
        """Attention for few queries (T, C) over keys/values already projected (N, dim)."""
        h, d = self.heads, self.dim // self.heads
        qh = F.linear(q, self.q.weight, self.q.bias).view(-1, h, d).transpose(0, 1)
        kh = k.view(-1, h, d).permute(1, 2, 0)  # (h, d, N): a strided view, no copy
        vh = v.view(-1, h, d).transpose(0, 1)  # (h, N, d)
        p = torch.softmax(torch.bmm(qh * self.scale, kh), dim=-1)
        out = torch.bmm(p, vh).transpose(0, 1).reshape(q.shape[0], self.dim)
        return F.linear(out, self.o.weight, self.o.bias)

    def self_tokens(self, q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Self-attention among the tokens: queries and keys from ``q``, values from ``v``."""
        return self.tokens(q, F.linear(q, self.k.weight, self.k.bias),
                           F.linear(v, self.v.weight, self.v.bias))


class FastSamDecoder:
    """Prompt encoder + mask decoder of a SAM-family ``model`` for one prompt at a time.

    ``__call__(state, points, labels, boxes, masks, multimask)`` returns ``(low-res mask logits
    (1, 1, K, h, w), predicted IoU (1, 1, K))`` like ``model(...).pred_masks / .iou_scores``.
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
            c1 = md.upscale_conv1
            self.up1_w = c1.weight.permute(0, 2, 3, 1).reshape(c1.in_channels, -1).t() \
                .contiguous()  # (4*C1, C): output columns ordered (ky, kx, c)
            self.up1_b = c1.bias.repeat(4)
            c2 = md.upscale_conv2
            self.up2_w = c2.weight.permute(0, 2, 3, 1).reshape(c2.in_channels, -1).t() \
                .contiguous()
            self.up2_b = c2.bias.repeat(4)
        self.c1, self.c2 = c1.out_channels, c2.out_channels
        self._image_key = None
        self._image = None

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
        emb = state["embeddings"]
        if self._image_key is not None and self._image_key[0] is state and dense is None:
            return self._image
        last = emb[-1] if self.sam2 else emb
        dense_emb = self.model.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1) \
            if dense is None else dense
        keys = (last + dense_emb).flatten(2)[0].t().contiguous()  # (h*w, C)
        image = {"keys": keys,
                 "proj": torch.addmm(self.block_c[0], keys, self.block_w[0].t())}
        if self.sam2:
            image["s1"] = self._blocked(emb[1], 1, self.up1_b)
            image["s0"] = self._blocked(emb[0], 2, self.up2_b).view(-1, 4 * self.c2)
        if dense is None:
            self._image_key, self._image = (state,), image
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
        tokens = torch.cat(out_tokens + ([sparse[0, 0]] if sparse is not None else []))
        first = 1 if self.sam2 else 0  # index of the iou token
        image = self._image_side(state, dense if masks is not None else None)

        qpe = tokens
        queries, keys, proj = tokens, image["keys"], image["proj"]
        for i, layer in enumerate(self.layers):
            if i > 0:
                proj = torch.addmm(self.block_c[i], keys, self.block_w[i].t())
            queries, keys = self._block(layer, *self.attns[i], queries, keys, qpe, proj,
                                        skip_pe=i == 0)
        kv = torch.addmm(self.final_c, keys, self.final_w.t())
        d = self.final.dim
        queries = self.ln_final(queries + self.final.tokens(queries + qpe, kv[:, :d],
                                                            kv[:, d:]))

        iou = md.iou_prediction_head(queries[first])
        mask_tokens = queries[first + 1:first + 1 + self.num_mask_tokens]
        if multimask:
            sel = list(range(1, self.num_mask_tokens))
        elif self.sam2 and md.dynamic_multimask_via_stability:
            sel = list(range(self.num_mask_tokens))  # token 0 may fall back to 1..3
        else:
            sel = [0]
        hyper = torch.stack([md.output_hypernetworks_mlps[j](mask_tokens[j]) for j in sel])
        logits = self._masks(keys, image, hyper)  # (K, 4h, 4w)
        iou = iou[sel]
        if not multimask and len(sel) > 1:
            logits, iou = self._dynamic(logits, iou)
        return logits[None, None], iou[None, None]

    @staticmethod
    def _block(layer, sa, t2i, i2t, queries, keys, qpe, proj, skip_pe: bool):
        """One two-way block; ``proj``: the image tokens' [k | q | v] projections."""
        if skip_pe:
            queries = sa.self_tokens(queries, queries)
        else:
            queries = queries + sa.self_tokens(queries + qpe, queries)
        queries = layer.layer_norm1(queries)
        d = t2i.dim
        queries = layer.layer_norm2(queries + t2i.tokens(queries + qpe, proj[:, :d],
                                                          proj[:, 2 * d:]))
        queries = layer.layer_norm3(queries + layer.mlp(queries))
        # image -> token: every image token attends to the few tokens
        h, dh = i2t.heads, i2t.dim // i2t.heads
        k = F.linear(queries + qpe, i2t.k.weight, i2t.k.bias)  # (T, dim)
        v = F.linear(queries, i2t.v.weight, i2t.v.bias)
        n_tok = queries.shape[0]
        qi = proj[:, d:2 * d].view(-1, h, dh).permute(1, 2, 0)  # (h, dh, N), strided
        kh = (k * i2t.scale).view(n_tok, h, dh).transpose(0, 1)  # (h, T, dh)
        # scores as (h, T, N): the softmax over T then runs along a non-minor axis, which
        # is ~10x faster than over a minor axis of length T
        p = torch.softmax(torch.bmm(kh, qi), dim=1).view(h * n_tok, -1)  # (h*T, N)
        # (p_h v_h) W_o,hᵀ summed over heads = pᵀ (v_h W_o,hᵀ stacked); the bias shared out
        wo = i2t.o.weight.view(-1, h, dh)  # (C, h, dh)
        vw = torch.einsum("thd,chd->htc", v.view(n_tok, h, dh), wo) + i2t.o.bias / h
        keys = layer.layer_norm4(torch.addmm(keys, p.t(), vw.reshape(h * n_tok, -1)))
        return queries, keys

    def _masks(self, keys, image, hyper) -> torch.Tensor:
        """Upscale the image tokens (two 2×2 transposed convolutions, in blocked order) and
        take each mask token's product with them: logits (K, 4h, 4w)."""
        md = self.md
        ln = md.upscale_layer_norm
        if self.sam2:
            up = torch.addmm(image["s1"], keys, self.up1_w.t())
        else:
            up = torch.addmm(self.up1_b, keys, self.up1_w.t())
        up = up.view(-1, self.c1)
        up = md.activation(F.layer_norm(up, (self.c1,), ln.weight, ln.bias, ln.eps))
        if self.sam2:
            up = torch.addmm(image["s0"], up, self.up2_w.t())
        else:
            up = torch.addmm(self.up2_b, up, self.up2_w.t())
        up = md.activation(up).view(-1, self.c2)
        m = up @ hyper.t()  # (h*w*16, K), blocked
        h, w = self.grid
        k = hyper.shape[0]
        m = m.view(h, w, 2, 2, 2, 2, k).permute(6, 0, 2, 4, 1, 3, 5)
        return m.reshape(k, 4 * h, 4 * w)

    def _dynamic(self, logits, iou):
        """SAM 2's single-mask output: token 0's mask unless its stability score is below
        the threshold, then the multimask output with the best predicted IoU."""
        md = self.md
        delta = md.dynamic_multimask_stability_delta
        flat = logits[0].flatten()
        inter, union = (flat > delta).sum().float(), (flat > -delta).sum().float()
        stability = inter / union if union > 0 else torch.ones(())
        if stability >= md.dynamic_multimask_stability_thresh:
            return logits[:1], iou[:1]
        best = 1 + int(torch.argmax(iou[1:]))
        return logits[best:best + 1], iou[best:best + 1]
