"""SERAC: edits in an explicit memory, a scope classifier, and a counterfactual model."""
