"""PyTorch reference reasoner and segmenter (torch, transformers)."""
