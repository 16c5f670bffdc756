# Writes stackctl's bash completion script, as the built stackctl prints it
# (`stackctl --completion bash`), so the script follows the program's own table.
#
#   cmake -DSTACKCTL=<program> -DOUTPUT=<file> -P completion.cmake
cmake_minimum_required(VERSION 3.21)
execute_process(COMMAND ${STACKCTL} --completion bash RESULT_VARIABLE rc OUTPUT_VARIABLE script ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT script MATCHES "complete -F")
  message(FATAL_ERROR "'${STACKCTL} --completion bash' failed (exit status ${rc}): ${err}")
endif()
file(WRITE ${OUTPUT}.tmp "${script}")
file(RENAME ${OUTPUT}.tmp ${OUTPUT})
