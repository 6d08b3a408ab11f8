"""Torch compute core of skpart: tensors in, tensors out, no numpy or sklearn."""
