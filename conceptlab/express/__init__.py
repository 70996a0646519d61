"""ConceptExpress (Hao et al., ECCV 2024): unsupervised concept extraction from one image.
localize.py finds the concepts (training-free); cluster.py holds symmetric KL and FINCH."""
from .localize import Concept, Localization, localize

__all__ = ["Concept", "Localization", "localize"]
