#!/usr/bin/env bash
# Builds clickrt here and bundles the binaries with the non-system shared libraries they need
# (from ldd) into one folder that runs on a GPU host with LD_LIBRARY_PATH set, where none of our
# Debian libraries are installed. Then `bash .device/run_gpu_tests.sh` runs the GPU tests there.
#
# Usage: scripts/gpu_bundle.sh [OUT_DIR]   (default .device, ignored by git)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-.device}"
BUILD_DIR="${BUILD_DIR:-build}"
if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
ninja -C "$BUILD_DIR" clickrt clickrt_cuda_tests clickrt_unit_tests >/dev/null
rm -rf "$OUT"
mkdir -p "$OUT/bin" "$OUT/lib"
BINS=("$BUILD_DIR/bin/clickrt" "$BUILD_DIR/bin/clickrt_cuda_tests" "$BUILD_DIR/bin/clickrt_unit_tests")
for b in "${BINS[@]}"; do
  if [[ -x "$b" ]]; then cp "$b" "$OUT/bin/"; fi
done
# Libraries a GPU host's base system (glibc, libstdc++, the CUDA driver, CUDA 13 in
# /usr/local/cuda) already provides.
SYSTEM='^(linux-vdso|libc\.|libm\.|libdl\.|librt\.|libpthread\.|ld-linux|libgcc_s\.|libstdc\+\+\.|libcuda\.|libcudart\.|libcublas)'
for b in "$OUT"/bin/*; do
  ldd "$b" | awk '/=>/ {print $1, $3}' | while read -r name path; do
    if [[ ! "$name" =~ $SYSTEM && -f "$path" && ! -f "$OUT/lib/$name" ]]; then
      cp -L "$path" "$OUT/lib/$name"
    fi
  done
done
cat >"$OUT/run_gpu_tests.sh" <<'RUN'
#!/usr/bin/env bash
# Runs on the GPU host from the repository root: the GPU tests, then the CPU unit tests, from the bundle.
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
export LD_LIBRARY_PATH="$HERE/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$HERE/bin/clickrt" devices
"$HERE/bin/clickrt_cuda_tests"; rc=$?
"$HERE/bin/clickrt_unit_tests" --gtest_brief=1 || rc=1
exit $rc
RUN
chmod +x "$OUT/run_gpu_tests.sh"
du -sh "$OUT"
