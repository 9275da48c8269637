"""Evaluation of a model bundle: metrics, baseline, figures, report, public dev sets, model card.

Entry point: `training.evaluation.outputs.run_evaluation` (what `kefu evaluate` calls).
"""
