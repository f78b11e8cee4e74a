"""hf: and st: text backbones (being written)."""
