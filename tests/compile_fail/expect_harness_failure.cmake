# Runs check_compile.cmake on a deliberately broken expectation and passes only
# when the harness reports it: exit status non-zero and the complaint named by
# the source's `// HARNESS-REPORTS: <text>` line in its output. This proves that
# a wrong expectation cannot go unnoticed.
#
# Takes the same -D variables as check_compile.cmake.
cmake_minimum_required(VERSION 3.21)

file(STRINGS ${SOURCE} reports REGEX "^// HARNESS-REPORTS: ")
if(NOT reports)
  message(FATAL_ERROR "${SOURCE}: needs a `// HARNESS-REPORTS: <text>` line")
endif()
string(REGEX REPLACE "^// HARNESS-REPORTS: " "" expected "${reports}")

execute_process(COMMAND ${CMAKE_COMMAND}
                        -DCXX=${CXX} -DCXX_ID=${CXX_ID} -DSOURCE=${SOURCE} -DINCLUDE_DIR=${INCLUDE_DIR}
                        -DFLAGS_FILE=${FLAGS_FILE} -DWORK_DIR=${WORK_DIR}
                        -P ${CMAKE_CURRENT_LIST_DIR}/check_compile.cmake
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
string(FIND "${out}" "${expected}" at)
if(rc EQUAL 0 OR at EQUAL -1)
  message("--- harness output (exit status ${rc}) ---\n${out}--- end of harness output ---")
  message(FATAL_ERROR "the harness did not report the broken expectation of ${SOURCE}: "
                      "wanted a non-zero exit status and `${expected}`")
endif()
message(STATUS "the harness reported it: ${expected}")
