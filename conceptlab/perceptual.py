"""LPIPS (Zhang et al. 2018), the fidelity score of ScalingConcept's Table 1, from the `lpips` package.

    lp = conceptlab.load_lpips("alex")      # lpips' linear heads on torchvision's ImageNet AlexNet
    lp.distance(edited, inputs)              # (B,): 0 for identical images, larger is further apart

The linear heads ship inside the lpips wheel; the backbone is torchvision's ImageNet network, which torchvision
downloads once into torch's hub cache (`torch.hub.get_dir()/checkpoints`). Offline, pass a folder that holds
that file instead: `load_lpips("/path/to/folder")` reads `<net>.pth` (torchvision's state dict of the network,
or of its `features`) and the net's name from `LPIPS.json` ({"net": "alex"}). `conceptlab.toy.tiny.lpips`
writes such a folder with a random backbone, for tests. LPIPS means nothing on the toy world's 32 x 32 scenes
(AlexNet never saw them), so the notebooks score it on real models only.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from .images import to_tensor
from .models import as_device, has_random_weights

# lpips' net name -> (torchvision builder, the weights file torchvision downloads)
NETS = {"alex": ("alexnet", "alexnet-owt-7be5be79.pth"), "vgg": ("vgg16", "vgg16-397923af.pth"),
        "squeeze": ("squeezenet1_1", "squeezenet1_1-b8a52dc0.pth")}
CONFIG = "LPIPS.json"


class Lpips:
    def __init__(self, model, name: str, net: str, random_weights: bool = False):
        self.model, self.name, self.net, self.random_weights = model.eval(), name, net, random_weights

    def __repr__(self):
        return f"Lpips({self.name!r}, net={self.net!r}" + (", random weights)" if self.random_weights else ")")

    @torch.no_grad()
    def distance(self, a, b) -> torch.Tensor:
        """LPIPS between two batches of images of one size ((B, 3, H, W) in [-1, 1], PIL images or lists): (B,).
        A single image on one side is compared with every image on the other."""
        a, b = to_tensor(a, None, "a"), to_tensor(b, None, "b")
        if a.shape[-2:] != b.shape[-2:]:
            raise ValueError(f"LPIPS compares images of one size, got {tuple(a.shape[-2:])} and {tuple(b.shape[-2:])} "
                             "(height, width): resize one side first")
        if len(a) != len(b) and 1 not in (len(a), len(b)):
            raise ValueError(f"got {len(a)} and {len(b)} images: give as many on each side, or one on a side")
        a, b = torch.broadcast_tensors(a, b)
        device = next(self.model.parameters()).device
        return self.model(a.to(device), b.to(device)).flatten().float().cpu()


def _backbone(net: str, folder: Path | None) -> dict:
    """The backbone's `features` state dict: from a folder's <net>.pth, or torchvision's cached download."""
    import torchvision

    arch, file = NETS[net]
    if folder is not None:
        path = folder / f"{net}.pth"
        if not path.exists():
            raise FileNotFoundError(f"{folder} has no {net}.pth: put torchvision's {file} there under that name")
        state = torch.load(path, map_location="cpu", weights_only=True)
    else:
        try:
            state = getattr(torchvision.models, arch)(weights="DEFAULT").state_dict()
        except Exception as e:                          # offline and not cached
            cache = Path(torch.hub.get_dir()) / "checkpoints" / file
            raise FileNotFoundError(
                f"LPIPS {net!r} needs torchvision's ImageNet {arch} weights ({file}), which are not in {cache.parent} "
                f"and could not be downloaded ({type(e).__name__}). On a machine with internet run "
                f"`python -c \"import torchvision; torchvision.models.{arch}(weights='DEFAULT')\"` and copy {cache} "
                f"here, or pass a folder holding it as {net}.pth: conceptlab.load_lpips('/path/to/folder')") from None
    features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    return features or state


def load_lpips(name: str = "alex", device: str = "cpu") -> Lpips:
    """LPIPS v0.1 with lpips' own linear heads: name is a net ("alex", as the papers' LPIPS; "vgg", "squeeze") or
    a folder with <net>.pth and LPIPS.json."""
    import lpips

    if not isinstance(name, (str, Path)) or not str(name).strip():
        raise ValueError(f"LPIPS: give a net name {sorted(NETS)} or a folder, got {name!r}")
    folder = Path(name) if str(name) not in NETS else None
    if folder is not None:
        if not (folder / CONFIG).exists():
            raise ValueError(f"LPIPS: {name!r} is neither a net name {sorted(NETS)} nor a folder holding {CONFIG} "
                             '({"net": "alex"}) and the backbone weights')
        net = json.loads((folder / CONFIG).read_text()).get("net")
        if net not in NETS:
            raise ValueError(f"{folder / CONFIG}: net must be one of {sorted(NETS)}, got {net!r}")
    else:
        net = str(name)
    features = _backbone(net, folder)
    with warnings.catch_warnings():                     # lpips builds its backbone with torchvision's old argument
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    slices = {k.split(".", 1)[1]: k for k in model.net.state_dict()}           # "slice1.0.weight" -> "0.weight"
    missing = sorted(set(slices) - set(features))
    if missing:
        raise ValueError(f"the {net} backbone weights lack {missing[:4]}: is it torchvision's {NETS[net][0]}?")
    model.net.load_state_dict({slices[k]: features[k] for k in slices})
    return Lpips(model.to(as_device(device)), str(name), net,
                 random_weights=folder is not None and has_random_weights(folder))
