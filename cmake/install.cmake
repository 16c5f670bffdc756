# Install rules: headers, the exported target, a version-checked package config, pkg-config.
include(CMakePackageConfigHelpers)

install(TARGETS stackup EXPORT stackupTargets)
install(DIRECTORY ${STACKUP_INCLUDE_DIR}/stackup DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
set(STACKUP_CMAKE_DIR ${CMAKE_INSTALL_DATADIR}/cmake/stackup)
install(EXPORT stackupTargets NAMESPACE stackup:: DESTINATION ${STACKUP_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/stackupConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/stackupConfig.cmake INSTALL_DESTINATION ${STACKUP_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/stackupConfigVersion.cmake
                                 COMPATIBILITY SameMajorVersion ARCH_INDEPENDENT)
install(FILES ${PROJECT_BINARY_DIR}/stackupConfig.cmake ${PROJECT_BINARY_DIR}/stackupConfigVersion.cmake
        DESTINATION ${STACKUP_CMAKE_DIR})
configure_file(${PROJECT_SOURCE_DIR}/cmake/stackup.pc.in ${PROJECT_BINARY_DIR}/stackup.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/stackup.pc DESTINATION ${CMAKE_INSTALL_DATADIR}/pkgconfig)
