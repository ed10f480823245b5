"""Reusing the source classifier's rows for target classes that exist in the source
dataset (d2l: ImageNet row 934 is "hotdog"): matching names and copying rows."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..models.base import Classifier


def normalise_name(name: str) -> str:
    """Case-, space-, hyphen- and underscore-insensitive form: "Hot_Dog" -> "hot dog"."""
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


@dataclass
class ReuseReport:
    """What classifier-row reuse did: target class -> (source index, source name) for the
    rows copied, and the target classes left with their random initialisation."""

    matched: dict[str, tuple[int, str]] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"reused {len(self.matched)} source rows:"]
        lines += [f"  {t!r} <- source row {i} ({s!r})" for t, (i, s) in self.matched.items()]
        if self.unmatched:
            lines.append(f"kept random rows for {len(self.unmatched)}: "
                         + ", ".join(repr(u) for u in self.unmatched))
        return "\n".join(lines)


def auto_mapping(target_classes: list[str], source_names, source_synonyms=()) -> dict:
    """Target class -> source index for every target name that equals a source class name
    or one of its synonyms, ignoring case, spaces, hyphens and underscores. A name is
    matched to the class whose primary name it is before any synonym."""
    primary = {normalise_name(n): i for i, n in enumerate(source_names)}
    synonym = {}
    for i, syns in enumerate(source_synonyms):
        for s in syns:
            synonym.setdefault(normalise_name(s), i)
    mapping = {}
    for t in target_classes:
        key = normalise_name(t)
        if key in primary:
            mapping[t] = primary[key]
        elif key in synonym:
            mapping[t] = synonym[key]
    return mapping


def resolve_mapping(mapping: dict, target_classes: list[str], source_names,
                    source_synonyms=()) -> dict:
    """Validate a user mapping of target class -> source index or source name (a primary
    name or one of its synonyms, as "auto" matches them)."""
    lookup = {}
    for i, syns in enumerate(source_synonyms):
        for syn in syns:
            lookup.setdefault(normalise_name(syn), i)
    lookup.update({normalise_name(n): i for i, n in enumerate(source_names)})
    resolved = {}
    for t, s in mapping.items():
        if t not in target_classes:
            raise ValueError(f"reuse_classifier: {t!r} is not a target class; target classes "
                             f"are {target_classes}")
        if isinstance(s, (int, np.integer)) and not isinstance(s, bool):
            if not 0 <= s < len(source_names):
                raise ValueError(f"reuse_classifier: source index {s} for {t!r} is outside "
                                 f"0..{len(source_names) - 1}")
            resolved[t] = int(s)
        elif isinstance(s, str) and normalise_name(s) in lookup:
            resolved[t] = lookup[normalise_name(s)]
        else:
            raise ValueError(f"reuse_classifier: {s!r} (for {t!r}) is not a source class name "
                             f"or index")
    return resolved


def copy_rows(source: Classifier, target: Classifier, target_classes: list[str],
              mapping: dict) -> ReuseReport:
    """Copy the source head's weight row and bias of each mapped class into the target
    head's row for that class."""
    src, dst = source.head, target.head
    if src.in_features != dst.in_features:
        raise ValueError(f"reuse_classifier: the source head takes {src.in_features} features, "
                         f"the target head {dst.in_features}")
    names = source.config.class_names
    report = ReuseReport()
    for row, t in enumerate(target_classes):
        if t in mapping:
            s = mapping[t]
            dst.weight.data[row] = src.weight.data[s]
            if dst.bias is not None and src.bias is not None:
                dst.bias.data[row] = src.bias.data[s]
            report.matched[t] = (s, names[s] if s < len(names) else str(s))
        else:
            report.unmatched.append(t)
    return report
