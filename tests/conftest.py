import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def tiny_pipe():
    """An untrained pipeline of the toy architecture, built in code: no file, no hub."""
    from diffusers import StableDiffusionPipeline

    from conceptlab.toy import nets, vocab

    torch.manual_seed(0)
    return StableDiffusionPipeline(vae=nets.vae(), text_encoder=nets.text_encoder(), tokenizer=vocab.tokenizer(),
                                   unet=nets.unet(), scheduler=nets.scheduler(), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)


@pytest.fixture(scope="session")
def tiny(tiny_pipe):
    from conceptlab.models import Model

    return Model(tiny_pipe, "tiny-random", toy=True)


@pytest.fixture(scope="session")
def toy():
    import conceptlab

    return conceptlab.load("toy-shapes")


@pytest.fixture(scope="session")
def toy_clip():
    import conceptlab

    return conceptlab.load_clip("toy-clip")
