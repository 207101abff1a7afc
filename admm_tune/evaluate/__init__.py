"""Black-box evaluation of candidates (knows nothing of ADMM).

Modules: :mod:`.pipeline` (config → scikit-learn pipeline → CV loss),
:mod:`.function` (plain Python objectives), :mod:`.export` (ONNX),
:mod:`.backends` (ONNX Runtime, OpenVINO, TensorRT), :mod:`.timing` (the
latency harness) and :mod:`.deploy` (a candidate's deployment: export,
compile, verify, time).  Nothing is imported here, so that the problem
loader can read the backends' capabilities without importing evaluators.
"""
