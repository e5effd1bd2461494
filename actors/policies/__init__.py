"""The decision layers' policy networks: torch for training and export, numpy for serving."""
