# Umbrella completeness check (cmake -P): every public header under <INCLUDE_ROOT>/ltlearn must be
# reachable from the umbrella header, so `#include <ltlearn/ltlearn.hpp>` (or <ltlearn/cuda.hpp>)
# really gives the whole library. The compiler's own dependency output (-M) decides reachability,
# so conditional includes and include paths count exactly as in a build; the header list is
# globbed when the check runs, so a header added or moved since the last configure is seen too.
#
# MODE=cpu (default): the umbrella is ltlearn/ltlearn.hpp, preprocessed as C++. Exempt:
#   backends/cuda/ and cuda.hpp (nvcc only) and detail/ (private helpers; the public headers that
#   need them include them). The CPU backend (backends/cpu/) and the device-neutral backend
#   contract are required: the CPU umbrella provides the CPU device, and a backend header that no
#   op reaches is dead code.
# MODE=cuda: the umbrella is ltlearn/cuda.hpp, preprocessed as CUDA (CXX is nvcc); it must reach
#   ltlearn/ltlearn.hpp and every header under backends/cuda/ (.hpp and kernel .cuh) except a
#   backends/cuda/detail/. The CPU headers are MODE=cpu's business: nvcc may skip CPU-only code.
#
# Inputs (-D): CXX (the compiler), INCLUDE_ROOT (the directory holding ltlearn/), MODE,
#   INCLUDE_DIRS, DEFINES, FLAGS: '|'-separated include directories, definitions (NAME or
#   NAME=VALUE) and extra compiler flags of a build that uses ltlearn.
cmake_minimum_required(VERSION 3.20)
foreach(var CXX INCLUDE_ROOT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_umbrella.cmake: -D${var}=... is required")
  endif()
endforeach()

set(args)
foreach(kind INCLUDE_DIRS DEFINES FLAGS)
  if(NOT "${${kind}}" STREQUAL "")
    string(REPLACE "|" ";" items "${${kind}}")
    foreach(item IN LISTS items)
      if(item STREQUAL "")
        continue()
      elseif(kind STREQUAL "INCLUDE_DIRS")
        list(APPEND args "-I${item}")
      elseif(kind STREQUAL "DEFINES")
        list(APPEND args "-D${item}")
      else()
        list(APPEND args "${item}")
      endif()
    endforeach()
  endif()
endforeach()

if(NOT DEFINED MODE OR MODE STREQUAL "")
  set(MODE cpu)
endif()
cmake_path(SET root NORMALIZE "${INCLUDE_ROOT}/")
if(MODE STREQUAL "cpu")
  set(umbrella "${root}ltlearn/ltlearn.hpp")
  set(language c++)
  set(patterns "${root}ltlearn/*.hpp" "${root}ltlearn/*.h")
  # dist/mpi.hpp and dist/nccl.hpp need <mpi.h> / <nccl.h>: programs linked to ltlearn::mpi include them.
  set(exempt "^ltlearn/(backends/cuda/|detail/|dist/mpi\\.hpp$|dist/nccl\\.hpp$|cuda\\.hpp$|ltlearn\\.hpp$)")
elseif(MODE STREQUAL "cuda")
  set(umbrella "${root}ltlearn/cuda.hpp")
  set(language cu)
  set(patterns "${root}ltlearn/ltlearn.hpp" "${root}ltlearn/backends/cuda/*.hpp" "${root}ltlearn/backends/cuda/*.h"
               "${root}ltlearn/backends/cuda/*.cuh")
  set(exempt "^ltlearn/backends/cuda/detail/")
else()
  message(FATAL_ERROR "check_umbrella.cmake: MODE must be cpu or cuda, not '${MODE}'")
endif()
if(NOT EXISTS "${umbrella}")
  message(FATAL_ERROR "check_umbrella.cmake: ${umbrella} does not exist")
endif()

# -M lists every header the preprocessor opened; -x because the input is a header (its
# "#pragma once in main file" warning is expected and harmless).
execute_process(COMMAND ${CXX} ${args} -I${root} -x ${language} -M "${umbrella}"
  OUTPUT_VARIABLE deps ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "check_umbrella.cmake: preprocessing ${umbrella} failed (${rc}):\n${err}")
endif()

# Make-rule syntax: "target: dep dep \<newline> dep ...". Escaped spaces do not occur in the
# paths this matters for (the include tree); everything else is split on whitespace.
string(REGEX REPLACE "^[^:]*:" "" deps "${deps}")
string(REPLACE "\\\n" " " deps "${deps}")
string(REGEX REPLACE "[ \t\r\n]+" ";" deps "${deps}")
set(reached)
foreach(dep IN LISTS deps)
  if(dep STREQUAL "")
    continue()
  endif()
  cmake_path(SET dep NORMALIZE "${dep}")
  cmake_path(IS_PREFIX root "${dep}" NORMALIZE under_root)
  if(under_root)
    cmake_path(RELATIVE_PATH dep BASE_DIRECTORY "${root}")
    list(APPEND reached "${dep}")
  endif()
endforeach()

file(GLOB_RECURSE public RELATIVE "${root}" ${patterns})
list(FILTER public EXCLUDE REGEX "${exempt}")
list(REMOVE_DUPLICATES public)
list(SORT public)
set(missing)
foreach(header IN LISTS public)
  if(NOT header IN_LIST reached)
    list(APPEND missing "${header}")
  endif()
endforeach()

list(LENGTH public n_public)
if(missing)
  list(LENGTH missing n_missing)
  list(JOIN missing "\n  " missing_text)
  message(FATAL_ERROR "${n_missing} of ${n_public} public headers are not reachable from ${umbrella}; "
                      "add them to the umbrella (or move private ones under detail/):\n  ${missing_text}")
endif()
message(STATUS "all ${n_public} public headers are reachable from ${umbrella}")
