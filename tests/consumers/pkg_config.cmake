# Consumer: an installed stackup used through pkg-config, no CMake on the consumer side:
# `c++ main.cpp $(pkg-config --cflags --libs stackup)`.
#
#   cmake -DPKG_CONFIG=<pkg-config> -DPREFIX=<install prefix> -DPROGRAM=<consumer.cpp>
#         -DWORK_DIR=<dir> -DCXX=<compiler> -DVERSION=<x.y.z> -P pkg_config.cmake
cmake_minimum_required(VERSION 3.21)

file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
file(GLOB pc_dirs LIST_DIRECTORIES true ${PREFIX}/*/pkgconfig ${PREFIX}/*/*/pkgconfig)
list(JOIN pc_dirs ":" pc_path)
if(DEFINED ENV{PKG_CONFIG_PATH} AND NOT "$ENV{PKG_CONFIG_PATH}" STREQUAL "")
  string(APPEND pc_path ":$ENV{PKG_CONFIG_PATH}")
endif()
set(ENV{PKG_CONFIG_PATH} "${pc_path}")

function(pkg_config out_var)
  execute_process(COMMAND ${PKG_CONFIG} ${ARGN} stackup RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "pkg-config ${ARGN} stackup failed (PKG_CONFIG_PATH=${pc_path}): ${err}")
  endif()
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()

pkg_config(version --modversion)
if(NOT version STREQUAL VERSION)
  message(FATAL_ERROR "stackup.pc says version ${version}, the project is ${VERSION}")
endif()
pkg_config(flags --cflags --libs)
separate_arguments(flags UNIX_COMMAND "${flags}")
# The include dir pkg-config gives must be the one inside this prefix.
list(JOIN flags " " joined)
string(FIND "${joined}" "-I${PREFIX}/" at)
if(at EQUAL -1)
  message(FATAL_ERROR "stackup.pc points outside ${PREFIX}: ${flags}")
endif()

set(command ${CXX} ${PROGRAM} -o ${WORK_DIR}/consumer ${flags})
list(JOIN command " " shown)
message(STATUS "${shown}")
execute_process(COMMAND ${command} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message("${out}")
  message(FATAL_ERROR "compiling with pkg-config's flags failed: ${shown}")
endif()
execute_process(COMMAND ${WORK_DIR}/consumer RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
message("${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the pkg-config consumer failed (exit status ${rc})")
endif()
