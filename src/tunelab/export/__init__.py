"""Export a neural predictor with its fitted preprocessing inside: ONNX or TorchScript.

Example::

    from tunelab.export import export_predictor, feed, run_exported

    exported = export_predictor("runs/tabular", format="onnx")
    run_exported(exported.path, "onnx", feed(tunelab.load_predictor("runs/tabular"), frame))
"""

from tunelab.export.inputs import feed
from tunelab.export.write import FORMATS, TOLERANCE, Exported, export_predictor, run_exported

__all__ = ["FORMATS", "TOLERANCE", "Exported", "export_predictor", "feed", "run_exported"]
