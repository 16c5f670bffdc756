# stackup_add_compile_check(NAME <test> SOURCE <file.pass.cpp|file.fail.cpp> INCLUDE_DIR <dir>
#                           [EXPECT_HARNESS_FAILURE] [WITH_TARGET <imported target>])
#
# Registers a CTest test that compiles SOURCE with CMAKE_CXX_COMPILER directly
# (no try_compile, no target) through check_compile.cmake, with the stackup
# include dir given, fmt's include dirs and definitions, and the project's strict
# warnings. Shared by tests/compile_fail and tests/headers. EXPECT_HARNESS_FAILURE
# turns it into a self-check: the harness must reject SOURCE's broken expectation.
# WITH_TARGET adds a dependency's include dirs and compile options (toml++ for
# <stackup/stack_file.hpp>).
include_guard(GLOBAL)


# fmt::fmt is an ALIAS when fmt was fetched; generator expressions want the real name.
get_target_property(stackup_fmt_target fmt::fmt ALIASED_TARGET)
if(NOT stackup_fmt_target)
  set(stackup_fmt_target fmt::fmt)
endif()
# Evaluated at generate time, so they see fmt as found or as fetched.
file(GENERATE OUTPUT ${PROJECT_BINARY_DIR}/compile_check/flags-$<CONFIG>.cmake CONTENT
"set(STACKUP_CF_INCLUDES \"$<TARGET_PROPERTY:${stackup_fmt_target},INTERFACE_INCLUDE_DIRECTORIES>\")
set(STACKUP_CF_DEFINES \"$<TARGET_PROPERTY:${stackup_fmt_target},INTERFACE_COMPILE_DEFINITIONS>\")
set(STACKUP_CF_IMPLICIT_INCLUDES \"${CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES}\")
# The same strict warnings as stackup_strict(): a twin must compile cleanly.
set(STACKUP_CF_WARNINGS \"-Wall;-Wextra;-Wpedantic;-Wconversion;-Wshadow;-Werror\")
")

function(stackup_add_compile_check)
  cmake_parse_arguments(PARSE_ARGV 0 arg "EXPECT_HARNESS_FAILURE" "NAME;SOURCE;INCLUDE_DIR;WITH_TARGET" "")
  set(script check_compile.cmake)
  if(arg_EXPECT_HARNESS_FAILURE)
    set(script expect_harness_failure.cmake)
  endif()
  # Not variables of the including directory: include_guard skips later includes.
  set(work ${PROJECT_BINARY_DIR}/compile_check)
  set(extra "")
  if(arg_WITH_TARGET)
    # `|`-separated: a `;` would split the -D argument.
    set(extra "-DEXTRA_INCLUDES=$<JOIN:$<TARGET_PROPERTY:${arg_WITH_TARGET},INTERFACE_INCLUDE_DIRECTORIES>,|>"
              "-DEXTRA_OPTIONS=$<JOIN:$<TARGET_PROPERTY:${arg_WITH_TARGET},INTERFACE_COMPILE_OPTIONS>,|>")
  endif()
  add_test(NAME ${arg_NAME}
           COMMAND ${CMAKE_COMMAND}
                   -DCXX=${CMAKE_CXX_COMPILER}
                   -DCXX_ID=${CMAKE_CXX_COMPILER_ID}
                   -DSOURCE=${arg_SOURCE}
                   -DINCLUDE_DIR=${arg_INCLUDE_DIR}
                   -DFLAGS_FILE=${work}/flags-$<CONFIG>.cmake
                   -DWORK_DIR=${work}/${arg_NAME}
                   ${extra}
                   -P ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/${script})
  # Diagnostics in English, whatever the machine's locale.
  set_tests_properties(${arg_NAME} PROPERTIES ENVIRONMENT "LC_ALL=C;LANG=C" LABELS compile_check)
endfunction()
