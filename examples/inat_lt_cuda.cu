// inat_lt compiled by nvcc with the CUDA backend, so that --device cuda is available (device.hpp).
#define LTL_EXAMPLE_CUDA 1
#include <ltlearn/cuda.hpp>

#include "inat_lt.cpp"
