"""How far conceptlab's localization settings are from the ConceptExpress code's, on held-out toy-shapes scenes.

    .venv/bin/python benchmarks/authors_presets.py          # writes results/authors_presets.json (about 2 minutes)

The authors' localization is re-derived from their code in tests/test_express_localize.py (`authors_localization`,
distances in float64). Per setting: on how many scenes its concepts (grid masks) are exactly the authors'.
"their code in float32" is the same re-derivation with their float32 distances: how much rounding alone changes.
The ReNoise preset's effect on removal and context is in results/inversions.json ("renoise-authors").
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

import conceptlab
from conceptlab import express
from conceptlab.worlds import shapes

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from test_express_localize import authors_localization, same_masks  # noqa: E402  (the one re-derivation)

OUT = Path(__file__).parent / "results"
SCENES = 40


def main():
    model = conceptlab.load("toy-shapes")
    settings = {"express.AUTHORS_LOCALIZE": express.AUTHORS_LOCALIZE,
                "PAPER_RECIPE, not renormalized": dict(express.PAPER_RECIPE, renormalize=False),
                "PAPER_RECIPE": express.PAPER_RECIPE,
                "ours (defaults)": {}}
    same = {name: 0 for name in settings}
    same["their code in float32"] = 0
    for i in range(SCENES):
        image = shapes.scene("heldout", i).image
        theirs = authors_localization(model, image)
        for name, kw in settings.items():
            loc = express.localize(model, image, **kw)
            same[name] += same_masks(np.stack([c.grid_mask for c in loc.concepts]), theirs)
        same["their code in float32"] += same_masks(authors_localization(model, image, np.float32), theirs)
    result = {"scenes": SCENES, "same_concepts_as_the_authors": same}
    print(json.dumps(result, indent=2))
    OUT.mkdir(exist_ok=True)
    (OUT / "authors_presets.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
