"""Tiny random Grounding DINO / OWLv2 / OWL-ViT checkpoints with a small word vocabulary,
saved to a folder and loaded back through masklab's loaders (no downloads)."""

import torch

WORDS = ["cat", "dog", "traffic", "light", "person", "a", "photo", "of", "."]


def _bert_tokenizer():
    import transformers as T
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    tk = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tk.normalizer = normalizers.BertNormalizer(lowercase=True)
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return T.BertTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]",
                               cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def _clip_tokenizer():
    """A byte-pair tokenizer (CLIP's kind) whose merges spell exactly ``WORDS``."""
    import transformers as T
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab, merges = ["!", "<unk>"], []
    for w in WORDS:
        parts = [*list(w[:-1]), w[-1] + "</w>"]
        for p in parts:
            if p not in vocab:
                vocab.append(p)
        cur = parts[0]
        for p in parts[1:]:
            if (cur, p) not in merges:
                merges.append((cur, p))
            cur += p
            if cur not in vocab:
                vocab.append(cur)
    vocab += ["<|startoftext|>", "<|endoftext|>"]  # the end token has the top id (pooling)
    ids = {w: i for i, w in enumerate(vocab)}
    tk = Tokenizer(models.BPE(ids, merges, unk_token="<unk>", end_of_word_suffix="</w>"))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>",
        special_tokens=[("<|startoftext|>", ids["<|startoftext|>"]),
                        ("<|endoftext|>", ids["<|endoftext|>"])])
    return T.CLIPTokenizerFast(tokenizer_object=tk, unk_token="<unk>", pad_token="!",
                               bos_token="<|startoftext|>", eos_token="<|endoftext|>",
                               model_max_length=16)


def grounding_dino(folder, mm: bool = False):
    """Grounding DINO, or with ``mm`` MM Grounding DINO (the LLMDet checkpoints' kind)."""
    import transformers as T

    torch.manual_seed(0)
    tc = T.BertConfig(vocab_size=16, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=37, max_position_embeddings=64)
    bb = T.SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4,
                      image_size=64, out_features=["stage2", "stage3", "stage4"])
    cfg = (T.MMGroundingDinoConfig if mm else T.GroundingDinoConfig)(
        backbone_config=bb, text_config=tc, d_model=32, encoder_layers=1, decoder_layers=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, encoder_attention_heads=2,
        decoder_attention_heads=2, num_queries=20, num_feature_levels=3, encoder_n_points=2,
        decoder_n_points=2, max_text_len=16, use_timm_backbone=False)
    model = (T.MMGroundingDinoForObjectDetection if mm else
             T.GroundingDinoForObjectDetection)(cfg).eval()
    proc = T.GroundingDinoProcessor(
        image_processor=T.GroundingDinoImageProcessor(
            size={"shortest_edge": 64, "longest_edge": 96}), tokenizer=_bert_tokenizer())
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return model, proc


def owl(folder, v2=True):
    import transformers as T

    torch.manual_seed(0)
    text = dict(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                intermediate_size=37, max_position_embeddings=16, bos_token_id=48,
                eos_token_id=49, pad_token_id=0)
    vision = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=37, image_size=64, patch_size=16)
    if v2:
        model = T.Owlv2ForObjectDetection(T.Owlv2Config(text_config=text, projection_dim=32,
                                                         vision_config=vision)).eval()
        proc = T.Owlv2Processor(image_processor=T.Owlv2ImageProcessor(
            size={"height": 64, "width": 64}), tokenizer=_clip_tokenizer())
    else:
        model = T.OwlViTForObjectDetection(T.OwlViTConfig(text_config=text, projection_dim=32,
                                                          vision_config=vision)).eval()
        proc = T.OwlViTProcessor(image_processor=T.OwlViTImageProcessor(
            size={"height": 64, "width": 64}, crop_size={"height": 64, "width": 64}),
            tokenizer=_clip_tokenizer())
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return model, proc


def clipseg(folder):
    import transformers as T

    torch.manual_seed(0)
    text = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=37, max_position_embeddings=16, bos_token_id=48,
                eos_token_id=49, pad_token_id=0)
    vision = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=37, image_size=64, patch_size=16)
    model = T.CLIPSegForImageSegmentation(T.CLIPSegConfig(
        text_config=text, vision_config=vision, projection_dim=32, extract_layers=(0, 1),
        reduce_dim=16, decoder_num_attention_heads=2, decoder_intermediate_size=32)).eval()
    proc = T.CLIPSegProcessor(image_processor=T.ViTImageProcessor(
        size={"height": 64, "width": 64}), tokenizer=_clip_tokenizer())
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return model, proc


def omdet_turbo(folder):
    """A tiny OmDet-Turbo (Swin backbone from transformers, CLIP text tower). As in the real
    checkpoint, the text width equals the class embedding width and differs from the
    decoder's (transformers only builds its task projection then)."""
    import transformers as T

    torch.manual_seed(0)
    text = T.CLIPTextConfig(vocab_size=64, hidden_size=48, num_hidden_layers=1,
                            num_attention_heads=2, intermediate_size=37,
                            max_position_embeddings=77, bos_token_id=48, eos_token_id=49,
                            pad_token_id=0, projection_dim=48)
    bb = T.SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4,
                      image_size=64, out_indices=[2, 3, 4])
    cfg = T.OmDetTurboConfig(
        text_config=text, backbone_config=bb, use_timm_backbone=False, image_size=64,
        apply_layernorm_after_vision_backbone=False, text_projection_in_dim=48,
        text_projection_out_dim=48, task_encoder_hidden_dim=64, class_embed_dim=48,
        vision_features_channels=[32, 32, 32], encoder_in_channels=[32, 64, 128],
        encoder_hidden_dim=32, encoder_dim_feedforward=64, encoder_attention_heads=2,
        decoder_hidden_dim=32, decoder_num_heads=2, decoder_num_layers=2,
        decoder_dim_feedforward=64, num_queries=20, decoder_num_points=2)
    model = T.OmDetTurboForObjectDetection(cfg).eval()
    proc = T.OmDetTurboProcessor(image_processor=T.DetrImageProcessor(
        size={"height": 64, "width": 64}, do_pad=False), tokenizer=_clip_tokenizer())
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return model, proc


def sam3(folder):
    """A tiny SAM 3 (ViT backbone, CLIP text tower, DETR encoder/decoder, mask decoder)."""
    import transformers as T

    torch.manual_seed(0)
    vit = dict(model_type="sam3_vit_model", hidden_size=32, intermediate_size=64,
               num_hidden_layers=2, num_attention_heads=2, image_size=112, patch_size=14,
               window_size=4, global_attn_indexes=[1], pretrain_image_size=56)
    small = dict(hidden_size=32, num_attention_heads=2, intermediate_size=64)
    cfg = T.Sam3Config(
        vision_config=dict(backbone_config=vit, fpn_hidden_size=32),
        text_config=dict(vocab_size=64, hidden_size=32, intermediate_size=37, projection_dim=32,
                         num_hidden_layers=1, num_attention_heads=2,
                         max_position_embeddings=32, bos_token_id=48, eos_token_id=49,
                         pad_token_id=0),
        geometry_encoder_config=dict(num_layers=1, **small),
        detr_encoder_config=dict(num_layers=1, **small),
        detr_decoder_config=dict(num_layers=1, num_queries=10, **small),
        mask_decoder_config=dict(hidden_size=32, num_attention_heads=2))
    model = T.Sam3Model(cfg).eval()
    proc = T.Sam3Processor(image_processor=T.Sam3ImageProcessor(size={"height": 112,
                                                                      "width": 112}),
                           tokenizer=_clip_tokenizer())
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return model, proc


def _bart_tokenizer():
    """A byte-level BPE tokenizer (BART's kind, no merges: one token per byte) with
    Florence-2's location and task tokens and its image token."""
    import transformers as T
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    vocab = {t: i for i, t in enumerate(specials + sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tk = Tokenizer(models.BPE(vocab, [], unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tok = T.BartTokenizer(tokenizer_object=tk, bos_token="<s>", eos_token="</s>",
                          pad_token="<pad>", unk_token="<unk>", cls_token="<s>",
                          sep_token="</s>", mask_token="<unk>",
                          extra_special_tokens={"image_token": "<image>"})
    tok.add_tokens([f"<loc_{i}>" for i in range(1000)] + ["<od>", "</od>", "<poly>", "</poly>"])
    return tok


def florence2(folder, seed: int = 0):
    """Florence-2: a DaViT of 4 stages and a 1+1-layer BART, 64x64 input (5 image tokens)."""
    import transformers as T

    torch.manual_seed(seed)
    tok = _bart_tokenizer()
    vc = T.Florence2VisionConfig(depths=[1, 1, 1, 1], embed_dim=[8, 16, 16, 32],
                                 num_heads=[1, 1, 2, 2], num_groups=[1, 1, 2, 2], window_size=2,
                                 projection_dim=32, drop_path_rate=0.0,
                                 max_position_embeddings=8)
    tc = T.BartConfig(vocab_size=len(tok), d_model=32, encoder_layers=1, decoder_layers=1,
                      encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=37,
                      decoder_ffn_dim=37, max_position_embeddings=128, bos_token_id=0,
                      pad_token_id=1, eos_token_id=2, decoder_start_token_id=2,
                      forced_bos_token_id=0, forced_eos_token_id=2)
    model = T.Florence2ForConditionalGeneration(T.Florence2Config(
        vision_config=vc, text_config=tc, image_token_id=tok.image_token_id)).eval()
    ip = T.CLIPImageProcessor(size={"height": 64, "width": 64}, do_center_crop=False,
                              image_seq_length=5)
    post = {k: {} for k in ["ocr", "phrase_grounding", "pure_text", "description_with_bboxes",
                            "description_with_polygons", "polygons", "bboxes",
                            "description_with_bboxes_or_polygons"]}
    proc = T.Florence2Processor(image_processor=ip, tokenizer=tok, post_processor_config=post)
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return model, proc


def blip(folder, favour: str | None = None):
    """BLIP captioning: a ViT of one layer and a one-layer BERT decoder over ``WORDS``.
    ``favour``: a large output bias on that word, so every caption repeats it."""
    import transformers as T

    torch.manual_seed(0)
    tok = _bert_tokenizer()
    tok.add_special_tokens({"bos_token": "[DEC]"})
    tc = T.BlipTextConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                          num_attention_heads=2, intermediate_size=37, encoder_hidden_size=32,
                          max_position_embeddings=64, bos_token_id=tok.bos_token_id,
                          sep_token_id=tok.sep_token_id, pad_token_id=tok.pad_token_id)
    vc = T.BlipVisionConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=37, image_size=32, patch_size=8)
    model = T.BlipForConditionalGeneration(T.BlipConfig(text_config=tc.to_dict(),
                                                        vision_config=vc.to_dict())).eval()
    if favour is not None:
        with torch.no_grad():
            model.text_decoder.cls.predictions.bias[tok.convert_tokens_to_ids(favour)] += 50
    proc = T.BlipProcessor(image_processor=T.BlipImageProcessor(size={"height": 32,
                                                                      "width": 32}),
                           tokenizer=tok)
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return model, proc
