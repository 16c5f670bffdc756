# Install rules: headers, the exported target, a version-checked package config, pkg-config.
include(CMakePackageConfigHelpers)

set(STACKUP_CMAKE_DIR ${CMAKE_INSTALL_DATADIR}/cmake/stackup)

install(TARGETS stackup EXPORT stackupTargets)
# Always the modular headers (also when the tests use single_include/): an
# installed <stackup/stackup.hpp> includes the same files as the source tree.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/stackup DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.hpp")
install(EXPORT stackupTargets NAMESPACE stackup:: DESTINATION ${STACKUP_CMAKE_DIR})
# stackup::stack_file in an export set of its own, loaded only by
# find_package(stackup COMPONENTS stack_file): a consumer without stack files
# never needs toml++.
if(TARGET stackup_stack_file)
  install(TARGETS stackup_stack_file EXPORT stackupStackFileTargets)
  install(EXPORT stackupStackFileTargets NAMESPACE stackup:: DESTINATION ${STACKUP_CMAKE_DIR})
endif()

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/stackupConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/stackupConfig.cmake
                              INSTALL_DESTINATION ${STACKUP_CMAKE_DIR})
# 0.x and 1.x are incompatible: find_package(stackup 1.0) must not accept 0.1.
# Header-only, so one install serves 32- and 64-bit consumers alike.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/stackupConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION}
                                 COMPATIBILITY SameMajorVersion ARCH_INDEPENDENT)
install(FILES ${PROJECT_BINARY_DIR}/stackupConfig.cmake ${PROJECT_BINARY_DIR}/stackupConfigVersion.cmake
        DESTINATION ${STACKUP_CMAKE_DIR})

# pkg-config: the prefix is computed from the .pc file's own location, so that
# `cmake --install --prefix <dir>` gives a correct file for any <dir>.
set(STACKUP_PC_DIR ${CMAKE_INSTALL_DATADIR}/pkgconfig)
if(IS_ABSOLUTE "${STACKUP_PC_DIR}")
  set(STACKUP_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH stackup_pc_up "/prefix/${STACKUP_PC_DIR}" "/prefix")
  string(REGEX REPLACE "/$" "" stackup_pc_up "${stackup_pc_up}")
  set(STACKUP_PC_PREFIX "\${pcfiledir}/${stackup_pc_up}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(STACKUP_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(STACKUP_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/stackup.pc.in ${PROJECT_BINARY_DIR}/stackup.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/stackup.pc DESTINATION ${STACKUP_PC_DIR})
