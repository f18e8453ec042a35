"""Export kiln models to ONNX (through the onnx package's helper API; kiln[onnx]).

``kiln.onnx.export(model, example_input, "model.onnx")`` traces one forward pass in
eval mode and writes an ONNX model with a symbolic batch dimension; onnxruntime runs it
(``onnxruntime.InferenceSession("model.onnx").run(None, {"input": x})``). The tracer
records kiln's ops, so any module built from kiln.nn layers and Tensor operations
exports, including residual blocks; an op without an ONNX equivalent raises
UnsupportedOperatorError naming the module that ran it.
"""

from kiln.onnx._export import MIN_OPSET, export
from kiln.onnx._graph import UnsupportedOperatorError

__all__ = ["MIN_OPSET", "UnsupportedOperatorError", "export"]
