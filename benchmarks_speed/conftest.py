"""pytest-benchmark suite (``make speed``): every registered algorithm's training step and the replay buffer.

Not collected by the unit tests (``testpaths = ["tests"]``) and never a timed assertion: it reports.
Runs with one torch thread per process, like every run of the benchmark (see docs/PERFORMANCE.md).
"""

import os
import sys
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.filterwarnings("ignore", message=".*reward functions were updated.*")
torch.set_num_threads(1)

OBS, ACT = 17, 6  # HalfCheetah sizes
