# Consumer test driver (cmake -P): installs the configured ltlearn build tree into a scratch
# prefix, then configures, builds and runs tests/consumer against that prefix alone.
#
# Inputs (-D): LTL_SOURCE_DIR, LTL_BUILD_DIR, WORK_DIR, GENERATOR, MAKE_PROGRAM, CXX_COMPILER,
#              BUILD_TYPE, CXX_FLAGS, EXE_LINKER_FLAGS (the last three may be empty).
cmake_minimum_required(VERSION 3.20)

foreach(var LTL_SOURCE_DIR LTL_BUILD_DIR WORK_DIR GENERATOR CXX_COMPILER)
  if(NOT ${var})
    message(FATAL_ERROR "consumer test: -D${var}=... is required")
  endif()
endforeach()

function(run_step what)
  message(STATUS "consumer test: ${what}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer test: '${what}' failed (${rc})")
  endif()
endfunction()

set(prefix ${WORK_DIR}/prefix)
set(build ${WORK_DIR}/build)
file(REMOVE_RECURSE ${WORK_DIR})

set(config_args)
if(BUILD_TYPE)
  set(config_args --config ${BUILD_TYPE})
endif()
run_step("install ltlearn into ${prefix}" ${CMAKE_COMMAND} --install ${LTL_BUILD_DIR} --prefix ${prefix}
  --component ltlearn ${config_args})
foreach(f include/ltlearn/ltlearn.hpp share/cmake/ltlearn/ltlearnConfig.cmake
          share/cmake/ltlearn/ltlearnConfigVersion.cmake share/cmake/ltlearn/ltlearnTargets.cmake)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "consumer test: the install did not produce ${f}")
  endif()
endforeach()

set(configure_args -S ${LTL_SOURCE_DIR}/tests/consumer -B ${build} -G ${GENERATOR}
  -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
  -DCMAKE_PREFIX_PATH=${prefix}
  -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON
  "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}"
  "-DCMAKE_EXE_LINKER_FLAGS=${EXE_LINKER_FLAGS}")
if(MAKE_PROGRAM)
  list(APPEND configure_args -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM})
endif()
if(BUILD_TYPE)
  list(APPEND configure_args -DCMAKE_BUILD_TYPE=${BUILD_TYPE})
endif()
run_step("configure tests/consumer" ${CMAKE_COMMAND} ${configure_args})

# The package must come from the scratch prefix, not from the source or build tree.
file(STRINGS ${build}/CMakeCache.txt found REGEX "^ltlearn_DIR:")
string(REGEX REPLACE "^ltlearn_DIR:[A-Z]+=" "" found "${found}")
file(REAL_PATH "${prefix}/share/cmake/ltlearn" expected)
file(REAL_PATH "${found}" found)
if(NOT found STREQUAL expected)
  message(FATAL_ERROR "consumer test: ltlearn was found at '${found}', expected '${expected}'")
endif()

run_step("build tests/consumer" ${CMAKE_COMMAND} --build ${build} ${config_args})

set(app ${build}/app)
if(NOT EXISTS ${app} AND BUILD_TYPE)
  set(app ${build}/${BUILD_TYPE}/app)  # multi-config generators
endif()
run_step("run the consumer" ${app})
