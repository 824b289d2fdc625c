"""Prompt learning: templates, verbalizers, zero-shot and few-shot classifiers, the k-shot protocol.

Entry point: ``lmforge prompt CONFIG.yaml`` (:mod:`lmforge.recipes.prompt`); see docs/prompting.md.
Modules: ``templates`` and ``verbalizers`` (prompt text and label words), ``encoders``, ``mlm`` and
``decoder`` (how each kind of model is prompted), ``icl`` and ``setfit`` (few-shot pieces),
``classifiers`` and ``methods`` (what each method builds), ``protocol`` (k-shot draws over seeds),
``artifacts`` (saved classifiers for ``lmforge predict`` / ``evaluate``).
"""
