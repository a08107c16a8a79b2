"""A scripted stand-in for the RNN decoder's LSTM1, shared by the RNN decoder tests."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn


class ScriptedDecoder(nn.Module):
    """Outputs that follow a script: image i's step t gives ``gain * maps[i, t]`` and
    p = probs[i][t]. Feature channel 0 holds the image index; the state counts the steps."""

    def __init__(self, probs: list[list[float]], maps: Tensor) -> None:
        super().__init__()
        self.probs = torch.tensor(probs)
        self.maps = maps
        self.gain = nn.Parameter(torch.ones(()))
        self.num_joints = maps.shape[2]

    @staticmethod
    def features(batch: int, size: tuple[int, int]) -> Tensor:
        """The features that name each image: (B, 1, h, w) filled with the image index."""
        return torch.arange(batch).float()[:, None, None, None].expand(-1, 1, *size)

    def encode(self, features: Tensor) -> Tensor:
        return features

    def step(self, features: Tensor, state, passes: int = 2, encoded: Optional[Tensor] = None):
        image = features[:, 0, 0, 0].long()
        t = torch.zeros_like(image) if state is None else state[0][0][:, 0, 0, 0].long()
        prob = self.probs[image, t]
        logit = torch.logit(prob) * self.gain
        counter = (t + 1).float()[:, None, None, None]
        return self.gain * self.maps[image, t], torch.sigmoid(logit), logit, [(counter, counter)]
