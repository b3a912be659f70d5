"""One module per figure of ``python -m bench``; each measures Sandkasten next to its baselines in the same run."""
