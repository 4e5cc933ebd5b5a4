#!/usr/bin/env bash
# Every GPU check of ltlearn in one command, for a machine with an NVIDIA GPU, the CUDA 13
# driver/runtime and cuDNN 9 (from the toolkit, a Debian/conda package or a Python wheel), but
# possibly no package registry and no -dev packages. In under 6 minutes it
#   1. finds the cuDNN, cuBLAS and CUDA runtime libraries and puts their folders on
#      LD_LIBRARY_PATH (printing which files it uses),
#   2. takes prebuilt binaries (--bin DIR or $LTL_GPU_BIN: a build folder, searched recursively)
#      or else builds them with CMake for this machine's GPU only (build/gpu-check),
#   3. runs every CUDA test binary (test_cuda, test_cuda_*), a short GPU training run
#      (fmnist_lt_cuda --device cuda, when the binary and the Fashion-MNIST files exist), the GPU
#      benchmark (ltl_bench_cuda) and, where a CUDA-enabled PyTorch is found, the same workloads
#      side by side with PyTorch (benchmarks/compare_pytorch.py --device cuda), each under its
#      own timeout, running what exists and listing what is missing,
#   4. writes every log into one results folder (--out DIR, else $OUT, else gpu_check_results/)
#      with summary.txt (device, libraries, one line per step). Exit status 0 when nothing failed.
# Without a GPU it still runs the binaries (their [cuda] cases report SKIPPED) and says so.
#
#   scripts/gpu_check.sh [--bin DIR] [--out DIR] [--no-build]
#   scripts/gpu_check.sh --bundle DIR [--bin BUILD]   (on the build machine: see below)
#
# --bundle DIR copies the CUDA test binaries, fmnist_lt_cuda, cifar_lt_cuda and ltl_bench_cuda found under
# BUILD (default build/gpu-portable, else build/release) to DIR/bin, and the shared libraries
# they load (fmt, libjpeg, libpng, zlib, OpenMP, libstdc++, the CUDA runtime; not glibc, the
# driver, cuBLAS, cuDNN or NCCL, which the GPU machine provides) to DIR/lib, so that a GPU machine
# without -dev packages runs them: `scripts/gpu_check.sh --bin DIR` there puts DIR/lib first.
#   env: LTL_GPU_BIN, OUT, LTL_FMNIST_DIR (Fashion-MNIST IDX files), LTL_GPU_TRAIN_CMD (replaces
#        the training run), LTL_GPU_CHECK_BUDGET (seconds, default 330), LTL_GPU_CHECK_FILTER
#        (the Catch2 test spec of the test binaries' step, default "[cuda],[cuda-host]")
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The checkout's commit (short hash), "unknown" outside a git checkout.
repo_commit() { git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown; }
source "$repo/scripts/gpu_targets.sh"
bin_dir="${LTL_GPU_BIN:-}"
out_dir="${OUT:-$repo/gpu_check_results}"
allow_build=1
bundle_dir=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bin) bin_dir="$2"; shift 2 ;;
    --out) out_dir="$2"; shift 2 ;;
    --no-build) allow_build=0; shift ;;
    --bundle) bundle_dir="$2"; shift 2 ;;
    -h|--help) sed -n '2,28p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "gpu_check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
# ---- --bundle: package prebuilt binaries with their libraries, then stop ----------------------
if [[ -n "$bundle_dir" ]]; then
  src="${bin_dir:-}"
  if [[ -z "$src" ]]; then
    for d in "$repo/build/gpu-portable" "$repo/build/release"; do [[ -d "$d" ]] && { src="$d"; break; }; done
  fi
  [[ -n "$src" && -d "$src" ]] || { echo "gpu_check --bundle: no build folder (give --bin BUILD)" >&2; exit 2; }
  mkdir -p "$bundle_dir/bin" "$bundle_dir/lib"
  n=0
  while IFS= read -r f; do
    cp -p "$f" "$bundle_dir/bin/"
    n=$((n + 1))
    # Libraries the GPU machine must provide itself: glibc and the loader, the NVIDIA driver,
    # cuBLAS and cuDNN (hundreds of MB; a wheel or the toolkit has them).
    ldd "$f" 2> /dev/null | awk '/=> \//{print $3}' | grep -Ev '/(libc|libm|libdl|librt|libpthread|ld-linux[^/]*|libcuda|libnvidia[^/]*|libcublas[^/]*|libcudnn[^/]*|libnccl[^/]*)\.so' |
      while IFS= read -r lib; do cp -pL "$lib" "$bundle_dir/lib/" 2> /dev/null || true; done
  done < <(find "$src" -type f -perm -u+x \( -name 'test_cuda' -o -name 'test_cuda_*' -o -name '*_cuda' -o -name ltl_bench_cuda \
             -o -name image_smoke_data \) ! -name '*.*' ! -name '*_emu' 2> /dev/null)
  # Symbols are not needed there, and the whole bundle travels (often under a size limit).
  command -v strip > /dev/null 2>&1 && strip "$bundle_dir"/bin/* 2> /dev/null
  # A Fashion-MNIST subset for the training run (the GPU machine may have no copy, and the whole
  # set would not fit a 64 MiB transfer): per class the first images the exponential profile keeps
  # (6000 · 100^(−c/9), +2 for rounding) — about 14,900 of the 60,000 — in file order, and the test
  # set, as valid IDX files (their counts rewritten). The training run uses --profile exp.
  fm="${LTL_FMNIST_DIR:-/usr/share/datasets/fashion-mnist}"
  if [[ -f "$fm/train-images-idx3-ubyte.gz" && -f "$fm/train-labels-idx1-ubyte.gz" ]] && command -v perl > /dev/null; then
    mkdir -p "$bundle_dir/fmnist"
    perl -e '
      use strict; use warnings;
      my ($dir, $out) = @ARGV;
      sub slurp { open(my $f, "-|", "zcat", $_[0]) or die "zcat $_[0]: $!"; binmode $f; local $/; my $d = <$f>; return $d; }
      sub spill { open(my $f, "|-", "gzip -c > $_[0]") or die "gzip: $!"; binmode $f; print $f $_[1]; close $f or die "gzip $_[0]"; }
      my $l = slurp("$dir/train-labels-idx1-ubyte.gz");
      my $im = slurp("$dir/train-images-idx3-ubyte.gz");
      my @lab = unpack("C*", substr($l, 8));
      my ($rows, $cols) = unpack("N2", substr($im, 8, 8));
      my $k = $rows * $cols;
      my @need = map { int(6000 * 100 ** (-$_ / 9)) + 2 } 0 .. 9;
      my (@keep, %have);
      for my $i (0 .. $#lab) { my $c = $lab[$i]; if (($have{$c} // 0) < $need[$c]) { push @keep, $i; $have{$c}++; } }
      my $n = scalar @keep;
      spill("$out/train-labels-idx1-ubyte.gz", pack("N2", 2049, $n) . pack("C*", @lab[@keep]));
      spill("$out/train-images-idx3-ubyte.gz", pack("N4", 2051, $n, $rows, $cols) . join("", map { substr($im, 16 + $_ * $k, $k) } @keep));
      print "Fashion-MNIST subset: $n training images\n";
    ' "$fm" "$bundle_dir/fmnist"
    cp -p "$fm"/t10k-*-ubyte.gz "$bundle_dir/fmnist/"
  fi
  # Which sources the binaries were built from, for the check's summary and the next session.
  commit="$(repo_commit)"
  [[ -n "$(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null)" ]] && commit+=" (with local changes)"
  echo "$commit" > "$bundle_dir/COMMIT"
  echo "bundled $n binaries from $src into $bundle_dir ($(du -sh "$bundle_dir" | cut -f1)) at commit $commit; libraries:"
  ls "$bundle_dir/lib"
  (( n > 0 ))
  exit $?
fi

budget="${LTL_GPU_CHECK_BUDGET:-330}"
start=$SECONDS
mkdir -p "$out_dir"
summary="$out_dir/summary.txt"
: > "$summary"
failures=0

say() { echo "$*" | tee -a "$summary"; }
left() { echo $(( budget - (SECONDS - start) )); }

say "ltlearn GPU check, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(repo_commit)"
[[ -n "$bin_dir" && -f "$bin_dir/COMMIT" ]] && say "prebuilt binaries from commit $(cat "$bin_dir/COMMIT")"

# ---- 1. the device ------------------------------------------------------------------------
have_gpu=0
if command -v nvidia-smi > /dev/null 2>&1 &&
   nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$out_dir/device.txt" 2>&1; then
  have_gpu=1
  say "device: $(head -n 1 "$out_dir/device.txt") ($(wc -l < "$out_dir/device.txt") GPU(s) visible)"
  nvidia-smi > "$out_dir/nvidia-smi.txt" 2>&1 || true
else
  say "device: no NVIDIA GPU visible (nvidia-smi missing or failing): [cuda] cases will report SKIPPED"
fi

# ---- 2. the libraries ---------------------------------------------------------------------
# Candidate folders, in order of preference: explicit, Python wheels, conda, the toolkit, system.
lib_dirs=()
add_dir() { [[ -d "$1" ]] && lib_dirs+=("$(cd "$1" && pwd)"); }
[[ -n "$bin_dir" ]] && add_dir "$bin_dir/lib"  # a --bundle folder's libraries first
[[ -n "${CUDNN_ROOT:-}" ]] && { add_dir "$CUDNN_ROOT/lib"; add_dir "$CUDNN_ROOT/lib64"; }
site_dirs=()
for py in python3 python; do
  if command -v "$py" > /dev/null 2>&1; then
    while IFS= read -r d; do site_dirs+=("$d"); done < <("$py" - <<'PY' 2>/dev/null
import site, sys
dirs = list(getattr(site, "getsitepackages", lambda: [])()) + [site.getusersitepackages()] + sys.path
print("\n".join(d for d in dict.fromkeys(dirs) if d))
PY
    )
  fi
done
shopt -s nullglob
site_dirs+=(/usr/local/lib/python3*/dist-packages /usr/lib/python3/dist-packages "$HOME"/.local/lib/python3*/site-packages)
for s in "${site_dirs[@]}"; do
  for sub in cudnn cublas cuda_runtime cu13 cuda_nvrtc nvjitlink nccl; do add_dir "$s/nvidia/$sub/lib"; done
done
[[ -n "${CONDA_PREFIX:-}" ]] && add_dir "$CONDA_PREFIX/lib"
for d in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda /usr/local/cuda-13*; do
  [[ -n "$d" ]] && { add_dir "$d/lib64"; add_dir "$d/targets/x86_64-linux/lib"; }
done
add_dir /usr/lib/x86_64-linux-gnu
shopt -u nullglob

# The first folder holding each library wins; only those folders go on LD_LIBRARY_PATH.
find_lib() {  # name pattern (e.g. libcudnn.so.9*) -> first match
  local d f
  for d in "${lib_dirs[@]}"; do
    for f in "$d"/$1; do [[ -e "$f" ]] && { echo "$f"; return 0; }; done
  done
  return 1
}
ld_extra=""
for lib in "libcudnn.so.9*" "libcublas.so.13*" "libcublasLt.so.13*" "libcudart.so.13*" "libnccl.so.2*"; do
  if f="$(find_lib "$lib")"; then
    say "library: ${lib%%.so*} -> $f"
    d="$(dirname "$f")"
    case ":$ld_extra:" in *":$d:"*) ;; *) ld_extra="${ld_extra:+$ld_extra:}$d" ;; esac
  else
    say "library: ${lib%%.so*} NOT FOUND in ${#lib_dirs[@]} candidate folders (set CUDNN_ROOT or CUDA_HOME, or pip install nvidia-cudnn-cu13)"
  fi
done
# A bundle's own libraries (--bundle) come first: they are what the binaries were linked with.
if [[ -n "$bin_dir" && -d "$bin_dir/lib" ]]; then
  d="$(cd "$bin_dir/lib" && pwd)"
  rest=":$ld_extra:"
  rest="${rest//:$d:/:}"  # moved to the front if a library was already found there
  rest="${rest#:}"
  rest="${rest%:}"
  ld_extra="$d${rest:+:$rest}"
fi
export LD_LIBRARY_PATH="${ld_extra}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
say "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"

# ---- 3. the binaries ------------------------------------------------------------------------
find_bin() {  # name -> path of an executable called exactly `name` under $bin_dir
  [[ -n "$bin_dir" && -d "$bin_dir" ]] || return 1
  find "$bin_dir" -type f -name "$1" -perm -u+x 2> /dev/null | head -n 1
}
if [[ -z "$bin_dir" ]]; then
  for d in "$repo/build/gpu-portable" "$repo/build/gpu-check" "$repo/build/release"; do
    if [[ -n "$(find "$d" -type f -name test_cuda -perm -u+x 2> /dev/null | head -n 1)" ]]; then bin_dir="$d"; break; fi
  done
fi
if [[ -z "$bin_dir" && $allow_build == 1 ]]; then
  if command -v cmake > /dev/null 2>&1 && { command -v nvcc > /dev/null 2>&1 || [[ -x /usr/local/cuda/bin/nvcc ]]; }; then
    bin_dir="$repo/build/gpu-check"
    arch=native
    [[ $have_gpu == 1 ]] || arch=75-real  # "native" needs a GPU at configure time
    say "build: no prebuilt binaries; building in $bin_dir for CUDA architecture '$arch'"
    jobs="$(nproc 2> /dev/null || echo 4)"
    if timeout "$(left)" cmake -S "$repo" -B "$bin_dir" -DCMAKE_BUILD_TYPE=Release -DLTL_WITH_CUDA=ON -DLTL_CUDA_EXAMPLES_ALL=ON \
         -DCMAKE_CUDA_ARCHITECTURES="$arch" -DCMAKE_CUDA_COMPILER="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)" \
         > "$out_dir/configure.log" 2>&1; then
      mapfile -t targets < <(gpu_check_targets "$bin_dir")
      if ! timeout "$(left)" cmake --build "$bin_dir" -j "$jobs" --target "${targets[@]}" > "$out_dir/build.log" 2>&1; then
        say "build: FAILED or timed out (see build.log); running whatever was built"
        failures=$((failures + 1))
      fi
    else
      say "build: configure FAILED (see configure.log)"
      failures=$((failures + 1))
    fi
  else
    say "build: no prebuilt binaries and no cmake/nvcc to build them"
  fi
fi
say "binaries: ${bin_dir:-none}"

# ---- 4. the steps ---------------------------------------------------------------------------
# run_step NAME TIMEOUT CMD...: log to NAME.log, one summary line with status and seconds.
run_step() {
  local name="$1" limit="$2" t0=$SECONDS rc status
  shift 2
  local remaining; remaining="$(left)"
  if (( remaining < 10 )); then say "$(printf '%-28s %s' "$name" "NOT RUN: the ${budget}s budget is spent")"; return; fi
  (( limit > remaining )) && limit=$remaining
  timeout --kill-after=5 "$limit" "$@" > "$out_dir/$name.log" 2>&1
  rc=$?
  last_rc=$rc
  if (( rc == 124 || rc == 137 )); then status="TIMEOUT after ${limit}s"; failures=$((failures + 1))
  elif (( rc != 0 )); then status="FAILED (exit $rc)"; failures=$((failures + 1))
  elif grep -q "SKIPPED:" "$out_dir/$name.log"; then
    status="passed, GPU cases SKIPPED: $(grep -m1 -o 'SKIPPED:.*' "$out_dir/$name.log" | cut -c10-120)"
  else status="passed"; fi
  say "$(printf '%-28s %-8s %s' "$name" "$((SECONDS - t0))s" "$status")"
}

missing=()
tests=()
if [[ -n "$bin_dir" && -d "$bin_dir" ]]; then
  # (not test_cuda_emu: the emulated device's build of the same cases, tests/support/cuda_emu)
  while IFS= read -r f; do tests+=("$f"); done < <(find "$bin_dir" -type f -perm -u+x \( -name test_cuda -o -name 'test_cuda_*' \) \
                                                     ! -name '*.*' ! -name '*_emu' 2> /dev/null | sort)
fi
(( ${#tests[@]} )) || missing+=("test_cuda*")
# A test binary killed by a signal (a crash, an abort) loses the cases after the one that crashed,
# and a sticky CUDA error poisons the rest of its process: then each case it did not finish runs
# alone, so one bad kernel does not hide the others.
last_rc=0
run_rest_alone() {  # binary log: every listed case without a "<secs> s: <name>" line in log
  local t="$1" log="$2" name spec done_names crashed="" n_run=0 n_fail=0 lb="[" rb="]"
  done_names="$(sed -n 's/^[0-9][0-9.]* s: //p' "$log")"
  while IFS= read -r name; do
    [[ -z "$name" ]] && continue
    grep -Fxq -- "$name" <<< "$done_names" && continue
    if [[ -z "$crashed" ]]; then crashed="$name"; say "  crashed in: $name"; continue; fi
    (( $(left) < 15 )) && { say "  budget spent before: $name"; break; }
    spec="${name//\\/\\\\}"; spec="${spec//,/\\,}"; spec="${spec//"$lb"/\\[}"; spec="${spec//"$rb"/\\]}"
    n_run=$((n_run + 1))
    echo "==== $name" >> "${log%.log}.alone.log"
    if ! timeout --kill-after=5 60 "$t" "$spec" -d yes >> "${log%.log}.alone.log" 2>&1; then
      n_fail=$((n_fail + 1)); say "  alone FAILED: $name"
    fi
  done < <("$t" --list-test-names-only "$filter" 2> /dev/null | sed 's/^ *//')
  say "  ran $n_run unfinished case(s) alone: $n_fail failed (log ${log##*/}: .alone.log)"
  (( n_fail )) && failures=$((failures + 1))
}
# The NCCL case starts MPI in its own process (a singleton): with Open MPI that needs its runtime
# (orted and its plugins), which a bundle does not carry; without it MPI_Init would abort the
# whole binary, so the case is left out and the summary says so.
filter="${LTL_GPU_CHECK_FILTER:-[cuda],[cuda-host]}"
if [[ -z "${LTL_GPU_CHECK_FILTER:-}" ]] && ! command -v orted > /dev/null 2>&1 && ! command -v mpiexec > /dev/null 2>&1; then
  filter="[cuda]~[nccl],[cuda-host]~[nccl]"
  say "note: no MPI runtime (orted / mpiexec) here: the [nccl] case is not run"
fi
for t in "${tests[@]}"; do
  # -d yes: per-case durations; the [cuda] and [cuda-host] cases, everything else is CPU-only.
  run_step "$(basename "$t")" 150 "$t" "$filter" -d yes
  if (( last_rc > 128 && last_rc != 137 )); then run_rest_alone "$t" "$out_dir/$(basename "$t").log"; fi
done

fmnist="$(find_bin fmnist_lt_cuda)"
data="${LTL_FMNIST_DIR:-/usr/share/datasets/fashion-mnist}"
[[ -z "${LTL_FMNIST_DIR:-}" && ! -f "$data/train-images-idx3-ubyte.gz" && -n "$bin_dir" && -d "$bin_dir/fmnist" ]] &&
  data="$bin_dir/fmnist"  # the --bundle's subset
if [[ -n "${LTL_GPU_TRAIN_CMD:-}" ]]; then
  run_step train_gpu 120 bash -c "$LTL_GPU_TRAIN_CMD"
elif [[ -z "$fmnist" ]]; then
  missing+=("fmnist_lt_cuda")
elif [[ ! -f "$data/train-images-idx3-ubyte.gz" ]]; then
  say "$(printf '%-28s %s' train_gpu "NOT RUN: no Fashion-MNIST files in $data (set LTL_FMNIST_DIR)")"
else
  run_step train_gpu 120 "$fmnist" --device cuda --data-dir "$data" --profile exp --train-limit 2000 --depth 8 \
    --epochs 2 --quiet --out "$out_dir/train_gpu"
fi
# The encoded-image trainer on the GPU (a generated JPEG set, ResNet-10 at 32 px, two epochs),
# then the same run's final checkpoint evaluated on the CPU by a resume (the device is not part
# of a run's fingerprint) — the two test reports must agree — and stage 2's backbone pass on the
# GPU (decouple_image_cuda, post-hoc rules only).
imagenet="$(find_bin imagenet_lt_cuda)" gen="$(find_bin image_smoke_data)" dimg="$(find_bin decouple_image_cuda)"
if [[ -n "$imagenet" && -n "$gen" ]]; then
  img="$out_dir/image_gpu"
  rm -rf "$img"
  # Its own bash, so that run_step's timeout covers it all.
  run_step image_train_gpu 90 env IMG="$img" GEN="$gen" IMAGENET="$imagenet" DIMG="$dimg" bash -c '
    set -uo pipefail
    args=(--root "$IMG/data" --num-classes 5 --train-list "$IMG/data/train.txt" --val-list "$IMG/data/val.txt"
          --test-list "$IMG/data/test.txt" --arch resnet10 --resolution 32 --batch-size 8 --eval-batch-size 16
          --lr 0.05 --workers 2 --threads 2 --quiet --skip-bad-images --epochs 2 --out "$IMG/run")
    "$GEN" "$IMG/data" && "$IMAGENET" "${args[@]}" --device cuda && cp "$IMG/run/results.json" "$IMG/results_gpu.json" &&
      "$IMAGENET" "${args[@]}" --device cpu --resume "$IMG/run/checkpoint.safetensors" &&
      cp "$IMG/run/results.json" "$IMG/results_cpu_eval.json" || exit 1
    a="$(grep -o "\"top1\": *[0-9.e-]*" "$IMG/results_gpu.json" | head -n 1)"
    b="$(grep -o "\"top1\": *[0-9.e-]*" "$IMG/results_cpu_eval.json" | head -n 1)"
    n="$(wc -l < "$IMG/data/test.txt")"
    echo "test top-1 trained on the GPU: ${a#*:}; its checkpoint evaluated on the CPU: ${b#*:} ($n test images)"
    # Equal up to one image whose top logits are within the two backends'"'"' rounding of each other.
    awk -v a="${a#*:}" -v b="${b#*:}" -v n="$n" "BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != \"\" && d <= 1 / n + 1e-9) }" ||
      { echo "the CPU evaluation of the GPU checkpoint differs by more than one image"; exit 1; }
    [[ -z "$DIMG" ]] || "$DIMG" --out "$IMG/run" --device cuda --no-retrain --threads 2'
else
  missing+=("imagenet_lt_cuda/image_smoke_data")
fi
bench="$(find_bin ltl_bench_cuda)"
if [[ -n "$bench" ]]; then
  run_step ltl_bench_cuda 150 "$bench" --benchmark_min_time=0.2
  # Side by side with PyTorch on the same GPU, where a CUDA-enabled torch is installed.
  py=""
  for p in python3 /usr/bin/python3 python; do
    if command -v "$p" > /dev/null 2>&1 && "$p" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2> /dev/null; then
      py="$p"; break
    fi
  done
  if [[ -n "$py" ]]; then
    run_step compare_pytorch_cuda 150 "$py" "$repo/benchmarks/compare_pytorch.py" --device cuda --cuda-bench "$bench" \
      --only model,loss --json "$out_dir/compare_pytorch_cuda.json"
  else
    say "$(printf '%-28s %s' compare_pytorch_cuda "NOT RUN: no Python with a CUDA-enabled torch")"
  fi
else
  missing+=("ltl_bench_cuda")
fi

(( ${#missing[@]} )) && say "missing binaries (not run): ${missing[*]}"
if [[ $have_gpu == 0 ]]; then say "note: no GPU here, so nothing above ran on a GPU"; fi
say "total: $((SECONDS - start))s, $failures failing step(s); logs in $out_dir"
(( failures == 0 ))
