"""The compile workers' converters: user models (ONNX, TorchScript) → device models (TFLite, QDQ ONNX).

Importing this package is light; the converter stack (TensorFlow, onnx2tf, ONNX Runtime) loads in warm_up() or
with the first conversion, torch only when a TorchScript model arrives.
"""

from . import rewrites, strategies, verify
from .interface import CompiledModel, CompileRequest, ConversionError
from .pipeline import compile_model, warm_up

__all__ = ["CompileRequest", "CompiledModel", "ConversionError", "compile_model", "rewrites", "strategies", "verify",
           "warm_up"]
