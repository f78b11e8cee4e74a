"""timm: and torchvision: backbones (being written)."""
