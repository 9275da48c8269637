"""Evaluation of a model bundle: metrics, baseline, figures, report, public dev sets, model card.

Entry point: `kefu.training.evaluation.artifacts.run_evaluation` (what `kefu evaluate` calls).
"""
