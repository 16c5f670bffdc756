# Consumer: only the single header, copied into a bare directory and compiled
# with the compiler alone -- `c++ -std=c++20 -I. main.cpp -lfmt`, no CMake target.
# Its command-line runner, single_include/stackup/cli.hpp beside it (with
# supervise.hpp, which it includes), is copied too and checked with a program that includes it alone (-fsyntax-only).
#
#   cmake -DSINGLE_HEADER=<single_include/stackup/stackup.hpp> -DPROGRAM=<consumer.cpp>
#         -DWORK_DIR=<dir> -DCXX=<compiler> [-DFMT_FLAGS=<flags;...>] -P single_header.cmake
#
# FMT_FLAGS is empty when fmt is installed where the compiler looks by itself.
cmake_minimum_required(VERSION 3.21)

file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR}/stackup)
file(COPY_FILE ${SINGLE_HEADER} ${WORK_DIR}/stackup/stackup.hpp)
get_filename_component(single_dir ${SINGLE_HEADER} DIRECTORY)
if(NOT EXISTS ${single_dir}/cli.hpp)
  message(FATAL_ERROR "${single_dir}/cli.hpp is missing: run python3 tools/amalgamate.py")
endif()
file(COPY_FILE ${single_dir}/cli.hpp ${WORK_DIR}/stackup/cli.hpp)
# cli.hpp's stack up --attach supervises: it includes supervise.hpp's single-header file.
file(COPY_FILE ${single_dir}/supervise.hpp ${WORK_DIR}/stackup/supervise.hpp)
file(COPY_FILE ${PROGRAM} ${WORK_DIR}/main.cpp)
file(WRITE ${WORK_DIR}/cli.cpp [=[
#include <stackup/cli.hpp>
struct Part : stackup::StackComponent<Part> {
  static constexpr std::string_view role = "part";
};
int main(int argc, char** argv) {
  stackup::Stack stack{"single", Part{}};
  return stackup::cli::run(stack, argc, argv);
}
]=])

set(command ${CXX} -std=c++20 -Wall -Wextra -I. main.cpp -o consumer ${FMT_FLAGS} -lfmt)
list(JOIN command " " shown)
message(STATUS "in ${WORK_DIR}: ${shown}")
execute_process(COMMAND ${command} WORKING_DIRECTORY ${WORK_DIR} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message("${out}")
  message(FATAL_ERROR "the single header alone did not compile: ${shown}")
endif()
set(command ${CXX} -std=c++20 -Wall -Wextra -fsyntax-only -I. cli.cpp ${FMT_FLAGS})
list(JOIN command " " shown)
message(STATUS "in ${WORK_DIR}: ${shown}")
execute_process(COMMAND ${command} WORKING_DIRECTORY ${WORK_DIR} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message("${out}")
  message(FATAL_ERROR "single_include/stackup/cli.hpp beside the single header did not compile: ${shown}")
endif()
execute_process(COMMAND ${WORK_DIR}/consumer WORKING_DIRECTORY ${WORK_DIR} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
message("${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the single-header consumer failed (exit status ${rc})")
endif()
