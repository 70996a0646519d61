"""ConceptExpress (Hao et al., ECCV 2024): unsupervised concept extraction from one image.
localize.py finds the concepts (training-free); cluster.py holds symmetric KL and FINCH; tokens.py learns
one token per concept; evaluate.py scores both against ground truth."""
from .localize import AUTHORS as AUTHORS_LOCALIZE
from .localize import PAPER_RECIPE, Concept, Localization, localize
from .tokens import AUTHORS as AUTHORS_TOKENS
from .tokens import ConceptTokens, learn_tokens

__all__ = ["AUTHORS_LOCALIZE", "AUTHORS_TOKENS", "PAPER_RECIPE", "Concept", "Localization", "localize",
           "ConceptTokens", "learn_tokens"]
