"""The SimpleBaseline head: transposed convolutions that upsample backbone features to heatmaps.

Xiao, Wu, Wei, "Simple Baselines for Human Pose Estimation and Tracking" (ECCV 2018): three
deconvolution layers (kernel 4, stride 2, 256 filters, BatchNorm, ReLU) take a stride-32
ResNet feature map to stride 4, and a 1x1 convolution predicts one heatmap per joint.
Submodule names follow the official code (``deconv_layers``, ``final_layer``) so that its
checkpoints map onto this module by a prefix.
"""
from __future__ import annotations

from torch import Tensor, nn

# Padding and output padding that make a stride-2 transposed convolution exactly double
# the spatial size, per kernel size (as in the official code).
_DECONV_PADDING = {4: (1, 0), 3: (1, 1), 2: (0, 0)}


class DeconvHead(nn.Module):
    """(B, in_channels, h, w) features -> (B, num_joints, h * 2**num_layers, w * 2**num_layers)."""

    def __init__(self, in_channels: int, num_joints: int, num_layers: int = 3,
                 filters: int = 256, kernel: int = 4, final_kernel: int = 1) -> None:
        super().__init__()
        if kernel not in _DECONV_PADDING:
            raise ValueError(f"deconv kernel must be one of {sorted(_DECONV_PADDING)}, got {kernel}")
        if final_kernel not in (1, 3):
            raise ValueError(f"final kernel must be 1 or 3, got {final_kernel}")
        padding, output_padding = _DECONV_PADDING[kernel]
        layers: list[nn.Module] = []
        for i in range(num_layers):
            layers += [
                nn.ConvTranspose2d(in_channels if i == 0 else filters, filters, kernel, stride=2,
                                   padding=padding, output_padding=output_padding, bias=False),
                nn.BatchNorm2d(filters),
                nn.ReLU(inplace=True),
            ]
        self.deconv_layers = nn.Sequential(*layers)
        self.final_layer = nn.Conv2d(filters if num_layers else in_channels, num_joints,
                                     final_kernel, padding=final_kernel // 2)
        # The official initialisation: tiny weights so that the first heatmaps are near zero.
        for m in self.modules():
            if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d)):
                nn.init.normal_(m.weight, std=0.001)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        nn.init.constant_(self.final_layer.bias, 0)

    def forward(self, features: Tensor) -> Tensor:
        return self.final_layer(self.deconv_layers(features))
