"""Using a trained model: ``predict`` (top-k classes of image files and video clips, CSV keyed by
path) and ``generate`` (streamed text from a language model). Import the submodule you need;
this package imports nothing itself, so ``trainlab.inference.generate`` stays light."""
