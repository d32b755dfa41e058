"""SAM2 (transformers `Sam2Model`) → `encoder.onnx` + `decoder.onnx`.

Two export-only wrappers with flat tensor I/O (names in `segzero_edge/graphs/segmenter_io.py`),
exported with `torch.onnx.export(..., dynamo=True)`:

- the encoder is `Sam2Model.get_image_embeddings`: Hiera + FPN, the decoder's conv_s0/s1
  projections of the high-res levels, and the no-memory embedding on the last level;
- the decoder is the prompt encoder + mask decoder for points and labels (a box is its two
  corners with labels 2 and 3, as SAM encodes it), with multimask output.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segzero_edge.export.onnx_io import needs_external_data, save_program
from segzero_edge.export.precision import PrecisionPolicy, convert
from segzero_edge.graphs import segmenter_io as io

#: ONNX opset of the exported graphs. 20 is the first with a native `Gelu` op: at 18 the
#: dynamo exporter writes GELU as x·(0.5·(1 + erf(x/√2))), an operand order that onnxruntime's
#: Gelu fusion does not match, so hiera-t ran 12 unfused erf chains on its largest activations.
#: `Gelu` (exact erf form, approximate="none") runs in onnxruntime ≥ 1.17 (we require ≥ 1.25),
#: is parsed by TensorRT ≥ 10.0 (as kGELU_ERF) and passes through the fp16 converter and int8
#: dynamic quantization unchanged. Measured in bench/results/segmenter.md.
OPSET = 20

#: The oldest opset `export_segmenter_*` accepts: LayerNormalization needs 17 (GELU is then
#: the erf chain; only benchmarks that compare opsets ask for one below `OPSET`).
MIN_OPSET = 17

#: The segmenter's precision policy.
#: - fp16: LayerNormalization and Softmax stay fp32 (their statistics and sums lose the mask
#:   logits' precision in fp16), and so does the prompt's random-Fourier position encoding
#:   (sin/cos of 2π·x·G: an fp16 argument of ~10 is off by up to 4e-3 rad); graph I/O fp32.
#: - int8: MatMul/Gemm weights (int8, per tensor; activations uint8 per call). Convolutions
#:   stay fp32: on this 2-core x86 CPU, quantizing them too made the hiera-t encoder slower
#:   (5.6 s vs 4.9 s; fp32 7.8 s) and less faithful (max relative feature error 0.060 vs 0.052).
#:   `export_segmenter` keeps the decoder fp32 for int8: it is ~4M weights, int8 saves it 0-30%
#:   of its time and costs ~2 points of mask IoU (bench/segmenter.py prints both variants).
PRECISION_POLICY = PrecisionPolicy(
    fp16_keep_fp32_ops=("LayerNormalization", "Softmax", "Sin", "Cos"),
    int8_ops=("MatMul", "Gemm"),
    int8_per_channel=False,
    int8_prepare=True,
)


class SamEncoderExport(nn.Module):
    """pixel_values [1,3,1024,1024] → high_res_feats_0, high_res_feats_1, image_embeddings."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s0, s1, embeddings = self.model.get_image_embeddings(pixel_values)
        return s0, s1, embeddings


class SamDecoderExport(nn.Module):
    """Prompt encoder + mask decoder with SAM's points-and-labels prompt interface.

    Reproduces `Sam2PromptEncoder._embed_points` / `_embed_boxes` with float labels (so the
    graph has no integer gathers): every point gets the random-Fourier position of
    `coords + 0.5`; label -1 replaces it by the not-a-point embedding; labels 0..3 add
    `point_embed[label]` (a one-hot matmul, exact). The dense prompt is the mask embedding
    when `has_mask_input` is 1, else the no-mask embedding.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        with torch.no_grad():
            image_pe = model.get_image_wide_positional_embeddings().detach().clone()
        self.register_buffer("image_pe", image_pe, persistent=False)

    def forward(
        self,
        image_embeddings: torch.Tensor,
        high_res_feats_0: torch.Tensor,
        high_res_feats_1: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor,
        has_mask_input: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        prompt = self.model.prompt_encoder
        size = prompt.input_image_size
        position = prompt.shared_embedding((point_coords + 0.5).unsqueeze(1), (size, size))  # [1,1,N,C]
        labels = point_labels.unsqueeze(1).unsqueeze(-1)  # [1,1,N,1]
        sparse = torch.where(labels == io.LABEL_PAD, prompt.not_a_point_embed.weight, position)
        kinds = torch.arange(prompt.point_embed.num_embeddings, dtype=labels.dtype, device=labels.device)
        sparse = sparse + (labels == kinds).to(sparse.dtype) @ prompt.point_embed.weight
        has_mask = has_mask_input.reshape(1, 1, 1, 1).to(sparse.dtype)
        dense = prompt.mask_embed(mask_input) * has_mask + prompt.no_mask_embed.weight.reshape(
            1, -1, 1, 1
        ) * (1 - has_mask)
        masks, iou, _, _ = self.model.mask_decoder(
            image_embeddings=image_embeddings,
            image_positional_embeddings=self.image_pe.to(image_embeddings.dtype),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=True,
            high_resolution_features=[high_res_feats_0, high_res_feats_1],
        )
        return masks[:, 0], iou[:, 0]


def _load(model_or_dir: Any) -> nn.Module:
    """A Sam2Model in eval mode from a model, a TorchSegmenter, a Meta checkpoint file, a local dir or a Hub id."""
    if isinstance(model_or_dir, nn.Module):
        model = model_or_dir
    elif hasattr(model_or_dir, "model") and isinstance(model_or_dir.model, nn.Module):  # a TorchSegmenter
        model = model_or_dir.model
    else:  # a Meta checkpoint file, a transformers folder or a Hub id
        from segzero_edge.models.segmenter import load_sam2

        model = load_sam2(model_or_dir, dtype=torch.float32)
    dtype = next(model.parameters()).dtype
    if dtype != torch.float32:
        raise ValueError(
            f"export needs the fp32 model, this one is {dtype}: load it with dtype=torch.float32 "
            "(lower precisions come from precision='fp16'/'int8' after export)"
        )
    return model.eval()


def _param_bytes(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def input_size(model: nn.Module) -> int:
    """The encoder's square input side from the model config (SAM2: 1024; smaller models may
    be trained at e.g. 384); checked against what the runtime implements."""
    return io.check_input_size(int(model.config.prompt_encoder_config.image_size))


def example_encoder_inputs(model: nn.Module) -> tuple[torch.Tensor]:
    dtype = next(model.parameters()).dtype
    size = input_size(model)
    return (torch.zeros(1, 3, size, size, dtype=dtype),)


def example_decoder_inputs(model: nn.Module) -> tuple[torch.Tensor, ...]:
    """Encoder outputs of a blank image plus a Seg-Zero prompt (2 points, box corners, pad)."""
    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        s0, s1, embeddings = model.get_image_embeddings(*example_encoder_inputs(model))
    size = input_size(model)
    coords = torch.tensor([[[300.0, 400.0], [600.0, 500.0], [100.0, 200.0], [800.0, 900.0], [0.0, 0.0]]])
    coords = coords * (size / io.IMAGE_SIZE)  # the same prompt at any input size
    labels = torch.tensor([[1.0, 1.0, 2.0, 3.0, -1.0]])
    low_res = size // 4
    mask = torch.zeros(1, 1, low_res, low_res)
    has_mask = torch.zeros(1)
    return embeddings, s0, s1, coords.to(dtype), labels.to(dtype), mask.to(dtype), has_mask.to(dtype)


def _export(
    wrapper: nn.Module, args: tuple, path: str | Path, names: tuple[tuple[str, ...], tuple[str, ...]],
    weight_bytes: int, dynamic_shapes: Any = None, opset: int = OPSET,
) -> Path:
    """torch.onnx.export (dynamo) of an export wrapper with the contract's I/O names, then save."""
    if opset < MIN_OPSET:
        raise ValueError(f"opset must be >= {MIN_OPSET} (LayerNormalization), got {opset}; the default is {OPSET}")
    program = torch.onnx.export(
        wrapper.eval(),
        args,
        dynamo=True,
        input_names=list(names[0]),
        output_names=list(names[1]),
        dynamic_shapes=dynamic_shapes,
        opset_version=opset,
        verbose=False,
    )
    return save_program(program, path, external_data=needs_external_data(weight_bytes))


def export_segmenter_encoder(model: nn.Module, path: str | Path, opset: int = OPSET) -> Path:
    """Export the image encoder to `path` (fp32) at `opset`. Returns the path."""
    model = _load(model)
    names = (io.ENCODER_INPUTS, io.ENCODER_OUTPUTS)
    weight_bytes = _param_bytes(model.vision_encoder)
    return _export(SamEncoderExport(model), example_encoder_inputs(model), path, names, weight_bytes, opset=opset)


def export_segmenter_decoder(
    model: nn.Module, path: str | Path, max_points: int = io.MAX_POINTS, opset: int = OPSET
) -> Path:
    """Export prompt encoder + mask decoder to `path` (fp32) at `opset`, N = 1..max_points. Returns the path."""
    model = _load(model)
    points = torch.export.Dim("num_points", min=1, max=max_points)
    dynamic = ({}, {}, {}, {1: points}, {1: points}, {}, {})
    weight_bytes = _param_bytes(model.mask_decoder) + _param_bytes(model.prompt_encoder)
    names = (io.DECODER_INPUTS, io.DECODER_OUTPUTS)
    return _export(
        SamDecoderExport(model), example_decoder_inputs(model), path, names, weight_bytes, dynamic, opset=opset
    )


def model_summary(model: nn.Module) -> dict[str, Any]:
    """The architecture facts a reader of the manifest needs (widths, depths, sizes)."""
    config = model.config
    backbone = config.vision_config.backbone_config
    return {
        "architecture": "Sam2Model",
        "hidden_size": config.mask_decoder_config.hidden_size,
        "backbone_embed_dims": list(backbone.embed_dim_per_stage),
        "backbone_blocks": list(backbone.blocks_per_stage),
        "backbone_global_attention_blocks": list(backbone.global_attention_blocks),
        "feature_sizes": [list(s) for s in config.vision_config.backbone_feature_sizes],
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def export_segmenter(
    model_or_dir: Any,
    out_dir: str | Path,
    precision: str = "fp32",
    decoder_precision: str | None = None,
    fp32_dir: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write `out_dir/encoder.onnx` and `out_dir/decoder.onnx` and return the component
    metadata for the manifest (precisions, preprocessing constants, I/O names, model summary).

    precision: "fp32" | "fp16" | "int8" for the encoder. decoder_precision defaults to the
    same, except for "int8", where the decoder stays fp32: it is ~4M weights, and int8
    costs it ~2 points of mask IoU for 0-30% of its time (see `PRECISION_POLICY`).
    fp32_dir: an earlier fp32 export of the same model to convert from instead of exporting
    again (e.g. the fp32 graphs kept for TensorRT). progress: a tqdm bar over the steps
    (exporting hiera-l takes minutes on a CPU).
    """
    from tqdm.auto import tqdm

    if precision not in io.PRECISIONS:
        raise ValueError(f"precision must be one of {io.PRECISIONS}, got {precision!r}")
    decoder_precision = decoder_precision or ("fp32" if precision == "int8" else precision)
    if decoder_precision not in io.PRECISIONS:
        raise ValueError(f"decoder_precision must be one of {io.PRECISIONS}, got {decoder_precision!r}")
    model = _load(model_or_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = {"encoder": (io.ENCODER_FILE, precision), "decoder": (io.DECODER_FILE, decoder_precision)}
    exporters = {"encoder": export_segmenter_encoder, "decoder": export_segmenter_decoder}
    details: dict[str, Any] = {}
    bar = tqdm(targets.items(), desc="segmenter export", unit="graph", disable=not progress)
    for name, (filename, prec) in bar:
        bar.set_postfix_str(f"{name} {prec}")
        final = out_dir / filename
        source = Path(fp32_dir) / filename if fp32_dir is not None else None
        if source is not None and not source.is_file():
            raise FileNotFoundError(f"fp32_dir has no {filename}: {source}")
        if prec == "fp32":
            if source is None:
                exporters[name](model, final)
            elif source.resolve() != final.resolve():
                for suffix in ("", ".data"):
                    if source.with_name(source.name + suffix).is_file():
                        shutil.copyfile(
                            source.with_name(source.name + suffix), final.with_name(final.name + suffix)
                        )
            continue
        fp32 = source if source is not None else exporters[name](model, out_dir / f".{name}.fp32.onnx")
        details[name] = convert(fp32, final, prec, PRECISION_POLICY)
        if source is None:
            for tmp in (fp32, fp32.with_name(fp32.name + ".data")):
                tmp.unlink(missing_ok=True)
    meta = io.default_meta(input_size(model))
    meta.update(
        precision={"encoder": precision, "decoder": decoder_precision},
        quantization=details,
        opset=OPSET,
        max_points=io.MAX_POINTS,
        model=model_summary(model),
    )
    return meta
