"""The study lifecycle after cross-validation: a model locked on a training cohort (``fit``), saved as a
folder that can be trusted and moved, applied to new cases (``predict``) and evaluated per cohort
(``evaluate``)."""

from models.lifecycle.locked import DEFAULT_FAMILIES, Comparator, LockedModel, Member, fit_locked
from models.lifecycle.store import ModelFolderError, check_table, load_model, read_card, save_model

__all__ = [
    "DEFAULT_FAMILIES",
    "Comparator",
    "LockedModel",
    "Member",
    "ModelFolderError",
    "check_table",
    "fit_locked",
    "load_model",
    "read_card",
    "save_model",
]
