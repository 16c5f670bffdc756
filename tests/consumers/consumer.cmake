# Configures, builds and runs one consumer project, from scratch.
#
#   cmake -DMODE=run|build|configure_fails -DSOURCE_DIR=<project> -DBINARY_DIR=<dir>
#         -DGENERATOR=<gen> -DCXX=<compiler> [-DSTACKUP_SOURCE_DIR=<dir>] [-DPREFIX=<dir>]
#         [-DFMT_SOURCE_DIR=<dir>] [-DEXPECT=<text>] -P consumer.cmake
#
# MODE=run: configure, build, run ./consumer; each step must succeed.
# MODE=build: configure and build; each step must succeed (nothing is run).
# MODE=configure_fails: configuring must fail, and its output must contain every
# `|`-separated fragment of EXPECT (whitespace runs compared as one space,
# because CMake wraps its messages).
cmake_minimum_required(VERSION 3.21)

file(REMOVE_RECURSE ${BINARY_DIR})
set(options -S ${SOURCE_DIR} -B ${BINARY_DIR} -G ${GENERATOR} -DCMAKE_CXX_COMPILER=${CXX})
if(MAKE_PROGRAM)
  list(APPEND options -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM})
endif()
if(STACKUP_SOURCE_DIR)
  list(APPEND options -DSTACKUP_SOURCE_DIR=${STACKUP_SOURCE_DIR})
endif()
if(PREFIX)
  list(APPEND options -DCMAKE_PREFIX_PATH=${PREFIX} -DSTACKUP_EXPECTED_PREFIX=${PREFIX})
endif()
if(FMT_SOURCE_DIR)
  # fmt was fetched for stackup's own build: let the consumer reuse that source, offline.
  list(APPEND options -DFETCHCONTENT_SOURCE_DIR_FMT=${FMT_SOURCE_DIR})
endif()

function(step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message("${out}")
    message(FATAL_ERROR "consumer ${SOURCE_DIR}: ${what} failed (exit status ${rc})")
  endif()
  message(STATUS "${what}: ok")
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

if(MODE STREQUAL "run")
  step("configure" ${CMAKE_COMMAND} ${options})
  step("build" ${CMAKE_COMMAND} --build ${BINARY_DIR})
  step("run" ${BINARY_DIR}/consumer)
  message("${step_output}")
elseif(MODE STREQUAL "build")
  step("configure" ${CMAKE_COMMAND} ${options})
  step("build" ${CMAKE_COMMAND} --build ${BINARY_DIR})
elseif(MODE STREQUAL "configure_fails")
  execute_process(COMMAND ${CMAKE_COMMAND} ${options} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(rc EQUAL 0)
    message("${out}")
    message(FATAL_ERROR "consumer ${SOURCE_DIR}: configuring succeeded, but it must fail")
  endif()
  string(REGEX REPLACE "[ \t\r\n]+" " " flat "${out}")
  string(REPLACE "|" ";" fragments "${EXPECT}")
  foreach(fragment IN LISTS fragments)
    string(FIND "${flat}" "${fragment}" at)
    if(at EQUAL -1)
      message("${out}")
      message(FATAL_ERROR "consumer ${SOURCE_DIR}: configuring failed, but without: ${fragment}")
    endif()
  endforeach()
  message(STATUS "configuring failed as it must, with: ${EXPECT}")
else()
  message(FATAL_ERROR "consumer.cmake: MODE must be run, build or configure_fails")
endif()
