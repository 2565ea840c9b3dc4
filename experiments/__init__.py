"""What train.py and evaluate.py share: dataset -> model tensors, emotion/speaker probes, figures."""
