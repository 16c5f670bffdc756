# Compiles one source file with the compiler under test and checks the outcome.
#
#   cmake -DCXX=<compiler> -DCXX_ID=<GNU|Clang> -DSOURCE=<file> -DINCLUDE_DIR=<dir>
#         -DFLAGS_FILE=<file> -DWORK_DIR=<dir> -P check_compile.cmake
#
# `<name>.pass.cpp` must compile (to an object file, with the project's strict
# warnings). `<name>.fail.cpp` must fail, and its diagnostics must contain what
# the file's own directives demand:
#
#   // EXPECT-ERROR: <text>       this exact text appears (any number of these; at least one)
#   // EXPECT-ROLE: <role>        the role is readable in the diagnostic: "role" or 'r', 'o', 'l', 'e'
#   // EXPECT-TYPE: <name>        this component type's name appears
#   // EXPECT-ERROR-COUNT: <n>    exactly n errors (e.g. one #error, no template wall)
#   // EXPECT-FIRST-ERROR: <text> the first error reported contains this text
#   // STD: c++17                 language standard (default c++20); allowed in both kinds
#
# A failing case without EXPECT-ERROR is refused: it would pass whatever the
# compiler said. Exit status: 0 when the expectation holds, 1 otherwise.

cmake_minimum_required(VERSION 3.21)

foreach(var CXX CXX_ID SOURCE INCLUDE_DIR FLAGS_FILE WORK_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_compile.cmake: -D${var}=... is required")
  endif()
endforeach()
# STACKUP_CF_INCLUDES, STACKUP_CF_DEFINES, STACKUP_CF_WARNINGS, STACKUP_CF_IMPLICIT_INCLUDES
include(${FLAGS_FILE})

get_filename_component(file_name ${SOURCE} NAME)
if(file_name MATCHES "\\.fail\\.cpp$")
  set(must_fail TRUE)
elseif(file_name MATCHES "\\.pass\\.cpp$")
  set(must_fail FALSE)
else()
  message(FATAL_ERROR "${SOURCE}: name must end in .fail.cpp or .pass.cpp")
endif()

# Directives.
file(READ ${SOURCE} content)
if(content MATCHES "(^|\n)// (EXPECT-[A-Z-]+|STD): [^\n]*;")
  message(FATAL_ERROR "${SOURCE}: a directive's text contains `;`, which CMake would split: "
                      "choose a fragment of the message without one")
endif()
file(STRINGS ${SOURCE} directives REGEX "^// (EXPECT-[A-Z-]+|STD): ")
set(expect_errors "")
set(expect_roles "")
set(expect_types "")
set(expect_count "")
set(expect_first "")
set(std c++20)
foreach(line IN LISTS directives)
  string(REGEX MATCH "^// ([A-Z-]+): (.*)$" _ "${line}")
  set(key ${CMAKE_MATCH_1})
  string(STRIP "${CMAKE_MATCH_2}" value)
  if(key STREQUAL "EXPECT-ERROR")
    list(APPEND expect_errors "${value}")
  elseif(key STREQUAL "EXPECT-ROLE")
    list(APPEND expect_roles "${value}")
  elseif(key STREQUAL "EXPECT-TYPE")
    list(APPEND expect_types "${value}")
  elseif(key STREQUAL "EXPECT-ERROR-COUNT")
    set(expect_count "${value}")
  elseif(key STREQUAL "EXPECT-FIRST-ERROR")
    set(expect_first "${value}")
  elseif(key STREQUAL "STD")
    set(std "${value}")
  else()
    message(FATAL_ERROR "${SOURCE}: unknown directive `${key}`")
  endif()
endforeach()
if(must_fail AND NOT expect_errors AND expect_first STREQUAL "")
  message(FATAL_ERROR "${SOURCE}: a .fail.cpp case needs at least one `// EXPECT-ERROR: <text>` line "
                      "(or EXPECT-FIRST-ERROR), "
                      "or it would pass whatever the compiler reports")
endif()
if(NOT must_fail AND (expect_errors OR expect_roles OR expect_types OR expect_count OR expect_first))
  message(FATAL_ERROR "${SOURCE}: a .pass.cpp twin must compile; EXPECT-* directives belong in the .fail.cpp case")
endif()

# Command line: the stackup include dir under test, then fmt's, minus the
# compiler's own (an explicit -I/usr/include breaks libstdc++'s #include_next).
set(args -std=${std} -I${INCLUDE_DIR})
foreach(dir IN LISTS STACKUP_CF_INCLUDES)
  if(NOT dir IN_LIST STACKUP_CF_IMPLICIT_INCLUDES AND NOT dir STREQUAL INCLUDE_DIR)
    list(APPEND args -I${dir})
  endif()
endforeach()
# A dependency's flags (WITH_TARGET), `|`-separated.
string(REPLACE "|" ";" extra_includes "${EXTRA_INCLUDES}")
string(REPLACE "|" ";" extra_options "${EXTRA_OPTIONS}")
foreach(dir IN LISTS extra_includes)
  if(NOT dir IN_LIST STACKUP_CF_IMPLICIT_INCLUDES AND NOT dir STREQUAL INCLUDE_DIR)
    list(APPEND args -I${dir})
  endif()
endforeach()
list(APPEND args ${extra_options})
foreach(def IN LISTS STACKUP_CF_DEFINES)
  list(APPEND args -D${def})
endforeach()
list(APPEND args ${STACKUP_CF_WARNINGS})
# No source lines echoed under the messages: a role or type name must be found
# in the diagnostic itself, not in a quoted line of the test's own source.
if(CXX_ID MATCHES "Clang")
  list(APPEND args -fno-caret-diagnostics -fno-color-diagnostics)
else()
  list(APPEND args -fno-diagnostics-show-caret -fdiagnostics-color=never)
endif()
file(MAKE_DIRECTORY ${WORK_DIR})
if(must_fail)
  list(APPEND args -fsyntax-only ${SOURCE})
else()
  list(APPEND args -c ${SOURCE} -o ${WORK_DIR}/${file_name}.o)
endif()

execute_process(COMMAND ${CXX} ${args} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
list(JOIN args " " shown_args)
set(report "command: ${CXX} ${shown_args}\n--- compiler output ---\n${out}--- end of compiler output ---")

if(NOT must_fail)
  if(NOT rc EQUAL 0)
    message("${report}")
    message(FATAL_ERROR "${file_name}: failed to compile, but this twin must compile")
  endif()
  message(STATUS "${file_name}: compiles, as it must")
  return()
endif()

if(rc EQUAL 0)
  message("${report}")
  message(FATAL_ERROR "${file_name}: compiled, but it was expected to fail")
endif()
set(problems "")
foreach(text IN LISTS expect_errors)
  string(FIND "${out}" "${text}" at)
  if(at EQUAL -1)
    string(APPEND problems "  expected diagnostic text not found: ${text}\n")
  endif()
endforeach()
foreach(role IN LISTS expect_roles)
  # "role" (FixedString shown as a string) or 'r', 'o', 'l', 'e' (a char pack).
  string(REGEX REPLACE "(.)" "'\\1', " chars "${role}")
  string(REGEX REPLACE ", $" "" chars "${chars}")
  string(FIND "${out}" "\"${role}\"" at_string)
  string(FIND "${out}" "${chars}" at_chars)
  if(at_string EQUAL -1 AND at_chars EQUAL -1)
    string(APPEND problems "  role not readable in the diagnostic: neither \"${role}\" nor ${chars} appears\n")
  endif()
endforeach()
foreach(type IN LISTS expect_types)
  if(NOT out MATCHES "[^A-Za-z0-9_]${type}[^A-Za-z0-9_]")
    string(APPEND problems "  component type not named in the diagnostic: ${type}\n")
  endif()
endforeach()
# Error lines: "file:line:col: error: ...", "file:line: fatal error: ...", "error: ...".
# List separators and brackets in messages would split or glue list items.
string(REGEX REPLACE "[][;]" "_" flat "${out}")
string(REGEX MATCHALL "(^|\n)([^ \n][^\n]*: )?(fatal )?error: [^\n]*" error_lines "${flat}")
if(NOT expect_first STREQUAL "")
  set(first_error "(none)")
  if(error_lines)
    list(GET error_lines 0 first_error)
  endif()
  string(FIND "${first_error}" "${expect_first}" at)
  if(at EQUAL -1)
    string(STRIP "${first_error}" first_error)
    string(APPEND problems "  the first error should contain: ${expect_first}\n    but it is: ${first_error}\n")
  endif()
endif()
if(NOT expect_count STREQUAL "")
  list(LENGTH error_lines count)
  if(NOT count EQUAL expect_count)
    string(APPEND problems "  expected exactly ${expect_count} error(s), the compiler reported ${count}\n")
  endif()
endif()
if(problems)
  message("${report}")
  message(FATAL_ERROR "${file_name}: failed to compile, but not with the expected diagnostic:\n${problems}")
endif()
message(STATUS "${file_name}: fails with the expected diagnostic")
