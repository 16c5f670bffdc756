# Proves that `tools/amalgamate.py --check` notices a stale single header: it
# checks a copy with one line changed and must exit 1 telling how to fix it.
#
#   cmake -DPYTHON=<python3> -DSOURCE_DIR=<stackup source> -DWORK_DIR=<dir> -P stale_single_header.cmake
cmake_minimum_required(VERSION 3.21)

set(copy ${WORK_DIR}/stackup.hpp)
file(MAKE_DIRECTORY ${WORK_DIR})
file(READ ${SOURCE_DIR}/single_include/stackup/stackup.hpp text)
file(WRITE ${copy} "${text}// an edit made by hand\n")
execute_process(COMMAND ${PYTHON} ${SOURCE_DIR}/tools/amalgamate.py --check --output ${copy}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
string(FIND "${out}" "Fix: run `python3 tools/amalgamate.py`" at)
if(NOT rc EQUAL 1 OR at EQUAL -1)
  message("${out}")
  message(FATAL_ERROR "amalgamate.py --check did not report a stale single header (exit status ${rc})")
endif()
message(STATUS "a stale single header is reported:\n${out}")
