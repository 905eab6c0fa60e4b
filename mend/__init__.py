"""MEND and the weight-editing baselines."""
