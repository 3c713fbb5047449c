"""Export consistency check: run an exported model through clickrt's reference executor and
compare with PyTorch.

Contract with the C++ CLI:
  $CLICKRT_BIN run --model M.onnx --inputs IN_DIR --save-outputs OUT_DIR
IN_DIR holds one TensorProto file `<input_name>.pb` per graph input; the tool writes one
`<output_name>.pb` per graph output into OUT_DIR. CLICKRT_BIN defaults to
<repo>/build/bin/clickrt. No other runtime is used: without the binary the check is skipped
and says so.
"""
import os
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np

from .export import OUTPUT_NAME, max_abs_diff
from .tensor_io import read_tensor_dir, write_tensor_dir

TOLERANCE = 1e-5
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def clickrt_bin() -> str:
    return os.environ.get("CLICKRT_BIN") or os.path.join(REPO_ROOT, "build", "bin", "clickrt")


def missing_binary_reason() -> Optional[str]:
    """None if the clickrt binary can be run, else why not (for skip messages)."""
    path = clickrt_bin()
    if not os.path.isfile(path):
        return (f"clickrt binary not found at {path} (build it, or set CLICKRT_BIN); "
                f"export consistency check not run")
    if not os.access(path, os.X_OK):
        return f"clickrt binary at {path} is not executable; export consistency check not run"
    return None


class ClickrtError(RuntimeError):
    pass


def run_clickrt(model_path: str, inputs: Dict[str, np.ndarray], timeout: float = 300.0
                ) -> Dict[str, np.ndarray]:
    """Runs `clickrt run` on `inputs`; returns its outputs by name."""
    with tempfile.TemporaryDirectory(prefix="clickrt_check_") as tmp:
        in_dir, out_dir = os.path.join(tmp, "inputs"), os.path.join(tmp, "outputs")
        write_tensor_dir(in_dir, inputs)
        os.makedirs(out_dir)
        cmd = [clickrt_bin(), "run", "--model", model_path, "--inputs", in_dir,
               "--save-outputs", out_dir]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise ClickrtError(f"{' '.join(cmd)} exited with {proc.returncode}\n"
                               f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}")
        outputs = read_tensor_dir(out_dir)
        if not outputs:
            raise ClickrtError(f"{' '.join(cmd)} wrote no .pb files into {out_dir}\n"
                               f"stdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-2000:]}")
        return outputs


@dataclass
class CheckResult:
    ran: bool
    passed: bool
    max_abs_diff: float = float("nan")
    message: str = ""


def check_against(model_path: str, inputs: Dict[str, np.ndarray], expected: np.ndarray,
                  tolerance: float = TOLERANCE, log=print) -> CheckResult:
    """Compares clickrt's output "prob" with `expected` (PyTorch's) on `inputs`."""
    reason = missing_binary_reason()
    if reason:
        log(f"export check SKIPPED: {reason}")
        return CheckResult(False, False, message=reason)
    try:
        outputs = run_clickrt(model_path, inputs)
    except (ClickrtError, subprocess.TimeoutExpired, OSError) as e:
        log(f"export check FAILED: {e}")
        return CheckResult(True, False, message=str(e))
    if OUTPUT_NAME not in outputs:
        msg = f"clickrt wrote outputs {sorted(outputs)}, expected {OUTPUT_NAME!r}"
        log(f"export check FAILED: {msg}")
        return CheckResult(True, False, message=msg)
    got = outputs[OUTPUT_NAME]
    if got.shape != expected.shape:
        msg = f"output {OUTPUT_NAME} has shape {got.shape}, PyTorch gives {expected.shape}"
        log(f"export check FAILED: {msg}")
        return CheckResult(True, False, message=msg)
    diff = max_abs_diff(got, expected)
    passed = bool(np.isfinite(diff) and diff <= tolerance)
    msg = (f"{os.path.basename(model_path)} batch {expected.shape[0]}: "
           f"max abs diff vs PyTorch {diff:.3e} (tolerance {tolerance:g})")
    log(f"export check {'passed' if passed else 'FAILED'}: {msg}")
    return CheckResult(True, passed, diff, msg)
