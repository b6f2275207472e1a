"""pytest-benchmark suite (``make speed``; not collected by the unit tests), one torch thread: it only reports."""

import os
import sys
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.filterwarnings("ignore", message=".*reward functions were updated.*")
torch.set_num_threads(1)

OBS, ACT = 17, 6  # HalfCheetah sizes
