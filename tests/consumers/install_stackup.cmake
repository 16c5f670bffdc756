# Installs stackup from its source tree into a fresh prefix, the way a user
# would (`cmake --install`), and checks that the package files are there.
#
#   cmake -DSTACKUP_SOURCE_DIR=<dir> -DBINARY_DIR=<dir> -DPREFIX=<dir> -DGENERATOR=<gen>
#         -DCXX=<compiler> [-DMAKE_PROGRAM=<make>] [-DFMT_SOURCE_DIR=<dir>] [-DEXPECT_STACKCTL=ON]
#         -P install_stackup.cmake
cmake_minimum_required(VERSION 3.21)

file(REMOVE_RECURSE ${BINARY_DIR} ${PREFIX})
set(options -S ${STACKUP_SOURCE_DIR} -B ${BINARY_DIR} -G ${GENERATOR} -DCMAKE_CXX_COMPILER=${CXX}
            -DSTACKUP_BUILD_TESTS=OFF -DSTACKUP_BUILD_EXAMPLES=OFF -DSTACKUP_INSTALL=ON
            # Installed somewhere other than where it was configured for: the
            # package files must not depend on the configure-time prefix.
            -DCMAKE_INSTALL_PREFIX=${BINARY_DIR}/unused-prefix)
if(MAKE_PROGRAM)
  list(APPEND options -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM})
endif()
if(FMT_SOURCE_DIR)
  list(APPEND options -DFETCHCONTENT_SOURCE_DIR_FMT=${FMT_SOURCE_DIR})
endif()

foreach(command IN ITEMS "${CMAKE_COMMAND};${options}"
                         "${CMAKE_COMMAND};--build;${BINARY_DIR}"
                         "${CMAKE_COMMAND};--install;${BINARY_DIR};--prefix;${PREFIX}")
  execute_process(COMMAND ${command} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message("${out}")
    list(JOIN command " " shown)
    message(FATAL_ERROR "installing stackup failed: ${shown}")
  endif()
endforeach()

# Whatever GNUInstallDirs chose on this platform, these must exist under PREFIX.
foreach(pattern IN ITEMS include/stackup/stackup.hpp include/stackup/version.hpp include/stackup/detail/plan.hpp
                         */cmake/stackup/stackupConfig.cmake */cmake/stackup/stackupConfigVersion.cmake
                         */cmake/stackup/stackupTargets.cmake */pkgconfig/stackup.pc)
  file(GLOB found ${PREFIX}/${pattern})
  if(NOT found)
    message(FATAL_ERROR "the install into ${PREFIX} lacks ${pattern}")
  endif()
endforeach()
# stackctl, on the PATH of whoever adds PREFIX/bin, runs from there.
if(EXPECT_STACKCTL)
  file(GLOB stackctl ${PREFIX}/bin/stackctl)
  if(NOT stackctl)
    message(FATAL_ERROR "the install into ${PREFIX} lacks bin/stackctl")
  endif()
  execute_process(COMMAND ${stackctl} --help WORKING_DIRECTORY ${PREFIX} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0 OR NOT out MATCHES "stack file:")
    message(FATAL_ERROR "the installed stackctl --help failed (exit status ${rc}):\n${out}")
  endif()
  # Its bash completion, where bash-completion looks for it (generated at build time).
  file(GLOB completion ${PREFIX}/share/bash-completion/completions/stackctl)
  if(NOT completion)
    message(FATAL_ERROR "the install into ${PREFIX} lacks share/bash-completion/completions/stackctl")
  endif()
  file(READ ${completion} script)
  execute_process(COMMAND ${stackctl} --completion bash OUTPUT_VARIABLE printed RESULT_VARIABLE rc)
  if(NOT script MATCHES "complete -F _stackctl stackctl\n" OR NOT script STREQUAL printed)
    message(FATAL_ERROR "${completion} is not what 'stackctl --completion bash' prints:\n${script}")
  endif()
endif()
file(GLOB_RECURSE installed RELATIVE ${PREFIX} ${PREFIX}/*)
list(LENGTH installed count)
message(STATUS "stackup installed into ${PREFIX} (${count} files)")
