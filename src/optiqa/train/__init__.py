"""Training: the objective (pixel + fidelity + adversarial terms), GAN loss types, the trainer.

Submodules are imported on demand (``optiqa.train.gan``, ``optiqa.train.objective``) so that
importing the package stays cheap.
"""
