#!/usr/bin/env bash
# The MoE offload check for a machine with an NVIDIA GPU and the CUDA toolkit but no network.
#
#   bench/gpu_check.sh --pack DIR   (here, with network) writes a self-contained folder of at most 50 MB:
#                                   llama.cpp's source trimmed to what libllama + CUDA need, the project's
#                                   engine code, and the Python wheels the check needs;
#   bench/gpu_check.sh --run DIR    (there) builds llama.cpp with CUDA for that GPU's architecture only,
#                                   puts the libraries under llama-cpp-python's package, writes a
#                                   Mixtral-shaped random MoE GGUF of several GB and prints one table:
#                                   all on the GPU; layer offload under a VRAM cap; experts of the first
#                                   N layers in RAM under the same cap; and what the fit plan predicted.
#
# The wheels are for this interpreter's Python version and platform: run --run with the same Python
# (python3.11 on x86_64 Linux by default; PYTHON=... picks another one there).
set -euo pipefail

LLAMA_VERSION=0.3.36
LIMIT_MB=50
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WHEELS="numpy pydantic pydantic-core annotated-types typing-extensions typing-inspection gguf pyyaml tqdm"

usage() { echo "usage: $0 --pack DIR | --run DIR" >&2; exit 2; }

pack() {
  local dir="$1"
  PACK_TMP="$(mktemp -d)"; local tmp="$PACK_TMP"
  trap 'rm -rf "$PACK_TMP"' EXIT
  mkdir -p "$dir"
  echo "fetching llama-cpp-python $LLAMA_VERSION's source (it vendors llama.cpp)" >&2
  "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$LLAMA_VERSION" -d "$tmp"
  tar xzf "$tmp"/llama_cpp_python-"$LLAMA_VERSION".tar.gz -C "$tmp"
  local src="$tmp/llama_cpp_python-$LLAMA_VERSION"
  local llama="$src/vendor/llama.cpp"

  # llama.cpp: the top-level build, libllama's sources, ggml's core, its CPU and CUDA backends.
  rm -rf "$dir/llama.cpp" && mkdir -p "$dir/llama.cpp/ggml/src"
  cp -r "$llama"/{CMakeLists.txt,LICENSE,cmake,include,src,vendor,licenses} "$dir/llama.cpp/"
  cp -r "$llama"/ggml/{CMakeLists.txt,cmake,include} "$dir/llama.cpp/ggml/"
  find "$llama/ggml/src" -maxdepth 1 -type f -exec cp {} "$dir/llama.cpp/ggml/src/" \;
  cp -r "$llama"/ggml/src/{ggml-cpu,ggml-cuda} "$dir/llama.cpp/ggml/src/"
  # Backends the build names but this check does not build still need their folders' CMake files.
  for backend in "$llama"/ggml/src/ggml-*/; do
    name="$(basename "$backend")"
    [ -d "$dir/llama.cpp/ggml/src/$name" ] || { mkdir -p "$dir/llama.cpp/ggml/src/$name" && \
      cp "$backend"/CMakeLists.txt "$dir/llama.cpp/ggml/src/$name/" 2>/dev/null || true; }
  done

  # llama-cpp-python's Python package (pure Python; the libraries are built there) and the wheels.
  rm -rf "$dir/python" && mkdir -p "$dir/python/wheels"
  cp -r "$src/llama_cpp" "$dir/python/llama_cpp"
  rm -rf "$dir/python/llama_cpp/server"
  # shellcheck disable=SC2086
  "$PYTHON" -m pip download --quiet --only-binary :all: -d "$dir/python/wheels" $WHEELS

  # The project's engine code, and the check itself.
  rm -rf "$dir/storyteller" && mkdir -p "$dir/storyteller/engine" "$dir/storyteller/hub"
  cp "$ROOT"/storyteller/{__init__.py,gguf_header.py} "$dir/storyteller/"
  cp -r "$ROOT"/storyteller/engine/{*.py,*.c,*.cpp,worker} "$dir/storyteller/engine/"
  cp "$ROOT"/storyteller/hub/{__init__.py,fit.py,moe_fit.py} "$dir/storyteller/hub/"
  find "$dir/storyteller" -name '__pycache__' -prune -exec rm -rf {} +
  cp "$ROOT"/bench/gpu_check.py "$ROOT"/bench/gpu_check.sh "$dir/"

  local size_mb
  size_mb=$(du -sm "$dir" | cut -f1)
  echo "packed $dir: ${size_mb} MB" >&2
  if [ "$size_mb" -gt "$LIMIT_MB" ]; then
    echo "error: the folder is over ${LIMIT_MB} MB" >&2
    exit 1
  fi
}

run() {
  local dir
  dir="$(cd "$1" && pwd)"
  command -v nvidia-smi >/dev/null || { echo "error: no nvidia-smi: this check needs an NVIDIA GPU" >&2; exit 1; }
  command -v nvcc >/dev/null || { echo "error: no nvcc: this check needs the CUDA toolkit" >&2; exit 1; }
  local arch
  arch="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '. ')"
  echo "building llama.cpp for CUDA architecture $arch (at most 8 minutes)" >&2
  timeout 480 cmake -S "$dir/llama.cpp" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
    -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" -DGGML_NATIVE=ON \
    -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF >/dev/null
  timeout 480 cmake --build "$dir/build" --config Release -j "$(nproc)" --target llama ggml >/dev/null
  mkdir -p "$dir/python/llama_cpp/lib"
  find "$dir/build" -name 'lib*.so*' -exec cp -P {} "$dir/python/llama_cpp/lib/" \;

  "$PYTHON" -m venv "$dir/venv"
  # shellcheck disable=SC2086
  "$dir/venv/bin/pip" install --quiet --no-index --find-links "$dir/python/wheels" $WHEELS
  local py="$dir/venv/bin/python" suffix includes
  suffix="$("$py" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
  includes="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  g++ -O2 -shared -fPIC -I"$includes" "$dir/storyteller/engine/ecma_regex.cpp" -o "$dir/storyteller/engine/_ecma_regex$suffix"
  gcc -O2 -shared -fPIC -I"$includes" "$dir/storyteller/engine/router_tap.c" -o "$dir/storyteller/engine/_router_tap$suffix"
  cd "$dir" && PYTHONPATH="$dir:$dir/python" "$py" gpu_check.py "$dir/out"
}

[ $# -eq 2 ] || usage
case "$1" in
  --pack) pack "$2" ;;
  --run) run "$2" ;;
  *) usage ;;
esac
