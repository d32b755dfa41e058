"""The graph contracts every back end shares: torch-free, numpy only.

The PyTorch reference (`segzero_edge.models`), the exporter (`segzero_edge.export`) and the
runtime (`segzero_edge.runtime`) all sit on this layer and never import each other for it, so
a contract is written once and a parity check compares models, not two copies of the code.

- `segmenter_io`: SAM2's encoder/decoder graph names, constants, `SamEmbedding`, `EncodeOnceMixin`.
- `sam_preprocess`: SAM2's image resize/normalise, prompt encoding and mask upsampling.
- `reasoner_vision_io`: vision.onnx names, `VisionMeta` and its host-computed inputs (`grid_inputs`).
- `reasoner_text_io`: embed.onnx / decoder.onnx names (KV-cache step).
- `reasoner_prompt`: how the exported chat prompt is split around the user text.
- `qwen_preprocess`: Qwen2.5-VL's image processor (smart resize, patchify).
- `qwen_rope`: M-RoPE position ids of a prompt.
- `qwen_vision_index`: the vision tower's grid-dependent indices (rotary positions, windows).

`segzero_edge.generation.GenerationConfig` (how tokens are picked) is the other shared contract.
"""
