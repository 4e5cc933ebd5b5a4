# Sourced (not run) by the test scripts that train on Fashion-MNIST: the one place that says
# where its IDX files are. Sets `data` to LTL_FMNIST_DIR, default the directory of Debian's
# dataset-fashion-mnist (which the README's set-up installs), and defines
#
#   fmnist_present          true when the training images are there
#   require_fmnist [WHAT]   otherwise prints "SKIPPED[ (WHAT)]: ..." and exits 77 (CTest's skip code)
data="${LTL_FMNIST_DIR:-/usr/share/datasets/fashion-mnist}"

fmnist_present() { [[ -f "$data/train-images-idx3-ubyte.gz" ]]; }

require_fmnist() {
  fmnist_present && return 0
  echo "SKIPPED${1:+ ($1)}: Debian's dataset-fashion-mnist is not installed in $data" \
       "(the README test command installs it; LTL_FMNIST_DIR names another directory)"
  exit 77
}
