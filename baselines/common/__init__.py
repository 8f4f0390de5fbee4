"""Model parts shared by the baselines: Swin, staged BERT, PWAM variants, checkpoint loading.

Modules (import from them directly; nothing heavy is imported here):
    swin           Swin Transformer with official key names, drivable stage by stage
    bert           BERT text encoder from ``transformers``, whole or in stages
    pwam           pixel-word attention (LAVT/MagNet forms), its attention core, the language gate
    checkpoint     safe reading (weights_only) and strict loading of official/refbench layouts
    layers         DropPath and token-layout helpers
    resnet         torchvision-compatible ResNet (DMMI's ResNet-101 backbone)
    msdeform_attn  multi-scale deformable attention in plain PyTorch (MagNet's pixel decoder)
"""
